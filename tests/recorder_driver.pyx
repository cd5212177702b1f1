# cython: language_level=3
"""Test only, never shipped: calls the compiled Recorder's cdef entry points as the profiled
locks do (lockprof/_lock.pyx), but with explicit clock readings and a seeded random state, so
that tests/test_sampling.py can feed it the events it feeds tests/sampling_model.py. Built by
tests/compiled_recorder.py."""

from libc.stdint cimport int64_t, uint64_t

from lockprof._lockcore cimport LP_MAX_FRAMES, lp_entry, lp_frame_ref
from lockprof._recorder cimport LockInfo, Recorder, WaiterStack, waiter_init


cdef class RecorderDriver:
    cdef readonly Recorder recorder
    cdef LockInfo info
    cdef lp_entry* hold  # the captured hold the next release ends, as a wrapper's _hold_entry

    def __cinit__(self, Recorder recorder not None, LockInfo info not None, uint64_t seed, int64_t start_ns):
        self.recorder = recorder
        self.info = info
        recorder._random_state = seed | 1  # xorshift stays at 0 from 0
        recorder._window_start_ns = start_ns  # the capture budget's first window, on the test's clock
        recorder.active = True

    cdef void _start_hold(self, lp_entry* entry):
        if self.hold != NULL:  # a test that never released: leave nothing pending
            self.hold.pending -= 1
        self.hold = entry

    def acquire(self):
        """An acquire that found the lock free (_profiled_acquire): True when the sampler chose it."""
        if not self.recorder.sampler.should_capture():
            return False
        self._start_hold(self.recorder.record_acquire(self.info))
        return True

    def release(self, int64_t hold_ns):
        """A release (_released): ends the captured hold, if any."""
        if self.hold != NULL:
            self.recorder.record_release(self.hold, hold_ns)
            self.hold = NULL

    def lock_wait(self, int64_t start, int64_t end, bint acquired=True):
        """A contended Lock or RLock acquire (_contended_acquire): drawn when it blocks at start,
        recorded when it returns at end. True when the sampler chose it (its hold starts)."""
        cdef lp_frame_ref frames[LP_MAX_FRAMES]
        cdef WaiterStack waiter
        waiter_init(&waiter, frames)
        task_name = None
        if self.recorder.draw_before_wait(self.info, &waiter, start):
            task_name = self.recorder.capture_waiter(&waiter)
        capture = acquired and self.recorder.sampler.should_capture()
        entry = self.recorder.record_wait_of(self.info, end - start, end, not acquired, capture, &waiter)
        if capture:
            self._start_hold(entry)
        return capture

    def wait(self, int64_t wait_ns, int64_t end, bint acquired=True):
        """A contended acquire of the other kinds (_foreign_acquire, _contended_restore): drawn
        and recorded when it returns at end. True when the sampler chose it."""
        capture = acquired and self.recorder.sampler.should_capture()
        entry = self.recorder.record_wait(self.info, wait_ns, end, not acquired, capture)
        if capture:
            self._start_hold(entry)
        return capture

    def blocking_hold(self, int64_t blocked_ns, int64_t now):
        """A release at now that had threads blocked for blocked_ns."""
        self.recorder.record_blocking_hold(self.info, blocked_ns, now)

    def condition_wait(self, int64_t wait_ns, int64_t now):
        """A Condition.wait() that waited wait_ns for its notify, until now."""
        self.recorder.record_condition_wait(self.info, wait_ns, now)
