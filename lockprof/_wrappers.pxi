# ProfiledLock and ProfiledRLock: their fields, fast paths, contended acquires, holds and
# Condition's save and restore.
# Included by _lock.pyx (one extension module: the parts call each other's cdef functions directly).

# An acquire whose arguments are of types the wrapper does not read (a blocking flag that is
# not a bool or int, a timeout that is not an int or float) cannot be tried first: its native
# call is timed, and counted as contended when it waited at least this long, far above what an
# uncontended native acquire takes.
cdef int64_t UNCLEAR_CONTENDED_NS = 20000


@cython.no_gc_clear  # __dealloc__ needs _recorder alive: its table owns _hold_entry
cdef class _LockWrapper:
    """Fields and Python-level behaviour shared by ProfiledLock and ProfiledRLock."""

    def __cinit__(self, wrapped, LockInfo info=None, Recorder recorder=None):
        cdef bint is_rlock = type(self) is ProfiledRLock
        if is_rlock or type(self) is ProfiledLock:
            native_type = NATIVE_RLOCK if is_rlock else NATIVE_LOCK
            if type(wrapped) is not native_type:
                raise TypeError(
                    f"{type(self).__name__} wraps a {native_type.__name__} object, "
                    f"got {type(wrapped).__name__}")
            self._ops = &RLOCK_OPS if is_rlock else &LOCK_OPS
        else:
            self._ops = NULL  # a foreign lock: its own Python-level methods
        self._wrapped = wrapped
        self._info = info
        self._hold_entry = NULL
        self._depth = 0
        self._blocking.waiters = 0
        self._blocking.since = 0
        self._blocking.carry = 0
        self._recorder = recorder if recorder is not None else INERT_RECORDER

    def __dealloc__(self):
        if self._hold_entry != NULL:
            self._hold_entry.pending -= 1
            self._hold_entry = NULL

    @property
    def lock_info(self):
        """The LockInfo the profile uses for this lock, None for a lock made outside profiling."""
        return self._info

    def __repr__(self):
        site = f" created at {self._info.site}" if self._info is not None else ""
        return f"<{type(self).__name__} {self._wrapped!r}{site}>"

    def __hash__(self):
        return hash(self._wrapped)

    def __eq__(self, other):
        if isinstance(other, _LockWrapper):
            other = (<_LockWrapper>other)._wrapped
        return self._wrapped == other

    def __ne__(self, other):
        if isinstance(other, _LockWrapper):
            other = (<_LockWrapper>other)._wrapped
        return self._wrapped != other

    def __reduce_ex__(self, protocol):
        # Native locks cannot be pickled or copied; fail with their own TypeError.
        return self._wrapped.__reduce_ex__(protocol)


@cython.final
cdef class ProfiledLock(_LockWrapper):
    """A profiled threading.Lock."""


@cython.final
cdef class ProfiledRLock(_LockWrapper):
    """A profiled threading.RLock."""


# ------------------------------------------------------------------ the fast paths
# The native lock is passed as a borrowed PyObject*: no reference counting on the hot path.

cdef inline object _lock_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    if not self._recorder.active:
        return _plain_acquire(self, args, nargs, kwnames)
    return _profiled_acquire(self, args, nargs, kwnames)


cdef inline object _plain_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    """The native acquire, without its argument parsing when it has no arguments and the lock
    is free (the direct attempt is what the native call would do first)."""
    if (nargs == 0 and kwnames == NULL and self._ops.try_kind != LP_TRY_BY_METHOD
            and lp_try_acquire(&self._ops.acquire, self._ops.try_kind, <PyObject*>self._wrapped)):
        return True
    return lp_call_vector(&self._ops.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)


cdef inline object _lock_release(_LockWrapper self):
    if self._hold_entry == NULL and not lp_blocking_pending(&self._blocking):
        return lp_call0(&LOCK_OPS.release, <PyObject*>self._wrapped)
    cdef int64_t released_at = lp_monotonic_ns()
    result = lp_call0(&LOCK_OPS.release, <PyObject*>self._wrapped)
    _released(self, released_at, True)
    return result


# An RLock wrapper tracks the depth of a hold it has seen start, so that a nested acquire costs
# no sampler check (the sampling rate stays per outermost acquire) and the hold ends at the
# outermost release. Only the owner changes _depth, under the GIL. With _depth == 0 an acquire is
# an outermost one and needs no thread id; only with _depth > 0 (nested, or another thread's
# hold) is the native lock asked whose hold it is. Tracking starts at an outermost acquire while
# profiling runs, so after stop() an RLock with _depth == 0 takes the plain native path. Where
# the native layout is known (_lockcore.h), the owner is read and a nested level counted in
# place, as the native methods do, without their calls and argument parsing.

cdef inline object _rlock_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    if self._depth != 0 and _rlock_is_owned(self):
        if nargs == 0 and kwnames == NULL and RLOCK_OPS.try_kind == LP_TRY_RLOCK:
            lp_rlock_nest_direct(<PyObject*>self._wrapped)  # what the native call would count
            self._depth += 1
            return True
        result = lp_call_vector(&RLOCK_OPS.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)
        if result is True:
            self._depth += 1
        return result
    if not self._recorder.active:
        return _plain_acquire(self, args, nargs, kwnames)
    result = _profiled_acquire(self, args, nargs, kwnames)
    if result is True:
        self._depth = 1
    return result


cdef inline bint _rlock_is_owned(_LockWrapper self) except -1:
    if RLOCK_OPS.try_kind == LP_TRY_RLOCK:
        return lp_rlock_owned_direct(<PyObject*>self._wrapped)
    return lp_call0(&RLOCK_OPS.is_owned, <PyObject*>self._wrapped) is True


cdef inline object _rlock_release(_LockWrapper self):
    if self._depth == 0:  # an untracked hold (or no hold: the native release raises)
        return lp_call0(&RLOCK_OPS.release, <PyObject*>self._wrapped)
    cdef bint outermost = self._depth == 1
    if (not outermost and RLOCK_OPS.try_kind == LP_TRY_RLOCK
            and lp_rlock_unnest_direct(<PyObject*>self._wrapped)):  # as the native release counts it
        self._depth -= 1
        return None
    cdef bint has_events = outermost and (self._hold_entry != NULL or lp_blocking_pending(&self._blocking))
    cdef int64_t released_at = lp_monotonic_ns() if has_events else 0
    result = lp_call0(&RLOCK_OPS.release, <PyObject*>self._wrapped)  # raises unless the owner
    self._depth -= 1
    if has_events:
        _released(self, released_at, True)
    return result


# ------------------------------------------------------------------ the profiled paths

cdef inline object _profiled_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    """An acquire while profiling runs: tried first when it may block, timed when contended."""
    cdef int kind = LP_ACQUIRE_BLOCKING
    if nargs != 0 or kwnames != NULL:
        kind = lp_classify_acquire(args, nargs, kwnames)
    if kind == LP_ACQUIRE_BLOCKING:
        if not lp_try_acquire(&self._ops.acquire, self._ops.try_kind, <PyObject*>self._wrapped):
            return _contended_acquire(self, args, nargs, kwnames, True)
        result = True
    elif kind == LP_ACQUIRE_NONBLOCKING:  # never waits: nothing to time
        result = lp_call_vector(&self._ops.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)
        if result is not True:
            return result
    else:
        return _contended_acquire(self, args, nargs, kwnames, False)
    if self._recorder.sampler.should_capture():
        _start_hold(self, self._recorder.record_acquire(self._info), lp_monotonic_ns())
    return result


cdef object _contended_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames,
                               bint contended):
    """The caller's own acquire call, timed, with this thread counted among the waiters.
    contended is False for arguments the wrapper could not read: the wait decides. Whether the
    wait will be captured is drawn before the call blocks, and the stack taken then when the
    capture is likely (Recorder.draw_before_wait); otherwise after, only if it is chosen."""
    cdef lp_entry* entry = NULL
    cdef lp_frame_ref frames[LP_MAX_FRAMES]
    cdef WaiterStack waiter
    waiter_init(&waiter, frames)
    task_name = None
    cdef int64_t start = lp_monotonic_ns(), end = 0
    if contended and self._recorder.active and self._recorder.draw_before_wait(self._info, &waiter, start):
        task_name = self._recorder.capture_waiter(&waiter)
        start = lp_monotonic_ns()  # the wait starts after the walk
    lp_blocking_enter(&self._blocking, start)
    result = None
    try:
        result = lp_call_vector(&self._ops.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)
    finally:
        end = lp_monotonic_ns()
        contended = contended or end - start >= UNCLEAR_CONTENDED_NS
        lp_blocking_leave(&self._blocking, contended, result is True, end)
    cdef int64_t wait_ns = end - start
    if not self._recorder.active:
        return result
    if result is True:
        capture = self._recorder.sampler.should_capture()
        if contended:
            entry = self._recorder.record_wait_of(self._info, wait_ns, end, False, capture, &waiter)
        elif capture:
            entry = self._recorder.record_acquire(self._info)
        if capture:
            _start_hold(self, entry, end)
    elif result is False and contended:  # a blocking acquire that ran out of time
        self._recorder.record_wait_of(self._info, wait_ns, end, True, False, &waiter)
    return result


cdef inline void _start_hold(_LockWrapper self, lp_entry* entry, int64_t acquired_at) noexcept:
    # The swap runs no Python code, so no other thread sees it half done.
    previous = self._hold_entry
    self._hold_entry = entry
    self._acquired_at = acquired_at
    if previous != NULL:
        # A hold whose release was never seen (the lock was reinitialised under us): never leave
        # an entry pending forever.
        previous.pending -= 1


cdef int _released(_LockWrapper self, int64_t released_at, bint naming) except -1:
    """After the native release: end the captured hold, and count the blocking hold."""
    cdef int64_t blocked_ns = 0
    cdef lp_entry* entry = self._hold_entry
    if entry != NULL:
        self._hold_entry = NULL
        self._recorder.record_release(entry, released_at - self._acquired_at)
    if lp_blocking_pending(&self._blocking):
        blocked_ns = lp_blocking_release(&self._blocking, released_at)
        if blocked_ns > 0 and self._recorder.active:
            self._recorder.record_blocking_hold(self._info, blocked_ns, released_at)
    # After the native release, so outside the user's critical section; a lock is named once
    # it matters: a captured hold, or a hold that blocked others.
    if naming and (entry != NULL or blocked_ns > 0):
        name_lock(self, self._info)
    return 0


# ------------------------------------------------------------------ method implementations
# Each has the C signature of its PyMethodDef calling convention and is installed on the
# wrapper types by _install_methods() below.

cdef object lock_acquire(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    return _lock_acquire(<_LockWrapper>self, args, nargs, kwnames)

cdef object lock_release(object self, PyObject* unused):
    return _lock_release(<_LockWrapper>self)

cdef object lock_exit(object self, PyObject** args, Py_ssize_t nargs):
    return _lock_release(<_LockWrapper>self)

cdef object rlock_acquire(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    return _rlock_acquire(<_LockWrapper>self, args, nargs, kwnames)

cdef object rlock_release(object self, PyObject* unused):
    return _rlock_release(<_LockWrapper>self)

cdef object rlock_exit(object self, PyObject** args, Py_ssize_t nargs):
    return _rlock_release(<_LockWrapper>self)

# Shared by both types: the instance knows its native type's methods.

cdef object wrapper_locked(object self, PyObject* unused):
    cdef _LockWrapper wrapper = <_LockWrapper>self
    return lp_call0(&wrapper._ops.locked, <PyObject*>wrapper._wrapped)

cdef object wrapper_at_fork_reinit(object self, PyObject* unused):
    cdef _LockWrapper wrapper = <_LockWrapper>self
    result = lp_call0(&wrapper._ops.at_fork_reinit, <PyObject*>wrapper._wrapped)
    _forget_holds(wrapper)
    return result

cdef object rlock_is_owned(object self, PyObject* unused):
    return lp_call0(&RLOCK_OPS.is_owned, <PyObject*>(<_LockWrapper>self)._wrapped)

cdef object rlock_recursion_count(object self, PyObject* unused):
    return lp_call0(&RLOCK_OPS.recursion_count, <PyObject*>(<_LockWrapper>self)._wrapped)

cdef object rlock_release_save(object self, PyObject* unused):
    # Condition.wait() releases every level at once: the hold ends here. The lock is not named
    # here: nothing may raise between this and the _acquire_restore that Condition guarantees.
    cdef _LockWrapper wrapper = <_LockWrapper>self
    cdef int64_t released_at = lp_monotonic_ns()
    result = lp_call0(&RLOCK_OPS.release_save, <PyObject*>wrapper._wrapped)
    wrapper._depth = 0
    _released(wrapper, released_at, False)
    return result

cdef object rlock_acquire_restore(object self, object args, PyObject* kwds):
    # Condition.wait() re-acquiring after the notify: profiled like an outermost acquire. The
    # state is (count, owner); for the usual owner, the current thread, a successful attempt
    # without blocking plus count - 1 nested acquires is exactly what the native call does.
    cdef _LockWrapper wrapper = <_LockWrapper>self
    cdef PyObject* native = <PyObject*>wrapper._wrapped
    cdef long count = _restored_depth(args)
    if not wrapper._recorder.active or kwds != NULL or not _restores_own_hold(args):
        result = lp_call(&RLOCK_OPS.acquire_restore, native, args, kwds)
    elif lp_try_acquire(&RLOCK_OPS.acquire, RLOCK_OPS.try_kind, native):
        for _ in range(count - 1):
            lp_call0(&RLOCK_OPS.acquire, native)
        result = None
        if wrapper._recorder.sampler.should_capture():
            _start_hold(wrapper, wrapper._recorder.record_acquire(wrapper._info), lp_monotonic_ns())
    else:
        result = _contended_restore(wrapper, args)
    wrapper._depth = count
    return result


cdef object _contended_restore(_LockWrapper self, object args):
    cdef lp_entry* entry
    cdef int64_t start = lp_monotonic_ns(), end = 0
    lp_blocking_enter(&self._blocking, start)
    acquired = False
    try:
        result = lp_call(&RLOCK_OPS.acquire_restore, <PyObject*>self._wrapped, args, NULL)
        acquired = True
    finally:
        end = lp_monotonic_ns()
        lp_blocking_leave(&self._blocking, True, acquired, end)
    if self._recorder.active:
        capture = self._recorder.sampler.should_capture()
        entry = self._recorder.record_wait(self._info, end - start, end, False, capture)
        if capture:
            _start_hold(self, entry, end)
    return result


cdef bint _restores_own_hold(object args):
    """Whether args is ((count, owner),) as Condition passes it back: exact ints, at least one
    level, owned by this thread. Anything else goes to the native method as it is."""
    if type(args) is not tuple or len(args) != 1:
        return False
    state = args[0]
    if type(state) is not tuple or len(state) != 2 or type(state[0]) is not int or type(state[1]) is not int:
        return False
    return 1 <= state[0] <= 0x7FFFFFFF and state[1] == lp_thread_ident()


cdef long _restored_depth(object args):
    # _acquire_restore((count, owner)) puts back count levels.
    return args[0][0] if _restores_own_hold(args) else 1


cdef void _forget_holds(_LockWrapper wrapper) noexcept:
    """After _at_fork_reinit: in a fork child no other thread waits, and a hold died with it."""
    wrapper._depth = 0
    wrapper._blocking.waiters = 0
    wrapper._blocking.carry = 0
    if wrapper._hold_entry != NULL:
        wrapper._hold_entry.pending -= 1
        wrapper._hold_entry = NULL
