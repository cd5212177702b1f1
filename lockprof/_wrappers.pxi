# ProfiledLock and ProfiledRLock: their fields, fast paths, contended acquires, holds and
# Condition's save and restore.
# Included by _lock.pyx (one extension module: the parts call each other's cdef functions directly).

@cython.no_gc_clear  # __dealloc__ needs _recorder alive: its table owns _hold.entry
@cython.freelist(16)  # locks made per request: a reused block rather than an allocation
cdef class _LockWrapper:
    """Fields and Python-level behaviour shared by ProfiledLock and ProfiledRLock."""

    def __dealloc__(self):
        hold_forget(&self._hold, self._recorder)

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


# Each wrapper type's Cython constructor (the bare object: C fields zero, objects None), kept
# when _factory.pxi gives the type the native type's call.
cdef enum:
    LOCK_TYPE, RLOCK_TYPE, FOREIGN_LOCK_TYPE, FOREIGN_RLOCK_TYPE
cdef newfunc CYTHON_NEW[4]
cdef tuple NO_ARGUMENTS = ()


cdef _LockWrapper new_wrapper(type cls, int which, object wrapped, LockInfo info, Recorder recorder):
    """A wrapper of cls (the wrapper type `which`, or a program's subclass of it) around wrapped.
    Every wrapper is made here, with no argument tuple to build or parse: the factories make one
    per lock."""
    cdef _LockWrapper self = <_LockWrapper>CYTHON_NEW[which](cls, <PyObject*>NO_ARGUMENTS, NULL)
    cdef bint is_rlock = isinstance(self, ProfiledRLock)  # or a program's subclass
    if is_rlock or type(self) is ProfiledLock:
        native_type = NATIVE_RLOCK if is_rlock else NATIVE_LOCK
        if type(wrapped) is not native_type:
            raise TypeError(
                f"{type(self).__name__} wraps a {native_type.__name__} object, "
                f"got {type(wrapped).__name__}")
        self._ops = &RLOCK_OPS if is_rlock else &LOCK_OPS
    # else a foreign lock (_ops NULL): its own Python-level methods
    self._wrapped = wrapped
    self._info = info
    self._recorder = recorder if recorder is not None else INERT_RECORDER
    return self


@cython.final
cdef class ProfiledLock(_LockWrapper):
    """A profiled threading.Lock."""


cdef class ProfiledRLock(_LockWrapper):
    """A profiled threading.RLock. Not final: _thread.RLock can be subclassed."""


# ------------------------------------------------------------------ the fast paths
# The native lock is passed as a borrowed PyObject*: no reference counting on the hot path.

cdef inline object _lock_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    if not self._recorder.is_active():
        return _plain_acquire(self, args, nargs, kwnames)
    return _profiled_acquire(self, args, nargs, kwnames, False)


cdef inline object _plain_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    """The native acquire, without its argument parsing when it has no arguments and the lock
    is free (the direct attempt is what the native call would do first)."""
    if (nargs == 0 and kwnames == NULL and self._ops.try_kind != LP_TRY_BY_METHOD
            and lp_try_acquire(&self._ops.acquire, self._ops.try_kind, <PyObject*>self._wrapped)):
        return True
    return lp_call_vector(&self._ops.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)


cdef inline object _lock_release(_LockWrapper self):
    if not release_ends(&self._hold, &self._blocking):
        return lp_call0(&LOCK_OPS.release, <PyObject*>self._wrapped)
    return _release_ending(self, &LOCK_OPS.release)


cdef object _release_ending(_LockWrapper self, const lp_native_method* release,
                            PyObject** args=NULL, Py_ssize_t nargs=0):
    """A release that ends a captured hold, or a hold others were blocked by. The hold is taken
    while the lock is still held (the next owner may start its own at once) and ended after the
    native release. A release that raises (a Lock not held) ends nothing: a hold left was
    stale."""
    cdef CapturedHold taken = hold_take(&self._hold)
    cdef int64_t released_at = lp_monotonic_ns()
    cdef int64_t blocked_ns = blocking_take(&self._blocking, self._recorder, released_at)
    try:
        if args == NULL:
            result = lp_call0(release, <PyObject*>self._wrapped)
        else:  # __exit__ called with other than three arguments: the native __exit__'s
            result = lp_call_vector(release, <PyObject*>self._wrapped, args, nargs, NULL)
    except BaseException:
        hold_forget(&taken, self._recorder)
        raise
    _released(self, &taken, blocked_ns, released_at, True)
    return result


# An RLock wrapper tracks the depth of a hold it has seen start, so that a nested acquire costs
# no sampler check (the sampling rate stays per outermost acquire) and the hold ends at the
# outermost release. Only the owner changes _depth (an atomic store without the GIL, read by other
# threads with a relaxed load: they only learn it is not theirs). With _depth == 0 an acquire is
# an outermost one and needs no thread id; only with _depth > 0 (nested, or another thread's
# hold) is the native lock asked whose hold it is. Tracking starts at an outermost acquire while
# profiling runs, so after stop() an RLock with _depth == 0 takes the plain native path. Where
# the native layout is known (_lockcore.h), the owner is read and a nested level counted in
# place, as the native methods do, without their calls and argument parsing.

cdef inline object _rlock_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    if lp_load_long(&self._depth) != 0 and _rlock_is_owned(self):
        if nargs == 0 and kwnames == NULL and lp_rlock_nest(RLOCK_OPS.try_kind, <PyObject*>self._wrapped):
            lp_store_long(&self._depth, self._depth + 1)  # counted in place, as the native call would count it
            return True
        result = lp_call_vector(&RLOCK_OPS.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)
        if result is True:
            lp_store_long(&self._depth, self._depth + 1)
        return result
    if not self._recorder.is_active():
        return _plain_acquire(self, args, nargs, kwnames)
    return _profiled_acquire(self, args, nargs, kwnames, True)


cdef inline bint _rlock_is_owned(_LockWrapper self) except -1:
    return lp_rlock_owned(&RLOCK_OPS.is_owned, RLOCK_OPS.try_kind, <PyObject*>self._wrapped)


cdef inline object _rlock_release(_LockWrapper self):
    cdef long depth = lp_load_long(&self._depth)
    if depth == 0:  # an untracked hold (or no hold: the native release raises)
        return lp_call0(&RLOCK_OPS.release, <PyObject*>self._wrapped)
    if depth == 1 and not LP_FREE_THREADED and not release_ends(&self._hold, &self._blocking):
        return _rlock_release_level(self, depth)  # the outermost, of a hold neither captured nor waited on
    return _rlock_release_tracked(self, depth)


cdef inline object _rlock_release_level(_LockWrapper self, long depth):
    # The native release raises unless this thread owns the lock; the depth changes only if not.
    return lp_call0_then_store(&RLOCK_OPS.release, <PyObject*>self._wrapped, &self._depth, depth - 1)


cdef object _rlock_release_tracked(_LockWrapper self, long depth):
    """The release of a tracked hold: nested, or ending what was captured or waited on."""
    cdef bint outermost = depth == 1
    if LP_FREE_THREADED and outermost:
        # The depth is cleared before the native release: the next owner sets its own at once.
        if not _rlock_is_owned(self):
            return lp_call0(&RLOCK_OPS.release, <PyObject*>self._wrapped)  # raises as natively
        lp_store_long(&self._depth, 0)
        if release_ends(&self._hold, &self._blocking):
            return _release_ending(self, &RLOCK_OPS.release)
        return lp_call0(&RLOCK_OPS.release, <PyObject*>self._wrapped)
    if not outermost and lp_rlock_unnest(RLOCK_OPS.try_kind, <PyObject*>self._wrapped):  # as the native release counts it
        lp_store_long(&self._depth, depth - 1)
        return None
    if (outermost and release_ends(&self._hold, &self._blocking)
            and _rlock_is_owned(self)):  # the owner's hold: another thread's release raises
        result = _release_ending(self, &RLOCK_OPS.release)
        lp_store_long(&self._depth, 0)
        return result
    return _rlock_release_level(self, depth)


# ------------------------------------------------------------------ the profiled paths

cdef inline object _profiled_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames,
                                     bint is_rlock):
    """An acquire while profiling runs: tried first when it may block, timed when contended. An
    RLock's acquire that takes the lock starts tracking its depth (is_rlock: a constant where
    this is inlined). Only the call without arguments (blocking, no timeout: nearly every one)
    is inlined into the methods: reading arguments and waiting are calls away, so that the
    acquire that takes the lock at once stays small enough to inline whole."""
    if nargs == 0 and kwnames == NULL:
        return _try_then_wait(self, args, nargs, kwnames, is_rlock)
    return _tracking(self, _profiled_acquire_with(self, args, nargs, kwnames), is_rlock)


cdef inline object _try_then_wait(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames,
                                  bint is_rlock):
    """An acquire that may block: the attempt, and the timed wait only when it fails."""
    if not lp_try_acquire(&self._ops.acquire, self._ops.try_kind, <PyObject*>self._wrapped):
        return _tracking(self, _contended_acquire(self, args, nargs, kwnames, True), is_rlock)
    if is_rlock:
        lp_store_long(&self._depth, 1)
    if self._recorder.sampler.should_capture():
        hold_captured(&self._hold, self._recorder, self._info)
    return True


cdef inline object _tracking(_LockWrapper self, object result, bint is_rlock):
    if is_rlock and result is True:
        lp_store_long(&self._depth, 1)
    return result


cdef object _profiled_acquire_with(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    cdef int kind = lp_classify_acquire(args, nargs, kwnames)
    if kind == LP_ACQUIRE_BLOCKING:
        return _try_then_wait(self, args, nargs, kwnames, False)
    if kind == LP_ACQUIRE_UNCLEAR:  # the wait decides
        return _contended_acquire(self, args, nargs, kwnames, False)
    result = lp_call_vector(&self._ops.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)  # never waits
    if result is True and self._recorder.sampler.should_capture():
        hold_captured(&self._hold, self._recorder, self._info)
    return result


cdef object _contended_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames,
                               bint contended, object restore_args=None):
    """The caller's own acquire call, timed (_wait.pxd), with this thread counted among the
    waiters. contended is False for arguments the wrapper could not read: the wait decides.
    With restore_args, the call is the RLock's _acquire_restore(*restore_args) (Condition.wait()
    re-acquiring), which returns None once it has the lock."""
    cdef lp_frame_ref frames[LP_MAX_FRAMES]
    cdef WaiterStack waiter
    cdef TimedWait wait
    waiter_init(&waiter, frames)
    # The task name is kept alive while the waiter's context borrows it.
    task_name = wait_begin(&wait, self._recorder, self._info, &self._blocking, contended, &waiter)
    acquired = False
    try:
        if restore_args is None:
            result = lp_call_vector(&self._ops.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)
            acquired = result is True
        else:
            result = lp_call(&RLOCK_OPS.acquire_restore, <PyObject*>self._wrapped, restore_args, NULL)
            acquired = True
    finally:
        wait_end(&wait, acquired)
    if wait_record(&wait, self._recorder, self._info, acquired) == WAIT_CAPTURED:
        hold_start(&self._hold, self._recorder, wait.entry, wait.end)
    return result


cdef int _released(_LockWrapper self, CapturedHold* taken, int64_t blocked_ns, int64_t released_at,
                   bint naming) except -1:
    """After the native release: end the captured hold and count the blocking hold, both taken
    before it (hold_take, blocking_take). The lock is named after the native release, so outside
    the user's critical section, and once it matters: a captured hold, or a hold that blocked
    others."""
    if hold_released(taken, blocked_ns, self._recorder, self._info, released_at) and naming:
        name_lock(self, self._info)
    return 0


# ------------------------------------------------------------------ method implementations
# Each has the C signature of its PyMethodDef calling convention and is installed on the
# wrapper types by _install_methods() below.

# __enter__ is acquire, except where the native __enter__ takes no arguments (3.15): then a call
# with arguments is the native method's, which raises its own error. __exit__ called as a with
# statement calls it, with three arguments, is the release; any other call is the native
# __exit__'s to accept (up to 3.14, whatever it is given) or refuse (3.15).

cdef inline bint _enter_refuses(object self, Py_ssize_t nargs, PyObject* kwnames):
    return (nargs != 0 or kwnames != NULL) and not (<_LockWrapper>self)._ops.enter_takes_arguments

cdef object _native_enter(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    cdef _LockWrapper wrapper = <_LockWrapper>self
    return lp_call_vector(&wrapper._ops.enter, <PyObject*>wrapper._wrapped, args, nargs, kwnames)

cdef object lock_acquire(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    return _lock_acquire(<_LockWrapper>self, args, nargs, kwnames)

cdef object lock_enter(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    if _enter_refuses(self, nargs, kwnames):
        return _native_enter(self, args, nargs, kwnames)
    return _lock_acquire(<_LockWrapper>self, args, nargs, kwnames)

cdef object lock_release(object self, PyObject* unused):
    return _lock_release(<_LockWrapper>self)

cdef object lock_exit(object self, PyObject** args, Py_ssize_t nargs):
    if nargs == 3:  # a with statement's
        return _lock_release(<_LockWrapper>self)
    return _exit_by_native(<_LockWrapper>self, args, nargs)

cdef object rlock_acquire(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    return _rlock_acquire(<_LockWrapper>self, args, nargs, kwnames)

cdef object rlock_enter(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    if _enter_refuses(self, nargs, kwnames):
        return _native_enter(self, args, nargs, kwnames)
    return _rlock_acquire(<_LockWrapper>self, args, nargs, kwnames)

cdef object rlock_release(object self, PyObject* unused):
    return _rlock_release(<_LockWrapper>self)

cdef object rlock_exit(object self, PyObject** args, Py_ssize_t nargs):
    if nargs == 3:
        return _rlock_release(<_LockWrapper>self)
    return _exit_by_native(<_LockWrapper>self, args, nargs)

cdef object _exit_by_native(_LockWrapper self, PyObject** args, Py_ssize_t nargs):
    """The native __exit__ with the caller's arguments: it refuses them (3.15's takes exactly
    three), changing nothing, or releases as release() does, and the release is accounted as
    _lock_release() and _rlock_release() account it. A refusal forgets a captured hold (it was
    taken before the call, as every release takes it): that hold goes unmeasured."""
    cdef long depth = lp_load_long(&self._depth)  # RLock: the tracked depth (0: untracked); Lock: 0
    if self._ops == &RLOCK_OPS:
        if depth != 1 or not _rlock_is_owned(self):  # nested, untracked or not the owner's
            result = lp_call_vector(&self._ops.exit, <PyObject*>self._wrapped, args, nargs, NULL)
            if depth > 1:
                lp_store_long(&self._depth, depth - 1)
            return result
        lp_store_long(&self._depth, 0)  # before the release, as _rlock_release() clears it
    try:
        return _release_ending(self, &self._ops.exit, args, nargs)
    except BaseException:
        if self._ops == &RLOCK_OPS:
            lp_store_long(&self._depth, depth)  # refused: still held
        raise

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
    cdef CapturedHold taken
    cdef int64_t released_at = lp_monotonic_ns(), blocked_ns = 0
    cdef bint owned = _rlock_is_owned(wrapper)
    taken.entry = NULL
    if owned and release_ends(&wrapper._hold, &wrapper._blocking):
        taken = hold_take(&wrapper._hold)  # the owner's, before the release (_release_ending)
        blocked_ns = blocking_take(&wrapper._blocking, wrapper._recorder, released_at)
    if owned:
        lp_store_long(&wrapper._depth, 0)  # before: without the GIL the next owner sets its own at once
    result = lp_call0(&RLOCK_OPS.release_save, <PyObject*>wrapper._wrapped)
    _released(wrapper, &taken, blocked_ns, released_at, False)
    return result

cdef object rlock_acquire_restore(object self, object args, PyObject* kwds):
    # Condition.wait() re-acquiring after the notify: profiled like an outermost acquire. The
    # state is (count, owner); for the usual owner, the current thread, a successful attempt
    # without blocking plus count - 1 nested acquires is exactly what the native call does.
    cdef _LockWrapper wrapper = <_LockWrapper>self
    cdef PyObject* native = <PyObject*>wrapper._wrapped
    cdef long count = _restored_depth(args)
    if not wrapper._recorder.is_active() or kwds != NULL or not _restores_own_hold(args):
        result = lp_call(&RLOCK_OPS.acquire_restore, native, args, kwds)
    elif lp_try_acquire(&RLOCK_OPS.acquire, RLOCK_OPS.try_kind, native):
        for _ in range(count - 1):
            lp_call0(&RLOCK_OPS.acquire, native)
        result = None
        if wrapper._recorder.sampler.should_capture():
            hold_captured(&wrapper._hold, wrapper._recorder, wrapper._info)
    else:
        result = _contended_acquire(wrapper, NULL, 0, NULL, True, args)
    lp_store_long(&wrapper._depth, count)
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
    hold_forget(&wrapper._hold, wrapper._recorder)
