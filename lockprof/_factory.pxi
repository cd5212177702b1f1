# LockFactory, what threading.Lock and threading.RLock are while profiling runs; CreationSites,
# the LockInfo of a lock made now (also for the profiled classes of _primitives); and what calling
# a wrapper type (type(lock)()) makes.
# Included by _lock.pyx (one extension module: the parts call each other's cdef functions directly).

@cython.final
cdef class CreationSites:
    """Where the locks of one kind are made while profiling (one per LockFactory and per profiled
    class): lock_info() gives the LockInfo of a lock made now by the running Python frame, or
    None when that frame's module is excluded. A site whose answer holds for every later lock
    (excluded, or a LockInfo its locks share) is then found with one lookup (_sites.h), without
    a frame object, the module's filter or the Recorder's table of sites."""

    def __cinit__(self, str kind, Recorder recorder not None, excludes not None):
        self.kind = kind
        self.recorder = recorder
        self.excludes = excludes
        self.decisions = {}

    def __dealloc__(self):
        lp_sites_clear(&self.cache)

    cdef LockInfo lock_info(self):
        cdef PyObject* code
        cdef PyObject* globals_
        cdef int offset
        if not lp_caller_site(&code, &offset, &globals_):
            return None
        cdef PyObject* answer
        found = None
        # Free-threaded builds: another thread may replace the slot (and drop its references),
        # so the answer is taken under the cache's critical section (nothing with the GIL).
        with cython.critical_section(self):
            answer = lp_sites_get(&self.cache, code, offset, globals_)
            if answer != NULL:
                found = <object>answer
        if answer == NULL:
            return self._first(code, offset, globals_)
        return <LockInfo>found

    cdef LockInfo _first(self, PyObject* code, int offset, PyObject* globals_):
        """lock_info() at a site not stored yet: the filter's decision (cached per module name)
        and the Recorder's LockInfo for the site, stored when every later lock gets the same."""
        cdef PyObject* name = lp_globals_name(globals_)
        module = <object>name if name != NULL else None
        excluded = self.decisions.get(module)
        if excluded is None:
            excluded = bool(self.excludes(module))
            if len(self.decisions) >= 4096:
                self.decisions.clear()
            self.decisions[module] = excluded
        cdef bint shared = True  # an exclusion holds for every later lock
        info = None if excluded else self.recorder.lock_info_at(
            self.kind, <object>code, offset, module if isinstance(module, str) else None, &shared)
        if shared:
            with cython.critical_section(self):
                lp_sites_put(&self.cache, code, offset, globals_, <PyObject*>info)
        return info


@cython.final  # called through _factory_vectorcall(), which no subclass's __call__ could override
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
        if kind == LOCK:
            self._native_type = NATIVE_LOCK
            stock = innermost is ORIGINAL_ALLOCATE_LOCK or innermost is NATIVE_LOCK
            # The Lock original makes either C locks or (gevent's) foreign ones, for good.
            self._wrapper_types = (ProfiledLock,) if stock else (ProfiledForeignLock,)
            constructor = ORIGINAL_ALLOCATE_LOCK  # _thread.LockType is callable only on 3.13+
        elif kind == RLOCK:
            self._wrapper_types = (ProfiledRLock, ProfiledForeignRLock)
            self._native_type = NATIVE_RLOCK
            # threading.RLock is a Python function that returns _thread.RLock() when it can.
            stock = (getattr(innermost, "__module__", None) == "threading"
                     and getattr(innermost, "__qualname__", None) == "RLock")
            constructor = NATIVE_RLOCK
        else:
            raise ValueError(f"kind must be {LOCK!r} or {RLOCK!r}, got {kind!r}")
        # Something else's factory (gevent's, another profiler's) is always called, so what it
        # does is kept; the stock one is bypassed for the C constructor it ends up calling, as
        # long as it still would (gevent patching later makes it call gevent's).
        # Another collector's factory is looked through: the last collector started profiles.
        self._make_native = constructor if stock else None
        self._innermost = innermost
        self.original = original
        self.kind = kind
        self._recorder = recorder
        self._sites = CreationSites(kind, recorder, excludes)
        lp_type_set_vectorcall(<PyObject*>self, &self._vectorcall, <void*>_factory_vectorcall)

    def __call__(self, *args, **kwargs):
        # Calls reach _factory_vectorcall(); this is LockFactory.__call__(factory, ...).
        if args or kwargs:
            return self._profiled(self._innermost(*args, **kwargs))
        return self._profiled(self._make())

    cdef object _make(self):
        """A native lock made without arguments. A stock Lock factory is the C function itself;
        threading's RLock() makes a C RLock only while threading holds it (not once gevent
        patched threading)."""
        if self._make_native is not None and (self._native_type is NATIVE_LOCK or _threading_c_rlock()):
            return lp_call_noargs(self._make_native)
        return self._innermost()

    cdef object _profiled(self, native):
        """The native lock made, profiled unless profiling is stopped or the calling module is
        excluded (then the native lock itself). Arguments went to the original, which decides
        what they mean (and warns or raises)."""
        info = self._info_now()
        if info is None:
            return native
        if type(native) is not self._native_type:
            return wrap_foreign(native, self.kind, info, self._recorder)  # gevent's lock
        if self._native_type is NATIVE_RLOCK:
            return new_wrapper(ProfiledRLock, RLOCK_TYPE, native, info, self._recorder)
        return new_wrapper(ProfiledLock, LOCK_TYPE, native, info, self._recorder)

    cdef LockInfo _info_now(self):
        """The LockInfo of a lock made now, None unless profiling runs and applies there."""
        if not self._recorder.is_active():
            return None
        return self._sites.lock_info()

    @property
    def active(self):
        """True while the collector that installed this factory is running."""
        return self._recorder.is_active()

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
        return _threading_factory, (THREADING_NAMES[self.kind],)


THREADING_NAMES = {LOCK: "Lock", RLOCK: "RLock"}


def _threading_factory(name):
    """threading.Lock or threading.RLock of this process (an unpickled LockFactory)."""
    return getattr(sys.modules.get("threading") or __import__("threading"), name)


cdef object _factory_vectorcall(object factory, PyObject** args, size_t nargsf, PyObject* kwnames):
    """A call of a LockFactory (its type's vectorcall): no argument tuple or dict is made."""
    cdef LockFactory self = <LockFactory>factory
    if lp_vectorcall_nargs(nargsf) == 0 and kwnames == NULL:
        return self._profiled(self._make())
    return self._profiled(lp_vectorcall(self._innermost, args, nargsf, kwnames))


cdef dict MODULES = sys.modules


cdef dict _threading_namespace():
    """The namespace of the threading module loaded now, or None."""
    threading = MODULES.get("threading")
    if threading is None:
        return None
    if PyModule_CheckExact(threading):
        return <dict>PyModule_GetDict(threading)
    return threading.__dict__


cdef bint _threading_c_rlock() except -1:
    """Whether threading's RLock() makes the C RLock."""
    namespace = _threading_namespace()
    return namespace is not None and namespace.get("_CRLock") is NATIVE_RLOCK


cdef object profiled_rlock(LockInfo info, Recorder recorder):
    """A new RLock profiled under info: a C RLock while threading makes those, else the
    Python RLock threading makes instead (once gevent has patched it)."""
    namespace = _threading_namespace()
    if namespace is None or namespace.get("_CRLock", NATIVE_RLOCK) is NATIVE_RLOCK or "_PyRLock" not in namespace:
        return new_wrapper(ProfiledRLock, RLOCK_TYPE, NATIVE_RLOCK(), info, recorder)
    return wrap_foreign(namespace["_PyRLock"](), RLOCK, info, recorder)


# ------------------------------------------------------------------ type(lock)()
# Calling a wrapper type does what calling its native type does on the running Python: the
# native type's own call checks the arguments (its errors, its messages) and makes the lock,
# which is profiled as threading's factory would profile it now (else it runs unprofiled).
# A native type that cannot be called (_thread.lock before 3.13) leaves its wrapper without a
# constructor too: CPython's own TypeError, "cannot create '<type>' instances". A foreign
# wrapper's lock is made by what threading's name makes natively now (gevent's factory).
# A subclass with an __init__ of its own keeps its arguments from the native constructor, which
# (3.15's RLock) refuses them only where __init__ is the type's own, as natively.
# The factory and wrap_foreign() call Cython's constructors directly (new_wrapper), never these.

cdef extern from *:
    # The slots a type call goes through (Cython fills tp_vectorcall, which bypasses tp_new).
    ctypedef struct lp_type_slots "PyTypeObject":
        newfunc tp_new
        void* tp_init
        void* tp_vectorcall
        PyObject* tp_dict


cdef object _lock_type_new(type cls, PyObject* args, PyObject* kwargs):
    return _type_call(cls, LOCK_TYPE, NATIVE_LOCK, LOCK, args, kwargs)

cdef object _rlock_type_new(type cls, PyObject* args, PyObject* kwargs):
    if (<lp_type_slots*>cls).tp_init != (<lp_type_slots*>ProfiledRLock).tp_init:
        args = kwargs = NULL
    return _type_call(cls, RLOCK_TYPE, NATIVE_RLOCK, RLOCK, args, kwargs)

cdef object _foreign_lock_type_new(type cls, PyObject* args, PyObject* kwargs):
    return _type_call(cls, FOREIGN_LOCK_TYPE, None, LOCK, args, kwargs)

cdef object _foreign_rlock_type_new(type cls, PyObject* args, PyObject* kwargs):
    return _type_call(cls, FOREIGN_RLOCK_TYPE, None, RLOCK, args, kwargs)


cdef object _type_call(type cls, int which, object make, str kind, PyObject* args, PyObject* kwargs):
    """cls(*args, **kwargs): the lock make(*args, **kwargs) makes (make None: threading's)."""
    threading = sys.modules.get("threading") or __import__("threading")
    current = (<dict>threading.__dict__).get(THREADING_NAMES[kind])
    cdef LockFactory factory = current if isinstance(current, LockFactory) else None
    if make is None:
        make = factory._innermost if factory is not None else current
    cdef tuple positional = <tuple>args if args != NULL else ()
    lock = make(*positional, **<dict>kwargs) if kwargs != NULL else make(*positional)
    info = factory._info_now() if factory is not None else None
    recorder = factory._recorder if info is not None else None
    return new_wrapper(cls, which, lock, info, recorder)


cdef int _install_type_new(type wrapper, int which, type native, newfunc make) except -1:
    cdef lp_type_slots* slots = <lp_type_slots*>wrapper
    CYTHON_NEW[which] = slots.tp_new
    slots.tp_vectorcall = NULL
    if native is not None and (<lp_type_slots*>native).tp_new == NULL:
        slots.tp_new = NULL
        (<dict>slots.tp_dict).pop("__new__", None)  # nor a __new__ of its own
    else:
        slots.tp_new = make
    PyType_Modified(wrapper)
    return 0


cdef int install_type_constructors() except -1:
    _install_type_new(ProfiledLock, LOCK_TYPE, NATIVE_LOCK, <newfunc>_lock_type_new)
    _install_type_new(ProfiledRLock, RLOCK_TYPE, NATIVE_RLOCK, <newfunc>_rlock_type_new)
    _install_type_new(ProfiledForeignLock, FOREIGN_LOCK_TYPE, None, <newfunc>_foreign_lock_type_new)
    _install_type_new(ProfiledForeignRLock, FOREIGN_RLOCK_TYPE, None, <newfunc>_foreign_rlock_type_new)
    return 0
