# cython: language_level=3
"""The capture sampler: decides which lock operations are recorded."""

from libc.math cimport isfinite, llround

from lockprof._lockcore cimport lp_new_sampler_serial


cdef class CaptureSampler:
    """Captures capture_pct percent of the checks, evenly spaced.

    Each check adds capture_pct to a counter; when the counter reaches 100 the check captures and
    100 is subtracted. So 1.0 captures every hundredth operation, 100 every one, 0 none. The
    counter is an integer of millionths of a percent, so the counts are exact. Without a GIL
    each thread keeps its own counter, so each thread's share is exact instead (_sync.h).
    """

    def __cinit__(self, capture_pct):
        if isinstance(capture_pct, bool) or not isinstance(capture_pct, (int, float)):
            raise TypeError(
                f"capture_pct must be a number between 0 and 100, got {type(capture_pct).__name__}")
        cdef double pct = capture_pct
        if not isfinite(pct) or pct < 0.0 or pct > 100.0:
            raise ValueError(f"capture_pct must be a number between 0 and 100, got {capture_pct!r}")
        self.capture_pct = pct
        self._step = llround(pct * PCT_SCALE)
        self._counter = 0
        self._serial = lp_new_sampler_serial()
        self._threads = 0

    def capture(self):
        """Run one check, as a lock operation does; True when it captures."""
        return self.should_capture()

    def __repr__(self):
        return f"CaptureSampler(capture_pct={self.capture_pct!r})"
