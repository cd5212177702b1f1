/* The C half of lockprof's core, included by the .pyx modules.
 *
 * What lives here is what Cython cannot express cheaply:
 *   - a monotonic clock read without a Python call;
 *   - calling a native lock method's C function directly, dispatching on its calling convention;
 *   - walking the Python stack as (code object, instruction offset) pairs;
 *   - the bounded event table: an open-addressing hash table of malloc'd entries.
 * Everything here runs with the GIL held. What runs inside a lock operation's own path (the
 * clock, the attempt, the stack walk, the table) allocates no Python object, so it can neither
 * run Python code nor trigger the garbage collector; only a call with arguments passed on to a
 * native method of the tuple-and-dict convention builds them, as the interpreter would.
 */
#ifndef LOCKPROF_LOCKCORE_H
#define LOCKPROF_LOCKCORE_H

#include <Python.h>
#include <frameobject.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN /* the full headers define macros such as `small` */
#include <windows.h>
#elif defined(__APPLE__)
#include <mach/mach_time.h>
#else
#include <time.h>
#endif

/* ------------------------------------------------------------------ clock */

static inline int64_t lp_monotonic_ns(void)
{
#if defined(_WIN32)
    static LARGE_INTEGER freq;
    LARGE_INTEGER now;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    return (int64_t)(now.QuadPart / freq.QuadPart) * 1000000000
           + (int64_t)((now.QuadPart % freq.QuadPart) * 1000000000 / freq.QuadPart);
#elif defined(__APPLE__)
    /* CLOCK_MONOTONIC has only microsecond resolution on macOS (and needs 10.12); the Mach
     * clock is what time.monotonic() reads there, in nanoseconds. */
    static mach_timebase_info_data_t timebase;
    if (timebase.denom == 0)
        mach_timebase_info(&timebase);
    return (int64_t)(mach_absolute_time() * timebase.numer / timebase.denom);
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
#endif
}

/* The thread identifier threading uses (threading.get_ident()). On POSIX it is pthread_self(),
 * which CPython returns as is; calling it here saves a call through libpython on the RLock
 * fast path, which compares it with the owner on every acquire. */
#ifndef _WIN32
#include <pthread.h>
static inline unsigned long lp_thread_ident(void) { return (unsigned long)pthread_self(); }
#else
static inline unsigned long lp_thread_ident(void) { return PyThread_get_thread_ident(); }
#endif

/* The native thread id is a system call (gettid) on Linux; a captured operation needs it every
 * time, so each thread keeps its own in thread-local storage. A fork child's only thread gets a
 * new id: the at-fork handler forgets the cached one. */
#if defined(_MSC_VER)
#define LP_THREAD_LOCAL __declspec(thread)
#else
#define LP_THREAD_LOCAL _Thread_local
#endif

static LP_THREAD_LOCAL unsigned long lp_cached_native_id = 0;

static inline unsigned long lp_thread_native_id(void)
{
#ifdef PY_HAVE_THREAD_NATIVE_ID
    if (lp_cached_native_id == 0)
        lp_cached_native_id = PyThread_get_thread_native_id();
    return lp_cached_native_id;
#else
    return 0;
#endif
}

#ifndef _WIN32
static void lp_forget_native_id(void) { lp_cached_native_id = 0; }
/* Called once at import; 0 on success. */
static inline int lp_register_atfork(void) { return pthread_atfork(NULL, NULL, lp_forget_native_id); }
#else
static inline int lp_register_atfork(void) { return 0; }
#endif

/* ------------------------------------------------------ native method calls
 * The wrapped lock's methods are resolved once per native type from its method descriptors.
 * Calling ml_meth directly skips the bound-method object, the argument tuple (where the
 * convention has none) and the attribute lookup; the switch keeps any calling convention a
 * future CPython gives these methods working, with a generic call through the descriptor last.
 */

typedef PyObject *(*lp_fastcall_fn)(PyObject *, PyObject *const *, Py_ssize_t);
typedef PyObject *(*lp_fastcall_kw_fn)(PyObject *, PyObject *const *, Py_ssize_t, PyObject *);

enum {
    LP_CALL_GENERIC = 0,
    LP_CALL_NOARGS,
    LP_CALL_O,
    LP_CALL_VARARGS,
    LP_CALL_VARARGS_KW,
    LP_CALL_FAST,
    LP_CALL_FAST_KW,
};

typedef struct {
    PyCFunction meth;
    int kind;
    PyObject *descr; /* strong reference, kept for the generic path */
} lp_native_method;

static PyObject *lp_empty_tuple = NULL;

/* 0 on success; -1 with AttributeError/TypeError set when `name` is not a C method of `type`. */
static inline int lp_native_method_resolve(lp_native_method *m, PyTypeObject *type, const char *name)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL)
        return -1;
    if (lp_empty_tuple == NULL && (lp_empty_tuple = PyTuple_New(0)) == NULL) {
        Py_DECREF(descr);
        return -1;
    }
    m->descr = descr;
    m->meth = NULL;
    m->kind = LP_CALL_GENERIC;
    if (Py_IS_TYPE(descr, &PyMethodDescr_Type)) {
        PyMethodDef *def = ((PyMethodDescrObject *)descr)->d_method;
        int flags = def->ml_flags & ~(METH_COEXIST);
        m->meth = def->ml_meth;
        switch (flags) {
        case METH_NOARGS: m->kind = LP_CALL_NOARGS; break;
        case METH_O: m->kind = LP_CALL_O; break;
        case METH_VARARGS: m->kind = LP_CALL_VARARGS; break;
        case METH_VARARGS | METH_KEYWORDS: m->kind = LP_CALL_VARARGS_KW; break;
        case METH_FASTCALL: m->kind = LP_CALL_FAST; break;
        case METH_FASTCALL | METH_KEYWORDS: m->kind = LP_CALL_FAST_KW; break;
        default: m->kind = LP_CALL_GENERIC; break;
        }
    }
    return 0;
}

/* The C docstring of a method descriptor (its first line carries the text signature), NULL for
 * anything else. It lives as long as the type that owns the descriptor. */
static inline const char *lp_descr_doc(PyObject *descr)
{
    if (Py_IS_TYPE(descr, &PyMethodDescr_Type))
        return ((PyMethodDescrObject *)descr)->d_method->ml_doc;
    return NULL;
}

/* Generic path: descr(self, *args, **kwds). */
static PyObject *lp_call_generic(const lp_native_method *m, PyObject *self, PyObject *args, PyObject *kwds)
{
    Py_ssize_t nargs = args ? PyTuple_GET_SIZE(args) : 0;
    PyObject *stack_args[8];
    if (nargs < 7) {
        stack_args[0] = self;
        for (Py_ssize_t i = 0; i < nargs; i++)
            stack_args[i + 1] = PyTuple_GET_ITEM(args, i);
        return PyObject_VectorcallDict(m->descr, stack_args, (size_t)nargs + 1, kwds);
    }
    PyObject *full = PyTuple_New(nargs + 1);
    if (full == NULL)
        return NULL;
    Py_INCREF(self);
    PyTuple_SET_ITEM(full, 0, self);
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyObject *item = PyTuple_GET_ITEM(args, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(full, i + 1, item);
    }
    PyObject *result = PyObject_Call(m->descr, full, kwds);
    Py_DECREF(full);
    return result;
}

/* m(self) with no arguments. */
static inline PyObject *lp_call0(const lp_native_method *m, PyObject *self)
{
    switch (m->kind) {
    case LP_CALL_NOARGS: return m->meth(self, NULL);
    case LP_CALL_VARARGS: return m->meth(self, lp_empty_tuple);
    case LP_CALL_VARARGS_KW: return ((PyCFunctionWithKeywords)(void (*)(void))m->meth)(self, lp_empty_tuple, NULL);
    case LP_CALL_FAST: return ((lp_fastcall_fn)(void (*)(void))m->meth)(self, NULL, 0);
    case LP_CALL_FAST_KW: return ((lp_fastcall_kw_fn)(void (*)(void))m->meth)(self, NULL, 0, NULL);
    default: return lp_call_generic(m, self, NULL, NULL);
    }
}

/* m(self, *args, **kwds), handing the caller's own tuple and dict on where the convention allows,
 * so argument errors are the native method's own. `kwds` may be NULL. */
static inline PyObject *lp_call(const lp_native_method *m, PyObject *self, PyObject *args, PyObject *kwds)
{
    int has_kwds = kwds != NULL && PyDict_GET_SIZE(kwds) != 0;
    if (m->kind == LP_CALL_VARARGS_KW)
        return ((PyCFunctionWithKeywords)(void (*)(void))m->meth)(self, args, has_kwds ? kwds : NULL);
    if (!has_kwds) {
        Py_ssize_t nargs = PyTuple_GET_SIZE(args);
        switch (m->kind) {
        case LP_CALL_VARARGS: return m->meth(self, args);
        case LP_CALL_NOARGS:
            if (nargs == 0)
                return m->meth(self, NULL);
            break;
        case LP_CALL_O:
            if (nargs == 1)
                return m->meth(self, PyTuple_GET_ITEM(args, 0));
            break;
        case LP_CALL_FAST:
            return ((lp_fastcall_fn)(void (*)(void))m->meth)(self, &PyTuple_GET_ITEM(args, 0), nargs);
        case LP_CALL_FAST_KW:
            return ((lp_fastcall_kw_fn)(void (*)(void))m->meth)(self, &PyTuple_GET_ITEM(args, 0), nargs, NULL);
        default: break;
        }
    }
    return lp_call_generic(m, self, args, has_kwds ? kwds : NULL);
}

/* m(self, *args, **kwargs) for a caller using the vectorcall convention (args, nargs, kwnames).
 * With no arguments this is lp_call0. With arguments, a native method of the tuple-and-dict
 * convention gets the tuple and dict it would have got from the interpreter, so its argument
 * checks and error messages are unchanged. */
static inline PyObject *lp_call_vector(const lp_native_method *m, PyObject *self, PyObject *const *args,
                                       Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0) {
        if (nargs == 0)
            return lp_call0(m, self);
        kwnames = NULL;
    }
    if (m->kind == LP_CALL_FAST_KW)
        return ((lp_fastcall_kw_fn)(void (*)(void))m->meth)(self, args, nargs, kwnames);
    PyObject *tuple = PyTuple_New(nargs);
    if (tuple == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(tuple, i, args[i]);
    }
    PyObject *kwds = NULL;
    if (kwnames != NULL) {
        kwds = PyDict_New();
        for (Py_ssize_t i = 0; kwds != NULL && i < PyTuple_GET_SIZE(kwnames); i++) {
            if (PyDict_SetItem(kwds, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
                Py_CLEAR(kwds);
        }
        if (kwds == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
    }
    PyObject *result = lp_call(m, self, tuple, kwds);
    Py_DECREF(tuple);
    Py_XDECREF(kwds);
    return result;
}

/* ---------------------------------------------------------- contention
 * An acquire is contended when it cannot take the lock at once. The wrapper first calls the
 * native acquire with blocking=False (prebuilt arguments, no allocation); only when that fails
 * does it read the clock and make the caller's own blocking call. The native blocking acquire
 * starts with the same non-blocking attempt, so the lock behaves exactly as it does natively.
 */

static PyObject *lp_try_args = NULL;        /* (False,) */
static PyObject *lp_str_blocking = NULL;    /* "blocking" */
static PyObject *lp_str_timeout = NULL;     /* "timeout" */

/* 0 on success; called once at import. */
static inline int lp_contention_init(void)
{
    if (lp_try_args == NULL && (lp_try_args = PyTuple_Pack(1, Py_False)) == NULL)
        return -1;
    if (lp_str_blocking == NULL && (lp_str_blocking = PyUnicode_InternFromString("blocking")) == NULL)
        return -1;
    if (lp_str_timeout == NULL && (lp_str_timeout = PyUnicode_InternFromString("timeout")) == NULL)
        return -1;
    return 0;
}

/* m(self, False): a non-blocking attempt. */
static inline PyObject *lp_call_try(const lp_native_method *m, PyObject *self)
{
    PyObject *const *args = &PyTuple_GET_ITEM(lp_try_args, 0);
    switch (m->kind) {
    case LP_CALL_VARARGS: return m->meth(self, lp_try_args);
    case LP_CALL_VARARGS_KW: return ((PyCFunctionWithKeywords)(void (*)(void))m->meth)(self, lp_try_args, NULL);
    case LP_CALL_FAST: return ((lp_fastcall_fn)(void (*)(void))m->meth)(self, args, 1);
    case LP_CALL_FAST_KW: return ((lp_fastcall_kw_fn)(void (*)(void))m->meth)(self, args, 1, NULL);
    default: return lp_call_generic(m, self, lp_try_args, NULL);
    }
}

/* The non-blocking attempt without a method call. CPython 3.9 to 3.13 lay their lock objects
 * out as below (Modules/_threadmodule.c); the attempt does what the native acquire does when
 * it succeeds at once: take the underlying lock without waiting, then mark the object held.
 * It skips the argument parsing of a call with blocking=False, which costs as much as the rest
 * of the acquire. lp_direct_try_verify() checks the layout at import against the native
 * methods; where it does not match (another version or build), the method call is used. */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock_lock;
    PyObject *in_weakreflist;
    char locked;
} lp_native_lock;

#if PY_VERSION_HEX >= 0x030D0000
typedef unsigned long long lp_thread_owner; /* PyThread_ident_t */
#else
typedef unsigned long lp_thread_owner;
#endif

typedef struct {
    PyObject_HEAD
    PyThread_type_lock rlock_lock;
    lp_thread_owner rlock_owner;
    unsigned long rlock_count;
    PyObject *in_weakreflist;
} lp_native_rlock;

enum { LP_TRY_BY_METHOD = 0, LP_TRY_LOCK, LP_TRY_RLOCK };

#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define LP_DIRECT_TRY_POSSIBLE 1
#else
#define LP_DIRECT_TRY_POSSIBLE 0
#endif

/* 1: acquired; 0: held by another thread; -1 (RLock): held by this thread, a nested acquire
 * the native method must count. */
static inline int lp_lock_try_direct(PyObject *lock)
{
    lp_native_lock *l = (lp_native_lock *)lock;
    if (PyThread_acquire_lock_timed(l->lock_lock, 0, 0) != PY_LOCK_ACQUIRED)
        return 0;
    l->locked = 1;
    return 1;
}

/* The native release of a lock this thread took with lp_lock_try_direct(). */
static inline void lp_lock_release_direct(PyObject *lock)
{
    lp_native_lock *l = (lp_native_lock *)lock;
    l->locked = 0;
    PyThread_release_lock(l->lock_lock);
}

static inline int lp_rlock_try_direct(PyObject *rlock)
{
    lp_native_rlock *r = (lp_native_rlock *)rlock;
    lp_thread_owner me = (lp_thread_owner)PyThread_get_thread_ident();
    if (r->rlock_count > 0)
        return r->rlock_owner == me ? -1 : 0;
    if (PyThread_acquire_lock_timed(r->rlock_lock, 0, 0) != PY_LOCK_ACQUIRED)
        return 0;
    r->rlock_owner = me;
    r->rlock_count = 1;
    return 1;
}

/* Whether this thread holds the RLock, as the native _is_owned() says. */
static inline int lp_rlock_owned_direct(PyObject *rlock)
{
    lp_native_rlock *r = (lp_native_rlock *)rlock;
    return r->rlock_count > 0 && r->rlock_owner == (lp_thread_owner)PyThread_get_thread_ident();
}

/* A nested acquire of an RLock this thread holds, as the native acquire counts it: 0, or -1
 * with the native OverflowError set when the count would wrap. */
static inline int lp_rlock_nest_direct(PyObject *rlock)
{
    lp_native_rlock *r = (lp_native_rlock *)rlock;
    unsigned long count = r->rlock_count + 1;
    if (count <= r->rlock_count) {
        PyErr_SetString(PyExc_OverflowError, "Internal lock count overflowed");
        return -1;
    }
    r->rlock_count = count;
    return 0;
}

/* The release of a nested level of an RLock this thread holds, as the native release counts
 * it: 1 done; 0 when this is not such a release (the native method decides, and raises). */
static inline int lp_rlock_unnest_direct(PyObject *rlock)
{
    lp_native_rlock *r = (lp_native_rlock *)rlock;
    if (r->rlock_count < 2 || r->rlock_owner != (lp_thread_owner)PyThread_get_thread_ident())
        return 0;
    r->rlock_count--;
    return 1;
}

/* The attempt by try_kind: 1 acquired, 0 not, -1 with an exception set. */
static inline int lp_try_acquire(const lp_native_method *acquire, int try_kind, PyObject *self)
{
    if (try_kind == LP_TRY_LOCK)
        return lp_lock_try_direct(self);
    if (try_kind == LP_TRY_RLOCK) {
        int r = lp_rlock_try_direct(self);
        if (r >= 0)
            return r;
    }
    PyObject *result = lp_call_try(acquire, self);
    if (result == NULL)
        return -1;
    int acquired = result == Py_True;
    Py_DECREF(result);
    return acquired;
}

/* Whether a native type has the layout above: its size and weakref slot first, so the direct
 * attempt below never runs on an object it would misread. */
static inline int lp_native_layout_matches(PyTypeObject *type, int try_kind)
{
    if (!LP_DIRECT_TRY_POSSIBLE)
        return 0;
    if (try_kind == LP_TRY_LOCK)
        return type->tp_basicsize == (Py_ssize_t)sizeof(lp_native_lock)
               && type->tp_weaklistoffset == (Py_ssize_t)offsetof(lp_native_lock, in_weakreflist);
    return type->tp_basicsize == (Py_ssize_t)sizeof(lp_native_rlock)
           && type->tp_weaklistoffset == (Py_ssize_t)offsetof(lp_native_rlock, in_weakreflist);
}

/* What acquire(*args, **kwargs) asks for, judged without running any code of the caller's
 * objects: only exact bools and ints (blocking) and ints and floats (timeout) are read. */
enum {
    LP_ACQUIRE_BLOCKING,     /* blocks until acquired or timed out: try first, then time the wait */
    LP_ACQUIRE_NONBLOCKING,  /* never waits: the native call with the caller's arguments */
    LP_ACQUIRE_UNCLEAR,      /* arguments of other types, or invalid: the native call decides */
};

/* 1 for a timeout the native call accepts and may wait for, 0 for a zero timeout (a
 * non-blocking attempt), -1 for anything else (the native call raises, or reads it its way). */
static inline int lp_timeout_kind(PyObject *timeout)
{
    double seconds;
    if (PyLong_CheckExact(timeout)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(timeout, &overflow);
        if (overflow || (value == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        seconds = (double)value;
    }
    else if (PyFloat_Check(timeout)) {
        seconds = PyFloat_AS_DOUBLE(timeout);
    }
    else {
        return -1;
    }
    if (seconds == 0.0)
        return 0;
    /* -1 is "no timeout"; other negatives, NaN and huge values make the native call raise (its
     * bound, PY_TIMEOUT_MAX, is far above a year on every platform). */
    return (seconds == -1.0 || (seconds > 0.0 && seconds <= 31536000.0)) ? 1 : -1;
}

static inline int lp_classify_acquire(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *blocking = NULL, *timeout = NULL;
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2)
        return LP_ACQUIRE_UNCLEAR;
    if (nargs >= 1)
        blocking = args[0];
    if (nargs == 2)
        timeout = args[1];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (name == lp_str_blocking && blocking == NULL)
            blocking = args[nargs + i];
        else if (name == lp_str_timeout && timeout == NULL)
            timeout = args[nargs + i];
        else
            return LP_ACQUIRE_UNCLEAR; /* not interned, unknown or repeated: native decides */
    }
    if (blocking != NULL) {
        if (!(PyBool_Check(blocking) || PyLong_CheckExact(blocking)))
            return LP_ACQUIRE_UNCLEAR;
        if (PyObject_IsTrue(blocking) == 0) /* runs no Python code for exact bools and ints */
            return LP_ACQUIRE_NONBLOCKING;
    }
    if (timeout != NULL) {
        int kind = lp_timeout_kind(timeout);
        if (kind < 0)
            return LP_ACQUIRE_UNCLEAR;
        if (kind == 0)
            return LP_ACQUIRE_NONBLOCKING;
    }
    return LP_ACQUIRE_BLOCKING;
}

/* Threads (or asyncio tasks) blocked on one lock right now, so that the release that ends
 * their wait can be told for how long its hold blocked them (its "blocking hold"). */
typedef struct {
    int waiters;
    int64_t since; /* when the current stretch of blocking began: a first waiter's start, or
                    * the last release, after which the remaining waiters wait on the next hold */
    int64_t carry; /* blocked time of waiters that gave up, not yet credited to a release */
} lp_blocking;

static inline void lp_blocking_enter(lp_blocking *b, int64_t now)
{
    if (b->waiters++ == 0)
        b->since = now;
}

/* A waiter is done. One that gave up after really waiting (a timeout, an exception from a
 * signal handler, a cancelled task) was still blocked by the holder: its time is carried to
 * the holder's release. */
static inline void lp_blocking_leave(lp_blocking *b, int waited, int acquired, int64_t now)
{
    b->waiters--;
    if (b->waiters == 0 && waited && !acquired) {
        b->carry += now - b->since;
        b->since = now;
    }
}

static inline int lp_blocking_pending(const lp_blocking *b)
{
    return b->waiters != 0 || b->carry != 0;
}

/* At a release: the blocked time to credit to it (0 for none). */
static inline int64_t lp_blocking_release(lp_blocking *b, int64_t released_at)
{
    int64_t blocked = b->carry;
    if (b->waiters != 0) {
        blocked += released_at - b->since;
        b->since = released_at;
    }
    b->carry = 0;
    return blocked;
}

/* xorshift64*: the random draws of wait-proportional sampling. The GIL serialises callers. */
static inline uint64_t lp_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ------------------------------------------------------ method installation
 * The wrapper types expose exactly the method set of the native type on the running Python
 * (for example RLock._recursion_count only where the native RLock has it), so methods are
 * added to the type's dict at import time instead of being fixed at compile time.
 */

static inline int lp_type_set_method(PyTypeObject *type, PyMethodDef *def)
{
    PyObject *descr = PyDescr_NewMethod(type, def);
    if (descr == NULL)
        return -1;
    int rc = PyDict_SetItemString(type->tp_dict, def->ml_name, descr);
    Py_DECREF(descr);
    PyType_Modified(type);
    return rc;
}

/* -------------------------------------------------------------- stack walk */

/* The running Python frame (borrowed), or NULL. */
static inline PyObject *lp_current_frame(void)
{
    return (PyObject *)PyEval_GetFrame();
}

/* Frame accessors for every supported version: new references, and the offset of the current
 * instruction in bytes (3.10 counts f_lasti in code units, 3.9 in bytes). */
#if PY_VERSION_HEX >= 0x030B0000
static inline PyObject *lp_frame_globals(PyObject *f) { return PyFrame_GetGlobals((PyFrameObject *)f); }
static inline PyObject *lp_frame_code(PyObject *f) { return (PyObject *)PyFrame_GetCode((PyFrameObject *)f); }
static inline int lp_frame_lasti(PyObject *f) { return PyFrame_GetLasti((PyFrameObject *)f); }
#else
static inline PyObject *lp_frame_globals(PyObject *f)
{
    PyObject *globals = ((PyFrameObject *)f)->f_globals;
    Py_INCREF(globals);
    return globals;
}
static inline PyObject *lp_frame_code(PyObject *f)
{
    PyObject *code = (PyObject *)((PyFrameObject *)f)->f_code;
    Py_INCREF(code);
    return code;
}
#if PY_VERSION_HEX >= 0x030A0000
static inline int lp_frame_lasti(PyObject *f) { return ((PyFrameObject *)f)->f_lasti * (int)sizeof(_Py_CODEUNIT); }
#else
static inline int lp_frame_lasti(PyObject *f) { return ((PyFrameObject *)f)->f_lasti; }
#endif
#endif

/* The deepest stack a Recorder can be asked to keep (the config allows 1..512). */
#define LP_MAX_FRAMES 512

typedef struct {
    PyObject *code; /* borrowed while walking; owned once stored in an entry */
    int lasti;      /* byte offset of the current instruction */
} lp_frame_ref;

/* Fills out[0..max) leaf first with the current thread's Python frames and returns how many
 * were stored; *depth receives the whole depth (capped at LP_MAX_WALK), so the caller knows how
 * many frames were cut. Line numbers are not computed here: they cost ~35 ns a frame on 3.11+,
 * and are resolved from (code, offset) at export.
 *
 * On 3.11+ the walk reads the interpreter's own frames (internal/pycore_frame.h, which Cython
 * includes in every module for 3.11+ as well): the public PyFrame_GetBack() would create a frame
 * object for every frame that has none yet, the common case in real code, at ~40 ns a frame and
 * with an allocation that can start the garbage collector. Incomplete frames (being set up, or
 * the C-stack shims of 3.12+) are skipped, as PyFrame_GetBack() skips them. */
#define LP_MAX_WALK 4096

#if PY_VERSION_HEX >= 0x030B0000
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include "internal/pycore_frame.h"

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
#endif

static inline int lp_capture_stack(lp_frame_ref *out, int max, int *depth)
{
    int n = 0, total = 0;
#if PY_VERSION_HEX >= 0x030B0000
    _PyInterpreterFrame *frame = lp_top_frame(PyThreadState_Get());
    while (frame != NULL && total < LP_MAX_WALK) {
        if (!_PyFrame_IsIncomplete(frame)) {
            if (n < max) {
                int lasti = _PyInterpreterFrame_LASTI(frame);
                out[n].code = lp_interpreter_frame_code(frame); /* alive while it runs */
                out[n].lasti = lasti < 0 ? -1 : lasti * (int)sizeof(_Py_CODEUNIT);
                n++;
            }
            total++;
        }
        frame = frame->previous;
    }
#else
    PyFrameObject *frame = PyEval_GetFrame(); /* borrowed, and so is every f_back */
    while (frame != NULL && total < LP_MAX_WALK) {
        if (n < max) {
            out[n].code = (PyObject *)frame->f_code;
            out[n].lasti = lp_frame_lasti((PyObject *)frame);
            n++;
        }
        total++;
        frame = frame->f_back;
    }
#endif
    *depth = total;
    return n;
}

/* The name of the local variable of `frame` (a running frame object) bound to `target`,
 * directly or through a closure cell, or NULL (borrowed); *first receives the value of its
 * first argument, or NULL (borrowed). It reads the frame's own slots: frame.f_locals would,
 * on 3.9 to 3.12, leave a dict on the frame that keeps every local alive after the program
 * deletes it. */
static inline PyObject *lp_cell_contents(PyObject *v)
{
    return (v != NULL && PyCell_Check(v)) ? PyCell_GET(v) : v;
}

/* The name of local slot i of code (3.9 and 3.10: its locals, then its cell and free
 * variables, in that order), or NULL when there is no such slot (borrowed). */
static inline PyObject *lp_code_local_name(PyCodeObject *co, Py_ssize_t i)
{
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
            return lp_code_local_name(co, i);
    }
    return NULL;
}

/* ------------------------------------------------------- assigned names
 * The name a creation site stores the new lock under, read from the bytecode after the call,
 * after one forward jump at most (`x = Lock() if c else None`, a dataclass field's
 * default_factory): an attribute of a plain variable (`self._lock = Lock()`) or a module or
 * class variable (`_lock = Lock()`), which names every lock the site makes; else a local
 * (`lock = Lock()`), which the caller uses only for a site that keeps making locks, since a
 * factory's local hands the lock on to be named where it is released. Opcode numbers differ
 * per version: the caller classifies them (from dis.opmap) into `classes`. Runs no bytecode
 * and calls nothing that could.
 */

enum {
    LP_OP_OTHER = 0,
    LP_OP_CACHE,          /* an inline cache unit (3.11+) */
    LP_OP_EXTENDED_ARG,
    LP_OP_LOAD,           /* a plain variable, the object of a following STORE_ATTR */
    LP_OP_STORE_NAME,     /* STORE_NAME, STORE_GLOBAL */
    LP_OP_STORE_ATTR,
    LP_OP_STORE_FAST,     /* a local slot */
    LP_OP_STORE_FAST_PAIR, /* 3.13's STORE_FAST_LOAD_FAST and STORE_FAST_STORE_FAST: the
                            * argument's high nibble is the slot stored into first */
    LP_OP_STORE_DEREF,    /* a cell: a local slot on 3.11+, a cell or free variable before */
    LP_OP_JUMP_FORWARD,   /* relative: bytes on 3.9, code units since */
    LP_OP_JUMP_ABSOLUTE,  /* 3.9 (bytes) and 3.10 (code units) */
};

/* What an assigned name is. */
enum { LP_NAME_NONE = 0, LP_NAME_SITE, LP_NAME_LOCAL };

/* The class of the instruction at unit *i (its caches skipped before it, at most three
 * EXTENDED_ARG prefixes folded into *arg); *i moves past it. -1 at the end of the code. */
static inline int lp_next_instruction(const unsigned char *units, Py_ssize_t nunits,
                                      const unsigned char *classes, Py_ssize_t *i, unsigned int *arg)
{
    unsigned int extended = 0;
    int prefixes = 0;
    for (; *i < nunits; (*i)++) {
        int cls = classes[units[2 * *i]];
        if (cls == LP_OP_CACHE)
            continue;
        extended = (extended << 8) | units[2 * *i + 1];
        if (cls == LP_OP_EXTENDED_ARG) {
            if (++prefixes > 3)
                return -1;
            continue;
        }
        (*i)++;
        *arg = extended;
        return cls;
    }
    return -1;
}

/* The name the instructions after the one at byte `offset` of code store its result under
 * (borrowed from the code), or NULL; returns what it is (LP_NAME_*), or -1 with an exception
 * set when the code cannot be read. */
static inline int lp_assigned_name(PyObject *code, int offset, const unsigned char *classes, PyObject **name)
{
    PyCodeObject *co = (PyCodeObject *)code;
    *name = NULL;
    if (offset < 0)
        return LP_NAME_NONE;
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *bytecode = PyCode_GetCode(co); /* without the specializations, caches as CACHE */
    if (bytecode == NULL)
        return -1;
#else
    PyObject *bytecode = co->co_code;
    Py_INCREF(bytecode);
#endif
    const unsigned char *units = (const unsigned char *)PyBytes_AS_STRING(bytecode);
    Py_ssize_t nunits = PyBytes_GET_SIZE(bytecode) / 2, i = offset / 2 + 1;
    unsigned int arg = 0;
    int cls = lp_next_instruction(units, nunits, classes, &i, &arg);
#if PY_VERSION_HEX < 0x030A0000
    Py_ssize_t unit_arg = arg / 2; /* 3.9 counts jumps in bytes */
#else
    Py_ssize_t unit_arg = arg;
#endif
    if (cls == LP_OP_JUMP_FORWARD || (cls == LP_OP_JUMP_ABSOLUTE && unit_arg > i)) {
        i = cls == LP_OP_JUMP_FORWARD ? i + unit_arg : unit_arg;
        cls = lp_next_instruction(units, nunits, classes, &i, &arg);
    }
    if (cls == LP_OP_LOAD)
        cls = lp_next_instruction(units, nunits, classes, &i, &arg) == LP_OP_STORE_ATTR ? LP_OP_STORE_ATTR : -1;
    Py_DECREF(bytecode); /* the names are the code's own */
    switch (cls) {
    case LP_OP_STORE_NAME:
    case LP_OP_STORE_ATTR:
        if (arg < (unsigned int)PyTuple_GET_SIZE(co->co_names))
            *name = PyTuple_GET_ITEM(co->co_names, arg);
        return *name != NULL ? LP_NAME_SITE : LP_NAME_NONE;
    case LP_OP_STORE_FAST_PAIR:
        arg >>= 4;
        /* fall through */
    case LP_OP_STORE_FAST:
        *name = lp_code_local_name(co, arg);
        break;
    case LP_OP_STORE_DEREF:
#if PY_VERSION_HEX >= 0x030B0000
        *name = lp_code_local_name(co, arg);
#else
        *name = lp_code_local_name(co, (Py_ssize_t)co->co_nlocals + (Py_ssize_t)arg);
#endif
        break;
    }
    return *name != NULL ? LP_NAME_LOCAL : LP_NAME_NONE;
}

/* ------------------------------------------------------------- event table
 * Captured events are summed per key (lock, thread, task, stack, outcome). Entries are malloc'd with the
 * frames inline and hold strong references to the lock's info object, the task name and the code
 * objects. The slot array never grows: once max_entries keys exist, events for new keys are
 * counted as dropped, so memory is bounded however long the program runs. An entry whose
 * acquire is still waiting for its release (pending > 0) is never evicted, because the lock
 * holds a pointer to it until then.
 */

typedef struct lp_entry {
    uint64_t hash;
    PyObject *lock_info;
    unsigned long thread_id;
    unsigned long thread_native_id;
    Py_ssize_t task_id; /* 0: not in a task */
    PyObject *task_name; /* NULL when not in a task */
    /* Sampled at capture_pct, raw counts (the collector upscales them). */
    int64_t acquire_count;
    int64_t release_count;
    int64_t release_hold_ns;
    /* Sampled in proportion to their length, already weighted (unbiased estimates). */
    double contended_count;
    int64_t acquire_wait_ns;
    int64_t blocking_hold_ns;
    int64_t condition_wait_ns; /* Condition.wait() waiting for a notify, not for the lock */
    int timed_out; /* part of the key: these waits ended in a timeout */
    int pending;
    int nframes;
    int omitted;
    lp_frame_ref frames[1]; /* nframes of them */
} lp_entry;

static inline int lp_entry_is_idle(const lp_entry *e)
{
    return e->acquire_count == 0 && e->release_count == 0 && e->contended_count == 0.0
           && e->acquire_wait_ns == 0 && e->blocking_hold_ns == 0 && e->condition_wait_ns == 0;
}

typedef struct {
    lp_entry **slots;
    size_t mask;
    size_t count;
    size_t max_entries;
    uint64_t dropped;
} lp_table;

typedef struct {
    PyObject *lock_info;
    unsigned long thread_id;
    unsigned long thread_native_id;
    Py_ssize_t task_id;
    PyObject *task_name;
    const lp_frame_ref *frames;
    int nframes;
    int omitted;
    int timed_out;
} lp_key;

static inline int lp_table_init(lp_table *t, size_t max_entries)
{
    size_t capacity = 16;
    while (capacity < max_entries + max_entries / 2) /* load factor at most 2/3 */
        capacity <<= 1;
    t->slots = (lp_entry **)PyMem_RawCalloc(capacity, sizeof(lp_entry *));
    if (t->slots == NULL)
        return -1;
    t->mask = capacity - 1;
    t->count = 0;
    t->max_entries = max_entries;
    t->dropped = 0;
    return 0;
}

static inline uint64_t lp_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

static uint64_t lp_key_hash(const lp_key *k)
{
    uint64_t h = (uint64_t)(uintptr_t)k->lock_info;
    h = lp_mix(h, (uint64_t)k->thread_id);
    h = lp_mix(h, (uint64_t)k->task_id);
    h = lp_mix(h, (uint64_t)k->omitted);
    h = lp_mix(h, (uint64_t)k->timed_out);
    for (int i = 0; i < k->nframes; i++) {
        h = lp_mix(h, (uint64_t)(uintptr_t)k->frames[i].code);
        h = lp_mix(h, (uint64_t)(uint32_t)k->frames[i].lasti);
    }
    return h;
}

static int lp_entry_matches(const lp_entry *e, uint64_t hash, const lp_key *k)
{
    if (e->hash != hash || e->lock_info != k->lock_info || e->thread_id != k->thread_id
        || e->task_id != k->task_id || e->nframes != k->nframes || e->omitted != k->omitted
        || e->timed_out != k->timed_out)
        return 0;
    for (int i = 0; i < k->nframes; i++) {
        if (e->frames[i].code != k->frames[i].code || e->frames[i].lasti != k->frames[i].lasti)
            return 0;
    }
    return 1;
}

static lp_entry *lp_entry_new(uint64_t hash, const lp_key *k)
{
    size_t size = sizeof(lp_entry) + (size_t)(k->nframes > 0 ? k->nframes - 1 : 0) * sizeof(lp_frame_ref);
    lp_entry *e = (lp_entry *)PyMem_RawCalloc(1, size);
    if (e == NULL)
        return NULL;
    e->hash = hash;
    e->lock_info = k->lock_info;
    Py_INCREF(e->lock_info);
    e->thread_id = k->thread_id;
    e->thread_native_id = k->thread_native_id;
    e->task_id = k->task_id;
    e->task_name = k->task_name;
    Py_XINCREF(e->task_name);
    e->nframes = k->nframes;
    e->omitted = k->omitted;
    e->timed_out = k->timed_out;
    for (int i = 0; i < k->nframes; i++) {
        e->frames[i] = k->frames[i];
        Py_INCREF(e->frames[i].code);
    }
    return e;
}

/* Releasing the references can run arbitrary code (a weakref callback on a dying code object),
 * so callers free entries only once the table is consistent again. */
static inline void lp_entry_free(lp_entry *e)
{
    Py_DECREF(e->lock_info);
    Py_XDECREF(e->task_name);
    for (int i = 0; i < e->nframes; i++)
        Py_DECREF(e->frames[i].code);
    PyMem_RawFree(e);
}

/* The entry for `k`, created if needed; NULL when the table is full or memory ran out
 * (counted in t->dropped). */
static inline lp_entry *lp_table_upsert(lp_table *t, const lp_key *k)
{
    uint64_t hash = lp_key_hash(k);
    size_t i = (size_t)hash & t->mask;
    for (;;) {
        lp_entry *e = t->slots[i];
        if (e == NULL)
            break;
        if (lp_entry_matches(e, hash, k))
            return e;
        i = (i + 1) & t->mask;
    }
    if (t->count >= t->max_entries) {
        t->dropped++;
        return NULL;
    }
    lp_entry *e = lp_entry_new(hash, k);
    if (e == NULL) {
        t->dropped++;
        return NULL;
    }
    t->slots[i] = e;
    t->count++;
    return e;
}

/* Removes every entry with no counts and no pending hold, rebuilding the probe sequences.
 * The removed entries are returned in `evicted` (capacity t->count) for the caller to free. */
static inline size_t lp_table_evict_idle(lp_table *t, lp_entry **evicted)
{
    size_t capacity = t->mask + 1, kept = 0, removed = 0;
    lp_entry **live = evicted; /* reuse the caller's buffer from the end for the kept entries */
    size_t live_end = t->count;
    for (size_t i = 0; i < capacity; i++) {
        lp_entry *e = t->slots[i];
        if (e == NULL)
            continue;
        t->slots[i] = NULL;
        if (e->pending == 0 && lp_entry_is_idle(e))
            evicted[removed++] = e;
        else
            live[--live_end] = e;
    }
    for (size_t j = live_end; j < t->count; j++) {
        lp_entry *e = live[j];
        size_t i = (size_t)e->hash & t->mask;
        while (t->slots[i] != NULL)
            i = (i + 1) & t->mask;
        t->slots[i] = e;
        kept++;
    }
    t->count = kept;
    return removed;
}

/* ------------------------------------------------------------- long waits
 * The longest waits of a period, kept as they happened (not sampled) in a fixed array: a slot
 * holds strong references to the lock's info, the task name and the waiter's innermost code
 * objects. */

#define LP_LONG_WAITS 10
#define LP_LONG_WAIT_FRAMES 8

typedef struct {
    int64_t wait_ns; /* 0: an empty slot */
    PyObject *lock_info;
    unsigned long thread_id;
    Py_ssize_t task_id;
    PyObject *task_name;
    int timed_out;
    int nframes;
    lp_frame_ref frames[LP_LONG_WAIT_FRAMES];
} lp_long_wait;

/* The slot a wait of wait_ns would replace (an empty one or the shortest), or NULL when every
 * kept wait is at least as long. */
static inline lp_long_wait *lp_long_wait_slot(lp_long_wait *slots, int64_t wait_ns)
{
    lp_long_wait *shortest = &slots[0];
    for (int i = 1; i < LP_LONG_WAITS; i++) {
        if (slots[i].wait_ns < shortest->wait_ns)
            shortest = &slots[i];
    }
    return wait_ns > shortest->wait_ns ? shortest : NULL;
}

static inline void lp_long_wait_clear(lp_long_wait *w)
{
    PyObject *lock_info = w->lock_info, *task_name = w->task_name;
    PyObject *codes[LP_LONG_WAIT_FRAMES];
    int n = w->nframes;
    for (int i = 0; i < n; i++)
        codes[i] = w->frames[i].code;
    memset(w, 0, sizeof(*w));
    /* Released once the slot is empty: a release may run code that reads the slots. */
    Py_XDECREF(lock_info);
    Py_XDECREF(task_name);
    for (int i = 0; i < n; i++)
        Py_DECREF(codes[i]);
}

/* Fills an empty slot; takes new references. */
static inline void lp_long_wait_fill(lp_long_wait *w, int64_t wait_ns, PyObject *lock_info,
                                     unsigned long thread_id, Py_ssize_t task_id, PyObject *task_name,
                                     int timed_out, const lp_frame_ref *frames, int nframes)
{
    w->wait_ns = wait_ns;
    w->lock_info = lock_info;
    Py_INCREF(lock_info);
    w->thread_id = thread_id;
    w->task_id = task_id;
    w->task_name = task_name;
    Py_XINCREF(task_name);
    w->timed_out = timed_out;
    w->nframes = nframes < LP_LONG_WAIT_FRAMES ? nframes : LP_LONG_WAIT_FRAMES;
    for (int i = 0; i < w->nframes; i++) {
        w->frames[i] = frames[i];
        Py_INCREF(frames[i].code);
    }
}

#endif /* LOCKPROF_LOCKCORE_H */
