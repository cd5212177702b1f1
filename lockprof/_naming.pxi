# Lock naming, fenced off here, with its limits: the name a creation site stores a lock under,
# read from the bytecode (site_name(), for Recorder.lock_info_at), and the name a captured
# release finds it held under (name_lock(), the one entry point at release; the wrappers call it
# once a lock matters). Compiled because it runs inside the user's release(): compiled code runs
# no bytecode, so no signal handler can run (and have its exception swallowed) in here, and no
# user code runs either: only plain storage is read, never a property, a custom descriptor,
# __getattr__ or an overridden items(). The C helpers are in _naming.h.
# Included by _recorder.pyx (one extension module); _lock and _primitives cimport name_lock.

# The opcodes of this version that matter to lp_assigned_name(), by class.
cdef unsigned char OPCODE_CLASSES[256]


def _classify_opcodes(opmap=None):
    """Fill OPCODE_CLASSES from the running interpreter's opcode table (dis.opmap), or from
    `opmap` (tests feed another version's names). 3.14 loads a plain variable with
    LOAD_FAST_BORROW; the two-variable loads (LOAD_FAST_LOAD_FAST, LOAD_FAST_BORROW_LOAD_FAST_BORROW)
    are not the object of one STORE_ATTR and stay unclassified."""
    if opmap is None:
        import dis
        opmap = dis.opmap
    classes = {
        "CACHE": LP_OP_CACHE, "EXTENDED_ARG": LP_OP_EXTENDED_ARG,
        "LOAD_FAST": LP_OP_LOAD, "LOAD_FAST_CHECK": LP_OP_LOAD, "LOAD_FAST_BORROW": LP_OP_LOAD,
        "LOAD_DEREF": LP_OP_LOAD, "LOAD_CLASSDEREF": LP_OP_LOAD, "LOAD_NAME": LP_OP_LOAD,
        "LOAD_GLOBAL": LP_OP_LOAD,
        "STORE_NAME": LP_OP_STORE_NAME, "STORE_GLOBAL": LP_OP_STORE_NAME,
        "STORE_ATTR": LP_OP_STORE_ATTR,
        "STORE_FAST": LP_OP_STORE_FAST, "STORE_FAST_LOAD_FAST": LP_OP_STORE_FAST_PAIR,
        "STORE_FAST_STORE_FAST": LP_OP_STORE_FAST_PAIR, "STORE_DEREF": LP_OP_STORE_DEREF,
        "JUMP_FORWARD": LP_OP_JUMP_FORWARD, "JUMP_ABSOLUTE": LP_OP_JUMP_ABSOLUTE,
    }
    memset(OPCODE_CLASSES, LP_OP_OTHER, sizeof(OPCODE_CLASSES))
    for name, cls in classes.items():
        opcode = opmap.get(name)
        if opcode is not None and 0 <= opcode < 256:
            OPCODE_CLASSES[opcode] = cls


_classify_opcodes()


cdef int site_name(object code, int offset, PyObject** name) except -1:
    """What the instruction after `offset` of `code` stores its result under (LP_NAME_*), its
    name in *name (borrowed from the code) or NULL."""
    return lp_assigned_name(code, offset, OPCODE_CLASSES, name)


# How often a lock's variable name is looked for before it is left unnamed.
cdef int NAME_ATTEMPTS = 3
# Frames of the lock's own methods passed over (a Condition's __exit__, asyncio's __aexit__).
cdef int METHOD_FRAMES = 3
# Frames searched for the name: the releasing code's and its caller's.
cdef int SEARCHED_FRAMES = 2


cdef int name_lock(object target, LockInfo info) except -1:
    """Look for the variable bound to target (or to its owner: a Condition holding its own
    lock) from the running frame and its caller, once of NAME_ATTEMPTS; never raises into the
    caller's lock operation."""
    if info is None or info.site_named:
        return 0
    # The fields it reads and writes are shared by the threads that release the site's locks.
    with cython.critical_section(info):
        if info.name_attempts >= NAME_ATTEMPTS or (info.name is not None and not info.local_named):
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


cdef object _find_lock_name(object lock, object frame, bint no_locals):
    """The variable or attribute `lock` is bound to, seen from the frame that released it and
    its caller: a local (unless no_locals), an attribute of the method's first argument
    (instance dict or __slots__), or a module global. Frames of the lock's own methods (a
    Condition's __exit__, asyncio's __aexit__), whose first argument is the lock, are passed
    over first."""
    for _ in range(METHOD_FRAMES):
        if frame is None or not _is_method_of(frame, lock):
            break
        frame = frame.f_back
    for _ in range(SEARCHED_FRAMES):
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
    attribute names the releasing code uses) stored on the instance (instance_attribute())."""
    for klass in type(owner).__mro__:
        klass_dict = lp_class_dict(klass)
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
        if type(name) is str and instance_attribute(owner, name) is lock:
            return name
    return None


cdef object instance_attribute(object obj, str name):
    """What obj itself stores under `name`, None if nothing or if a class of its MRO defines
    `name` (a property or other descriptor is never run). Read in place: asking for the
    object's __dict__ would, on 3.11+, turn its inline attribute values into a dict for good
    and slow every later attribute access of the object. Allocates nothing when obj stores
    the name (a capture reads a thread's name while the user's lock is held)."""
    for klass in (<type>type(obj)).__mro__:
        if name in lp_class_dict(klass):
            return None
    try:
        return PyObject_GenericGetAttr(obj, name)  # no class attribute: the instance's storage
    except AttributeError:
        return None


cdef str _mangled(type klass, str name):
    """The name a private __slots__ entry is stored under (`__lock` -> `_Klass__lock`)."""
    if name.startswith("__") and not name.endswith("__"):
        owner = klass.__name__.lstrip("_")
        if owner:
            return f"_{owner}{name}"
    return name
