# LockFactory, what threading.Lock and threading.RLock are while profiling runs, and the
# LockInfo of a lock made now.
# Included by _lock.pyx (one extension module: the parts call each other's cdef functions directly).

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
        self._excludes = excludes
        self._decisions = {}

    def __call__(self, *args, **kwargs):
        # Arguments go to the original, which decides what they mean (and warns or raises).
        if args or kwargs or self._make_native is None or not self._still_stock():
            native = self._innermost(*args, **kwargs)
        else:
            native = self._make_native()
        if not self._recorder.is_active():
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
        return _threading_factory, ("Lock" if self.kind == LOCK else "RLock",)


def _threading_factory(name):
    """threading.Lock or threading.RLock of this process (an unpickled LockFactory)."""
    return getattr(sys.modules.get("threading") or __import__("threading"), name)


cdef object profiled_rlock(LockInfo info, Recorder recorder):
    """A new RLock profiled under info: a C RLock while threading makes those, else the
    Python RLock threading makes instead (once gevent has patched it)."""
    threading = sys.modules.get("threading")
    namespace = threading.__dict__ if threading is not None else {}
    if namespace.get("_CRLock", NATIVE_RLOCK) is NATIVE_RLOCK or "_PyRLock" not in namespace:
        return ProfiledRLock.__new__(ProfiledRLock, NATIVE_RLOCK(), info, recorder)
    return wrap_foreign(namespace["_PyRLock"](), RLOCK, info, recorder)
