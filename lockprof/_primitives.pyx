# cython: language_level=3
"""Profiled Semaphore, BoundedSemaphore and Condition of threading, and Lock, Semaphore,
BoundedSemaphore and Condition of asyncio.

These standard classes are written in Python, so they are profiled by subclassing: while a
collector runs, the module attribute (threading.Semaphore, asyncio.Lock, ...) is a subclass made
by profiled_class() for that collector, whose methods below time the waits and holds and hand
them to the same Recorder as the compiled Lock and RLock, under their own lock kind. The
subclass keeps the standard behaviour (it calls the original methods for all the work, or does
exactly what they do when they need not wait), answers isinstance() for objects made before
profiling, pickles as the original class, and makes an object of the original class where
profiling does not apply: when stopped, or in an excluded module, which always includes
threading itself (the Conditions inside its Event, Semaphore and Thread). Conditions that
other modules make (queue.Queue's, concurrent.futures') are the program's, and profiled.

The rules are those of the Lock wrapper: an acquire that gets its permit at once is sampled at
capture_pct, an acquire that has to wait is timed and always counted (Recorder.record_wait), and
a Condition's wait for a notify is its own sample type, never contention.
"""

import abc
import copyreg
from collections import deque
import sys
import threading
import weakref

from lockprof import _kinds

cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport int64_t

from lockprof._lock cimport (
    name_lock, new_lock_info, profiled_rlock, release_native_lock, take_native_lock,
)
from lockprof._lockcore cimport (
    LP_ACQUIRE_BLOCKING, LP_ACQUIRE_NONBLOCKING, LP_TIMEOUT_SEMAPHORE, lp_acquire_kind, lp_blocking,
    lp_blocking_pending, lp_entry, lp_module_init, lp_monotonic_ns, lp_thread_ident,
)
from lockprof._recorder cimport LockInfo, Recorder
from lockprof._wait cimport (
    WAIT_CAPTURED, WAIT_UNRECORDED, CapturedHold, TimedWait, WaitOutcome, hold_forget, hold_released,
    hold_captured, hold_start, wait_begin, wait_end, wait_record,
)

lp_module_init()

# Captured holds a primitive keeps for acquirers that have not released yet; a permit released
# by another thread than its acquirer leaves its hold unended, so the oldest are dropped.
DEF MAX_OPEN_HOLDS = 64


@cython.no_gc_clear  # __dealloc__ needs recorder alive: its table owns the entry
cdef class Hold:
    """A semaphore's captured acquire, open until the release that ends it."""
    cdef Recorder recorder  # keeps the table that owns the entry alive
    cdef CapturedHold held

    def __dealloc__(self):
        hold_forget(&self.held)  # never ended: let the table evict its entry

    cdef void end(self, int64_t released_at) noexcept:
        hold_released(&self.held, NULL, self.recorder, None, released_at)


cdef object _hold(Recorder recorder, lp_entry* entry, int64_t acquired_at):
    """A Hold for a captured acquire's entry (None when the full table dropped it)."""
    if entry == NULL:
        return None
    cdef Hold hold = Hold.__new__(Hold)
    hold.recorder = recorder
    hold_start(&hold.held, entry, acquired_at)
    return hold


cdef object _sampled_hold(Recorder recorder, LockInfo info):
    """An acquire that did not wait: its Hold if the sampler chooses it, else None."""
    if not recorder.sampler.should_capture():
        return None
    return _hold(recorder, recorder.record_acquire(info), lp_monotonic_ns())


# How asyncio.Semaphore.acquire() decides to suspend, which changed within the patch releases
# of 3.9 and 3.10 (bpo-45997, gh-90155): read from the standard acquire's own code when a class
# is profiled.
cdef enum SemaphoreTest:
    SEMAPHORE_VALUE     # `while self._value <= 0`: the first releases
    SEMAPHORE_WAKEUP    # `while self._wakeup_scheduled or self._value <= 0`: 3.9.18's
    SEMAPHORE_LOCKED    # `if not self.locked()`: 3.10.13 and later

# Whether a class profiles one of threading's standard semaphores, whose permits are then taken
# and given back in place (_take_permit, _give_permits) when no thread need wait.
cdef enum Permits:
    PERMITS_BY_METHOD   # another class: its own methods do it
    PERMITS_SEMAPHORE   # threading.Semaphore
    PERMITS_BOUNDED     # threading.BoundedSemaphore: a release checks the initial value

@cython.final
cdef class ClassProfile:
    """What the methods of one profiled class need, in C fields: found through the object's
    state, so that an operation reads no class attribute."""
    cdef readonly object original
    cdef readonly str kind
    cdef object cls  # the profiled class itself (a user's subclass may override methods)
    cdef SemaphoreTest semaphore_test  # asyncio semaphores: how the standard acquire decides
    cdef Permits permits  # threading semaphores: whether permits are handled in place
    cdef Recorder recorder
    cdef object excludes
    cdef dict decisions
    cdef object lock_class  # asyncio.Condition: the profiled asyncio.Lock class
    # The original's methods, called as functions with the object as first argument.
    cdef object acquire
    cdef object release
    cdef object wait
    # asyncio's primitives: asyncio.CancelledError (asyncio is imported only by the program).
    cdef object cancelled_error


@cython.final
@cython.no_gc_clear  # __dealloc__ needs recorder alive: its table owns hold.entry
cdef class ObjectState:
    """lockprof's state of one profiled object, its only attribute (_lp_state), read once per
    operation."""
    cdef ClassProfile profile
    cdef Recorder recorder
    cdef readonly LockInfo info  # None: not profiled (stopped, excluded, a copy)
    # asyncio.Lock: its one captured hold, if any, and the tasks blocked on it now (for its
    # blocking holds, as _LockWrapper's).
    cdef CapturedHold hold
    cdef lp_blocking blocking
    # asyncio.Lock: the last acquire's wait, read by the Condition whose wait() re-acquires.
    cdef int64_t last_wait_ns
    # Semaphores: the open Holds (None for an uncaptured acquire) by acquirer.
    cdef dict holds
    # threading.Condition: when each acquirer's wait() started to re-acquire the lock.
    cdef dict restored

    def __dealloc__(self):
        hold_forget(&self.hold)  # never ended: let the table evict its entry

    cdef inline bint profiling(self) noexcept:
        return self.info is not None and self.recorder.active


# ------------------------------------------------------------------ classes and objects

class ProfiledClass(abc.ABCMeta):
    """The metaclass of the profiled subclasses: an object of the original class (made before
    profiling, or where profiling does not apply) is still an instance of the patched name.
    Derived from ABCMeta so that a program's `class Pool(threading.Semaphore, abc.ABC)` still
    finds a common metaclass."""

    def __instancecheck__(cls, obj):
        if abc.ABCMeta.__instancecheck__(cls, obj):
            return True
        original = cls.__dict__.get("_lp_original")  # the profiled class itself, not a subclass
        return original is not None and isinstance(obj, original)

    def __subclasscheck__(cls, subclass):
        if abc.ABCMeta.__subclasscheck__(cls, subclass):
            return True
        original = cls.__dict__.get("_lp_original")
        return original is not None and issubclass(subclass, original)


def original_class(cls):
    """The standard class behind a profiled one (looking through other collectors' classes)."""
    while isinstance(cls, ProfiledClass) and "_lp_original" in cls.__dict__:
        cls = cls.__dict__["_lp_original"]
    return cls


def profiled_class(original, str kind, Recorder recorder not None, excludes not None, lock_class=None):
    """The subclass of `original` (threading.Semaphore, asyncio.Lock, ...) that profiles its
    objects as `kind` for `recorder`. lock_class: for asyncio.Condition, the profiled
    asyncio.Lock class its own lock is made from."""
    base = original_class(original)
    cdef ClassProfile profile = ClassProfile.__new__(ClassProfile)
    profile.original = base
    profile.kind = kind
    profile.recorder = recorder
    profile.excludes = excludes
    profile.decisions = {}
    profile.lock_class = lock_class
    profile.acquire = getattr(base, "acquire", None)
    profile.release = getattr(base, "release", None)
    profile.wait = getattr(base, "wait", None)
    profile.permits = _permits(base)
    if kind in _kinds.ASYNCIO_KINDS:
        profile.cancelled_error = sys.modules["asyncio"].CancelledError
        profile.semaphore_test = _semaphore_test(profile.acquire)
    namespace = {
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
        "_lp_original": base,
        "_lp_recorder": recorder,
        "_lp_profile": profile,
    }
    cls = ProfiledClass(base.__name__, (_MIXINS[_kinds.PROFILED_AS[kind]], base), namespace)
    profile.cls = cls
    return cls


cdef object _new(cls, args, kwargs):
    """__new__ of every profiled class: an object of the original class where profiling does
    not apply (stopped, or made in an excluded module) unless cls is a user's subclass."""
    cdef ClassProfile profile = cls._lp_profile
    base = profile.original
    info = (new_lock_info(profile.recorder, profile.kind, profile.excludes, profile.decisions)
            if profile.recorder.active else None)
    if info is None and "_lp_original" in cls.__dict__:
        native = base.__new__(base)
        base.__init__(native, *args, **kwargs)  # not called by type() for another class
        return native
    obj = base.__new__(cls)
    _init_state(obj, info)
    return obj


cdef void _held_as(LockInfo info, obj) except *:
    """The program holds info's lock as obj (a Condition its own lock): name it after obj, unless
    its creation site named it already."""
    if not info.site_named and (info.name is None or info.local_named):
        info.owner = weakref.ref(obj)


cdef void _init_state(obj, LockInfo info) except *:
    cdef ObjectState state = ObjectState.__new__(ObjectState)
    state.profile = type(obj)._lp_profile
    state.recorder = state.profile.recorder
    state.info = info
    obj._lp_state = state


cdef inline ObjectState _state(obj):
    return <ObjectState?>obj._lp_state


def _reduce_ex(self, protocol):
    """Pickle and copy as natively. A user's subclass goes the standard way (its own
    __reduce__ or __getstate__ respected). An object of the profiled class itself is named by
    a class pickle can find: its own while its name leads to it (threading.Semaphore while
    profiling: the copy is then not profiled), else the original (asyncio.locks.Lock, not
    patched). So what pickles natively pickles, and what fails natively still fails."""
    cls = type(self)
    if "_lp_original" not in cls.__dict__:
        return object.__reduce_ex__(self, protocol)
    state = _getstate(self)
    if not _named(cls):
        return copyreg._reconstructor, (cls._lp_original, object, None), state
    copy = object.__new__(cls)
    _init_state(copy, None)
    state.update(vars(copy))
    return copyreg._reconstructor, (cls, object, None), state


def _getstate(self):
    """The object's attributes without lockprof's: a subclass's pickle carries none of them."""
    return {key: value for key, value in vars(self).items() if not key.startswith("_lp_")}


def _setstate(self, state):
    """Unpickling a subclass: its attributes, and lockprof's state of an unprofiled object."""
    _init_state(self, None)
    vars(self).update(state)


cdef bint _named(cls):
    module = sys.modules.get(cls.__module__)
    target = module
    for part in cls.__qualname__.split("."):
        target = getattr(target, part, None)
    return target is cls


# ------------------------------------------------------------------ holds by acquirer

cdef object _holder(ObjectState state, bint by_task):
    """Who a semaphore's hold belongs to: the running task (asyncio, in its event loop), else
    _acquirer()."""
    key = state.recorder._current_task() if by_task else None
    return _acquirer() if key is None else key


cdef void _open_hold(ObjectState state, bint by_task, object hold) except *:
    """Note an acquire: its captured hold, or None. Uncaptured acquires are noted only while
    the holder has captured ones open, so that releases pair with acquires last-in first-out
    and never end another acquire's hold; the holder is looked up only then."""
    holds = state.holds
    if hold is None and not holds:
        return
    key = _holder(state, by_task)
    if hold is None and key not in holds:
        return
    if holds is None:
        holds = state.holds = {}
    elif key not in holds and len(holds) >= MAX_OPEN_HOLDS:
        del holds[next(iter(holds))]  # the oldest acquirer's holds: dropped, never ended
    holds.setdefault(key, []).append(hold)


cdef void _close_hold(obj, ObjectState state, bint by_task) except *:
    holds = state.holds
    if not holds:
        return
    key = _holder(state, by_task)
    stack = holds.get(key)
    if not stack:
        return
    hold = stack.pop()
    if not stack or all(open_hold is None for open_hold in stack):
        del holds[key]
    if hold is not None:
        (<Hold>hold).end(lp_monotonic_ns())
        name_lock(obj, state.info)


cdef void _waited(ObjectState state, bint by_task, TimedWait* wait, bint acquired) except *:
    """A semaphore's timed wait recorded; one that got a permit opens a hold."""
    cdef WaitOutcome outcome = wait_record(wait, state.recorder, state.info, acquired)
    if outcome != WAIT_UNRECORDED and acquired:
        _open_hold(state, by_task, _hold(state.recorder, wait.entry, wait.end) if outcome == WAIT_CAPTURED else None)


cdef dict _MODULES = sys.modules


cdef object _acquirer():
    """Who holds a threading semaphore's permit, or waits on a Condition: the running greenlet
    once gevent is in use (it runs many on one thread), else the thread."""
    if _MODULES.get("gevent") is not None:
        greenlet = _MODULES.get("greenlet")
        if greenlet is not None:
            return id(greenlet.getcurrent())
    return lp_thread_ident()


class _Profiled:
    """What every profiled class shares: how its objects are made, pickled and copied."""

    def __new__(cls, *args, **kwargs):
        return _new(cls, args, kwargs)

    __reduce_ex__ = _reduce_ex
    __getstate__ = _getstate
    __setstate__ = _setstate

    @property
    def _lp_info(self):
        """The LockInfo the profile uses for this object, None where it is not profiled."""
        return _state(self).info


# ------------------------------------------------------------------ threading

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
        if state.holds:
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


cdef object _standard_condition(semaphore, ClassProfile profile):
    """A standard semaphore's Condition, whose lock the standard methods hold while they read
    and change the counter; None for a subclass (whose methods may be its own), another kind of
    Condition, or a class with other methods. Its lock may still be of another kind (gevent's):
    take_native_lock() refuses it."""
    if profile.permits == PERMITS_BY_METHOD or type(semaphore) is not profile.cls:
        return None
    condition = getattr(semaphore, "_cond", None)
    return condition if type(condition) is _STANDARD_CONDITION else None


cdef InPlace _take_permit(semaphore, ClassProfile profile) except *:
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

    def __init__(self, lock=None):
        cdef ObjectState state = _state(self)
        info = state.info
        if info is not None and lock is None:
            _held_as(info, self)
            lock = profiled_rlock(info, state.recorder)
        state.profile.original.__init__(self, lock)
        if info is not None:
            state.restored = {}
            self._acquire_restore = _RestoreTimer(self._acquire_restore, state.restored)

    def wait(self, timeout=None):
        cdef ObjectState state = _state(self)
        if not state.profiling():
            return state.profile.wait(self, timeout)
        cdef int64_t start = lp_monotonic_ns()
        result = state.profile.wait(self, timeout)
        restored_at = state.restored.pop(_acquirer(), None)
        if restored_at is not None and state.profiling():
            state.recorder.record_condition_wait(state.info, <int64_t>restored_at - start, <int64_t>restored_at)
            name_lock(self, state.info)
        return result


class _RestoreTimer:
    """Condition._acquire_restore, noting when wait() starts to re-acquire the lock."""

    def __init__(self, restore, restored):
        self._restore = restore
        self._restored = restored

    def __call__(self, state):
        self._restored[_acquirer()] = lp_monotonic_ns()
        return self._restore(state)


# ------------------------------------------------------------------ asyncio

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
            hold_start(&state.hold, wait.entry, wait.end)
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

    def __init__(self, lock=None, **kwargs):
        cdef ObjectState state = _state(self)
        state.profile.original.__init__(self, lock, **kwargs)  # its own checks and errors, its own lock
        info = state.info
        lock_class = state.profile.lock_class
        if info is not None and lock is None and lock_class is not None:
            # The lock it made itself is replaced by a profiled one, with the same arguments.
            own = object.__new__(lock_class)
            lock_class._lp_original.__init__(own, **kwargs)
            _init_state(own, info)
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


# The wrapper of each kind a profiled subclass is made for (lockprof._kinds.PROFILED_AS).
_MIXINS = {
    _kinds.SEMAPHORE: _ThreadingSemaphore,
    _kinds.CONDITION: _ThreadingCondition,
    _kinds.ASYNCIO_LOCK: _AsyncioLock,
    _kinds.ASYNCIO_SEMAPHORE: _AsyncioSemaphore,
    _kinds.ASYNCIO_CONDITION: _AsyncioCondition,
}
