# What Recorder.drain() returns: typed records, read by name (collector.py), built only in
# drain(). Included by _recorder.pyx.


cdef class Captured:
    """Who was captured where: a lock, a stack, a thread and task, and the outcome of the wait."""
    cdef readonly LockInfo lock_info
    cdef readonly tuple frames  # (code, instruction offset) pairs, leaf first
    cdef readonly unsigned long thread_id
    cdef readonly object task_id  # None outside a task
    cdef readonly object task_name
    cdef readonly bint timed_out
    # The trace span active where the wait was captured (for counts: their longest captured
    # wait's), None when none was: its 64-bit id, the local root's (ddtrace), the 128-bit trace.
    cdef readonly object span_id
    cdef readonly object local_root_span_id
    cdef readonly object trace_id


cdef class EventCounts(Captured):
    """The counts of one event table key since the last drain. acquire_count, release_count and
    release_hold_ns are raw (sampled at capture_pct); the other counts are already weighted."""
    cdef readonly int omitted  # frames beyond max_frames, left out
    cdef readonly unsigned long thread_native_id
    cdef readonly int64_t acquire_count
    cdef readonly int64_t release_count
    cdef readonly int64_t release_hold_ns
    cdef readonly double contended_count
    cdef readonly int64_t acquire_wait_ns
    cdef readonly int64_t blocking_hold_ns
    cdef readonly int64_t condition_wait_ns
    cdef readonly int64_t span_wait_ns  # the wait span_id's span had


cdef class LockContention:
    """The exact contention of one lock since the last drain; lock_info is None for the sum over
    the locks beyond the tracking limit."""
    cdef readonly LockInfo lock_info
    cdef readonly int64_t contended
    cdef readonly int64_t wait_ns
    cdef readonly int64_t max_wait_ns
    cdef readonly int64_t timeouts


cdef class LongWaitRecord(Captured):
    """One of the longest waits since the last drain, as it happened (the waiter's innermost
    frames)."""
    cdef readonly int64_t wait_ns


cdef class Drained:
    """Everything one drain() took."""
    cdef readonly list events  # EventCounts
    cdef readonly list lock_totals  # LockContention, of the locks that were contended
    cdef readonly list long_waits  # LongWaitRecord, longest first
    cdef readonly uint64_t dropped  # events the full table had no room for
    cdef readonly dict thread_names  # the names of the threads seen, by thread id
    cdef readonly int64_t max_interval  # the largest wait sampling interval in force (ns)


cdef LockContention _contention(LockInfo info, int64_t contended, int64_t wait_ns, int64_t max_wait_ns,
                                int64_t timeouts):
    cdef LockContention totals = LockContention.__new__(LockContention)
    totals.lock_info = info
    totals.contended = contended
    totals.wait_ns = wait_ns
    totals.max_wait_ns = max_wait_ns
    totals.timeouts = timeouts
    return totals
