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
import sys
import threading
import weakref

cimport cython
from libc.stdint cimport int64_t

from lockprof._lock cimport name_lock, new_lock_info, profiled_rlock
from lockprof._lockcore cimport (
    lp_blocking, lp_blocking_enter, lp_blocking_leave, lp_blocking_pending, lp_blocking_release,
    lp_entry, lp_monotonic_ns, lp_thread_ident,
)
from lockprof._recorder cimport LockInfo, Recorder


# Captured holds a primitive keeps for acquirers that have not released yet; a permit released
# by another thread than its acquirer leaves its hold unended, so the oldest are dropped.
DEF MAX_OPEN_HOLDS = 64


@cython.no_gc_clear  # __dealloc__ needs recorder alive: its table owns entry
cdef class Hold:
    """A captured acquire's table entry, pending until the release that ends the hold."""
    cdef Recorder recorder  # keeps the table that owns entry alive
    cdef lp_entry* entry
    cdef int64_t acquired_at

    def __dealloc__(self):
        if self.entry != NULL:
            self.entry.pending -= 1  # never ended: let the table evict it

    cdef void end(self, int64_t released_at) noexcept:
        if self.entry != NULL:
            self.recorder.record_release(self.entry, released_at - self.acquired_at)
            self.entry = NULL


cdef class Blocking:
    """The tasks blocked on an asyncio.Lock now, for its blocking holds (as _LockWrapper's)."""
    cdef lp_blocking state


cdef object _hold(Recorder recorder, lp_entry* entry):
    """A Hold for a captured acquire's entry (None when the full table dropped it)."""
    if entry == NULL:
        return None
    cdef Hold hold = Hold.__new__(Hold)
    hold.recorder = recorder
    hold.entry = entry
    hold.acquired_at = lp_monotonic_ns()
    return hold


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
    namespace = {
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
        "_lp_original": base,
        "_lp_kind": kind,
        "_lp_recorder": recorder,
        "_lp_excludes": excludes,
        "_lp_decisions": {},
        "_lp_lock_class": lock_class,
    }
    return ProfiledClass(base.__name__, (_MIXINS[kind], base), namespace)


cdef object _new(cls, args, kwargs):
    """__new__ of every profiled class: an object of the original class where profiling does
    not apply (stopped, or made in an excluded module) unless cls is a user's subclass."""
    cdef Recorder recorder = cls._lp_recorder
    base = cls._lp_original
    info = new_lock_info(cls._lp_kind, cls._lp_excludes, cls._lp_decisions) if recorder.active else None
    if info is None and "_lp_original" in cls.__dict__:
        native = base.__new__(base)
        base.__init__(native, *args, **kwargs)  # not called by type() for another class
        return native
    obj = base.__new__(cls)
    _init_state(obj, info)
    return obj


cdef void _init_state(obj, LockInfo info) except *:
    obj._lp_info = info
    obj._lp_holds = None  # semaphores: open holds by acquirer
    obj._lp_hold = None  # asyncio.Lock: its one hold, and the tasks it blocks
    obj._lp_blocking = Blocking.__new__(Blocking)


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


cdef inline bint _profiling(self) except -1:
    return self._lp_info is not None and (<Recorder>type(self)._lp_recorder).active


cdef inline Recorder _recorder(self):
    return <Recorder>type(self)._lp_recorder


# ------------------------------------------------------------------ holds by acquirer

cdef void _start_hold(self, object key, object hold) except *:
    """Note an acquire by `key` (a task, or None for _acquirer()): its captured hold, or None. Uncaptured acquires are noted only while the key has captured ones open, so
    that releases pair with acquires last-in first-out and never end another acquire's hold."""
    holds = self._lp_holds
    if hold is None and not holds:
        return
    if key is None:
        key = _acquirer()
    if hold is None and key not in holds:
        return
    if holds is None:
        holds = self._lp_holds = {}
    elif key not in holds and len(holds) >= MAX_OPEN_HOLDS:
        del holds[next(iter(holds))]  # the oldest acquirer's holds: dropped, never ended
    holds.setdefault(key, []).append(hold)


cdef void _end_hold(self, object key) except *:
    holds = self._lp_holds
    if not holds:
        return
    if key is None:
        key = _acquirer()
    stack = holds.get(key)
    if not stack:
        return
    hold = stack.pop()
    if not stack or all(open_hold is None for open_hold in stack):
        del holds[key]
    if hold is not None:
        (<Hold>hold).end(lp_monotonic_ns())
        name_lock(self, self._lp_info)


cdef dict _MODULES = sys.modules


cdef object _acquirer():
    """Who holds a threading semaphore's permit, or waits on a Condition: the running greenlet
    once gevent is in use (it runs many on one thread), else the thread."""
    if _MODULES.get("gevent") is not None:
        greenlet = _MODULES.get("greenlet")
        if greenlet is not None:
            return id(greenlet.getcurrent())
    return lp_thread_ident()


cdef object _current_task():
    """The running task, or None (a release made outside the event loop)."""
    import asyncio
    loop = asyncio.events._get_running_loop()
    return asyncio.current_task(loop) if loop is not None else None


class _Profiled:
    """What every profiled class shares: how its objects are made, pickled and copied."""

    def __new__(cls, *args, **kwargs):
        return _new(cls, args, kwargs)

    __reduce_ex__ = _reduce_ex
    __getstate__ = _getstate
    __setstate__ = _setstate


# ------------------------------------------------------------------ threading

class _ThreadingSemaphore(_Profiled):
    """threading.Semaphore and BoundedSemaphore: a blocking acquire first tries without
    blocking; if no permit is free, the wait is timed. A hold runs from an acquire to a
    release by the same thread."""

    def acquire(self, blocking=True, timeout=None):
        base = type(self)._lp_original
        # A call that cannot wait (blocking=False, or a timeout of zero, as ThreadPoolExecutor
        # polls its idle semaphore) is the standard one, untimed: a failure is not a wait.
        if (blocking is not True or not _profiling(self)
                or (type(timeout) in (int, float) and timeout <= 0)):
            return base.acquire(self, blocking, timeout)
        cdef Recorder recorder = _recorder(self)
        cdef LockInfo info = self._lp_info
        cdef lp_entry* entry = NULL
        if base.acquire(self, False):
            hold = _hold(recorder, recorder.record_acquire(info)) if recorder.sampler.should_capture() else None
            _start_hold(self, None, hold)
            return True
        cdef int64_t start = lp_monotonic_ns()
        result = base.acquire(self, True, timeout)
        cdef int64_t wait_ns = lp_monotonic_ns() - start
        if recorder.active:
            capture = bool(result) and recorder.sampler.should_capture()
            entry = recorder.record_wait(info, wait_ns, not result, capture)
            if result:
                _start_hold(self, None, _hold(recorder, entry) if capture else None)
        return result

    __enter__ = acquire

    def release(self, n=1):
        type(self)._lp_original.release(self, n)  # raises as natively (BoundedSemaphore)
        if self._lp_holds:
            _end_hold(self, None)

    def __exit__(self, t, v, tb):
        self.release()


class _ThreadingCondition(_Profiled):
    """threading.Condition. Its own lock (when none is given) is a profiled RLock of kind
    'condition' under the Condition's name; a lock given to it is profiled as itself. Time in
    wait() until the re-acquire starts is a condition wait."""

    def __init__(self, lock=None):
        base = type(self)._lp_original
        info = self._lp_info
        if info is not None and lock is None:
            (<LockInfo>info).owner = weakref.ref(self)
            lock = profiled_rlock(info, _recorder(self))
        base.__init__(self, lock)
        if info is not None:
            self._lp_restored = {}
            self._acquire_restore = _RestoreTimer(self._acquire_restore, self._lp_restored)

    def wait(self, timeout=None):
        base = type(self)._lp_original
        if not _profiling(self):
            return base.wait(self, timeout)
        cdef int64_t start = lp_monotonic_ns()
        result = base.wait(self, timeout)
        restored_at = self._lp_restored.pop(_acquirer(), None)
        if restored_at is not None and _profiling(self):
            _recorder(self).record_condition_wait(self._lp_info, <int64_t>restored_at - start)
            name_lock(self, self._lp_info)
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

class _AsyncioLock(_Profiled):
    """asyncio.Lock: an acquire that would suspend is timed from its own call, so each waiting
    task has its own wait; the hold runs from the acquire to the release. A release that finds
    tasks waiting records the blocking hold, as the threading Lock does."""

    async def acquire(self):
        base = type(self)._lp_original
        if not _profiling(self):
            return await base.acquire(self)
        cdef Recorder recorder = _recorder(self)
        cdef LockInfo info = self._lp_info
        if not _asyncio_lock_busy(self):
            # What the standard acquire does when it need not suspend (3.9 to 3.13), without
            # running its coroutine.
            self._locked = True
            self._lp_last_wait_ns = 0
            if recorder.sampler.should_capture():
                self._lp_hold = _hold(recorder, recorder.record_acquire(info))
            return True
        cdef Blocking blocking = self._lp_blocking
        cdef int64_t start = lp_monotonic_ns(), end = 0
        lp_blocking_enter(&blocking.state, start)
        acquired = False
        try:
            result = await base.acquire(self)
            acquired = True
        finally:
            end = lp_monotonic_ns()
            lp_blocking_leave(&blocking.state, True, acquired, end)  # a cancelled waiter was blocked
        self._lp_last_wait_ns = end - start  # read by the Condition whose wait() re-acquires
        if recorder.active:
            capture = recorder.sampler.should_capture()
            entry = recorder.record_wait(info, end - start, False, capture)
            if capture:
                self._lp_hold = _hold(recorder, entry)
        return result

    def release(self):
        type(self)._lp_original.release(self)  # raises as natively when not locked
        cdef Blocking blocking = self._lp_blocking
        if self._lp_hold is None and not lp_blocking_pending(&blocking.state):
            return
        cdef int64_t released_at = lp_monotonic_ns()
        hold, self._lp_hold = self._lp_hold, None
        if hold is not None:
            (<Hold>hold).end(released_at)
        cdef int64_t blocked_ns = lp_blocking_release(&blocking.state, released_at)
        if _profiling(self) and blocked_ns > 0:
            _recorder(self).record_blocking_hold(self._lp_info, blocked_ns)
        name_lock(self, self._lp_info)


cdef bint _asyncio_lock_busy(lock) except -1:
    """Whether asyncio.Lock.acquire() would suspend (the standard library's own test)."""
    if lock._locked:
        return True
    waiters = lock._waiters
    return bool(waiters) and not all(w.cancelled() for w in waiters)


class _AsyncioSemaphore(_Profiled):
    """asyncio.Semaphore and BoundedSemaphore: an acquire that would suspend (locked()) is
    timed; a hold runs from an acquire to a release by the same task."""

    async def acquire(self):
        base = type(self)._lp_original
        if not _profiling(self):
            return await base.acquire(self)
        cdef Recorder recorder = _recorder(self)
        cdef LockInfo info = self._lp_info
        cdef lp_entry* entry = NULL
        # 3.9 also makes a task wait while another is being woken up (_wakeup_scheduled).
        if not self.locked() and not getattr(self, "_wakeup_scheduled", False):
            # What the standard acquire does when it need not suspend (3.9 to 3.13), without
            # running its coroutine.
            self._value -= 1
            hold = _hold(recorder, recorder.record_acquire(info)) if recorder.sampler.should_capture() else None
            _start_hold(self, _current_task(), hold)
            return True
        cdef int64_t start = lp_monotonic_ns()
        result = await base.acquire(self)
        cdef int64_t wait_ns = lp_monotonic_ns() - start
        if recorder.active:
            capture = recorder.sampler.should_capture()
            entry = recorder.record_wait(info, wait_ns, False, capture)
            _start_hold(self, _current_task(), _hold(recorder, entry) if capture else None)
        return result

    def release(self):
        type(self)._lp_original.release(self)  # raises as natively (BoundedSemaphore)
        if self._lp_holds:
            _end_hold(self, _current_task())


class _AsyncioCondition(_Profiled):
    """asyncio.Condition. Its own lock (when none is given) is a profiled asyncio.Lock of kind
    'asyncio-condition' under the Condition's name. Time in wait() outside the re-acquire is
    a condition wait."""

    def __init__(self, lock=None, **kwargs):
        base = type(self)._lp_original
        base.__init__(self, lock, **kwargs)  # its own checks and errors, its own lock
        info = self._lp_info
        lock_class = type(self)._lp_lock_class
        if info is not None and lock is None and lock_class is not None:
            # The lock it made itself is replaced by a profiled one, with the same arguments.
            own = object.__new__(lock_class)
            lock_class._lp_original.__init__(own, **kwargs)
            _init_state(own, info)
            (<LockInfo>info).owner = weakref.ref(self)
            self._lock = own
            self.locked, self.acquire, self.release = own.locked, own.acquire, own.release

    async def wait(self):
        base = type(self)._lp_original
        if not _profiling(self):
            return await base.wait(self)
        cdef int64_t start = lp_monotonic_ns()
        lock = self._lock
        result = await base.wait(self)
        # The re-acquire just finished in this task, with no other task run since: its wait,
        # when the lock is a profiled one, is not part of the wait for the notify.
        reacquire_ns = getattr(lock, "_lp_last_wait_ns", 0)
        if _profiling(self):
            _recorder(self).record_condition_wait(self._lp_info, lp_monotonic_ns() - start - reacquire_ns)
            name_lock(self, self._lp_info)
        return result


_MIXINS = {
    "semaphore": _ThreadingSemaphore,
    "bounded-semaphore": _ThreadingSemaphore,
    "condition": _ThreadingCondition,
    "asyncio-lock": _AsyncioLock,
    "asyncio-semaphore": _AsyncioSemaphore,
    "asyncio-bounded-semaphore": _AsyncioSemaphore,
    "asyncio-condition": _AsyncioCondition,
}
