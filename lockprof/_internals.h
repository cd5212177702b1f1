/* The internals core: CPython 3.9 to 3.13's own structures, read where the public C API would
 * cost a call, an argument parse or an allocation on a lock operation's path. _lockcore.h
 * includes this header unless LOCKPROF_CORE_PORTABLE is defined (setup.py, LOCKPROF_CORE);
 * _portable.h defines the same functions on the public C API alone.
 *   the lock objects' layout: the non-blocking attempt, an RLock's owner and nested levels,
 *     checked at import against the native methods (_install.pxi), else the method is called;
 *   a method's lookup without a bound method (asyncio's async with, checking its acquire);
 *   the interpreter's frames: the stack walk, a running frame's local slots. */
#ifndef LOCKPROF_INTERNALS_H
#define LOCKPROF_INTERNALS_H

#include <Python.h>
#include <frameobject.h>
#include <stddef.h>
#include "_sync.h"
#include "_clock.h"
#include "_native.h"
#include "_stack.h"

#define LP_CORE_MODE "internals"

/* ------------------------------------------------------------ lock layout
 * CPython 3.9 to 3.13 lay their lock objects out as below (Modules/_threadmodule.c); the
 * attempt does what the native acquire does when it succeeds at once: take the underlying lock
 * without waiting, then mark the object held. It skips the argument parsing of a call with
 * blocking=False, which costs as much as the rest of the acquire.
 * A Lock is either of two layouts, told apart at import by its size and weakref slot: up to
 * 3.13.0 a PyThread_type_lock and a `locked` flag; in later 3.13 releases (3.13.5 read here,
 * free-threaded or not) a PyMutex alone, taken and released with the native code's atomics. */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock_lock;
    PyObject *in_weakreflist;
    char locked;
} lp_native_lock;

#if PY_VERSION_HEX >= 0x030D0000
typedef struct {
    PyObject_HEAD
    PyMutex lock; /* weakrefs managed by the interpreter */
} lp_native_mutex_lock;

typedef unsigned long long lp_thread_owner; /* PyThread_ident_t */
#define lp_load_owner lp_load_ullong
#define lp_store_owner lp_store_ullong
#else
typedef unsigned long lp_thread_owner;
#define lp_load_owner lp_load_ulong
#define lp_store_owner lp_store_ulong
#endif

/* rlock_owner is read by any thread and written by the owner (relaxed atomics without the GIL,
 * as the native methods do); rlock_count is read and written by the owner alone, after it has
 * read its own id as the owner. */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock rlock_lock;
    lp_thread_owner rlock_owner;
    unsigned long rlock_count;
    PyObject *in_weakreflist;
} lp_native_rlock;

#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x030E0000
#define LP_DIRECT_TRY_POSSIBLE 1
#else
#define LP_DIRECT_TRY_POSSIBLE 0
#endif

/* The attempt this core makes on a native type of lock_kind (LP_TRY_LOCK or LP_TRY_RLOCK): the
 * kind whose layout the type has, by its size and weakref slot, so that the direct attempt
 * never runs on an object it would misread; LP_TRY_BY_METHOD for none. Free-threaded builds
 * accept only the layouts whose fields the native code reads and writes atomically. */
static inline int lp_native_layout(PyTypeObject *type, int lock_kind)
{
    if (!LP_DIRECT_TRY_POSSIBLE)
        return LP_TRY_BY_METHOD;
    if (lock_kind == LP_TRY_RLOCK)
        return type->tp_basicsize == (Py_ssize_t)sizeof(lp_native_rlock)
                       && type->tp_weaklistoffset == (Py_ssize_t)offsetof(lp_native_rlock, in_weakreflist)
                   ? LP_TRY_RLOCK
                   : LP_TRY_BY_METHOD;
#if PY_VERSION_HEX >= 0x030D0000
    if (type->tp_basicsize == (Py_ssize_t)sizeof(lp_native_mutex_lock) && (type->tp_flags & Py_TPFLAGS_MANAGED_WEAKREF))
        return LP_TRY_MUTEX_LOCK;
#endif
    if (!LP_FREE_THREADED && type->tp_basicsize == (Py_ssize_t)sizeof(lp_native_lock)
        && type->tp_weaklistoffset == (Py_ssize_t)offsetof(lp_native_lock, in_weakreflist))
        return LP_TRY_LOCK;
    return LP_TRY_BY_METHOD;
}

/* An RLock's attempt: 1 acquired, 0 held by another thread, -1 held by this thread (a nested
 * acquire, the native method's to count). The owner is read first: the count is the owner's. */
static inline int lp_rlock_try_direct(PyObject *rlock)
{
    lp_native_rlock *r = (lp_native_rlock *)rlock;
    lp_thread_owner me = (lp_thread_owner)lp_thread_ident();
    if (lp_load_owner(&r->rlock_owner) == me && r->rlock_count > 0)
        return -1;
    if (PyThread_acquire_lock_timed(r->rlock_lock, 0, 0) != PY_LOCK_ACQUIRED)
        return 0;
    lp_store_owner(&r->rlock_owner, me);
    r->rlock_count = 1;
    return 1;
}

#if PY_VERSION_HEX >= 0x030D0000
/* The PyMutex's bits, as CPython's lock.c names them. */
#define LP_MUTEX_LOCKED 1
#define LP_MUTEX_HAS_PARKED 2

/* _PyMutex_LockTimed() with timeout 0: a relaxed read, then compare-and-swap while unlocked
 * (keeping the parked bit); 1 taken, 0 locked. */
static inline int lp_mutex_try(PyMutex *m)
{
    uint8_t v = _Py_atomic_load_uint8_relaxed(&m->_bits);
    while (!(v & LP_MUTEX_LOCKED)) {
        if (_Py_atomic_compare_exchange_uint8(&m->_bits, &v, (uint8_t)(v | LP_MUTEX_LOCKED)))
            return 1;
    }
    return 0;
}

/* _PyMutex_TryUnlock()'s path without waiters: 1 released; 0 when a thread is parked on it (it
 * must be woken) or it is not locked (an error): the native release's to do. */
static inline int lp_mutex_release_unparked(PyMutex *m)
{
    uint8_t v = _Py_atomic_load_uint8(&m->_bits);
    while ((v & (LP_MUTEX_LOCKED | LP_MUTEX_HAS_PARKED)) == LP_MUTEX_LOCKED) {
        if (_Py_atomic_compare_exchange_uint8(&m->_bits, &v, 0))
            return 1;
    }
    return 0;
}
#endif

/* The attempt by try_kind: 1 acquired, 0 held (by any thread), -1 with an exception set. */
static inline int lp_try_acquire(const lp_native_method *acquire, int try_kind, PyObject *self)
{
    if (try_kind == LP_TRY_LOCK) {
        lp_native_lock *l = (lp_native_lock *)self;
        if (PyThread_acquire_lock_timed(l->lock_lock, 0, 0) != PY_LOCK_ACQUIRED)
            return 0;
        l->locked = 1;
        return 1;
    }
    if (try_kind == LP_TRY_RLOCK) {
        int r = lp_rlock_try_direct(self);
        if (r >= 0)
            return r;
    }
#if PY_VERSION_HEX >= 0x030D0000
    if (try_kind == LP_TRY_MUTEX_LOCK)
        return lp_mutex_try(&((lp_native_mutex_lock *)self)->lock);
#endif
    return lp_try_by_method(acquire, self);
}

/* The release of a Lock taken by lp_try_acquire(), as the native release does it. */
static inline PyObject *lp_lock_release_taken(const lp_native_method *release, int try_kind, PyObject *lock)
{
#if PY_VERSION_HEX >= 0x030D0000
    if (try_kind == LP_TRY_MUTEX_LOCK && lp_mutex_release_unparked(&((lp_native_mutex_lock *)lock)->lock))
        Py_RETURN_NONE;
#endif
    if (try_kind != LP_TRY_LOCK)
        return lp_call0(release, lock);
    lp_native_lock *l = (lp_native_lock *)lock;
    l->locked = 0;
    PyThread_release_lock(l->lock_lock);
    Py_RETURN_NONE;
}

/* Whether this thread holds the RLock, as the native _is_owned() says: 1, 0, -1 with an
 * exception set. */
static inline int lp_rlock_owned(const lp_native_method *is_owned, int try_kind, PyObject *rlock)
{
    if (try_kind == LP_TRY_RLOCK) {
        lp_native_rlock *r = (lp_native_rlock *)rlock;
        return lp_load_owner(&r->rlock_owner) == (lp_thread_owner)lp_thread_ident() && r->rlock_count > 0;
    }
    return lp_bool_result(lp_call0(is_owned, rlock));
}

/* A nested acquire of an RLock this thread holds (the caller knows it owns it), counted as the
 * native acquire counts it: 1 done, 0 not done here (the caller calls the method), -1 with the
 * native OverflowError set when the count would wrap. */
static inline int lp_rlock_nest(int try_kind, PyObject *rlock)
{
    if (try_kind != LP_TRY_RLOCK)
        return 0;
    lp_native_rlock *r = (lp_native_rlock *)rlock;
    unsigned long count = r->rlock_count + 1;
    if (count <= r->rlock_count) {
        PyErr_SetString(PyExc_OverflowError, "Internal lock count overflowed");
        return -1;
    }
    r->rlock_count = count;
    return 1;
}

/* The release of a nested level of an RLock this thread holds, as the native release counts
 * it: 1 done; 0 when this is not such a release here (the native method decides, and raises). */
static inline int lp_rlock_unnest(int try_kind, PyObject *rlock)
{
    if (try_kind != LP_TRY_RLOCK)
        return 0;
    lp_native_rlock *r = (lp_native_rlock *)rlock;
    if (lp_load_owner(&r->rlock_owner) != (lp_thread_owner)lp_thread_ident() || r->rlock_count < 2)
        return 0;
    r->rlock_count--;
    return 1;
}

/* ------------------------------------------------------------ methods
 * Whether obj's attribute `name` is still `function`, its class's, rather than an attribute of
 * the object itself (1, 0; -1 raised). _PyObject_GetMethod(), which a call `obj.name()` uses,
 * answers with the function itself when no attribute of the object shadows it: no bound
 * method is made (in 3.13 it is still exported, no longer declared). */
#if PY_VERSION_HEX >= 0x030D0000
extern int _PyObject_GetMethod(PyObject *obj, PyObject *name, PyObject **method);
#endif

static inline int lp_own_method(PyObject *obj, PyObject *name, PyObject *function)
{
    PyObject *method = NULL;
    int unbound = _PyObject_GetMethod(obj, name, &method);
    if (method == NULL)
        return -1;
    int own = unbound ? method == function : lp_bound_to(method, function, obj);
    Py_DECREF(method);
    return own;
}

/* ------------------------------------------------------------ code objects
 * What naming reads of a code object (_naming.h), from its struct: names are borrowed from it. */
static inline PyObject *lp_code_bytecode(PyObject *code)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyCode_GetCode((PyCodeObject *)code); /* without the specializations */
#else
    PyObject *bytecode = ((PyCodeObject *)code)->co_code;
    Py_INCREF(bytecode);
    return bytecode;
#endif
}

/* co_names[i], or NULL. */
static inline PyObject *lp_code_name(PyObject *code, unsigned int i)
{
    PyObject *names = ((PyCodeObject *)code)->co_names;
    return i < (unsigned int)PyTuple_GET_SIZE(names) ? PyTuple_GET_ITEM(names, i) : NULL;
}

/* The name of local slot i of code (3.9 and 3.10: its locals, then its cell and free
 * variables, in that order), or NULL when there is no such slot. */
static inline PyObject *lp_code_local_name(PyObject *code, Py_ssize_t i)
{
    PyCodeObject *co = (PyCodeObject *)code;
    /* Bounded by the name tuples too: on 3.9 and 3.10, code.replace() accepts a co_nlocals
     * larger than co_varnames. */
#if PY_VERSION_HEX >= 0x030B0000
    return (i >= 0 && i < PyTuple_GET_SIZE(co->co_localsplusnames)) ? PyTuple_GET_ITEM(co->co_localsplusnames, i) : NULL;
#else
    Py_ssize_t nlocals = co->co_nlocals, ncells = PyTuple_GET_SIZE(co->co_cellvars);
    if (i < 0)
        return NULL;
    if (i < nlocals)
        return i < PyTuple_GET_SIZE(co->co_varnames) ? PyTuple_GET_ITEM(co->co_varnames, i) : NULL;
    if (i < nlocals + ncells)
        return PyTuple_GET_ITEM(co->co_cellvars, i - nlocals);
    if (i < nlocals + ncells + PyTuple_GET_SIZE(co->co_freevars))
        return PyTuple_GET_ITEM(co->co_freevars, i - nlocals - ncells);
    return NULL;
#endif
}

/* The name of the cell STORE_DEREF(arg) stores into: a local slot on 3.11+, the arg-th cell or
 * free variable before. */
static inline PyObject *lp_code_deref_name(PyObject *code, unsigned int arg)
{
#if PY_VERSION_HEX >= 0x030B0000
    return lp_code_local_name(code, arg);
#else
    return lp_code_local_name(code, (Py_ssize_t)((PyCodeObject *)code)->co_nlocals + (Py_ssize_t)arg);
#endif
}

/* ------------------------------------------------------------------ frames
 * On 3.11+ the walk reads the interpreter's own frames (the header Cython includes in every
 * module for 3.11+ as well): the public PyFrame_GetBack() would create a frame object for every
 * frame that has none yet, the common case in real code, at ~40 ns a frame and with an
 * allocation that can start the garbage collector. Incomplete frames (being set up, or the
 * C-stack shims of 3.12+) are skipped, as PyFrame_GetBack() skips them. 3.9 and 3.10 walk their
 * frame objects, whose struct is public there. */
#if PY_VERSION_HEX >= 0x030B0000
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include "internal/pycore_frame.h"

typedef _PyInterpreterFrame lp_frame; /* a running frame, as the walk reads it */

static inline _PyInterpreterFrame *lp_top_frame(PyThreadState *tstate)
{
#if PY_VERSION_HEX >= 0x030D0000
    return tstate->current_frame;
#else
    return tstate->cframe->current_frame;
#endif
}

static inline PyObject *lp_interpreter_frame_code(_PyInterpreterFrame *frame)
{
#if PY_VERSION_HEX >= 0x030D0000
    return (PyObject *)_PyFrame_GetCode(frame);
#else
    return (PyObject *)frame->f_code;
#endif
}

/* `frame` or the nearest complete frame it was called from, or NULL. */
static inline _PyInterpreterFrame *lp_complete_frame(_PyInterpreterFrame *frame)
{
    while (frame != NULL && _PyFrame_IsIncomplete(frame))
        frame = frame->previous;
    return frame;
}

/* A running frame's code (borrowed: alive while it runs) and the byte offset of its current
 * instruction. */
static inline lp_frame_ref lp_frame_ref_of(lp_frame *frame)
{
    lp_frame_ref ref;
    int units = _PyInterpreterFrame_LASTI(frame);
    ref.code = lp_interpreter_frame_code(frame);
    ref.lasti = units < 0 ? -1 : units * (int)sizeof(_Py_CODEUNIT);
    return ref;
}

static inline lp_frame *lp_innermost_frame(void)
{
    return lp_complete_frame(lp_top_frame(PyThreadState_Get()));
}

static inline lp_frame *lp_outer_frame(lp_frame *frame)
{
    return lp_complete_frame(frame->previous);
}
#else
/* 3.9 and 3.10: frame objects, whose struct is public there; every f_back is borrowed. */
typedef PyFrameObject lp_frame;

static inline lp_frame_ref lp_frame_ref_of(lp_frame *frame)
{
    lp_frame_ref ref;
    ref.code = (PyObject *)frame->f_code;
    ref.lasti = lp_frame_lasti((PyObject *)frame);
    return ref;
}

static inline lp_frame *lp_innermost_frame(void)
{
    return PyEval_GetFrame();
}

static inline lp_frame *lp_outer_frame(lp_frame *frame)
{
    return frame->f_back;
}
#endif

static inline int lp_capture_stack(lp_frame_ref *out, int max, int *depth)
{
    int n = 0, total = 0;
    for (lp_frame *frame = lp_innermost_frame(); frame != NULL && total < LP_MAX_WALK;
         frame = lp_outer_frame(frame)) {
        if (n < max)
            out[n++] = lp_frame_ref_of(frame);
        total++;
    }
    *depth = total;
    return n;
}

/* The site of a call from Python into C: the innermost running frame's code and globals
 * (borrowed) and the byte offset of its current instruction (the call). 0 when no Python frame
 * runs. On 3.11+ it reads the interpreter's frame, as the walk above does: PyEval_GetFrame()
 * would make a frame object for it, an allocation per lock created in a fresh function. */
static inline int lp_caller_site(PyObject **code, int *lasti, PyObject **globals)
{
    lp_frame *frame = lp_innermost_frame();
    if (frame == NULL)
        return 0;
    lp_frame_ref ref = lp_frame_ref_of(frame);
    *code = ref.code;
    *lasti = ref.lasti;
    *globals = frame->f_globals;
    return 1;
}

/* The name of the local variable of `frame` (a running frame object) bound to `target`,
 * directly or through a closure cell, or NULL (borrowed from the code); *first receives the
 * value of its first argument, or NULL (borrowed). The frame's own slots are read: frame.f_locals
 * would, on 3.9 to 3.12, leave a dict on the frame that keeps every local alive after the program
 * deletes it. */
static inline PyObject *lp_cell_contents(PyObject *v)
{
    return (v != NULL && PyCell_Check(v)) ? PyCell_GET(v) : v;
}

static inline PyObject *lp_frame_local_name(PyObject *frame, PyObject *target, PyObject **first)
{
    PyCodeObject *co;
    PyObject **slots;
    Py_ssize_t n;
#if PY_VERSION_HEX >= 0x030B0000
    _PyInterpreterFrame *f = ((PyFrameObject *)frame)->f_frame;
    co = (PyCodeObject *)lp_interpreter_frame_code(f);
    slots = f->localsplus;
    n = co->co_nlocalsplus;
#else
    PyFrameObject *f = (PyFrameObject *)frame;
    co = f->f_code;
    slots = f->f_localsplus;
    n = co->co_nlocals + PyTuple_GET_SIZE(co->co_cellvars) + PyTuple_GET_SIZE(co->co_freevars);
#endif
    *first = (co->co_argcount > 0 && n > 0) ? lp_cell_contents(slots[0]) : NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (lp_cell_contents(slots[i]) == target)
            return lp_code_local_name((PyObject *)co, i);
    }
    return NULL;
}

#endif /* LOCKPROF_INTERNALS_H */
