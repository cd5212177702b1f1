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

cimport cython
from cpython.object cimport PyObject, PyTypeObject
from libc.stdint cimport int64_t

from lockprof._lockcore cimport (
    METH_FASTCALL, METH_KEYWORDS, METH_NOARGS, METH_VARARGS, PyMethodDef, lp_current_frame,
    lp_call, lp_call0, lp_call_vector, lp_monotonic_ns, lp_native_method, lp_native_method_doc,
    lp_native_method_resolve, lp_type_set_method,
)
from lockprof._recorder cimport Recorder

from lockprof import _resolve

cdef extern from "Python.h":
    object PyFrame_GetGlobalsCompat "lp_frame_globals" (PyObject* frame)
    object PyFrame_GetCodeCompat "lp_frame_code" (PyObject* frame)
    int PyFrame_GetLastiCompat "lp_frame_lasti" (PyObject* frame)

cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030B0000
    static PyObject *lp_frame_globals(PyObject *f) { return PyFrame_GetGlobals((PyFrameObject *)f); }
    static PyObject *lp_frame_code(PyObject *f) { return (PyObject *)PyFrame_GetCode((PyFrameObject *)f); }
    static int lp_frame_lasti(PyObject *f) { return PyFrame_GetLasti((PyFrameObject *)f); }
    #else
    static PyObject *lp_frame_globals(PyObject *f) { PyObject *g = ((PyFrameObject *)f)->f_globals; Py_INCREF(g); return g; }
    static PyObject *lp_frame_code(PyObject *f) { PyObject *c = (PyObject *)((PyFrameObject *)f)->f_code; Py_INCREF(c); return c; }
    #if PY_VERSION_HEX >= 0x030A0000
    static int lp_frame_lasti(PyObject *f) { return ((PyFrameObject *)f)->f_lasti * (int)sizeof(_Py_CODEUNIT); }
    #else
    static int lp_frame_lasti(PyObject *f) { return ((PyFrameObject *)f)->f_lasti; }
    #endif
    #endif
    """

cdef NativeOps LOCK_OPS
cdef NativeOps RLOCK_OPS
cdef tuple EMPTY_ARGS = ()
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
        native_type = _thread.RLock if type(self) is ProfiledRLock else _thread.LockType
        if type(wrapped) is not native_type:
            raise TypeError(
                f"{type(self).__name__} wraps a {native_type.__name__} object, "
                f"got {type(wrapped).__name__}")
        self._wrapped = wrapped
        self._info = info
        self._recorder = recorder if recorder is not None else INERT_RECORDER
        self._hold_entry = NULL

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


cdef inline object _fast_acquire(_LockWrapper self, const lp_native_method* acquire,
                                 PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    if _should_capture(self):
        return _captured_acquire(self, acquire, args, nargs, kwnames)
    return lp_call_vector(acquire, <PyObject*>self._wrapped, args, nargs, kwnames)


cdef inline object _fast_release(_LockWrapper self, const lp_native_method* release):
    if self._hold_entry == NULL:
        return lp_call0(release, <PyObject*>self._wrapped)
    return _captured_release(self, release)


# ------------------------------------------------------------------ the captured paths

cdef object _captured_acquire(_LockWrapper self, const lp_native_method* acquire,
                              PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    cdef int64_t start, end
    if type(self) is ProfiledRLock and _rlock_is_owned(self):
        # A nested acquire of an RLock this thread holds: only the outermost acquire is timed,
        # captured or not, so the hold always runs from the outermost acquire.
        return lp_call_vector(acquire, <PyObject*>self._wrapped, args, nargs, kwnames)
    start = lp_monotonic_ns()
    result = lp_call_vector(acquire, <PyObject*>self._wrapped, args, nargs, kwnames)
    end = lp_monotonic_ns()
    if result is True:
        _start_hold(self, end - start, end)
    return result


cdef inline bint _rlock_is_owned(_LockWrapper self) except -1:
    return lp_call0(&RLOCK_OPS.is_owned, <PyObject*>self._wrapped) is True


cdef inline void _start_hold(_LockWrapper self, int64_t wait_ns, int64_t acquired_at):
    if self._hold_entry != NULL:
        # A hold that never saw its release (a Lock acquired again by another thread after a
        # release through a path we do not see): never leave an entry pending forever.
        self._hold_entry.pending -= 1
    self._hold_entry = self._recorder.record_acquire(self._info, wait_ns)
    self._acquired_at = acquired_at


cdef object _captured_release(_LockWrapper self, const lp_native_method* release):
    cdef int64_t released_at = lp_monotonic_ns()
    result = lp_call0(release, <PyObject*>self._wrapped)
    if type(self) is ProfiledRLock and _rlock_is_owned(self):
        return result  # an inner release: the hold ends at the outermost one
    _end_hold(self, released_at)
    return result


cdef inline void _end_hold(_LockWrapper self, int64_t released_at):
    entry = self._hold_entry
    self._hold_entry = NULL
    self._recorder.record_release(entry, released_at - self._acquired_at)
    # After the native release, so outside the user's critical section.
    if self._info is not None and self._info.name is None and self._info.name_attempts < NAME_ATTEMPTS:
        _name_lock(self)


cdef void _name_lock(_LockWrapper self) noexcept:
    self._info.name_attempts += 1
    try:
        current = lp_current_frame()
        frame = <object>current if current != NULL else None
        self._info.name = _resolve.find_lock_name(self, frame)
    except BaseException:
        pass  # a lock without a name is still profiled; never fail the user's release


# ------------------------------------------------------------------ method implementations
# Each has the C signature of its PyMethodDef calling convention and is installed on the
# wrapper types by _install_methods() below.

cdef object lock_acquire(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    return _fast_acquire(<_LockWrapper>self, &LOCK_OPS.acquire, args, nargs, kwnames)

cdef object lock_enter(object self, PyObject* unused):
    return _fast_acquire(<_LockWrapper>self, &LOCK_OPS.acquire, NULL, 0, NULL)

cdef object lock_release(object self, PyObject* unused):
    return _fast_release(<_LockWrapper>self, &LOCK_OPS.release)

cdef object lock_exit(object self, PyObject** args, Py_ssize_t nargs):
    return _fast_release(<_LockWrapper>self, &LOCK_OPS.release)

cdef object lock_locked(object self, PyObject* unused):
    return lp_call0(&LOCK_OPS.locked, <PyObject*>(<_LockWrapper>self)._wrapped)

cdef object lock_at_fork_reinit(object self, PyObject* unused):
    return _at_fork_reinit(<_LockWrapper>self, &LOCK_OPS.at_fork_reinit)

cdef object rlock_acquire(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    return _fast_acquire(<_LockWrapper>self, &RLOCK_OPS.acquire, args, nargs, kwnames)

cdef object rlock_enter(object self, PyObject* unused):
    return _fast_acquire(<_LockWrapper>self, &RLOCK_OPS.acquire, NULL, 0, NULL)

cdef object rlock_release(object self, PyObject* unused):
    return _fast_release(<_LockWrapper>self, &RLOCK_OPS.release)

cdef object rlock_exit(object self, PyObject** args, Py_ssize_t nargs):
    return _fast_release(<_LockWrapper>self, &RLOCK_OPS.release)

cdef object rlock_locked(object self, PyObject* unused):
    return lp_call0(&RLOCK_OPS.locked, <PyObject*>(<_LockWrapper>self)._wrapped)

cdef object rlock_at_fork_reinit(object self, PyObject* unused):
    return _at_fork_reinit(<_LockWrapper>self, &RLOCK_OPS.at_fork_reinit)

cdef object rlock_is_owned(object self, PyObject* unused):
    return lp_call0(&RLOCK_OPS.is_owned, <PyObject*>(<_LockWrapper>self)._wrapped)

cdef object rlock_recursion_count(object self, PyObject* unused):
    return lp_call0(&RLOCK_OPS.recursion_count, <PyObject*>(<_LockWrapper>self)._wrapped)

cdef object rlock_release_save(object self, PyObject* unused):
    # Condition.wait() releases every level at once: the hold ends here.
    cdef _LockWrapper wrapper = <_LockWrapper>self
    cdef int64_t released_at = lp_monotonic_ns()
    result = lp_call0(&RLOCK_OPS.release_save, <PyObject*>wrapper._wrapped)
    if wrapper._hold_entry != NULL:
        _end_hold(wrapper, released_at)
    return result

cdef object rlock_acquire_restore(object self, object args, PyObject* kwds):
    # Condition.wait() re-acquiring after the notify: profiled like any acquire.
    cdef _LockWrapper wrapper = <_LockWrapper>self
    cdef int64_t start, end
    if not _should_capture(wrapper):
        return lp_call(&RLOCK_OPS.acquire_restore, <PyObject*>wrapper._wrapped, args, kwds)
    start = lp_monotonic_ns()
    result = lp_call(&RLOCK_OPS.acquire_restore, <PyObject*>wrapper._wrapped, args, kwds)
    end = lp_monotonic_ns()
    _start_hold(wrapper, end - start, end)
    return result


cdef object _at_fork_reinit(_LockWrapper self, const lp_native_method* reinit):
    result = lp_call0(reinit, <PyObject*>self._wrapped)
    if self._hold_entry != NULL:
        self._hold_entry.pending -= 1  # the hold died with the fork
        self._hold_entry = NULL
    return result


# ------------------------------------------------------------------ installation

cdef PyMethodDef LOCK_METHODS[9]
cdef PyMethodDef RLOCK_METHODS[11]


cdef int _add_method(type wrapper, PyMethodDef* slot, const char* name, void* impl, int flags,
                     lp_native_method* native) except -1:
    """Install impl under name on wrapper, with the native method's docstring, if the native
    type has that method on this Python."""
    if native.descr == NULL:
        return 0
    slot.ml_name = name
    slot.ml_meth = impl
    slot.ml_flags = flags
    slot.ml_doc = lp_native_method_doc(native)
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
    # acquire uses the vectorcall convention, which the 3.11+ interpreter specialises and the
    # native method's tuple-and-dict convention does not; __enter__ takes no argument and
    # __exit__ ignores its arguments, so a `with` block builds no argument tuple. That is how
    # the wrapper can match or beat the native lock. Arguments reach the native method as the
    # interpreter would have passed them, so its checks and messages are unchanged.
    cdef PyMethodDef* m = LOCK_METHODS
    _add_method(ProfiledLock, &m[0], "acquire", <void*>lock_acquire, FASTKW, &LOCK_OPS.acquire)
    _add_method(ProfiledLock, &m[1], "acquire_lock", <void*>lock_acquire, FASTKW, &LOCK_OPS.acquire)
    _add_method(ProfiledLock, &m[2], "__enter__", <void*>lock_enter, METH_NOARGS, &LOCK_OPS.acquire)
    _add_method(ProfiledLock, &m[3], "release", <void*>lock_release, METH_NOARGS, &LOCK_OPS.release)
    _add_method(ProfiledLock, &m[4], "release_lock", <void*>lock_release, METH_NOARGS, &LOCK_OPS.release)
    _add_method(ProfiledLock, &m[5], "__exit__", <void*>lock_exit, METH_FASTCALL, &LOCK_OPS.release)
    _add_method(ProfiledLock, &m[6], "locked", <void*>lock_locked, METH_NOARGS, &LOCK_OPS.locked)
    _add_method(ProfiledLock, &m[7], "locked_lock", <void*>lock_locked, METH_NOARGS, &LOCK_OPS.locked)
    _add_method(ProfiledLock, &m[8], "_at_fork_reinit", <void*>lock_at_fork_reinit, METH_NOARGS, &LOCK_OPS.at_fork_reinit)
    m = RLOCK_METHODS
    _add_method(ProfiledRLock, &m[0], "acquire", <void*>rlock_acquire, FASTKW, &RLOCK_OPS.acquire)
    _add_method(ProfiledRLock, &m[1], "__enter__", <void*>rlock_enter, METH_NOARGS, &RLOCK_OPS.acquire)
    _add_method(ProfiledRLock, &m[2], "release", <void*>rlock_release, METH_NOARGS, &RLOCK_OPS.release)
    _add_method(ProfiledRLock, &m[3], "__exit__", <void*>rlock_exit, METH_FASTCALL, &RLOCK_OPS.release)
    _add_method(ProfiledRLock, &m[4], "locked", <void*>rlock_locked, METH_NOARGS, &RLOCK_OPS.locked)
    _add_method(ProfiledRLock, &m[5], "_at_fork_reinit", <void*>rlock_at_fork_reinit, METH_NOARGS, &RLOCK_OPS.at_fork_reinit)
    _add_method(ProfiledRLock, &m[6], "_is_owned", <void*>rlock_is_owned, METH_NOARGS, &RLOCK_OPS.is_owned)
    _add_method(ProfiledRLock, &m[7], "_release_save", <void*>rlock_release_save, METH_NOARGS, &RLOCK_OPS.release_save)
    _add_method(ProfiledRLock, &m[8], "_acquire_restore", <void*>rlock_acquire_restore, VARKW, &RLOCK_OPS.acquire_restore)
    _add_method(ProfiledRLock, &m[9], "_recursion_count", <void*>rlock_recursion_count, METH_NOARGS, &RLOCK_OPS.recursion_count)
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
        if kind == "lock":
            self._wrapper_type = ProfiledLock
            self._native_type = _thread.LockType
            self._make_native = _thread.allocate_lock
        elif kind == "rlock":
            self._wrapper_type = ProfiledRLock
            self._native_type = _thread.RLock
            self._make_native = _thread.RLock
        else:
            raise ValueError(f"kind must be 'lock' or 'rlock', got {kind!r}")
        self.original = original
        self.kind = kind
        self._recorder = recorder
        self._excludes = excludes
        self._decisions = {}

    def __call__(self, *args, **kwargs):
        # Arguments go to the original, which decides what they mean (and warns or raises).
        native = self.original(*args, **kwargs) if (args or kwargs) else self._make_native()
        if not self._recorder.active or type(native) is not self._native_type:
            return native  # stopped, or the original made something we do not wrap
        cdef PyObject* frame = lp_current_frame()
        if frame == NULL:
            return native
        module = PyFrame_GetGlobalsCompat(frame).get("__name__")
        excluded = self._decisions.get(module)
        if excluded is None:
            excluded = bool(self._excludes(module))
            if len(self._decisions) >= 4096:
                self._decisions.clear()
            self._decisions[module] = excluded
        if excluded:
            return native
        info = LockInfo(self.kind, PyFrame_GetCodeCompat(frame), PyFrame_GetLastiCompat(frame),
                        module if isinstance(module, str) else None)
        return self._wrapper_type.__new__(self._wrapper_type, native, info, self._recorder)

    def __instancecheck__(self, obj):
        # Only where the original is a class (threading.Lock on 3.13+); elsewhere isinstance
        # keeps raising as it does for the native factory function.
        return isinstance(obj, self.original) or (
            isinstance(obj, self._wrapper_type) and isinstance(self.original, type))

    def __subclasscheck__(self, cls):
        return issubclass(cls, self.original) or (
            issubclass(cls, self._wrapper_type) and isinstance(self.original, type))

    def __or__(self, other):
        return self.original | other

    def __ror__(self, other):
        return other | self.original

    def __getattr__(self, name):
        return getattr(self.original, name)

    def __repr__(self):
        return f"<lockprof factory for {self.original!r}>"
