# The profiled subclasses of asyncio's Lock, Semaphore, BoundedSemaphore and Condition.
# Included by _primitives.pyx (one extension module: the parts call each other's cdef functions directly).

# asyncio's primitives find their event loop with _get_loop() from 3.10, in _loop before.
cdef bint _LOOP_BOUND = sys.version_info >= (3, 10)

cdef SemaphoreTest _semaphore_test(acquire):
    names = getattr(getattr(acquire, "__code__", None), "co_names", ())
    if "locked" in names:
        return SEMAPHORE_LOCKED
    if "_wakeup_scheduled" in names:
        return SEMAPHORE_WAKEUP
    return SEMAPHORE_VALUE


class _AsyncioLock(_Profiled):
    """asyncio.Lock: an acquire that would suspend is timed from its own call, so each waiting
    task has its own wait; the hold runs from the acquire to the release. A release that finds
    tasks waiting records the blocking hold, as the threading Lock does."""

    async def acquire(self):
        cdef ObjectState state = _state(self)
        if not state.profiling():
            return await state.profile.acquire(self)
        cdef Recorder recorder = state.recorder
        if not _asyncio_lock_busy(self):
            # What the standard acquire does when it need not suspend (3.9 to 3.13), without
            # running its coroutine.
            self._locked = True
            state.last_wait_ns = 0
            if recorder.sampler.should_capture():
                hold_captured(&state.hold, recorder, state.info)
            return True
        # Suspends: what the standard acquire then does (the same on 3.9 to 3.13), in this
        # coroutine rather than in the standard one awaited from here, which would add a
        # coroutine to every resumption; timed, with this task counted among the waiters.
        if self._waiters is None:
            self._waiters = deque()
        future = (self._get_loop() if _LOOP_BOUND else self._loop).create_future()
        self._waiters.append(future)
        cdef TimedWait wait
        wait_begin(&wait, recorder, state.info, &state.blocking, True, NULL)
        acquired = False
        try:
            try:
                await future
            finally:
                self._waiters.remove(future)
            acquired = True
        except state.profile.cancelled_error:
            if not self._locked:
                self._wake_up_first()
            raise
        finally:
            wait_end(&wait, acquired)  # a cancelled waiter was blocked
        self._locked = True
        state.last_wait_ns = wait.end - wait.start
        if wait_record(&wait, recorder, state.info, True) == WAIT_CAPTURED:
            hold_start(&state.hold, recorder, wait.entry, wait.end)
        return True

    def release(self):
        cdef ObjectState state = _state(self)
        if type(self) is state.profile.cls:
            # The standard release (the same on 3.9 to 3.13), in place: a subclass may
            # override its parts.
            if not self._locked:
                raise RuntimeError('Lock is not acquired.')
            self._locked = False
            _wake_up_first(self)
        else:
            state.profile.release(self)
        if state.hold.entry == NULL and not lp_blocking_pending(&state.blocking):
            return
        cdef int64_t released_at = lp_monotonic_ns()
        if hold_released(&state.hold, blocking_take(&state.blocking, state.recorder, released_at), state.recorder,
                         state.info, released_at):
            name_lock(self, state.info)


cdef int _wake_up_first(lock) except -1:
    """asyncio.Lock._wake_up_first() (the same on 3.9 to 3.13)."""
    waiters = lock._waiters
    if not waiters:
        return 0
    for future in waiters:
        if not future.done():
            future.set_result(True)
        return 0
    return 0


cdef bint _asyncio_lock_busy(lock) except -1:
    """Whether asyncio.Lock.acquire() would suspend (the standard library's own test)."""
    return lock._locked or _any_waiting(lock._waiters)


cdef bint _any_waiting(waiters) except -1:
    """Whether a primitive's waiters (a deque of futures, or None) hold one not cancelled."""
    if not waiters:
        return False
    for waiter in waiters:
        if not waiter.cancelled():
            return True
    return False


class _AsyncioSemaphore(_Profiled):
    """asyncio.Semaphore and BoundedSemaphore: an acquire that would suspend (locked()) is
    timed; a hold runs from an acquire to a release by the same task."""

    async def acquire(self):
        cdef ObjectState state = _state(self)
        if not state.profiling():
            return await state.profile.acquire(self)
        cdef Recorder recorder = state.recorder
        if not _asyncio_semaphore_busy(self, state.profile):
            # What the standard acquire does when it need not suspend (3.9 to 3.13), without
            # running its coroutine.
            self._value -= 1
            _open_hold(state, True, _sampled_hold(recorder, state.info))
            return True
        # Suspends: the standard acquire, timed (unlike asyncio.Lock's, its waiting path
        # differs between versions).
        cdef TimedWait wait
        wait_begin(&wait, recorder, state.info, NULL, True, NULL)
        acquired = False
        try:
            result = await state.profile.acquire(self)
            acquired = True
        finally:
            wait_end(&wait, acquired)
        _waited(state, True, &wait, True)
        return result

    def release(self):
        cdef ObjectState state = _state(self)
        state.profile.release(self)  # raises as natively (BoundedSemaphore)
        if state.holds:
            _close_hold(self, state, True)


cdef bint _asyncio_semaphore_busy(semaphore, ClassProfile profile) except -1:
    """Whether asyncio.Semaphore.acquire() would suspend: the standard library's own test, read
    in place (its locked() makes a generator every call) unless a subclass may override it."""
    if profile.semaphore_test == SEMAPHORE_VALUE:
        return semaphore._value <= 0
    if profile.semaphore_test == SEMAPHORE_WAKEUP:
        return semaphore._wakeup_scheduled or semaphore._value <= 0
    if type(semaphore) is not profile.cls:
        return semaphore.locked()
    return semaphore._value == 0 or _any_waiting(semaphore._waiters)


class _AsyncioCondition(_Profiled):
    """asyncio.Condition. Its own lock (when none is given) is a profiled asyncio.Lock of kind
    'asyncio-condition' under the Condition's name. Time in wait() outside the re-acquire is
    a condition wait."""

    def __init__(self, *args, **kwargs):
        cdef ObjectState state = _state(self)
        state.profile.init(self, *args, **kwargs)  # its own checks and errors, its own lock
        info = state.info
        lock_class = state.profile.lock_class
        if info is not None and lock_class is not None and given_lock(args, kwargs, ("loop",)) is None:
            # The lock it made itself is replaced by a profiled one, with the same arguments.
            own = object.__new__(lock_class)
            lock_class._lp_original.__init__(own, **{k: v for k, v in kwargs.items() if k != "lock"})
            _init_state(own, lock_class._lp_profile, info)
            _held_as(info, self)
            self._lock = own
            self.locked, self.acquire, self.release = own.locked, own.acquire, own.release

    async def wait(self):
        cdef ObjectState state = _state(self)
        if not state.profiling():
            return await state.profile.wait(self)
        cdef int64_t start = lp_monotonic_ns()
        lock_state = getattr(self._lock, "_lp_state", None)
        result = await state.profile.wait(self)
        # The re-acquire just finished in this task, with no other task run since: its wait,
        # when the lock is a profiled one, is not part of the wait for the notify.
        cdef int64_t reacquire_ns = (<ObjectState>lock_state).last_wait_ns if isinstance(lock_state, ObjectState) else 0
        cdef int64_t end = lp_monotonic_ns()
        if state.profiling():
            state.recorder.record_condition_wait(state.info, end - start - reacquire_ns, end)
            name_lock(self, state.info)
        return result
