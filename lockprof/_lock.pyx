# cython: language_level=3, always_allow_keywords=False, auto_pickle=False
"""Profiled Lock and RLock: wrappers around the native locks with a C fast path.

An operation that the sampler does not capture costs one flag test, one counter add and the
native method's own C function, called directly. A captured acquire reads the clock around the
native call and hands the wait to the Recorder; its release reads the clock once more and adds
the hold to the same table entry. The lock methods are installed at import from the native
type's own method table, so each wrapper has exactly the native type's methods and docstrings
on the running Python, and acquire() takes the caller's arguments as they are, so every
argument error is the native lock's own.
"""

import _thread
import sys
from types import GetSetDescriptorType, MemberDescriptorType

cimport cython
from cpython.object cimport PyObject, PyTypeObject
from libc.stdint cimport int64_t

from lockprof._lockcore cimport (
    METH_FASTCALL, METH_KEYWORDS, METH_NOARGS, METH_VARARGS, PyMethodDef,
    lp_current_frame, lp_frame_code, lp_frame_globals, lp_frame_lasti,
    lp_call, lp_call0, lp_call_vector, lp_descr_doc, lp_monotonic_ns, lp_native_method,
    lp_native_method_resolve, lp_type_set_method,
)
from lockprof._recorder cimport Recorder

from lockprof import _resolve

cdef NativeOps LOCK_OPS
cdef NativeOps RLOCK_OPS
cdef type NATIVE_LOCK = _thread.LockType
cdef type NATIVE_RLOCK = _thread.RLock
# How often a lock's variable name is looked for before it is left unnamed.
cdef int NAME_ATTEMPTS = 3


cdef class LockInfo:

    def __cinit__(self, str kind, object created_code, int created_offset, str module):
        self.kind = kind
        self.created_code = created_code
        self.created_offset = created_offset
        self.module = module
        self.name = None
        self.name_attempts = 0

    @property
    def site(self):
        """'path/to/module.py:42', where the lock was created."""
        return _resolve.site(self.created_code, self.created_offset)

    @property
    def display_name(self):
        """'path/to/module.py:42:variable', the lock's name in profiles."""
        return _resolve.lock_display_name(self)


@cython.no_gc_clear  # __dealloc__ needs _recorder alive: its table owns _hold_entry
cdef class _LockWrapper:
    """Fields and Python-level behaviour shared by ProfiledLock and ProfiledRLock."""

    def __cinit__(self, wrapped, LockInfo info=None, Recorder recorder=None):
        cdef bint is_rlock = type(self) is ProfiledRLock
        native_type = NATIVE_RLOCK if is_rlock else NATIVE_LOCK
        if type(wrapped) is not native_type:
            raise TypeError(
                f"{type(self).__name__} wraps a {native_type.__name__} object, "
                f"got {type(wrapped).__name__}")
        self._wrapped = wrapped
        self._ops = &RLOCK_OPS if is_rlock else &LOCK_OPS
        self._info = info
        self._hold_entry = NULL
        self._depth = 0
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

cdef inline bint _should_capture(_LockWrapper self) noexcept:
    return self._recorder.active and self._recorder.sampler.should_capture()


cdef inline object _lock_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    if _should_capture(self):
        return _timed_acquire(self, args, nargs, kwnames)
    return lp_call_vector(&LOCK_OPS.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)


cdef inline object _lock_release(_LockWrapper self):
    if self._hold_entry == NULL:
        return lp_call0(&LOCK_OPS.release, <PyObject*>self._wrapped)
    cdef int64_t released_at = lp_monotonic_ns()
    result = lp_call0(&LOCK_OPS.release, <PyObject*>self._wrapped)
    _end_hold(self, released_at, True)
    return result


# An RLock wrapper tracks the depth of a hold it has seen start, so that a nested acquire costs
# no sampler check (the sampling rate stays per outermost acquire) and the hold ends at the
# outermost release. Only the owner changes _depth, under the GIL. With _depth == 0 an acquire is
# an outermost one and needs no thread id; only with _depth > 0 (nested, or another thread's
# hold) is the native lock asked whose hold it is. Tracking starts at an outermost acquire while
# profiling runs, so after stop() an RLock with _depth == 0 takes the plain native path.

cdef inline object _rlock_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    if self._depth != 0 and _rlock_is_owned(self):
        result = lp_call_vector(&RLOCK_OPS.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)
        if result is True:
            self._depth += 1
        return result
    if not self._recorder.active:
        return lp_call_vector(&RLOCK_OPS.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)
    if self._recorder.sampler.should_capture():
        result = _timed_acquire(self, args, nargs, kwnames)
    else:
        result = lp_call_vector(&RLOCK_OPS.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)
    if result is True:
        self._depth = 1
    return result


cdef inline bint _rlock_is_owned(_LockWrapper self) except -1:
    return lp_call0(&RLOCK_OPS.is_owned, <PyObject*>self._wrapped) is True


cdef inline object _rlock_release(_LockWrapper self):
    if self._depth == 0:  # an untracked hold (or no hold: the native release raises)
        return lp_call0(&RLOCK_OPS.release, <PyObject*>self._wrapped)
    cdef bint ends_hold = self._depth == 1 and self._hold_entry != NULL
    cdef int64_t released_at = lp_monotonic_ns() if ends_hold else 0
    result = lp_call0(&RLOCK_OPS.release, <PyObject*>self._wrapped)  # raises unless the owner
    self._depth -= 1
    if ends_hold:
        _end_hold(self, released_at, True)
    return result


# ------------------------------------------------------------------ the captured paths

cdef object _timed_acquire(_LockWrapper self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    cdef int64_t start = lp_monotonic_ns()
    result = lp_call_vector(&self._ops.acquire, <PyObject*>self._wrapped, args, nargs, kwnames)
    cdef int64_t end = lp_monotonic_ns()
    if result is True:
        _start_hold(self, end - start, end)
    return result


cdef inline void _start_hold(_LockWrapper self, int64_t wait_ns, int64_t acquired_at):
    entry = self._recorder.record_acquire(self._info, wait_ns)
    # The swap runs no Python code, so no other thread sees it half done.
    previous = self._hold_entry
    self._hold_entry = entry
    self._acquired_at = acquired_at
    if previous != NULL:
        # A hold whose release was never seen (the lock was reinitialised under us): never leave
        # an entry pending forever.
        previous.pending -= 1


cdef inline int _end_hold(_LockWrapper self, int64_t released_at, bint name_lock) except -1:
    entry = self._hold_entry
    self._hold_entry = NULL
    self._recorder.record_release(entry, released_at - self._acquired_at)
    # After the native release, so outside the user's critical section.
    if name_lock and self._info is not None and self._info.name is None and self._info.name_attempts < NAME_ATTEMPTS:
        _name_lock(self)
    return 0


cdef int _name_lock(_LockWrapper self) except -1:
    self._info.name_attempts += 1
    try:
        current = lp_current_frame()
        frame = <object>current if current != NULL else None
        self._info.name = _find_lock_name(self, frame)
    except Exception:
        pass  # a lock without a name is still profiled; never fail the user's release
    return 0


# ------------------------------------------------------------------ lock names
# Compiled because it runs inside the user's release(): compiled code runs no bytecode, so no
# signal handler can run (and have its exception swallowed) in here, and no user code runs
# either: only plain storage is read, never a property, a custom descriptor, __getattr__ or an
# overridden items().

cdef object _MISSING = object()


cdef object _find_lock_name(object lock, object frame):
    """The variable or attribute `lock` is bound to, seen from the frame that released it and
    its caller: a local, an attribute of the method's first argument (instance dict or
    __slots__), or a module global."""
    for _ in range(2):
        if frame is None:
            return None
        name = _name_in_frame(lock, frame)
        if name is not None:
            return name
        frame = frame.f_back
    return None


cdef object _name_in_frame(object lock, object frame):
    code = frame.f_code
    local_values = frame.f_locals
    if type(local_values) is dict:
        name = _key_of(<dict>local_values, lock)
    else:  # 3.13+: a FrameLocalsProxy, implemented in C
        name = next((key for key, value in local_values.items() if value is lock), None)
    if name is not None:
        return name
    if code.co_argcount > 0:
        owner = local_values.get(code.co_varnames[0], _MISSING)
        if owner is not _MISSING:
            name = _attribute_holding(owner, lock)
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


cdef object _attribute_holding(object owner, object lock):
    for klass in type(owner).__mro__:
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
        dict_descriptor = klass_dict.get("__dict__")
        if type(dict_descriptor) is GetSetDescriptorType:
            instance_dict = dict_descriptor.__get__(owner, klass)
            if isinstance(instance_dict, dict):
                return _key_of(<dict>instance_dict, lock)
            return None
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
    wrapper._depth = 0
    if wrapper._hold_entry != NULL:
        wrapper._hold_entry.pending -= 1  # the hold died with the fork
        wrapper._hold_entry = NULL
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
    if wrapper._hold_entry != NULL:
        _end_hold(wrapper, released_at, False)
    return result

cdef object rlock_acquire_restore(object self, object args, PyObject* kwds):
    # Condition.wait() re-acquiring after the notify: profiled like an outermost acquire.
    cdef _LockWrapper wrapper = <_LockWrapper>self
    cdef int64_t start, end
    if not _should_capture(wrapper):
        result = lp_call(&RLOCK_OPS.acquire_restore, <PyObject*>wrapper._wrapped, args, kwds)
    else:
        start = lp_monotonic_ns()
        result = lp_call(&RLOCK_OPS.acquire_restore, <PyObject*>wrapper._wrapped, args, kwds)
        end = lp_monotonic_ns()
        _start_hold(wrapper, end - start, end)
    wrapper._depth = _restored_depth(args)
    return result


cdef long _restored_depth(object args):
    # _acquire_restore((count, owner)) puts back count levels.
    try:
        return max(1, int(args[0][0]))
    except Exception:
        return 1


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
    _resolve_ops(&LOCK_OPS, _thread.LockType, names)
    _resolve_ops(&RLOCK_OPS, _thread.RLock, names)
    # acquire and __enter__ (natively the same method, arguments included) use the vectorcall
    # convention, which the 3.11+ interpreter specialises and the native method's tuple-and-dict
    # convention does not; __exit__ ignores its arguments, so a `with` block builds no tuple. That is how
    # the wrapper can match or beat the native lock. Arguments reach the native method as the
    # interpreter would have passed them, so its checks and messages are unchanged.
    cdef PyMethodDef* m = LOCK_METHODS
    _add_method(ProfiledLock, _thread.LockType, &m[0], "acquire", <void*>lock_acquire, FASTKW)
    _add_method(ProfiledLock, _thread.LockType, &m[1], "acquire_lock", <void*>lock_acquire, FASTKW)
    _add_method(ProfiledLock, _thread.LockType, &m[2], "__enter__", <void*>lock_acquire, FASTKW)
    _add_method(ProfiledLock, _thread.LockType, &m[3], "release", <void*>lock_release, METH_NOARGS)
    _add_method(ProfiledLock, _thread.LockType, &m[4], "release_lock", <void*>lock_release, METH_NOARGS)
    _add_method(ProfiledLock, _thread.LockType, &m[5], "__exit__", <void*>lock_exit, METH_FASTCALL)
    _add_method(ProfiledLock, _thread.LockType, &m[6], "locked", <void*>wrapper_locked, METH_NOARGS)
    _add_method(ProfiledLock, _thread.LockType, &m[7], "locked_lock", <void*>wrapper_locked, METH_NOARGS)
    _add_method(ProfiledLock, _thread.LockType, &m[8], "_at_fork_reinit", <void*>wrapper_at_fork_reinit, METH_NOARGS)
    m = RLOCK_METHODS
    _add_method(ProfiledRLock, _thread.RLock, &m[0], "acquire", <void*>rlock_acquire, FASTKW)
    _add_method(ProfiledRLock, _thread.RLock, &m[1], "__enter__", <void*>rlock_acquire, FASTKW)
    _add_method(ProfiledRLock, _thread.RLock, &m[2], "release", <void*>rlock_release, METH_NOARGS)
    _add_method(ProfiledRLock, _thread.RLock, &m[3], "__exit__", <void*>rlock_exit, METH_FASTCALL)
    _add_method(ProfiledRLock, _thread.RLock, &m[4], "locked", <void*>wrapper_locked, METH_NOARGS)
    _add_method(ProfiledRLock, _thread.RLock, &m[5], "_at_fork_reinit", <void*>wrapper_at_fork_reinit, METH_NOARGS)
    _add_method(ProfiledRLock, _thread.RLock, &m[6], "_is_owned", <void*>rlock_is_owned, METH_NOARGS)
    _add_method(ProfiledRLock, _thread.RLock, &m[7], "_release_save", <void*>rlock_release_save, METH_NOARGS)
    _add_method(ProfiledRLock, _thread.RLock, &m[8], "_acquire_restore", <void*>rlock_acquire_restore, VARKW)
    _add_method(ProfiledRLock, _thread.RLock, &m[9], "_recursion_count", <void*>rlock_recursion_count, METH_NOARGS)
    return 0


from lockprof._sampler import CaptureSampler
# The recorder of locks built directly (ProfiledLock(native)), never active.
cdef Recorder INERT_RECORDER = Recorder(CaptureSampler(0.0), 1, 1)
_install_methods()


# ------------------------------------------------------------------ creation

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
            self._wrapper_type = ProfiledLock
            self._native_type = _thread.LockType
            stock = innermost is _thread.allocate_lock or innermost is _thread.LockType
            constructor = _thread.allocate_lock  # _thread.LockType is callable only on 3.13+
        elif kind == "rlock":
            self._wrapper_type = ProfiledRLock
            self._native_type = _thread.RLock
            # threading.RLock is a Python function that returns _thread.RLock() when it can.
            stock = (getattr(innermost, "__module__", None) == "threading"
                     and getattr(innermost, "__qualname__", None) == "RLock"
                     and getattr(sys.modules.get("threading"), "_CRLock", None) is _thread.RLock)
            constructor = _thread.RLock
        else:
            raise ValueError(f"kind must be 'lock' or 'rlock', got {kind!r}")
        # Something else's factory (gevent's, another profiler's) is always called, so what it
        # does is kept; the stock one is bypassed for the C constructor it ends up calling.
        # Another collector's factory is looked through: the last collector started profiles.
        self._make_native = constructor if stock else innermost
        self._innermost = innermost
        self.original = original
        self.kind = kind
        self._recorder = recorder
        self._excludes = excludes
        self._decisions = {}

    def __call__(self, *args, **kwargs):
        # Arguments go to the original, which decides what they mean (and warns or raises).
        native = self._innermost(*args, **kwargs) if (args or kwargs) else self._make_native()
        if not self._recorder.active or type(native) is not self._native_type:
            return native  # stopped, or the original made something we do not wrap
        cdef PyObject* frame = lp_current_frame()
        if frame == NULL:
            return native
        module = lp_frame_globals(frame).get("__name__")
        excluded = self._decisions.get(module)
        if excluded is None:
            excluded = bool(self._excludes(module))
            if len(self._decisions) >= 4096:
                self._decisions.clear()
            self._decisions[module] = excluded
        if excluded:
            return native
        info = LockInfo.__new__(LockInfo, self.kind, lp_frame_code(frame),
                                lp_frame_lasti(frame), module if isinstance(module, str) else None)
        # Spelled per type so that Cython calls the type's allocator directly.
        if self._native_type is NATIVE_RLOCK:
            return ProfiledRLock.__new__(ProfiledRLock, native, info, self._recorder)
        return ProfiledLock.__new__(ProfiledLock, native, info, self._recorder)

    @property
    def active(self):
        """True while the collector that installed this factory is running."""
        return self._recorder.active

    def __instancecheck__(self, obj):
        # Only where the original is a class (threading.Lock on 3.13+); elsewhere isinstance
        # keeps raising as it does for the native factory function.
        return isinstance(obj, self.original) or (
            isinstance(obj, self._wrapper_type) and isinstance(self.original, type))

    def __subclasscheck__(self, cls):
        return issubclass(cls, self.original) or (
            issubclass(cls, self._wrapper_type) and isinstance(self.original, type))

    def __or__(self, other):
        # threading.Lock | None on 3.13+ must also match the profiled locks in isinstance().
        if isinstance(self.original, type):
            return self.original | self._wrapper_type | other
        return self.original | other  # the native factory function's own TypeError

    def __ror__(self, other):
        if isinstance(self.original, type):
            return other | self.original | self._wrapper_type
        return other | self.original

    def __getattr__(self, name):
        return getattr(self.original, name)

    def __repr__(self):
        return f"<lockprof factory for {self.original!r}>"
