# cython: language_level=3
# The one timed-wait protocol every wrapper kind follows (Lock, RLock, Condition's re-acquire,
# gevent's locks, threading's semaphores, asyncio's primitives), as CPython's acquire_timed()
# serves both its lock kinds: wait_begin() and wait_end() around the blocking call, then
# wait_record(); and a captured acquire's hold, from hold_start() to hold_released(). Inline
# functions only: each module that cimports this compiles them in, no call between modules.

from libc.stdint cimport int64_t
from lockprof._lockcore cimport (
    lp_blocking, lp_blocking_enter, lp_blocking_leave, lp_blocking_pending, lp_blocking_release,
    lp_entry, lp_exchange_ptr, lp_load_i64, lp_load_ptr, lp_lock, lp_monotonic_ns, lp_mutex, lp_store_i64, lp_unlock,
)
from lockprof._recorder cimport LockInfo, Recorder, WaiterStack

# A call whose arguments the wrapper does not read (LP_ACQUIRE_UNCLEAR) is timed, and counted as
# contended when it waited at least this long, far above what an uncontended acquire takes.
cdef enum:
    UNCLEAR_CONTENDED_NS = 20000


cdef struct TimedWait:
    int64_t start
    int64_t end
    lp_blocking* blocking  # the lock's blocked waiters (for its blocking holds), or NULL
    lp_mutex* mutex  # the recorder's, which guards them
    WaiterStack* waiter  # the stack drawn for before the wait (Lock, RLock), or NULL
    bint contended  # known to wait (the lock was busy), or the wait was long enough
    lp_entry* entry  # wait_record() -> WAIT_CAPTURED: the entry the acquire's hold starts with


cdef enum WaitOutcome:
    WAIT_UNRECORDED  # profiling stopped meanwhile
    WAIT_RECORDED  # counted; the acquire not captured
    WAIT_CAPTURED  # counted, and the acquire captured: its hold starts with wait.entry


cdef inline object wait_begin(TimedWait* wait, Recorder recorder, LockInfo info, lp_blocking* blocking,
                              bint contended, WaiterStack* waiter):
    """Before the blocking call. With a waiter, whether the wait will be captured is drawn now and
    its stack taken if that is likely (Recorder.draw_before_wait): taken after the wait, it would
    lengthen the critical section the other waiters queue behind. Returns the task name, which
    the caller keeps alive while the waiter borrows it."""
    task_name = None
    wait.blocking = blocking
    wait.mutex = &recorder._mutex
    wait.waiter = waiter
    wait.contended = contended
    wait.entry = NULL
    wait.start = lp_monotonic_ns()
    if waiter != NULL and contended and recorder.is_active() and recorder.draw_before_wait(info, waiter, wait.start):
        task_name = recorder.capture_waiter(waiter)
        wait.start = lp_monotonic_ns()  # the wait starts after the walk
    if blocking != NULL:
        lp_lock(wait.mutex)
        lp_blocking_enter(blocking, wait.start)
        lp_unlock(wait.mutex)
    return task_name


cdef inline void wait_end(TimedWait* wait, bint acquired) noexcept:
    """After the blocking call, also when it raised (in a finally)."""
    wait.end = lp_monotonic_ns()
    if not wait.contended:
        wait.contended = wait.end - wait.start >= UNCLEAR_CONTENDED_NS
    if wait.blocking != NULL:
        lp_lock(wait.mutex)
        lp_blocking_leave(wait.blocking, wait.contended, acquired, wait.end)
        lp_unlock(wait.mutex)


cdef inline WaitOutcome wait_record(TimedWait* wait, Recorder recorder, LockInfo info, bint acquired) noexcept:
    """The wait, counted (a wait that got nothing timed out); the acquire, sampled when it got
    the lock."""
    if not recorder.is_active():
        return WAIT_UNRECORDED
    cdef bint capture = acquired and recorder.sampler.should_capture()
    cdef int64_t wait_ns = wait.end - wait.start
    if wait.contended and wait.waiter != NULL:
        wait.entry = recorder.record_wait_of(info, wait_ns, wait.end, not acquired, capture, wait.waiter)
    elif wait.contended:
        wait.entry = recorder.record_wait(info, wait_ns, wait.end, not acquired, capture)
    elif capture:
        wait.entry = recorder.record_acquire(info)
    return WAIT_CAPTURED if capture else WAIT_RECORDED


# A lock's captured hold. Any thread may release a Lock, so without the GIL a releaser may take
# the hold while its owner starts it, or two releasers (one of them natively in error) take it at
# once: the entry is exchanged atomically, so exactly one gets it and ends it once.
cdef struct CapturedHold:
    lp_entry* entry  # the captured acquire's table entry, pending until the release; or NULL
    int64_t acquired_at


cdef inline bint release_ends(CapturedHold* hold, lp_blocking* blocking) noexcept:
    """Whether a release of the lock has a hold to end: a captured one, or one others wait on
    (then hold_take() and blocking_take() before the native release)."""
    return lp_load_ptr(<void**>&hold.entry) != NULL or lp_blocking_pending(blocking)


cdef inline void hold_start(CapturedHold* hold, Recorder recorder, lp_entry* entry, int64_t acquired_at) noexcept:
    """A captured acquire's hold starts (entry NULL: the full table dropped it), by the lock's
    owner: the next owner's hold starts after this one was taken (hold_take)."""
    lp_store_i64(&hold.acquired_at, acquired_at)
    cdef lp_entry* previous = <lp_entry*>lp_exchange_ptr(<void**>&hold.entry, entry)
    if previous != NULL:
        # A hold whose release was never seen (the lock was reinitialised under us): never
        # leave an entry pending forever.
        recorder.release_pending(previous)


cdef inline void hold_captured(CapturedHold* hold, Recorder recorder, LockInfo info) noexcept:
    """An acquire that did not wait, chosen by the sampler (the caller asks it, so that the
    arguments are passed only then): counted, and its hold starts now."""
    hold_start(hold, recorder, recorder.record_acquire(info), lp_monotonic_ns())


cdef inline void hold_forget(CapturedHold* hold, Recorder recorder) noexcept:
    """The hold will never be released: the lock died, or a fork child reinitialised it."""
    cdef lp_entry* entry = <lp_entry*>lp_exchange_ptr(<void**>&hold.entry, NULL)
    if entry != NULL:
        recorder.release_pending(entry)


cdef inline CapturedHold hold_take(CapturedHold* hold) noexcept:
    """Before the native release, by the owner: the hold, taken and cleared while the lock is
    still held, so that the next owner's hold_start() never meets it (without the GIL the
    next owner runs at once). hold_released() then ends the copy."""
    cdef CapturedHold taken
    taken.entry = <lp_entry*>lp_exchange_ptr(<void**>&hold.entry, NULL)
    taken.acquired_at = lp_load_i64(&hold.acquired_at)
    return taken


cdef inline int64_t blocking_take(lp_blocking* blocking, Recorder recorder, int64_t released_at) noexcept:
    """At a release, before the native one: how long the hold ending blocked others (0: none),
    taken while the waiters still wait (without the GIL, one woken by the release would
    otherwise leave first)."""
    cdef int64_t blocked_ns = 0
    if lp_blocking_pending(blocking):
        lp_lock(&recorder._mutex)
        blocked_ns = lp_blocking_release(blocking, released_at)
        lp_unlock(&recorder._mutex)
    return blocked_ns


cdef inline bint hold_released(CapturedHold* hold, int64_t blocked_ns, Recorder recorder, LockInfo info,
                               int64_t released_at) noexcept:
    """After the native release: the captured hold ends, and the time it blocked others
    (blocking_take) is counted. Returns whether anything was recorded: a lock is named once it
    matters."""
    cdef lp_entry* entry = hold.entry
    if entry != NULL:
        hold.entry = NULL
        recorder.record_release(entry, released_at - hold.acquired_at)
    if blocked_ns > 0 and recorder.is_active() and info is not None:
        recorder.record_blocking_hold(info, blocked_ns, released_at)
    return entry != NULL or blocked_ns > 0
