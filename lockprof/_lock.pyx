# cython: language_level=3, always_allow_keywords=False, auto_pickle=False
"""Profiled Lock and RLock: wrappers around the native locks with a C fast path.

While profiling runs, an acquire first tries the native lock without blocking (its own C
function, prebuilt arguments). When that succeeds the acquire was uncontended: its wait is zero
by definition, no clock is read, and only the capture sampler's check follows. When it fails the
acquire is contended: the caller's own blocking call is timed and always counted (see
_recorder.pyx for how it is sampled). A release reads the clock only when it ends a captured
hold or when threads are blocked on the lock (its blocking hold). After stop() every operation
is the native C function behind one flag test. The lock methods are installed at import from
the native type's own method table, so each wrapper has exactly the native type's methods and
docstrings on the running Python, and arguments reach the native method as they were given, so
every argument error is the native lock's own.
"""

import _thread
import copy
import functools
import operator
import sys
from types import MemberDescriptorType

cimport cython
from cpython.object cimport PyObject, PyObject_GenericGetAttr, PyTypeObject
from libc.stdint cimport int64_t

from lockprof._lockcore cimport (
    LP_MAX_FRAMES, lp_frame_ref,
    LP_ACQUIRE_BLOCKING, LP_ACQUIRE_NONBLOCKING, METH_FASTCALL, METH_KEYWORDS, METH_NOARGS,
    LP_TRY_BY_METHOD, LP_TRY_LOCK, LP_TRY_RLOCK, METH_VARARGS, PyMethodDef, lp_call, lp_call0,
    lp_call_vector, lp_lock_release_direct, lp_lock_try_direct, lp_native_layout_matches,
    lp_rlock_nest_direct, lp_rlock_owned_direct, lp_rlock_try_direct, lp_rlock_unnest_direct,
    lp_try_acquire,
    lp_classify_acquire, lp_module_init, lp_current_frame, lp_descr_doc, lp_entry,
    lp_blocking_enter, lp_blocking_leave, lp_blocking_pending, lp_blocking_release, lp_frame_local_name,
    lp_frame_code, lp_frame_globals, lp_frame_lasti, lp_monotonic_ns, lp_native_method,
    lp_native_method_resolve, lp_thread_ident, lp_type_set_method,
)
from lockprof._recorder cimport LockInfo, Recorder, WaiterStack, waiter_init

from lockprof._recorder import LockInfo  # the Python name too: lockprof._lock.LockInfo

cdef NativeOps LOCK_OPS
cdef NativeOps RLOCK_OPS


def original_thread_attribute(str name):
    """_thread's attribute as CPython made it, also when gevent patched _thread before
    lockprof was imported (gevent keeps the originals)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        try:
            return monkey.get_original("_thread", name)
        except Exception:
            pass
    return getattr(_thread, name)


cdef object ORIGINAL_ALLOCATE_LOCK = original_thread_attribute("allocate_lock")
cdef type NATIVE_LOCK = type(ORIGINAL_ALLOCATE_LOCK())
cdef type NATIVE_RLOCK = original_thread_attribute("RLock")
# How often a lock's variable name is looked for before it is left unnamed.
cdef int NAME_ATTEMPTS = 3
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


cdef int name_lock(object target, LockInfo info) except -1:
    """Look for the variable bound to target (or to its owner: a Condition holding its own
    lock) from the running frame and its caller, once of NAME_ATTEMPTS; never raises into the
    caller's lock operation."""
    if info is None or info.site_named or info.name_attempts >= NAME_ATTEMPTS:
        return 0
    if info.name is not None and not info.local_named:
        return 0
    info.name_attempts += 1
    try:
        owner = info.owner() if info.owner is not None else None
        if owner is not None:
            target = owner
        current = lp_current_frame()
        frame = <object>current if current != NULL else None
        name = _find_lock_name(target, frame, info.local_named)
        if name is not None:
            info.name = name
            info.local_named = False
    except Exception:
        pass  # a lock without a name is still profiled; never fail the user's operation
    return 0


# ------------------------------------------------------------------ lock names
# Compiled because it runs inside the user's release(): compiled code runs no bytecode, so no
# signal handler can run (and have its exception swallowed) in here, and no user code runs
# either: only plain storage is read, never a property, a custom descriptor, __getattr__ or an
# overridden items().



cdef object _find_lock_name(object lock, object frame, bint no_locals):
    """The variable or attribute `lock` is bound to, seen from the frame that released it and
    its caller: a local (unless no_locals), an attribute of the method's first argument
    (instance dict or __slots__), or a module global. Frames of the lock's own methods (a
    Condition's __exit__, asyncio's __aexit__), whose first argument is the lock, are passed
    over first."""
    for _ in range(3):
        if frame is None or not _is_method_of(frame, lock):
            break
        frame = frame.f_back
    for _ in range(2):
        if frame is None:
            return None
        name = _name_in_frame(lock, frame, no_locals)
        if name is not None:
            return name
        frame = frame.f_back
    return None


cdef bint _is_method_of(object frame, object lock) except -1:
    cdef PyObject* first = NULL
    lp_frame_local_name(<PyObject*>frame, <PyObject*>lock, &first)
    return first == <PyObject*>lock


cdef object _name_in_frame(object lock, object frame, bint no_locals):
    cdef PyObject* first = NULL
    cdef PyObject* local_name = lp_frame_local_name(<PyObject*>frame, <PyObject*>lock, &first)
    if local_name != NULL and not no_locals:
        return <object>local_name
    if first != NULL:
        name = _attribute_holding(<object>first, lock, frame.f_code.co_names)
        if name is not None:
            return name
    globals_ = frame.f_globals
    return _key_of(<dict>globals_, lock) if isinstance(globals_, dict) else None


cdef object _key_of(dict mapping, object value):
    # Typed dict iteration walks the dict itself, ignoring any overridden items().
    for key, item in mapping.items():
        if item is value:
            return key
    return None


cdef object _attribute_holding(object owner, object lock, tuple names):
    """The attribute of owner holding lock: a __slots__ entry, or one of `names` (the
    attribute names the releasing code uses) stored on the instance. The instance's storage is
    read in place: asking for its __dict__ would, on 3.11+, turn its inline attribute values
    into a dict for good and slow every later attribute access of the object."""
    mro = type(owner).__mro__
    for klass in mro:
        klass_dict = vars(klass)
        slots = klass_dict.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        if type(slots) in (tuple, list, dict):
            for slot in slots:
                if type(slot) is not str:
                    continue
                slot = _mangled(klass, slot)
                member = klass_dict.get(slot)
                if type(member) is not MemberDescriptorType:
                    continue  # only a C-level slot read, never a property or custom descriptor
                try:
                    value = member.__get__(owner, klass)
                except AttributeError:  # an unset slot
                    continue
                if value is lock:
                    return slot
    for name in names:
        if type(name) is not str or any(name in vars(klass) for klass in mro):
            continue  # a class attribute, property or descriptor: never run
        try:
            value = PyObject_GenericGetAttr(owner, name)  # the instance's own storage only
        except AttributeError:
            continue
        if value is lock:
            return name
    return None


cdef str _mangled(type klass, str name):
    """The name a private __slots__ entry is stored under (`__lock` -> `_Klass__lock`)."""
    if name.startswith("__") and not name.endswith("__"):
        owner = klass.__name__.lstrip("_")
        if owner:
            return f"_{owner}{name}"
    return name


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


# ------------------------------------------------------------------ installation

cdef PyMethodDef LOCK_METHODS[9]
cdef PyMethodDef RLOCK_METHODS[11]


cdef int _add_method(type wrapper, type native, PyMethodDef* slot, const char* name, void* impl,
                     int flags) except -1:
    """Install impl on wrapper under name, with the docstring of the native method of that
    name, if the native type has a method of that name on this Python."""
    descr = vars(native).get((<bytes>name).decode("ascii"))
    if descr is None:
        return 0
    slot.ml_name = name
    slot.ml_meth = impl
    slot.ml_flags = flags
    slot.ml_doc = lp_descr_doc(<PyObject*>descr)
    return lp_type_set_method(<PyTypeObject*>wrapper, slot)


cdef int _resolve_ops(NativeOps* ops, type native, names) except -1:
    cdef lp_native_method* targets[8]
    targets[:] = [&ops.acquire, &ops.release, &ops.locked, &ops.at_fork_reinit, &ops.is_owned,
                  &ops.release_save, &ops.acquire_restore, &ops.recursion_count]
    for i, name in enumerate(names):
        targets[i].descr = NULL
        if hasattr(native, name):
            lp_native_method_resolve(targets[i], <PyTypeObject*>native, name.encode())
    return 0


cdef int _install_methods() except -1:
    cdef int VARKW = METH_VARARGS | METH_KEYWORDS
    cdef int FASTKW = METH_FASTCALL | METH_KEYWORDS
    names = ("acquire", "release", "locked", "_at_fork_reinit", "_is_owned", "_release_save",
             "_acquire_restore", "_recursion_count")
    _resolve_ops(&LOCK_OPS, NATIVE_LOCK, names)
    _resolve_ops(&RLOCK_OPS, NATIVE_RLOCK, names)
    # acquire and __enter__ (natively the same method, arguments included) use the vectorcall
    # convention, which the 3.11+ interpreter specialises and the native method's tuple-and-dict
    # convention does not; __exit__ ignores its arguments, so a `with` block builds no tuple. That is how
    # the wrapper can match or beat the native lock. Arguments reach the native method as the
    # interpreter would have passed them, so its checks and messages are unchanged.
    cdef PyMethodDef* m = LOCK_METHODS
    _add_method(ProfiledLock, NATIVE_LOCK, &m[0], "acquire", <void*>lock_acquire, FASTKW)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[1], "acquire_lock", <void*>lock_acquire, FASTKW)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[2], "__enter__", <void*>lock_acquire, FASTKW)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[3], "release", <void*>lock_release, METH_NOARGS)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[4], "release_lock", <void*>lock_release, METH_NOARGS)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[5], "__exit__", <void*>lock_exit, METH_FASTCALL)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[6], "locked", <void*>wrapper_locked, METH_NOARGS)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[7], "locked_lock", <void*>wrapper_locked, METH_NOARGS)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[8], "_at_fork_reinit", <void*>wrapper_at_fork_reinit, METH_NOARGS)
    m = RLOCK_METHODS
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[0], "acquire", <void*>rlock_acquire, FASTKW)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[1], "__enter__", <void*>rlock_acquire, FASTKW)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[2], "release", <void*>rlock_release, METH_NOARGS)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[3], "__exit__", <void*>rlock_exit, METH_FASTCALL)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[4], "locked", <void*>wrapper_locked, METH_NOARGS)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[5], "_at_fork_reinit", <void*>wrapper_at_fork_reinit, METH_NOARGS)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[6], "_is_owned", <void*>rlock_is_owned, METH_NOARGS)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[7], "_release_save", <void*>rlock_release_save, METH_NOARGS)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[8], "_acquire_restore", <void*>rlock_acquire_restore, VARKW)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[9], "_recursion_count", <void*>rlock_recursion_count, METH_NOARGS)
    return 0


cdef int _choose_try(NativeOps* ops, type native, int kind) except -1:
    """Use the direct non-blocking attempt for this native type if it behaves, seen through the
    native methods, exactly like the native acquire; otherwise the method call."""
    ops.try_kind = LP_TRY_BY_METHOD
    if not lp_native_layout_matches(<PyTypeObject*>native, kind):
        return 0
    try:
        if kind == LP_TRY_LOCK:
            lock = ORIGINAL_ALLOCATE_LOCK()
            taken = lp_lock_try_direct(<PyObject*>lock) == 1
            ok = taken and lock.locked() and lp_lock_try_direct(<PyObject*>lock) == 0
            if taken:
                lp_lock_release_direct(<PyObject*>lock)
            ok = ok and not lock.locked() and lock.acquire(False)  # the native acquire agrees
            lock.release()  # and the native release accepts its hold
            ok = ok and not lock.locked()
        else:
            lock = NATIVE_RLOCK()
            ok = lp_rlock_try_direct(<PyObject*>lock) == 1 and lock._is_owned()
            ok = ok and lp_rlock_try_direct(<PyObject*>lock) == -1
            ok = ok and lp_rlock_owned_direct(<PyObject*>lock)
            ok = ok and getattr(lock, "_recursion_count", lambda: 1)() == 1
            # A nested level counted directly, which the native release undoes, and back.
            ok = ok and lp_rlock_nest_direct(<PyObject*>lock) == 0 and lock._is_owned()
            lock.release()
            ok = ok and lock._is_owned() and lock.acquire(False)
            ok = ok and lp_rlock_unnest_direct(<PyObject*>lock) and lock._is_owned()
            ok = ok and not lp_rlock_unnest_direct(<PyObject*>lock)  # the outermost level is not
            lock.release()
            ok = ok and not lock._is_owned() and not lp_rlock_owned_direct(<PyObject*>lock)
    except Exception:
        ok = False
    if ok:
        ops.try_kind = kind
    return 0


cdef class _ForeignWrapper(_LockWrapper):
    """A profiled lock that another library's factory made: gevent's, once it has patched
    threading, whose locks switch greenlets instead of blocking the thread. The wrapped lock's
    own methods do all the work. An acquire is timed when the lock is taken, which is asked
    without side effects: gevent's failing non-blocking acquire yields to other greenlets, so
    it is never tried first. Every other attribute is the wrapped lock's, set ones too."""

    def acquire(self, *args, **kwargs):
        if not self._recorder.active or self._info is None:
            return self._wrapped.acquire(*args, **kwargs)
        return _foreign_acquire(self, args, kwargs, False)

    def release(self):
        if self._hold_entry == NULL and not lp_blocking_pending(&self._blocking):
            return self._wrapped.release()
        cdef int64_t released_at = lp_monotonic_ns()
        result = self._wrapped.release()
        if self._released_all():
            _released(self, released_at, True)
        return result

    def __exit__(self, *args):
        self.release()

    def _at_fork_reinit(self):
        self._wrapped._at_fork_reinit()
        _forget_holds(self)

    def __getattr__(self, name):
        return getattr(self._wrapped, name)

    def __setattr__(self, name, value):
        setattr(self._wrapped, name, value)

    def __delattr__(self, name):
        delattr(self._wrapped, name)

    def __reduce_ex__(self, protocol):
        # Pickled, the wrapped lock fails with its own error; copied, it is copied as the
        # unprofiled lock would be (threading's RLock can be, sharing gevent's lock).
        return _copy_of, (self._wrapped,)

    cdef bint _would_block(self) except -1:
        return self._wrapped.locked()

    cdef bint _released_all(self) except -1:
        return True  # a Lock has one level


def _copy_of(lock):
    """copy.copy(lock): what copying a profiled foreign lock gives."""
    return copy.copy(lock)


@cython.final
cdef class ProfiledForeignLock(_ForeignWrapper):
    """A profiled threading.Lock made by another library's factory (gevent's)."""

    def __enter__(self):
        self.acquire()  # None, as gevent's lock returns


@cython.final
cdef class ProfiledForeignRLock(_ForeignWrapper):
    """A profiled threading.RLock that is not CPython's C RLock: threading's Python RLock once
    gevent has patched threading (or gevent's own). Only the owner's outermost acquire and
    release are profiled, and Condition.wait()'s release and re-acquire of every level."""

    def __enter__(self):
        return self.acquire()  # threading's RLock returns acquire()'s result

    cdef bint _would_block(self) except -1:
        return not self._wrapped._is_owned() and self._wrapped._block.locked()

    cdef bint _released_all(self) except -1:
        return not self._wrapped._is_owned()

    def _release_save(self):
        cdef int64_t released_at = lp_monotonic_ns()
        result = self._wrapped._release_save()
        _released(self, released_at, False)  # no naming: nothing may raise before the restore
        return result

    def _acquire_restore(self, state):
        if not self._recorder.active or self._info is None:
            return self._wrapped._acquire_restore(state)
        return _foreign_acquire(self, (state,), None, True)


cdef object _foreign_acquire(_ForeignWrapper self, tuple args, dict kwargs, bint restore):
    """A profiled acquire (or, with restore, _acquire_restore) of a foreign lock: sampled when
    it takes the lock, timed and counted when the lock was taken by another; the call is always
    the wrapped lock's own, with the caller's arguments."""
    cdef lp_entry* entry = NULL
    wrapped = self._wrapped
    call = wrapped._acquire_restore if restore else wrapped.acquire
    if isinstance(self, ProfiledForeignRLock) and not restore and wrapped._is_owned():
        return call(*args, **kwargs)  # nested: part of the outermost hold
    if (not restore and not _may_block(args, kwargs)) or not self._would_block():
        result = call(*args, **kwargs) if kwargs else call(*args)  # never waits: nothing to time
        if (restore or result) and self._recorder.sampler.should_capture():
            _start_hold(self, self._recorder.record_acquire(self._info), lp_monotonic_ns())
        return result
    cdef int64_t start = lp_monotonic_ns(), end = 0
    acquired = False
    lp_blocking_enter(&self._blocking, start)
    try:
        result = call(*args, **kwargs) if kwargs else call(*args)
        acquired = restore or bool(result)
    finally:
        end = lp_monotonic_ns()
        lp_blocking_leave(&self._blocking, True, acquired, end)
    if not self._recorder.active:
        return result
    capture = acquired and self._recorder.sampler.should_capture()
    entry = self._recorder.record_wait(self._info, end - start, end, not acquired, capture)
    if capture:
        _start_hold(self, entry, end)
    return result


cdef bint _may_block(tuple args, dict kwargs) except -1:
    """Whether acquire(blocking=True, timeout=...) called with these arguments may wait:
    blocking true, and no timeout of zero."""
    blocking = args[0] if args else (kwargs.get("blocking", True) if kwargs else True)
    timeout = args[1] if len(args) > 1 else (kwargs.get("timeout") if kwargs else None)
    return bool(blocking) and not (type(timeout) in (int, float) and timeout == 0)


cdef void _forget_holds(_LockWrapper wrapper) noexcept:
    """After _at_fork_reinit: in a fork child no other thread waits, and a hold died with it."""
    wrapper._depth = 0
    wrapper._blocking.waiters = 0
    wrapper._blocking.carry = 0
    if wrapper._hold_entry != NULL:
        wrapper._hold_entry.pending -= 1
        wrapper._hold_entry = NULL


cdef object wrap_foreign(object lock, str kind, LockInfo info, Recorder recorder):
    """lock, made by a factory that is not CPython's, profiled as `kind`; lock itself when it
    lacks the methods the wrapper reads its state with."""
    if kind == "lock":
        if callable(getattr(lock, "locked", None)):
            return ProfiledForeignLock.__new__(ProfiledForeignLock, lock, info, recorder)
    elif (callable(getattr(lock, "_is_owned", None)) and callable(getattr(lock, "_release_save", None))
          and callable(getattr(getattr(lock, "_block", None), "locked", None))):
        return ProfiledForeignRLock.__new__(ProfiledForeignRLock, lock, info, recorder)
    return lock


cdef object profiled_rlock(LockInfo info, Recorder recorder):
    """A new RLock profiled under info: a C RLock while threading makes those, else the
    Python RLock threading makes instead (once gevent has patched it)."""
    threading = sys.modules.get("threading")
    namespace = threading.__dict__ if threading is not None else {}
    if namespace.get("_CRLock", NATIVE_RLOCK) is NATIVE_RLOCK or "_PyRLock" not in namespace:
        return ProfiledRLock.__new__(ProfiledRLock, NATIVE_RLOCK(), info, recorder)
    return wrap_foreign(namespace["_PyRLock"](), "rlock", info, recorder)


cdef int take_native_lock(object lock) noexcept:
    """1: `lock`, a native threading.Lock, taken without waiting; 0: it is held (by any
    thread); -1: not a lock that can be taken here without a method call."""
    if type(lock) is not NATIVE_LOCK or LOCK_OPS.try_kind != LP_TRY_LOCK:
        return -1
    return lp_lock_try_direct(<PyObject*>lock)


cdef void release_native_lock(object lock) noexcept:
    """Release a lock take_native_lock() took."""
    lp_lock_release_direct(<PyObject*>lock)


def direct_try_kinds():
    """The lock kinds ('lock', 'rlock') whose acquire is tried without a method call here."""
    kinds = []
    if LOCK_OPS.try_kind != LP_TRY_BY_METHOD:
        kinds.append("lock")
    if RLOCK_OPS.try_kind != LP_TRY_BY_METHOD:
        kinds.append("rlock")
    return tuple(kinds)


lp_module_init()
_choose_try(&LOCK_OPS, NATIVE_LOCK, LP_TRY_LOCK)
_choose_try(&RLOCK_OPS, NATIVE_RLOCK, LP_TRY_RLOCK)
from lockprof._sampler import CaptureSampler
# The recorder of locks built directly (ProfiledLock(native)), never active.
cdef Recorder INERT_RECORDER = Recorder(CaptureSampler(0.0), 1, 1)
_install_methods()


# ------------------------------------------------------------------ creation

cdef LockInfo new_lock_info(Recorder recorder, str kind, object excludes, dict decisions):
    """The LockInfo of a lock created now by the running Python frame, or None when that frame's
    module is excluded. decisions caches excludes() per module name."""
    cdef PyObject* frame = lp_current_frame()
    if frame == NULL:
        return None
    module = lp_frame_globals(frame).get("__name__")
    excluded = decisions.get(module)
    if excluded is None:
        excluded = bool(excludes(module))
        if len(decisions) >= 4096:
            decisions.clear()
        decisions[module] = excluded
    if excluded:
        return None
    return recorder.lock_info_at(kind, lp_frame_code(frame), lp_frame_lasti(frame),
                                 module if isinstance(module, str) else None)


cdef class LockFactory:
    """What threading.Lock / threading.RLock is while profiling runs.

    A callable object, not a function, so that `lock_class = threading.Lock` stored on a class
    does not turn into a method. It makes a native lock with the original factory and wraps it,
    unless profiling is stopped or the calling module is excluded (then the native lock itself).
    """

    def __cinit__(self, original, str kind, Recorder recorder not None, excludes not None):
        innermost = original
        while isinstance(innermost, LockFactory):
            innermost = (<LockFactory>innermost).original
        if kind == "lock":
            self._native_type = NATIVE_LOCK
            stock = innermost is ORIGINAL_ALLOCATE_LOCK or innermost is NATIVE_LOCK
            # The Lock original makes either C locks or (gevent's) foreign ones, for good.
            self._wrapper_types = (ProfiledLock,) if stock else (ProfiledForeignLock,)
            constructor = ORIGINAL_ALLOCATE_LOCK  # _thread.LockType is callable only on 3.13+
        elif kind == "rlock":
            self._wrapper_types = (ProfiledRLock, ProfiledForeignRLock)
            self._native_type = NATIVE_RLOCK
            # threading.RLock is a Python function that returns _thread.RLock() when it can.
            stock = (getattr(innermost, "__module__", None) == "threading"
                     and getattr(innermost, "__qualname__", None) == "RLock")
            constructor = NATIVE_RLOCK
        else:
            raise ValueError(f"kind must be 'lock' or 'rlock', got {kind!r}")
        # Something else's factory (gevent's, another profiler's) is always called, so what it
        # does is kept; the stock one is bypassed for the C constructor it ends up calling, as
        # long as it still would (gevent patching later makes it call gevent's).
        # Another collector's factory is looked through: the last collector started profiles.
        self._make_native = constructor if stock else None
        self._innermost = innermost
        self.original = original
        self.kind = kind
        self._recorder = recorder
        self._excludes = excludes
        self._decisions = {}

    def __call__(self, *args, **kwargs):
        # Arguments go to the original, which decides what they mean (and warns or raises).
        if args or kwargs or self._make_native is None or not self._still_stock():
            native = self._innermost(*args, **kwargs)
        else:
            native = self._make_native()
        if not self._recorder.active:
            return native
        info = new_lock_info(self._recorder, self.kind, self._excludes, self._decisions)
        if info is None:
            return native
        if type(native) is not self._native_type:
            return wrap_foreign(native, self.kind, info, self._recorder)  # gevent's lock
        # Spelled per type so that Cython calls the type's allocator directly.
        if self._native_type is NATIVE_RLOCK:
            return ProfiledRLock.__new__(ProfiledRLock, native, info, self._recorder)
        return ProfiledLock.__new__(ProfiledLock, native, info, self._recorder)

    cdef bint _still_stock(self):
        """Whether the stock factory still makes the C lock (not once gevent patched)."""
        if self._native_type is NATIVE_LOCK:
            return (<dict>_thread.__dict__).get("allocate_lock") is ORIGINAL_ALLOCATE_LOCK
        threading = sys.modules.get("threading")
        return threading is not None and (<dict>threading.__dict__).get("_CRLock") is NATIVE_RLOCK

    @property
    def active(self):
        """True while the collector that installed this factory is running."""
        return self._recorder.active

    def __instancecheck__(self, obj):
        # Only where the original is a class (threading.Lock on 3.13+); elsewhere isinstance
        # keeps raising as it does for the native factory function.
        return isinstance(obj, self.original) or (
            isinstance(obj, self._wrapper_types) and isinstance(self.original, type))

    def __subclasscheck__(self, cls):
        return issubclass(cls, self.original) or (
            issubclass(cls, self._wrapper_types) and isinstance(self.original, type))

    def __or__(self, other):
        # threading.Lock | None on 3.13+ must also match the profiled locks in isinstance().
        if isinstance(self.original, type):
            return functools.reduce(operator.or_, (self.original, *self._wrapper_types, other))
        return self.original | other  # the native factory function's own TypeError

    def __ror__(self, other):
        if isinstance(self.original, type):
            return functools.reduce(operator.or_, (other, self.original, *self._wrapper_types))
        return other | self.original

    def __getattr__(self, name):
        return getattr(self.original, name)

    def __repr__(self):
        return f"<lockprof factory for {self.original!r}>"

    def __reduce__(self):
        # multiprocessing pickles threading.Lock itself for spawn and forkserver children (a
        # Manager's registry): it unpickles as what threading holds in that process.
        return _threading_factory, ("Lock" if self.kind == "lock" else "RLock",)


def _threading_factory(name):
    """threading.Lock or threading.RLock of this process (an unpickled LockFactory)."""
    return getattr(sys.modules.get("threading") or __import__("threading"), name)
