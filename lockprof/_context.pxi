# Who runs a lock operation: its thread (named for the profile), its asyncio task or gevent
# greenlet and their names, and the awaiters of a helper task, read without running user code.
# Included by _recorder.pyx (one extension module: Recorder's methods call these directly).


cdef bint cell_has_contents(object cell):
    try:
        cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return True


cdef int _coroutine_chain(object coroutine, WaiterStack* waiter, int max_frames) except -1:
    """The frames of a suspended coroutine and of those it awaits in turn, leaf first, into
    waiter.frames (max_frames of them, the whole depth in waiter.depth); returns how many.
    The code objects are borrowed from the coroutines, alive while their task is."""
    cdef int depth = 0, n = 0, i
    frames = []  # the frame objects, kept alive until their code and offset are read
    while coroutine is not None and depth < LP_MAX_WALK:
        if type(coroutine) is CoroutineType:
            frame, coroutine = coroutine.cr_frame, coroutine.cr_await
        elif type(coroutine) is GeneratorType:
            frame, coroutine = coroutine.gi_frame, coroutine.gi_yieldfrom
        else:
            break
        if frame is None:
            break
        frames.append(frame)
        depth += 1
    for i in range(depth - 1, max(depth - 1 - max_frames, -1), -1):
        frame = frames[i]
        waiter.frames[n].code = <PyObject*>frame.f_code
        waiter.frames[n].lasti = lp_frame_lasti(<PyObject*>frame)
        n += 1
    waiter.depth = depth
    return n


cdef object fill_context(Recorder recorder, Context* context):
    """Fill context for the running thread and task; returns the task name, which the
    caller keeps alive while context borrows it."""
    cdef object task = None
    cdef object task_name = None
    context.thread_id = lp_thread_ident()
    context.thread_native_id = lp_thread_native_id()
    context.task_id = 0
    context.task_name = NULL
    _note_thread(recorder, context.thread_id)
    try:
        task = recorder._current_task()
        if task is not None:
            task_name = _task_name(recorder, task)
        else:
            task = _current_greenlet(recorder)
            if task is not None:
                task_name = _greenlet_name(recorder, task)
    except Exception:
        task = None
    if task is not None:
        context.task_id = <Py_ssize_t><PyObject*>task
        if task_name is not None:
            context.task_name = <void*>task_name
    return task_name


cdef int awaiters_stack(Recorder recorder, WaiterStack* waiter, int max_frames) noexcept:
    """A wait in an asyncio task that runs the acquire itself (the helper task of
    asyncio.wait_for() on 3.9 to 3.11, or one made by gather(), shield(), create_task()) has
    only the event loop's frames on its stack: its frames are those of the coroutines that
    await the task, leaf first, put in waiter.frames. Returns how many (0: not such a wait,
    or no awaiter found). Only C-level getters and containers are read: no user code."""
    try:
        task = <object><PyObject*>waiter.context.task_id if waiter.context.task_id else None
        if task is None or type(task) is not recorder._c_task_type or type(task._coro) is CoroutineType:
            return 0
        awaiter = _awaiter_of(recorder, task)
        if awaiter is None:
            return 0
        return _coroutine_chain(awaiter._coro, waiter, max_frames)
    except Exception:
        return 0


cdef object _awaiter_of(Recorder recorder, object task):
    """The task whose awaited future is task, or a future that one of task's done callbacks
    completes (wait_for's waiter, gather's outer future): found among asyncio's tasks."""
    referenced = set()
    for callback, _ in task._callbacks or ():
        if type(callback) is partial:
            referenced.update(id(arg) for arg in (<object>callback).args)
        elif type(callback) is MethodType:
            referenced.add(id(callback.__self__))
        elif type(callback) is FunctionType:
            referenced.update(id(cell.cell_contents) for cell in callback.__closure__ or ()
                              if cell_has_contents(cell))
    namespace = PyObject_GenericGetDict(recorder._modules.get("asyncio.tasks"), NULL)
    for registry in ("_all_tasks", "_scheduled_tasks", "_eager_tasks"):  # 3.9-3.11, 3.12+
        tracked = namespace.get(registry)
        if tracked is None:
            continue
        if type(tracked) is not set:  # a WeakSet: its set of references, read in place
            tracked = PyObject_GenericGetDict(tracked, NULL).get("data")
            if type(tracked) is not set:
                continue
        for item in <set>tracked:
            candidate = item() if type(item) is ReferenceType else item
            if type(candidate) is not recorder._c_task_type or candidate is task:
                continue
            awaited = candidate._fut_waiter
            if awaited is not None and (awaited is task or id(awaited) in referenced):
                return candidate
    return None


cdef void _note_thread(Recorder recorder, unsigned long thread_id) noexcept:
    # A direct-mapped cache of the threads already named this period keeps the dict lookups
    # and the Python attribute read off the common path, for a few hundred threads. Thread
    # ids are aligned addresses (pthread_t) or small multiples of 4 (Windows): a
    # multiplicative hash spreads them over the 256 slots.
    cdef unsigned long slot = <unsigned long>((<unsigned long long>thread_id * 0x9E3779B97F4A7C15ULL) >> 56)
    if lp_load_ulong(&recorder._seen_threads[slot]) == thread_id:
        return
    lp_store_ulong(&recorder._seen_threads[slot], thread_id)
    # Plain storage reads only: no attribute protocol, so no property or __getattr__ of a
    # Thread subclass runs inside the user's lock operation.
    threading = recorder._modules.get("threading")
    active = PyObject_GenericGetDict(threading, NULL).get("_active") if threading is not None else None
    thread = (<dict>active).get(thread_id) if type(active) is dict else None
    if thread is None:
        return
    try:
        name = instance_attribute(thread, "_name")
    except Exception:
        return
    if type(name) is str:
        with cython.critical_section(recorder):  # drain swaps the dict
            recorder._thread_names[thread_id] = name


cdef object _task_name(Recorder recorder, object task):
    if recorder._c_task_get_name is None:
        return None
    if type(task) is recorder._c_task_type or getattr(type(task), "get_name", None) is recorder._c_task_get_name:
        return recorder._c_task_get_name(task)
    return None


cdef object _current_greenlet(Recorder recorder):
    """The running greenlet once gevent is in use, None on a thread's main greenlet: gevent
    runs the program's concurrent work as greenlets, which are its tasks."""
    if recorder._modules.get("gevent") is None:
        return None
    greenlet = recorder._modules.get("greenlet")
    if greenlet is None:
        return None
    namespace = PyObject_GenericGetDict(greenlet, NULL)
    current = namespace["getcurrent"]()
    # greenlet's own C getter: a subclass's parent property or __getattribute__ never runs.
    parent = lp_class_dict(namespace["greenlet"])["parent"].__get__(current)
    return current if parent is not None else None


cdef object _greenlet_name(Recorder recorder, object current):
    """A gevent Greenlet's name, when the program gave it one; never gevent's default
    (`Greenlet-N`), which numbers the greenlet when first asked for and shows in its repr
    from then on, nor a subclass's own name, which is never run here."""
    gevent_greenlet = PyObject_GenericGetDict(recorder._modules["gevent"], NULL).get("Greenlet")
    if type(gevent_greenlet) is not type or not isinstance(current, gevent_greenlet):
        return None  # gevent's hub, or a plain greenlet
    default = lp_class_dict(gevent_greenlet).get("name")
    for klass in type(current).__mro__:
        found = lp_class_dict(klass).get("name")
        if found is not None:
            if found is not default:
                return None
            break
    name = PyObject_GenericGetDict(current, NULL).get("name")
    return name if type(name) is str else None
