# The wrappers' methods installed from the native types' own method tables, and the direct
# non-blocking attempt checked against the native methods at import.
# Included by _lock.pyx (one extension module: the parts call each other's cdef functions directly).

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
    cdef lp_native_method* targets[10]
    targets[:] = [&ops.acquire, &ops.release, &ops.locked, &ops.at_fork_reinit, &ops.is_owned,
                  &ops.release_save, &ops.acquire_restore, &ops.recursion_count, &ops.enter, &ops.exit]
    for i, name in enumerate(names):
        targets[i].descr = NULL
        if hasattr(native, name):
            lp_native_method_resolve(targets[i], <PyTypeObject*>native, name.encode())
    # Derived from the running interpreter, never from its version: 3.15's __enter__ takes no
    # arguments (METH_NOARGS), earlier ones are acquire itself.
    ops.enter_takes_arguments = ops.enter.descr == NULL or ops.enter.kind != LP_CALL_NOARGS
    return 0


cdef int _install_methods() except -1:
    cdef int VARKW = METH_VARARGS | METH_KEYWORDS
    cdef int FASTKW = METH_FASTCALL | METH_KEYWORDS
    names = ("acquire", "release", "locked", "_at_fork_reinit", "_is_owned", "_release_save",
             "_acquire_restore", "_recursion_count", "__enter__", "__exit__")
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
    _add_method(ProfiledLock, NATIVE_LOCK, &m[2], "__enter__", <void*>lock_enter, FASTKW)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[3], "release", <void*>lock_release, METH_NOARGS)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[4], "release_lock", <void*>lock_release, METH_NOARGS)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[5], "__exit__", <void*>lock_exit, METH_FASTCALL)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[6], "locked", <void*>wrapper_locked, METH_NOARGS)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[7], "locked_lock", <void*>wrapper_locked, METH_NOARGS)
    _add_method(ProfiledLock, NATIVE_LOCK, &m[8], "_at_fork_reinit", <void*>wrapper_at_fork_reinit, METH_NOARGS)
    m = RLOCK_METHODS
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[0], "acquire", <void*>rlock_acquire, FASTKW)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[1], "__enter__", <void*>rlock_enter, FASTKW)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[2], "release", <void*>rlock_release, METH_NOARGS)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[3], "__exit__", <void*>rlock_exit, METH_FASTCALL)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[4], "locked", <void*>wrapper_locked, METH_NOARGS)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[5], "_at_fork_reinit", <void*>wrapper_at_fork_reinit, METH_NOARGS)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[6], "_is_owned", <void*>rlock_is_owned, METH_NOARGS)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[7], "_release_save", <void*>rlock_release_save, METH_NOARGS)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[8], "_acquire_restore", <void*>rlock_acquire_restore, VARKW)
    _add_method(ProfiledRLock, NATIVE_RLOCK, &m[9], "_recursion_count", <void*>rlock_recursion_count, METH_NOARGS)
    return 0


cdef int _choose_try(NativeOps* ops, type native, int lock_kind) except -1:
    """Use the internals core's attempt on the lock object itself for this native type if its
    layout is one the core knows and it behaves, seen through the native methods, exactly like
    the native acquire; otherwise (and always in the portable core, which reads no layout) the
    method call."""
    ops.try_kind = LP_TRY_BY_METHOD
    cdef int kind = lp_native_layout(<PyTypeObject*>native, lock_kind)
    if kind == LP_TRY_BY_METHOD:
        return 0
    try:
        if kind != LP_TRY_RLOCK:
            lock = ORIGINAL_ALLOCATE_LOCK()
            taken = lp_try_acquire(&ops.acquire, kind, <PyObject*>lock) == 1
            ok = taken and lock.locked() and lp_try_acquire(&ops.acquire, kind, <PyObject*>lock) == 0
            if taken:
                lp_lock_release_taken(&ops.release, kind, <PyObject*>lock)
            ok = ok and not lock.locked() and lock.acquire(False)  # the native acquire agrees
            if ok:  # the direct attempt sees the native hold, and releases it as the native release
                ok = lp_try_acquire(&ops.acquire, kind, <PyObject*>lock) == 0
                lp_lock_release_taken(&ops.release, kind, <PyObject*>lock)
                ok = ok and not lock.locked() and lock.acquire(False)
                lock.release()
        else:
            lock = NATIVE_RLOCK()
            ok = lp_try_acquire(&ops.acquire, kind, <PyObject*>lock) == 1 and lock._is_owned()
            ok = ok and lp_rlock_owned(&ops.is_owned, kind, <PyObject*>lock) == 1
            ok = ok and getattr(lock, "_recursion_count", lambda: 1)() == 1
            # A nested level counted directly, which the native release undoes, and back.
            ok = ok and lp_rlock_nest(kind, <PyObject*>lock) == 1 and lock._is_owned()
            lock.release()
            ok = ok and lock._is_owned() and lock.acquire(False)
            ok = ok and lp_rlock_unnest(kind, <PyObject*>lock) and lock._is_owned()
            ok = ok and not lp_rlock_unnest(kind, <PyObject*>lock)  # the outermost level is not
            lock.release()
            ok = ok and not lock._is_owned() and lp_rlock_owned(&ops.is_owned, kind, <PyObject*>lock) == 0
            if ok and lock.acquire(False):  # the owner the native acquire writes is read as this thread
                ok = lp_rlock_owned(&ops.is_owned, kind, <PyObject*>lock) == 1
                lock.release()
    except Exception:
        ok = False
    if ok:
        ops.try_kind = kind
    return 0


cdef int take_native_lock(object lock) noexcept:
    """1: `lock`, a native threading.Lock, taken without waiting (no Python code runs: the
    attempt of this core); 0: it is held (by any thread); -1: not a native lock, or the attempt
    failed (its error dropped: the caller's standard call then decides)."""
    if type(lock) is not NATIVE_LOCK:
        return -1
    cdef int taken = lp_try_acquire_unchecked(&LOCK_OPS.acquire, LOCK_OPS.try_kind, <PyObject*>lock)
    if taken < 0:
        PyErr_Clear()
    return taken


cdef void release_native_lock(object lock) noexcept:
    """Release a lock take_native_lock() took."""
    cdef PyObject* result = lp_lock_release_taken_unchecked(&LOCK_OPS.release, LOCK_OPS.try_kind, <PyObject*>lock)
    if result == NULL:
        PyErr_Clear()  # the native release of a lock this thread just took does not fail
    Py_XDECREF(result)


def direct_try_kinds():
    """The lock kinds ('lock', 'rlock') whose acquire is tried without a method call here."""
    kinds = []
    if LOCK_OPS.try_kind != LP_TRY_BY_METHOD:
        kinds.append(LOCK)
    if RLOCK_OPS.try_kind != LP_TRY_BY_METHOD:
        kinds.append(RLOCK)
    return tuple(kinds)


def derived_protocol():
    """What the wrappers derived from the native methods at import: whether __enter__ takes
    acquire's arguments (Lock, RLock)."""
    return {"enter_takes_arguments": (bool(LOCK_OPS.enter_takes_arguments), bool(RLOCK_OPS.enter_takes_arguments))}


def feed_derived_protocol(enter_takes_arguments):
    """Tests run the other variant on this interpreter: (Lock, RLock) as derived_protocol()
    gives them. Returns the settings it replaced."""
    previous = derived_protocol()
    LOCK_OPS.enter_takes_arguments, RLOCK_OPS.enter_takes_arguments = enter_takes_arguments
    return previous
