# cython: language_level=3

from libc.stdint cimport uint64_t
from lockprof._lockcore cimport lp_sample_check

# The counter counts millionths of a percent: integer steps make the counts exact (33.3%
# captures exactly 999 of 3000 checks, where a float accumulator drifts and loses one).
cdef enum:
    PCT_SCALE = 1000000
    FULL_SCALE = 100 * PCT_SCALE


cdef class CaptureSampler:
    """Deterministic 1-in-(100/capture_pct) sampler shared by every lock of a collector."""
    cdef readonly double capture_pct
    cdef long long _step
    cdef long long _counter  # with the GIL: the one counter; without it each thread has its own
    cdef uint64_t _serial  # which per-thread counters are this sampler's (_sync.h)
    cdef uint64_t _threads  # threads that have counted for it: each one's starting phase

    # The check every lock operation makes: an add and a compare, inlined into the lock module
    # (lp_sample_check: no shared write without the GIL).
    cdef inline bint should_capture(self) noexcept:
        return lp_sample_check(&self._counter, self._serial, &self._threads, self._step, FULL_SCALE)
