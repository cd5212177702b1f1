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


# What acquire() of a profiled asyncio primitive returns: taken at its first send() when it need
# not wait, else handed on to a coroutine.
cdef enum AcquireStage:
    ACQUIRE_CREATED   # not sent into yet
    ACQUIRE_WAITING   # handing on to `waiting`
    ACQUIRE_DONE


@cython.final
@cython.freelist(8)
cdef class _Acquire:
    """What acquire() of a profiled asyncio Lock, Semaphore or BoundedSemaphore returns in place
    of the standard coroutine: awaitable, and a collections.abc.Coroutine. Its first send()
    takes the primitive when it need not wait and returns True, as the standard acquire does
    without suspending; otherwise it hands every send(), throw() and close() on to a coroutine:
    the timed wait while profiling, else the standard acquire. Not run, it warns as a coroutine
    never awaited does. An `async def` acquire would cost a coroutine of Cython's, whose return
    path costs more than the acquire."""
    cdef object primitive
    cdef object waiting  # the coroutine handed on to (ACQUIRE_WAITING)
    cdef AcquireStage stage

    def __await__(self):
        return self

    def __next__(self):
        return _acquire_result(self, None)

    def send(self, value):
        return _acquire_result(self, value)

    def throw(self, typ, val=None, tb=None):
        if self.stage == ACQUIRE_CREATED:
            # Thrown in before it ran (a task cancelled before its first step): the standard
            # acquire, not run either, raises it as a coroutine does.
            self.waiting = _state(self.primitive).profile.acquire(self.primitive)
            self.stage = ACQUIRE_WAITING
        if self.stage == ACQUIRE_DONE:
            self.waiting = _state(self.primitive).profile.acquire(self.primitive)
            self.waiting.close()
        try:
            return self.waiting.throw(typ, val, tb) if tb is not None or val is not None else self.waiting.throw(typ)
        except BaseException:
            self._finish()
            raise

    def close(self):
        if self.stage == ACQUIRE_WAITING:
            try:
                self.waiting.close()
            finally:
                self._finish()
        self.stage = ACQUIRE_DONE

    @property
    def __name__(self):
        return _state(self.primitive).profile.acquire.__name__

    @property
    def __qualname__(self):
        return _state(self.primitive).profile.acquire.__qualname__

    @property
    def cr_await(self):
        return getattr(self.waiting, "cr_await", None)

    @property
    def cr_running(self):
        return bool(getattr(self.waiting, "cr_running", False))

    cdef void _finish(self) noexcept:
        self.stage = ACQUIRE_DONE
        self.waiting = None

    def __dealloc__(self):
        if self.stage == ACQUIRE_CREATED and self.primitive is not None:
            _never_awaited(self)


cdef void _never_awaited(_Acquire awaitable) noexcept:
    # An error (warnings turned into errors) is reported as unraisable, as the coroutine's is.
    name = _state(awaitable.primitive).profile.acquire.__qualname__
    warnings.warn(f"coroutine '{name}' was never awaited", RuntimeWarning, stacklevel=2)


cdef _Acquire _acquire(primitive):
    cdef _Acquire awaitable = _Acquire.__new__(_Acquire)
    awaitable.primitive = primitive
    return awaitable


cdef object _acquire_step(object obj, object value, int* returned):
    """One step of an _Acquire (its am_send slot, send() and __next__): the value the coroutine
    handed on to yields, or (*returned) what the acquire returns."""
    cdef _Acquire self = <_Acquire>obj
    cdef PyObject* out = NULL
    if self.stage == ACQUIRE_CREATED:
        if value is not None:
            raise TypeError("can't send non-None value to a just-started coroutine")
        self.stage = ACQUIRE_DONE
        waiting = _acquired_now(self.primitive)
        if waiting is True:
            returned[0] = 1
            return True
        self.waiting = waiting
        self.stage = ACQUIRE_WAITING
    elif self.stage == ACQUIRE_DONE:
        raise RuntimeError("cannot reuse already awaited coroutine")
    try:
        step = lp_send(self.waiting, value, &out)
    except BaseException:
        self._finish()
        raise
    result = <object>out
    Py_DECREF(<object>out)
    if step == 0:
        self._finish()
        returned[0] = 1
    return result


cdef object _acquire_result(_Acquire self, value):
    """_acquire_step() as send() and __next__ tell it: a returned value as StopIteration."""
    cdef int returned = 0
    result = _acquire_step(self, value, &returned)
    if returned:
        raise StopIteration(result)
    return result


cdef object _acquired_now(primitive):
    """True when the primitive was taken now, as the standard acquire does when it need not
    suspend (3.9 to 3.13), else the coroutine that acquires it."""
    cdef ObjectState state = _state(primitive)
    if not state.profiling():
        return state.profile.acquire(primitive)
    cdef Recorder recorder = state.recorder
    if state.profile.semaphore_test == SEMAPHORE_NONE:  # asyncio.Lock
        if _asyncio_lock_busy(primitive):
            return _lock_waited(primitive, state)
        primitive._locked = True
        state.last_wait_ns = 0
        if recorder.sampler.should_capture():
            hold_captured(&state.hold, recorder, state.info)
        return True
    if _asyncio_semaphore_busy(primitive, state.profile):
        return _semaphore_waited(primitive, state)
    primitive._value -= 1
    _open_hold(state, True, _sampled_hold(recorder, state.info))
    return True


lp_type_set_am_send(<PyTypeObject*>_Acquire, <void*>_acquire_step)
collections.abc.Coroutine.register(_Acquire)


async def _lock_waited(self, ObjectState state):
    """asyncio.Lock.acquire() that suspends: what the standard acquire then does (the same on 3.9
    to 3.13), in this coroutine rather than in the standard one awaited from here, which would
    add a coroutine to every resumption; timed, with this task counted among the waiters."""
    cdef Recorder recorder = state.recorder
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
        hold_start(&state.hold, wait.entry, wait.end)
    return True


class _AsyncioLock(_Profiled):
    """asyncio.Lock: an acquire that would suspend is timed from its own call, so each waiting
    task has its own wait; the hold runs from the acquire to the release. A release that finds
    tasks waiting records the blocking hold, as the threading Lock does."""

    def acquire(self):
        return _acquire(self)

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
        if hold_released(&state.hold, &state.blocking, state.recorder, state.info, lp_monotonic_ns()):
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


async def _semaphore_waited(self, ObjectState state):
    """asyncio.Semaphore.acquire() that suspends: the standard acquire, timed (unlike asyncio.Lock's,
    its waiting path differs between versions)."""
    cdef TimedWait wait
    wait_begin(&wait, state.recorder, state.info, NULL, True, NULL)
    acquired = False
    try:
        result = await state.profile.acquire(self)
        acquired = True
    finally:
        wait_end(&wait, acquired)
    _waited(state, True, &wait, True)
    return result


class _AsyncioSemaphore(_Profiled):
    """asyncio.Semaphore and BoundedSemaphore: an acquire that would suspend (locked()) is
    timed; a hold runs from an acquire to a release by the same task."""

    def acquire(self):
        return _acquire(self)

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

    def __init__(self, lock=None, **kwargs):
        cdef ObjectState state = _state(self)
        state.profile.init(self, lock, **kwargs)  # its own checks and errors, its own lock
        info = state.info
        lock_class = state.profile.lock_class
        if info is not None and lock is None and lock_class is not None:
            # The lock it made itself is replaced by a profiled one, with the same arguments.
            own = object.__new__(lock_class)
            lock_class._lp_original.__init__(own, **kwargs)
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
