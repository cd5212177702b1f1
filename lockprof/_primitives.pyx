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

One extension module, in parts: this file (the classes' and objects' machinery, holds by
acquirer), _threading_primitives.pxi and _asyncio_primitives.pxi (the profiled subclasses).
"""

import abc
import collections.abc
import copyreg
from collections import deque
import sys
import threading
import warnings
import weakref

from lockprof import _kinds

cimport cython
from cpython.method cimport PyMethod_Check, PyMethod_GET_FUNCTION, PyMethod_GET_SELF
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from libc.stdint cimport int64_t

from lockprof._lock cimport CreationSites, profiled_rlock, release_native_lock, take_native_lock
from lockprof._lockcore cimport (
    LP_ACQUIRE_BLOCKING, LP_ACQUIRE_NONBLOCKING, LP_TIMEOUT_SEMAPHORE, lp_acquire_kind, lp_blocking,
    METH_FASTCALL, METH_KEYWORDS, PyCFunction_NewEx, PyMethodDef, lp_call_first, lp_entry,
    lp_load_int, lp_module_init, lp_monotonic_ns, lp_object_new, lp_own_method, lp_raise_stop, lp_send, lp_set_stop_chains,
    lp_stepping_method_new, lp_store_int, lp_thread_ident, lp_type_set_init,
    lp_type_set_step,
)
from lockprof._recorder cimport LockInfo, Recorder, name_lock
from lockprof._wait cimport (
    WAIT_CAPTURED, WAIT_UNRECORDED, CapturedHold, TimedWait, WaitOutcome, blocking_take, hold_forget, hold_released,
    hold_captured, hold_start, release_ends, wait_begin, wait_end, wait_record,
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
        hold_forget(&self.held, self.recorder)  # never ended: let the table evict its entry

    cdef void end(self, int64_t released_at) noexcept:
        hold_released(&self.held, 0, self.recorder, None, released_at)


cdef object _hold(Recorder recorder, lp_entry* entry, int64_t acquired_at):
    """A Hold for a captured acquire's entry (None when the full table dropped it)."""
    if entry == NULL:
        return None
    cdef Hold hold = Hold.__new__(Hold)
    hold.recorder = recorder
    hold_start(&hold.held, recorder, entry, acquired_at)
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
    cdef CreationSites sites
    cdef object lock_class  # asyncio.Condition: the profiled asyncio.Lock class
    cdef bint object_new  # the original's objects are made by object.__new__
    # The original's methods, called as functions with the object as first argument.
    cdef object init
    cdef object acquire
    cdef object release
    cdef object wait
    # asyncio's primitives: asyncio.CancelledError (asyncio is imported only by the program).
    cdef object cancelled_error


@cython.final
@cython.no_gc_clear  # __dealloc__ needs recorder alive: its table owns hold.entry
@cython.freelist(16)  # objects made per request: a reused block rather than an allocation
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
    # Semaphores: the open Holds (None for an uncaptured acquire) by acquirer, changed under the
    # state's critical section; and how many acquirers have some, read without it (holds_open()).
    cdef dict holds
    cdef int holders
    # threading.Condition: when each acquirer's wait() started to re-acquire the lock.
    cdef dict restored

    def __dealloc__(self):
        hold_forget(&self.hold, self.recorder)  # never ended: let the table evict its entry

    cdef inline bint profiling(self) noexcept:
        return self.info is not None and self.recorder.is_active()

    cdef inline bint holds_open(self) noexcept:
        return lp_load_int(&self.holders) != 0


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
    profile.sites = CreationSites(kind, recorder, excludes)
    profile.lock_class = lock_class
    profile.object_new = (<PyTypeObject*>base).tp_new == (<PyTypeObject*>object).tp_new
    profile.init = base.__init__
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
        # Bound to the profile: making an object reads no class attribute (through the metaclass).
        "__new__": staticmethod(PyCFunction_NewEx(&NEW, <PyObject*>profile, NULL)),
    }
    if kind in _kinds.ASYNCIO_KINDS:
        namespace.update(_with_methods(base))
    mixin = _MIXINS[_kinds.PROFILED_AS[kind]]
    cls = ProfiledClass(base.__name__, (mixin, base), namespace)
    profile.cls = cls
    cdef void* init = _init_slot(mixin)
    if init != NULL:
        lp_type_set_init(<PyTypeObject*>cls, init)
    return cls


cdef object _new(PyObject* bound, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    """__new__(cls, *args, **kwargs) of a profiled class, bound to its ClassProfile (a user's
    subclass inherits it): an object of the original class where profiling does not apply
    (stopped, or made in an excluded module) unless cls is a user's subclass. A C function of
    the vectorcall convention (NEW): no argument tuple or dict is built."""
    if nargs < 1:
        raise TypeError("object.__new__(): not enough arguments")
    cls = <object>args[0]
    cdef ClassProfile profile = <ClassProfile>bound
    info = profile.sites.lock_info() if profile.recorder.is_active() else None
    if info is None and cls is profile.cls:
        native = _object_new(profile, profile.original)
        # Not called by type() for an object of another class.
        lp_call_first(profile.init, native, args + 1, nargs - 1, kwnames)
        return native
    obj = _object_new(profile, cls)
    _init_state(obj, profile, info)
    return obj


cdef object _object_new(ClassProfile profile, cls):
    """original.__new__(cls), without the call where it is object.__new__."""
    if profile.object_new:
        return lp_object_new(<PyTypeObject*>cls)
    return profile.original.__new__(cls)


cdef PyMethodDef NEW
NEW.ml_name = "__new__"
NEW.ml_meth = <void*>_new
NEW.ml_flags = METH_FASTCALL | METH_KEYWORDS
NEW.ml_doc = "Create and return a new object.  See help(type) for accurate signature."


cdef int _held_as(LockInfo info, obj) except -1:
    """The program holds info's lock as obj (a Condition its own lock): name it after obj, unless
    its creation site named it already."""
    if not info.site_named:
        with cython.critical_section(info):  # a site's LockInfo is shared by its threads
            if info.name is None or info.local_named:
                info.owner = weakref.ref(obj)
    return 0


cdef int _init_state(obj, ClassProfile profile, LockInfo info) except -1:
    cdef ObjectState state = ObjectState.__new__(ObjectState)
    state.profile = profile
    state.recorder = profile.recorder
    state.info = info
    obj._lp_state = state
    return 0


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
    _init_state(copy, cls._lp_profile, None)
    state.update(vars(copy))
    return copyreg._reconstructor, (cls, object, None), state


def _getstate(self):
    """The object's attributes without lockprof's: a subclass's pickle carries none of them."""
    return {key: value for key, value in vars(self).items() if not key.startswith("_lp_")}


def _setstate(self, state):
    """Unpickling a subclass: its attributes, and lockprof's state of an unprofiled object."""
    _init_state(self, type(self)._lp_profile, None)
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


cdef int _open_hold(ObjectState state, bint by_task, object hold) except -1:
    """Note an acquire: its captured hold, or None. Uncaptured acquires are noted only while
    the holder has captured ones open, so that releases pair with acquires last-in first-out
    and never end another acquire's hold; the holder is looked up only then. The holds of all
    the acquirers are changed under the state's critical section (no GIL)."""
    if hold is None and not state.holds_open():
        return 0
    key = _holder(state, by_task)
    with cython.critical_section(state):
        holds = state.holds
        if hold is None and (not holds or key not in holds):
            return 0
        if holds is None:
            holds = state.holds = {}
        elif key not in holds and len(holds) >= MAX_OPEN_HOLDS:
            del holds[next(iter(holds))]  # the oldest acquirer's holds: dropped, never ended
        holds.setdefault(key, []).append(hold)
        lp_store_int(&state.holders, len(holds))
    return 0


cdef int _close_hold(obj, ObjectState state, bint by_task) except -1:
    if not state.holds_open():
        return 0
    key = _holder(state, by_task)
    with cython.critical_section(state):
        holds = state.holds
        stack = holds.get(key)
        if not stack:
            return 0
        hold = stack.pop()
        if not stack or all(open_hold is None for open_hold in stack):
            del holds[key]
            lp_store_int(&state.holders, len(holds))
    if hold is not None:
        (<Hold>hold).end(lp_monotonic_ns())
        name_lock(obj, state.info)
    return 0


cdef int _waited(ObjectState state, bint by_task, TimedWait* wait, bint acquired) except -1:
    """A semaphore's timed wait recorded; one that got a permit opens a hold."""
    cdef WaitOutcome outcome = wait_record(wait, state.recorder, state.info, acquired)
    if outcome != WAIT_UNRECORDED and acquired:
        _open_hold(state, by_task, _hold(state.recorder, wait.entry, wait.end) if outcome == WAIT_CAPTURED else None)
    return 0


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
    """What every profiled class shares: how its objects are pickled and copied (each class has
    its own __new__, bound to its ClassProfile: profiled_class())."""

    __reduce_ex__ = _reduce_ex
    __getstate__ = _getstate
    __setstate__ = _setstate

    @property
    def _lp_info(self):
        """The LockInfo the profile uses for this object, None where it is not profiled."""
        return _state(self).info


cdef object given_lock(tuple args, dict kwargs, tuple keywords):
    """The lock a Condition(lock=None, *, keywords...) call gives (kwargs None for none), None
    when it gives none; a call of another shape gives a sentinel, so that it reaches the
    standard __init__ as it is, which raises its own error."""
    if kwargs is None:
        return _MALFORMED if len(args) > 1 else (args[0] if args else None)
    if len(args) > 1 or (args and "lock" in kwargs):
        return _MALFORMED
    for keyword in kwargs:  # a loop, not any(): a generator per Condition made costs ~900 instructions
        if keyword != "lock" and keyword not in keywords:
            return _MALFORMED
    return args[0] if args else kwargs.get("lock")


cdef object _MALFORMED = object()


cdef int _call_init(ClassProfile profile, obj, tuple args, dict kwargs) except -1:
    """The original __init__(obj, *args, **kwargs), kwargs None for none."""
    if kwargs:
        profile.init(obj, *args, **kwargs)
    else:
        profile.init(obj, *args)
    return 0


cdef void* _init_slot(mixin):
    """The tp_init a profiled class of mixin's kind gets (profiled_class()); NULL: the generic
    slot, calling the original's __init__."""
    if mixin is _ThreadingCondition:
        return <void*>_threading_condition_slot
    if mixin is _AsyncioCondition:
        return <void*>_asyncio_condition_slot
    return NULL


include "_threading_primitives.pxi"
include "_asyncio_primitives.pxi"


# The wrapper of each kind a profiled subclass is made for (lockprof._kinds.PROFILED_AS).
_MIXINS = {
    _kinds.SEMAPHORE: _ThreadingSemaphore,
    _kinds.CONDITION: _ThreadingCondition,
    _kinds.ASYNCIO_LOCK: _AsyncioLock,
    _kinds.ASYNCIO_SEMAPHORE: _AsyncioSemaphore,
    _kinds.ASYNCIO_CONDITION: _AsyncioCondition,
}
