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
        if _lock_taken_now(self, state):
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
        _lock_release(self, _state(self))


cdef inline bint _lock_taken_now(lock, ObjectState state) except -1:
    """What the standard acquire does when it need not suspend (3.9 to 3.13), without running
    its coroutine; False when it would suspend. state is profiling."""
    if _asyncio_lock_busy(lock):
        return False
    lock._locked = True
    state.last_wait_ns = 0
    cdef Recorder recorder = state.recorder
    if recorder.sampler.should_capture():
        hold_captured(&state.hold, recorder, state.info)
    return True


cdef inline int _lock_release(lock, ObjectState state) except -1:
    if type(lock) is state.profile.cls:
        # The standard release (the same on 3.9 to 3.13), in place: a subclass may
        # override its parts.
        if not lock._locked:
            raise RuntimeError('Lock is not acquired.')
        lock._locked = False
        _wake_up_first(lock)
    else:
        state.profile.release(lock)
    if not release_ends(&state.hold, &state.blocking):
        return 0
    cdef int64_t released_at = lp_monotonic_ns()
    if hold_released(&state.hold, blocking_take(&state.blocking, state.recorder, released_at), state.recorder,
                     state.info, released_at):
        name_lock(lock, state.info)
    return 0


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
        if _semaphore_taken_now(self, state):
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
        _semaphore_release(self, _state(self))


cdef inline bint _semaphore_taken_now(semaphore, ObjectState state) except -1:
    """What the standard acquire does when it need not suspend (3.9 to 3.13), without running
    its coroutine; False when it would suspend. state is profiling."""
    if _asyncio_semaphore_busy(semaphore, state.profile):
        return False
    semaphore._value -= 1
    _open_hold(state, True, _sampled_hold(state.recorder, state.info))
    return True


cdef inline int _semaphore_release(semaphore, ObjectState state) except -1:
    state.profile.release(semaphore)  # raises as natively (BoundedSemaphore)
    if state.holds_open():
        _close_hold(semaphore, state, True)
    return 0


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
        _asyncio_condition_init(self, args, kwargs)

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


cdef int _asyncio_condition_init(condition, tuple args, dict kwargs) except -1:
    """Condition.__init__(*args, **kwargs), kwargs None for none (the class's tp_init)."""
    cdef ObjectState state = _state(condition)
    _call_init(state.profile, condition, args, kwargs)  # its own checks and errors, its own lock
    info = state.info
    lock_class = state.profile.lock_class
    if info is not None and lock_class is not None and given_lock(args, kwargs, ("loop",)) is None:
        # The lock it made itself is replaced by a profiled one, with the same arguments.
        own = object.__new__(lock_class)
        if kwargs:
            lock_class._lp_original.__init__(own, **{k: v for k, v in kwargs.items() if k != "lock"})
        else:
            lock_class._lp_original.__init__(own)
        _init_state(own, lock_class._lp_profile, info)
        _held_as(info, condition)
        condition._lock = own
        condition.locked, condition.acquire, condition.release = own.locked, own.acquire, own.release
    return 0


cdef int _asyncio_condition_slot(PyObject* condition, PyObject* args, PyObject* kwds) except -1:
    return _asyncio_condition_init(<object>condition, <tuple>args, <object>kwds if kwds != NULL else None)


# ------------------------------------------------------------------ acquire() and async with

cdef enum StepOp:
    ACQUIRE_LOCK  # acquire(): returns True
    ACQUIRE_SEMAPHORE
    ENTER_LOCK  # __aenter__(): returns None
    ENTER_SEMAPHORE
    EXIT_LOCK  # __aexit__(): returns None
    EXIT_SEMAPHORE

cdef enum StepStage:
    STEP_CREATED  # not sent into yet
    STEP_WAITING  # an acquire that suspends: handing on to `waiting`
    STEP_DONE


@cython.final
@cython.freelist(8)
cdef class _Step:
    """What acquire(), __aenter__ and __aexit__ of a profiled asyncio Lock, Semaphore or
    BoundedSemaphore return in place of the standard coroutines (acquire(); `await
    self.acquire()`; `self.release()`): awaitable, a collections.abc.Coroutine, run at its first
    send() as they are. An acquire or release that need not wait is done then; an acquire that
    waits hands every send(), throw() and close() on to the profiled acquire()'s coroutine.
    `await` steps it through its C slots (_await.h): no coroutine, frame or (but for a value
    returned on 3.9 and 3.12+) StopIteration is made, which cost more than the work itself."""
    cdef object primitive
    cdef ObjectState state
    cdef object waiting
    cdef StepOp op
    cdef StepStage stage

    def __await__(self):
        return self

    def __next__(self):
        return _step_result(self, None)

    def send(self, value):
        return _step_result(self, value)

    def throw(self, *args):
        if self.stage == STEP_DONE:  # as a finished or closed coroutine refuses it
            raise RuntimeError("cannot reuse already awaited coroutine")
        if self.stage == STEP_CREATED:
            # Not started: the standard coroutine, not started either, raises it.
            self.stage = STEP_DONE
            return _original(self).throw(*args)
        try:
            return self.waiting.throw(*args)
        except StopIteration as stopped:
            returned = stopped.value  # the acquire returned
        except BaseException:
            self._finish()
            raise
        self._finish()
        _stop(returned if _acquiring(self.op) else None)

    def close(self):
        waiting = self.waiting
        self._finish()
        if waiting is not None:
            waiting.close()

    @property
    def __name__(self):
        return self._standard().__name__

    @property
    def __qualname__(self):
        return self._standard().__qualname__

    @property
    def cr_await(self):
        return self.waiting

    @property
    def cr_running(self):
        return False  # read by another frame than the step's own

    cdef object _standard(self):
        """The standard method this replaces."""
        original = self.state.profile.original
        if _acquiring(self.op):
            return original.acquire
        return original.__aenter__ if self.op == ENTER_LOCK or self.op == ENTER_SEMAPHORE else original.__aexit__

    cdef void _finish(self) noexcept:
        self.stage = STEP_DONE
        self.waiting = None

    def __dealloc__(self):
        if self.stage == STEP_CREATED and self.state is not None:
            _never_awaited(self)


cdef inline bint _acquiring(StepOp op) noexcept:
    return op == ACQUIRE_LOCK or op == ACQUIRE_SEMAPHORE


cdef void _never_awaited(_Step step) noexcept:
    # As a coroutine never awaited warns; an error (warnings as errors) reported as unraisable.
    warnings.warn(f"coroutine '{step._standard().__qualname__}' was never awaited", RuntimeWarning, stacklevel=2)


cdef object _with_step(function, PyObject** args, bint entering):
    """__aenter__(primitive) (entering) or __aexit__(primitive, exc_type, exc, tb) of a profiled
    asyncio class (lp_make_step_fn, _await.h): a _Step for an object of the profiled class itself
    whose acquire or release attribute is still the class's (for a Condition, its lock's:
    _condition_lock()), else the standard coroutine, function's, which calls a subclass's own
    acquire() or release(), or the object's rebound one."""
    primitive = <object>args[0]
    cdef ObjectState state = _own_state(primitive)
    cdef StepOp op
    cdef bint is_lock
    if state is not None:
        if state.profile.lock_class is None:  # a Lock or semaphore
            is_lock = state.profile.kind is ASYNCIO_LOCK_KIND
            # Stepped only while the attribute the standard method calls is still the class's
            # (a program, a mock, may rebind it on the object).
            if lp_own_method(primitive, _ACQUIRE if entering else _RELEASE, _with_function(is_lock, entering)):
                if is_lock:
                    op = ENTER_LOCK if entering else EXIT_LOCK
                else:
                    op = ENTER_SEMAPHORE if entering else EXIT_SEMAPHORE
                return _step(primitive, state, op)
        else:
            lock = _condition_lock(primitive, entering)
            state = _own_state(lock) if lock is not None else None
            if state is not None:
                return _step(lock, state, ENTER_LOCK if entering else EXIT_LOCK)
    if entering:
        return function(primitive)
    return function(primitive, <object>args[1], <object>args[2], <object>args[3])


cdef object _condition_lock(condition, bint entering):
    """The lock whose acquire (entering) or release a Condition's standard __aenter__ or
    __aexit__ would call, where its acquire or release attribute is still the profiled asyncio
    Lock's method bound to it (as __init__ sets them); else None."""
    method = condition.acquire if entering else condition.release
    function = _with_function(True, entering)
    if not PyMethod_Check(method) or PyMethod_GET_FUNCTION(method) != <PyObject*>function:
        return None
    return <object>PyMethod_GET_SELF(method)


cdef object _with_function(bint is_lock, bint entering):
    """The profiled class's acquire (entering) or release, which the standard __aenter__ or
    __aexit__ calls."""
    if is_lock:
        return _LOCK_ACQUIRE_METHOD if entering else _LOCK_RELEASE
    return _SEMAPHORE_ACQUIRE_METHOD if entering else _SEMAPHORE_RELEASE


cdef inline ObjectState _own_state(obj):
    """obj's state where obj is of a profiled class itself (not a subclass's), else None."""
    state = getattr(obj, "_lp_state", None)
    if type(state) is ObjectState and type(obj) is (<ObjectState>state).profile.cls:
        return <ObjectState>state
    return None


cdef object _acquire_step(function, PyObject** args, StepOp op):
    """acquire(primitive) (lp_make_step_fn, _await.h): a _Step for an object with profiling
    state, which every object a profiled class makes has (a subclass's too, which the step's
    acquire serves as the coroutine would); else function's coroutine."""
    primitive = <object>args[0]
    state = getattr(primitive, "_lp_state", None)
    if type(state) is not ObjectState:
        return function(primitive)
    return _step(primitive, <ObjectState>state, op)


cdef object _own_coroutine(function, PyObject** args, int unused):
    """A make_step (_await.h) that always declines: function's own coroutine."""
    return function(<object>args[0])


cdef _Step _step(primitive, ObjectState state, StepOp op):
    cdef _Step step = _Step.__new__(_Step)
    step.primitive = primitive
    step.state = state
    step.op = op
    return step


cdef int _step_send(object obj, object value, PyObject** out) except -1:
    """One step of a _Step (lp_step_fn, _await.h): 1 with *out the value the acquire it hands on
    to yields, 0 with *out the value returned (new references)."""
    cdef _Step self = <_Step>obj
    if self.stage == STEP_CREATED:
        if value is not None:
            raise TypeError("can't send non-None value to a just-started coroutine")
        self.stage = STEP_DONE
        primitive, state, op = self.primitive, self.state, self.op
        if op == EXIT_LOCK:
            _lock_release(primitive, state)
            return _returned(out, None)
        if op == EXIT_SEMAPHORE:
            _semaphore_release(primitive, state)
            return _returned(out, None)
        is_lock = op == ACQUIRE_LOCK or op == ENTER_LOCK
        if state.profiling() and (_lock_taken_now(primitive, state) if is_lock
                                  else _semaphore_taken_now(primitive, state)):
            return _returned(out, True if _acquiring(op) else None)
        self.waiting = (_LOCK_ACQUIRE if is_lock else _SEMAPHORE_ACQUIRE)(primitive)
        self.stage = STEP_WAITING
    elif self.stage == STEP_DONE:
        raise RuntimeError("cannot reuse already awaited coroutine")
    cdef int sent
    try:
        sent = lp_send(self.waiting, value, out)
    except BaseException:
        self._finish()
        raise
    if sent == 0:
        self._finish()
        if not _acquiring(self.op):  # __aenter__ returns None, whatever the acquire returned
            Py_XDECREF(out[0])
            return _returned(out, None)
    return sent


cdef inline int _returned(PyObject** out, value) noexcept:
    Py_INCREF(value)
    out[0] = <PyObject*>value
    return 0


cdef object _step_result(_Step self, value):
    """_step_send() as send() and __next__() tell it: a return as StopIteration."""
    cdef PyObject* out
    cdef int sent = _step_send(self, value, &out)
    result = <object>out
    Py_DECREF(result)  # _step_send's reference: result holds its own
    if sent:
        return result
    _stop(result)


cdef int _stop(value) except -1:
    """Raise what a coroutine's send() raises when it returns value (whose __context__ follows
    the running CPython's, lp_raise_stop)."""
    if value is None:
        raise StopIteration
    lp_raise_stop(value)
    return -1


cdef bint _stop_chains():
    """Whether the StopIteration of an interpreted generator's return takes the exception being
    handled as its __context__, as a coroutine's does (a step's must too). The generator is
    compiled from source: a Cython one makes its StopIteration its own way."""
    namespace = {}
    exec("def returned():\n    return True\n    yield\n", namespace)
    try:
        raise LookupError
    except LookupError:
        try:
            next(namespace["returned"]())
        except StopIteration as stopped:
            return stopped.__context__ is not None
    return True


lp_set_stop_chains(_stop_chains())


cdef object _original(_Step step):
    """The standard coroutine in place of which step was made, not started."""
    if _acquiring(step.op):
        return step.state.profile.acquire(step.primitive)
    if step.op == ENTER_LOCK or step.op == ENTER_SEMAPHORE:
        return _original_aenter(step.primitive, step.state)
    return _original_aexit(step.primitive, step.state, None, None, None)


cdef object _original_aenter(primitive, ObjectState state):
    return state.profile.original.__aenter__(primitive)


cdef object _original_aexit(primitive, ObjectState state, exc_type, exc, tb):
    return state.profile.original.__aexit__(primitive, exc_type, exc, tb)


lp_type_set_step(<PyTypeObject*>_Step, <void*>_step_send)
collections.abc.Coroutine.register(_Step)

# acquire() of the profiled classes: the coroutine functions above, whose call with the object
# alone makes a _Step (_await.h). They keep their name, code and signature: inspect sees a
# coroutine function. A _Step that waits hands on to their coroutine.
cdef object _LOCK_ACQUIRE = _AsyncioLock.__dict__["acquire"]
cdef object _SEMAPHORE_ACQUIRE = _AsyncioSemaphore.__dict__["acquire"]
cdef object _LOCK_ACQUIRE_METHOD = lp_stepping_method_new(_LOCK_ACQUIRE, <void*>_acquire_step, ACQUIRE_LOCK, 1)
_AsyncioLock.acquire = _LOCK_ACQUIRE_METHOD
cdef object _SEMAPHORE_ACQUIRE_METHOD = lp_stepping_method_new(_SEMAPHORE_ACQUIRE, <void*>_acquire_step,
                                                              ACQUIRE_SEMAPHORE, 1)
_AsyncioSemaphore.acquire = _SEMAPHORE_ACQUIRE_METHOD
# wait() of the profiled Condition: a stepping method that never steps, so that it reads as a
# function too (its coroutine is the compiled one's).
_AsyncioCondition.wait = lp_stepping_method_new(_AsyncioCondition.__dict__["wait"], <void*>_own_coroutine, 0, 1)
cdef object _LOCK_RELEASE = _AsyncioLock.__dict__["release"]
cdef object _SEMAPHORE_RELEASE = _AsyncioSemaphore.__dict__["release"]
cdef str ASYNCIO_LOCK_KIND = _kinds.ASYNCIO_LOCK
cdef str _ACQUIRE = "acquire"
cdef str _RELEASE = "release"


cdef dict _with_methods(base):
    """__aenter__ and __aexit__ of a profiled asyncio class: base's own (the standard coroutine
    functions, which introspection sees and which run where no step is made), stepped."""
    return {"__aenter__": lp_stepping_method_new(base.__aenter__, <void*>_with_step, True, 1),
            "__aexit__": lp_stepping_method_new(base.__aexit__, <void*>_with_step, False, 4)}
