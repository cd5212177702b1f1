# cython: language_level=3

cdef class CaptureSampler:
    """Deterministic 1-in-(100/capture_pct) sampler shared by every lock of a collector."""
    cdef readonly double capture_pct
    cdef double _counter

    # The check every lock operation makes: an add and a compare, inlined into the lock module.
    # The GIL serialises callers; no atomics needed.
    cdef inline bint should_capture(self) noexcept:
        self._counter += self.capture_pct
        if self._counter >= 100.0:
            self._counter -= 100.0
            return True
        return False
