# cython: language_level=3

# The counter counts millionths of a percent: integer steps make the counts exact (33.3%
# captures exactly 999 of 3000 checks, where a float accumulator drifts and loses one).
cdef enum:
    PCT_SCALE = 1000000
    FULL_SCALE = 100 * PCT_SCALE


cdef class CaptureSampler:
    """Deterministic 1-in-(100/capture_pct) sampler shared by every lock of a collector."""
    cdef readonly double capture_pct
    cdef long long _step
    cdef long long _counter

    # The check every lock operation makes: an add and a compare, inlined into the lock module.
    # The GIL serialises callers; no atomics needed.
    cdef inline bint should_capture(self) noexcept:
        self._counter += self._step
        if self._counter >= FULL_SCALE:
            self._counter -= FULL_SCALE
            return True
        return False
