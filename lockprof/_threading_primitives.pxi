# The profiled subclasses of threading's Semaphore, BoundedSemaphore and Condition, and the
# semaphores' permits taken and given back in place.
# Included by _primitives.pyx (one extension module: the parts call each other's cdef functions directly).

class _ThreadingSemaphore(_Profiled):
    """threading.Semaphore and BoundedSemaphore: a permit free at once is taken in place (or by
    a non-blocking attempt of the standard acquire); if none is, the wait is timed. A hold runs
    from an acquire to a release by the same thread."""

    def acquire(self, blocking=True, timeout=None):
        cdef ObjectState state = _state(self)
        cdef ClassProfile profile = state.profile
        # A call that cannot wait (blocking=False, or a timeout of zero, as ThreadPoolExecutor
        # polls its idle semaphore) is the standard one, untimed: a failure is not a wait.
        cdef int kind = lp_acquire_kind(<PyObject*>blocking, <PyObject*>timeout, LP_TIMEOUT_SEMAPHORE)
        if kind == LP_ACQUIRE_NONBLOCKING:
            return profile.acquire(self, blocking, timeout)
        cdef InPlace taken = _take_permit(self, profile) if kind == LP_ACQUIRE_BLOCKING else IN_PLACE_UNDECIDED
        if not state.profiling():
            return True if taken == IN_PLACE_DONE else profile.acquire(self, blocking, timeout)
        cdef Recorder recorder = state.recorder
        # Undecided, the standard acquire tries without blocking, unless no permit is left: the
        # attempt would fail, at the price of a second pass through the semaphore's Condition.
        if kind == LP_ACQUIRE_BLOCKING and (
                taken == IN_PLACE_DONE or (taken == IN_PLACE_UNDECIDED
                                           and getattr(self, "_value", 1) != 0 and profile.acquire(self, False))):
            _open_hold(state, False, _sampled_hold(recorder, state.info))
            return True
        cdef TimedWait wait
        wait_begin(&wait, recorder, state.info, NULL, kind == LP_ACQUIRE_BLOCKING, NULL)
        acquired = False
        try:
            result = profile.acquire(self, blocking, timeout)
            acquired = bool(result)
        finally:
            wait_end(&wait, acquired)
        _waited(state, False, &wait, acquired)
        return result

    __enter__ = acquire

    def release(self, n=1):
        cdef ObjectState state = _state(self)
        if not _give_permits(self, state.profile, n):
            state.profile.release(self, n)  # raises as natively (BoundedSemaphore)
        if state.holds_open():
            _close_hold(self, state, False)

    def __exit__(self, t, v, tb):
        self.release()


# threading's Condition, whose lock the in-place permits take (its own methods checked by
# _permits() when a class is profiled).
cdef object _STANDARD_CONDITION = original_class(threading.Condition)


cdef bint _threading_own(function, str qualname):
    """Whether `function` is threading.py's own `qualname`, not another library's replacement."""
    code = getattr(function, "__code__", None)
    return (getattr(code, "co_filename", None) == threading.__file__
            and getattr(function, "__qualname__", None) == qualname)


cdef Permits _permits(base):
    """Whether `base` works as threading's standard semaphores do (the same on 3.9 to 3.13):
    their own acquire and release, over threading's own Condition."""
    condition = _STANDARD_CONDITION
    if not (_threading_own(getattr(base, "acquire", None), "Semaphore.acquire")
            and _threading_own(condition.__enter__, "Condition.__enter__")
            and _threading_own(condition.__exit__, "Condition.__exit__")
            and _threading_own(condition.notify, "Condition.notify")):
        return PERMITS_BY_METHOD
    release = getattr(base, "release", None)
    if _threading_own(release, "Semaphore.release"):
        return PERMITS_SEMAPHORE
    if _threading_own(release, "BoundedSemaphore.release"):
        return PERMITS_BOUNDED
    return PERMITS_BY_METHOD


cdef enum InPlace:
    IN_PLACE_DONE
    IN_PLACE_NO_PERMIT   # acquire: none is free, the caller must wait
    IN_PLACE_UNDECIDED   # the standard method must decide
    IN_PLACE_ERROR       # raised (a value that needs no PyErr_Occurred() call after each call)


cdef object _standard_condition(semaphore, ClassProfile profile):
    """A standard semaphore's Condition, whose lock the standard methods hold while they read
    and change the counter; None for a subclass (whose methods may be its own), another kind of
    Condition, or a class with other methods. Its lock may still be of another kind (gevent's):
    take_native_lock() refuses it."""
    if profile.permits == PERMITS_BY_METHOD or type(semaphore) is not profile.cls:
        return None
    condition = getattr(semaphore, "_cond", None)
    return condition if type(condition) is _STANDARD_CONDITION else None


cdef InPlace _take_permit(semaphore, ClassProfile profile) except IN_PLACE_ERROR:
    """What the standard acquire does when a permit is free, done here: with its Condition's
    lock taken (and the GIL held, no Python code run), the counter is read and decremented.
    Where that lock is held or cannot be taken here, the standard method decides."""
    condition = _standard_condition(semaphore, profile)
    if condition is None:
        return IN_PLACE_UNDECIDED
    lock = condition._lock
    if take_native_lock(lock) != 1:
        return IN_PLACE_UNDECIDED
    try:
        value = getattr(semaphore, "_value", None)
        if type(value) is not int:
            return IN_PLACE_UNDECIDED
        if value == 0:  # the standard test: `while self._value == 0`
            return IN_PLACE_NO_PERMIT
        semaphore._value = value - 1
        return IN_PLACE_DONE
    finally:
        release_native_lock(lock)


cdef bint _give_permits(semaphore, ClassProfile profile, n) except -1:
    """What the standard release(n) does when no thread waits for a permit and it raises no
    error, done here as _take_permit() does; False where the standard release must run."""
    if type(n) is not int or n < 1:
        return False
    condition = _standard_condition(semaphore, profile)
    if condition is None:
        return False
    lock = condition._lock
    if take_native_lock(lock) != 1:
        return False
    try:
        waiters = getattr(condition, "_waiters", None)
        value = getattr(semaphore, "_value", None)
        if type(waiters) is not deque or waiters or type(value) is not int:
            return False  # a waiter to notify, or state of another shape
        if profile.permits == PERMITS_BOUNDED:
            initial = getattr(semaphore, "_initial_value", None)
            if type(initial) is not int or value + n > initial:
                return False  # the standard release raises
        semaphore._value = value + n
        return True
    finally:
        release_native_lock(lock)


class _ThreadingCondition(_Profiled):
    """threading.Condition. Its own lock (when none is given) is a profiled RLock of kind
    'condition' under the Condition's name; a lock given to it is profiled as itself. Time in
    wait() until the re-acquire starts is a condition wait."""

    def __init__(self, *args, **kwargs):
        _threading_condition_init(self, args, kwargs)

    def wait(self, timeout=None):
        cdef ObjectState state = _state(self)
        if not state.profiling():
            return state.profile.wait(self, timeout)
        restored = state.restored
        if restored is None:
            restored = _time_restores(self, state)
        cdef int64_t start = lp_monotonic_ns()
        result = state.profile.wait(self, timeout)
        restored_at = restored.pop(_acquirer(), None)
        if restored_at is not None and state.profiling():
            state.recorder.record_condition_wait(state.info, <int64_t>restored_at - start, <int64_t>restored_at)
            name_lock(self, state.info)
        return result


cdef int _threading_condition_init(condition, tuple args, dict kwargs) except -1:
    """Condition.__init__(*args, **kwargs), kwargs None for none (the class's tp_init)."""
    cdef ObjectState state = _state(condition)
    info = state.info
    if info is not None and given_lock(args, kwargs, ()) is None:
        _held_as(info, condition)
        state.profile.init(condition, profiled_rlock(info, state.recorder))
    elif len(args) == 1 and not kwargs:
        # Condition(lock), three per queue.Queue(): a call with no star-arguments' tuple and dict
        state.profile.init(condition, args[0])
    else:
        _call_init(state.profile, condition, args, kwargs)  # its own checks and errors
    return 0


cdef int _threading_condition_slot(PyObject* condition, PyObject* args, PyObject* kwds) except -1:
    return _threading_condition_init(<object>condition, <tuple>args, <object>kwds if kwds != NULL else None)


cdef dict _time_restores(condition, ObjectState state):
    """At a Condition's first wait rather than for every Condition made (most are never waited
    on): its _acquire_restore wrapped to note when a wait starts to re-acquire the lock. Under
    the state's critical section: threads that wait without owning the lock (natively an error
    that wait() raises) would otherwise wrap it twice."""
    with cython.critical_section(state):
        if state.restored is None:
            state.restored = {}
            condition._acquire_restore = _RestoreTimer(condition._acquire_restore, state.restored)
        return state.restored


class _RestoreTimer:
    """Condition._acquire_restore, noting when wait() starts to re-acquire the lock."""

    def __init__(self, restore, restored):
        self._restore = restore
        self._restored = restored

    def __call__(self, state):
        self._restored[_acquirer()] = lp_monotonic_ns()
        return self._restore(state)
