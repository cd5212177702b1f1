/* Calling a native lock's methods from C: a method's C function called directly, dispatching on
 * its calling convention; the non-blocking attempt through the method (each core's lp_try_acquire
 * falls back on it); what an acquire's arguments ask for; methods installed on the wrapper types.
 * Only a call with arguments passed on to a native method of the tuple-and-dict convention builds
 * Python objects, as the interpreter would. Public C API only: both cores use all of it. */
#ifndef LOCKPROF_NATIVE_H
#define LOCKPROF_NATIVE_H

#include <Python.h>
#include <stddef.h>
#include "_sync.h"

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

/* m(self) with no arguments. A native lock's release is METH_NOARGS on every CPython: tested
 * first, it costs a compare rather than the switch's table jump on every release. */
static inline PyObject *lp_call0(const lp_native_method *m, PyObject *self)
{
    if (m->kind == LP_CALL_NOARGS)
        return m->meth(self, NULL);
    switch (m->kind) {
    case LP_CALL_VARARGS: return m->meth(self, lp_empty_tuple);
    case LP_CALL_VARARGS_KW: return ((PyCFunctionWithKeywords)(void (*)(void))m->meth)(self, lp_empty_tuple, NULL);
    case LP_CALL_FAST: return ((lp_fastcall_fn)(void (*)(void))m->meth)(self, NULL, 0);
    case LP_CALL_FAST_KW: return ((lp_fastcall_kw_fn)(void (*)(void))m->meth)(self, NULL, 0, NULL);
    default: return lp_call_generic(m, self, NULL, NULL);
    }
}

/* m(self), and only once it succeeded, *depth = value: an RLock wrapper's tracked depth follows
 * a release the native method accepted (another thread's release raises and changes nothing). */
static inline PyObject *lp_call0_then_store(const lp_native_method *m, PyObject *self, long *depth, long value)
{
    PyObject *result = lp_call0(m, self);
    if (result != NULL)
        lp_store_long(depth, value);
    return result;
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

/* 0 on success; called once at import (lp_module_init). */
static inline int lp_native_init(void)
{
    if (lp_empty_tuple == NULL && (lp_empty_tuple = PyTuple_New(0)) == NULL)
        return -1;
    if (lp_try_args == NULL && (lp_try_args = PyTuple_Pack(1, Py_False)) == NULL)
        return -1;
    if (lp_str_blocking == NULL && (lp_str_blocking = PyUnicode_InternFromString("blocking")) == NULL)
        return -1;
    if (lp_str_timeout == NULL && (lp_str_timeout = PyUnicode_InternFromString("timeout")) == NULL)
        return -1;
    return 0;
}

/* m(self, False): a non-blocking attempt. The native acquire's conventions, tested first:
 * tuple and dict up to 3.13, Argument Clinic's fast call from 3.14. */
static inline PyObject *lp_call_try(const lp_native_method *m, PyObject *self)
{
    PyObject *const *args = &PyTuple_GET_ITEM(lp_try_args, 0);
    if (m->kind == LP_CALL_VARARGS_KW)
        return ((PyCFunctionWithKeywords)(void (*)(void))m->meth)(self, lp_try_args, NULL);
    if (m->kind == LP_CALL_FAST_KW)
        return ((lp_fastcall_kw_fn)(void (*)(void))m->meth)(self, args, 1, NULL);
    switch (m->kind) {
    case LP_CALL_VARARGS: return m->meth(self, lp_try_args);
    case LP_CALL_FAST: return ((lp_fastcall_fn)(void (*)(void))m->meth)(self, args, 1);
    default: return lp_call_generic(m, self, lp_try_args, NULL);
    }
}

/* 1 for a method's result True, 0 for any other, -1 for NULL (an exception set). */
static inline int lp_bool_result(PyObject *result)
{
    if (result == NULL)
        return -1;
    int value = result == Py_True;
    Py_DECREF(result);
    return value;
}

/* m(self, False) through the native method: 1 acquired, 0 not, -1 with an exception set. The
 * cores' attempt (lp_try_acquire) falls back on it. */
static inline int lp_try_by_method(const lp_native_method *acquire, PyObject *self)
{
    PyObject *result = lp_call_try(acquire, self);
    if (result == NULL)
        return -1;
    int acquired = result == Py_True;
    Py_DECREF(result);
    return acquired;
}

/* How a wrapper type's acquire is tried without blocking: through the native method, or (the
 * internals core, where the layout checked out at import) on the lock object itself: a Lock of
 * a PyThread_type_lock or of a PyMutex, an RLock. */
enum { LP_TRY_BY_METHOD = 0, LP_TRY_LOCK, LP_TRY_MUTEX_LOCK, LP_TRY_RLOCK };

/* Whether an acquire may block: the one decision every wrapper makes before it tries a lock or
 * times a call, from the blocking and timeout arguments however they were passed. It runs no
 * code of the caller's objects: only exact bools and ints (blocking) and ints and floats
 * (timeout) are read; anything else is left to the call. */
enum {
    LP_ACQUIRE_BLOCKING,     /* may wait: try first, then time the wait */
    LP_ACQUIRE_NONBLOCKING,  /* never waits: the call with the caller's arguments, untimed */
    LP_ACQUIRE_UNCLEAR,      /* arguments of other types, or invalid: the call, timed, decides */
};

/* How the callee reads a timeout. */
enum {
    LP_TIMEOUT_NATIVE,    /* a native lock's (and gevent's): -1 waits without limit, 0 never,
                           * other negatives, NaN, huge values and None raise */
    LP_TIMEOUT_SEMAPHORE, /* threading.Semaphore's: None waits without limit, none at or below
                           * zero waits */
};

/* 1 for a timeout that may wait, 0 for one that never does, -1 for anything else (the call
 * raises, or reads it its way). */
static inline int lp_timeout_kind(PyObject *timeout, int timeouts)
{
    double seconds;
    if (timeout == Py_None && timeouts == LP_TIMEOUT_SEMAPHORE)
        return 1;
    if (PyLong_CheckExact(timeout)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(timeout, &overflow);
        if (value == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return -1;
        }
        seconds = overflow ? (double)overflow * 1e300 : (double)value;
    }
    else if (PyFloat_Check(timeout)) {
        seconds = PyFloat_AS_DOUBLE(timeout);
    }
    else {
        return -1;
    }
    if (seconds != seconds) /* NaN */
        return -1;
    if (timeouts == LP_TIMEOUT_SEMAPHORE)
        return seconds > 0.0 ? 1 : 0;
    if (seconds == 0.0)
        return 0;
    /* The native bound, PY_TIMEOUT_MAX, is far above a year on every platform. */
    return (seconds == -1.0 || (seconds > 0.0 && seconds <= 31536000.0)) ? 1 : -1;
}

/* The decision: blocking and timeout are NULL when not given. */
static inline int lp_acquire_kind(PyObject *blocking, PyObject *timeout, int timeouts)
{
    if (blocking != NULL && blocking != Py_True) {
        if (blocking == Py_False)
            return LP_ACQUIRE_NONBLOCKING;
        if (!PyLong_CheckExact(blocking))
            return LP_ACQUIRE_UNCLEAR;
        if (PyObject_IsTrue(blocking) == 0) /* runs no Python code for an exact int */
            return LP_ACQUIRE_NONBLOCKING;
    }
    if (timeout != NULL) {
        int kind = lp_timeout_kind(timeout, timeouts);
        if (kind < 0)
            return LP_ACQUIRE_UNCLEAR;
        if (kind == 0)
            return LP_ACQUIRE_NONBLOCKING;
    }
    return LP_ACQUIRE_BLOCKING;
}

/* A keyword argument of acquire(blocking, timeout) stored in *blocking or *timeout: 0, or -1
 * for a name that is not one of them, or given twice (the call decides). */
static inline int lp_acquire_keyword(PyObject *name, PyObject *value, PyObject **blocking, PyObject **timeout)
{
    PyObject **slot = NULL;
    if (name == lp_str_blocking)
        slot = blocking;
    else if (name == lp_str_timeout)
        slot = timeout;
    else if (PyUnicode_CheckExact(name)) /* a name not interned: compared, no Python code run */
        slot = PyUnicode_CompareWithASCIIString(name, "blocking") == 0 ? blocking
               : PyUnicode_CompareWithASCIIString(name, "timeout") == 0 ? timeout : NULL;
    if (slot == NULL || *slot != NULL)
        return -1;
    *slot = value;
    return 0;
}

/* lp_acquire_kind() of a native lock's acquire called with the vectorcall convention. */
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
        if (lp_acquire_keyword(PyTuple_GET_ITEM(kwnames, i), args[nargs + i], &blocking, &timeout) < 0)
            return LP_ACQUIRE_UNCLEAR;
    }
    return lp_acquire_kind(blocking, timeout, LP_TIMEOUT_NATIVE);
}

/* lp_acquire_kind() of acquire(*args, **kwargs) (kwargs: a dict or NULL) as gevent's locks read
 * their arguments, which is as the native ones do. */
static inline int lp_classify_acquire_call(PyObject *args, PyObject *kwargs)
{
    PyObject *blocking = NULL, *timeout = NULL, *name, *value;
    Py_ssize_t nargs = PyTuple_GET_SIZE(args), pos = 0;
    if (nargs > 2)
        return LP_ACQUIRE_UNCLEAR;
    if (nargs >= 1)
        blocking = PyTuple_GET_ITEM(args, 0);
    if (nargs == 2)
        timeout = PyTuple_GET_ITEM(args, 1);
    while (kwargs != NULL && PyDict_Next(kwargs, &pos, &name, &value)) {
        if (lp_acquire_keyword(name, value, &blocking, &timeout) < 0)
            return LP_ACQUIRE_UNCLEAR;
    }
    return lp_acquire_kind(blocking, timeout, LP_TIMEOUT_NATIVE);
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

/* ------------------------------------------------------ slots of lockprof's own types
 * Set at run time, where Cython has no spelling for them. */

/* Calls of obj's type go through func, stored in *field (a field of obj's own struct): no
 * argument tuple or dict is built, as the __call__ slot would. The type's slots are written by
 * its first object only: without the GIL, other threads read the flags of the type of the
 * objects they use and free. */
static inline void lp_type_set_vectorcall(PyObject *obj, void **field, void *func)
{
    PyTypeObject *type = Py_TYPE(obj);
    Py_ssize_t offset = (Py_ssize_t)((char *)field - (char *)obj);
    *field = func;
    if (type->tp_vectorcall_offset != offset) {
        type->tp_vectorcall_offset = offset;
        type->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
    }
}

/* f() for a C function of no arguments (_thread.allocate_lock) without the call protocol's
 * checks; any other callable is called normally. */
static inline PyObject *lp_call_noargs(PyObject *f)
{
    if (PyCFunction_CheckExact(f) && PyCFunction_GET_FLAGS(f) == METH_NOARGS)
        return PyCFunction_GET_FUNCTION(f)(PyCFunction_GET_SELF(f), NULL);
    return PyObject_CallNoArgs(f);
}

/* callable(first, *args) for arguments of the vectorcall convention (kwnames: the names of the
 * last ones), without a tuple or dict. */
static inline PyObject *lp_call_first(PyObject *callable, PyObject *first, PyObject *const *args,
                                      Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t n = nargs + (kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *small[8], **stack = small;
    if (n >= 8 && (stack = PyMem_Malloc((size_t)(n + 1) * sizeof(PyObject *))) == NULL)
        return PyErr_NoMemory();
    stack[0] = first;
    for (Py_ssize_t i = 0; i < n; i++)
        stack[i + 1] = args[i];
    PyObject *result = PyObject_Vectorcall(callable, stack, (size_t)nargs + 1, kwnames);
    if (stack != small)
        PyMem_Free(stack);
    return result;
}

/* object.__new__(type) without the call: for a type whose __new__ is object's. */
static inline PyObject *lp_object_new(PyTypeObject *type)
{
    return PyBaseObject_Type.tp_new(type, lp_empty_tuple, NULL);
}

static inline Py_ssize_t lp_vectorcall_nargs(size_t nargsf) { return PyVectorcall_NARGS(nargsf); }

static inline PyObject *lp_vectorcall(PyObject *callable, PyObject **args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(callable, (PyObject *const *)args, nargsf, kwnames);
}

/* A class's own tp_init, set once type() made it: its subclasses, and the class itself once
 * __init__ is set on it, get the generic slot, which looks __init__ up. (Not tp_new: a class
 * whose tp_new is its own refuses object.__new__(cls), which pickle and copy call.) */
static inline void lp_type_set_init(PyTypeObject *type, void *init)
{
    type->tp_init = (initproc)init;
}

/* ---------------------------------------------------------- bound methods
 * Whether method is function bound to obj (a bound method of a Python-level class's method). */
static inline int lp_bound_to(PyObject *method, PyObject *function, PyObject *obj)
{
    return PyMethod_Check(method) && PyMethod_GET_FUNCTION(method) == function && PyMethod_GET_SELF(method) == obj;
}

#endif /* LOCKPROF_NATIVE_H */
