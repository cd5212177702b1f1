/* The step of an awaitable written in Cython (_asyncio_primitives.pxi's _Step, what a profiled
 * asyncio primitive's acquire(), __aenter__ and __aexit__ return), in the slots through which
 * `await` steps it: tp_iternext (3.9, and 3.12+ whose SEND calls it) and am_send (3.10+,
 * PyIter_Send). A return of None is a NULL from tp_iternext with no exception set, so that a
 * completed __aenter__ or __aexit__ allocates nothing; on 3.10 and 3.11 am_send returns any
 * value without a StopIteration; 3.12+ raises acquire()'s StopIteration(True) again while it
 * is as made and unshared.
 *
 * And the method that makes such steps: a coroutine function whose call with the object alone
 * returns a step instead of the coroutine (acquire()). */
#ifndef LOCKPROF_AWAIT_H
#define LOCKPROF_AWAIT_H

#include <Python.h>

/* One step, as PyIter_Send: 1 with *result the value yielded, 0 with *result the value
 * returned (new references), -1 with an exception set. */
typedef int (*lp_step_fn)(PyObject *self, PyObject *arg, PyObject **result);
static lp_step_fn lp_step = NULL;

/* Whether the StopIteration a coroutine's return makes has the exception being handled as its
 * __context__: found by an interpreted generator's return at import (CPython changed it in
 * 3.13's lifetime), so that a step's StopIteration is made the same way. */
static int lp_stop_chains = 1;

static inline void lp_set_stop_chains(int chains)
{
    lp_stop_chains = chains;
}

#if PY_VERSION_HEX >= 0x030C0000 && !defined(Py_GIL_DISABLED)
/* 3.12+ makes the StopIteration(True) that ends an awaited acquire() (its SEND calls
 * tp_iternext), which costs more than the acquire: one is kept and raised again while it is
 * as made and nothing else holds it (SEND reads its value and drops it at once; one that
 * reached Python code and was kept or changed is left to its holder). With the GIL only: the
 * check that no other thread holds it needs an exact reference count. */
static PyObject *lp_stop_true = NULL;
static PyObject *lp_stop_true_args = NULL;

static inline int lp_stop_true_reusable(PyObject *stop)
{
    PyStopIterationObject *e = (PyStopIterationObject *)stop;
    /* Notes are in the dict up to 3.13 at least; the field is checked for versions that use it. */
    return Py_REFCNT(stop) == 1 && e->value == Py_True && e->args == lp_stop_true_args && e->dict == NULL
           && e->notes == NULL && e->traceback == NULL && e->context == NULL && e->cause == NULL
           && !e->suppress_context;
}

/* Raise the kept StopIteration(True) (or a new one kept from now on) and return 1; or return 0
 * while an exception is being handled where a coroutine's return makes its StopIteration's
 * __context__ of it (lp_stop_chains: 3.12 and the first 3.13s; later ones, as 3.14, do not). */
static inline int lp_raise_kept_stop_true(void)
{
    if (lp_stop_chains) {
        PyObject *handled = PyErr_GetHandledException();
        int handling = handled != NULL && handled != Py_None;
        Py_XDECREF(handled);
        if (handling)
            return 0;
    }
    if (lp_stop_true != NULL && lp_stop_true_reusable(lp_stop_true)) {
        PyErr_SetRaisedException(Py_NewRef(lp_stop_true));
        return 1;
    }
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, Py_True);
    if (stop == NULL)
        return 1;  /* its error raised instead */
    /* Kept and raised before the old ones are dropped: their deallocation may run code (a
     * finalizer of what a traceback held), which must find the new one shared already. */
    PyObject *old = lp_stop_true, *old_args = lp_stop_true_args;
    lp_stop_true_args = Py_NewRef(((PyStopIterationObject *)stop)->args);
    lp_stop_true = stop;
    PyErr_SetRaisedException(Py_NewRef(stop));
    Py_XDECREF(old_args);
    Py_XDECREF(old);
    return 1;
}
#endif

/* Raise StopIteration(value) as a coroutine's return of value does on this CPython: with the
 * exception being handled as its __context__ where lp_stop_chains. Up to 3.11 that makes no
 * exception object unless one is being handled; 3.12+ makes one. */
static inline void lp_raise_stop(PyObject *value)
{
    if (lp_stop_chains && !PyTuple_Check(value) && !PyExceptionInstance_Check(value)) {
        PyErr_SetObject(PyExc_StopIteration, value);
        return;
    }
    /* Made here: PyErr_SetObject() would take a tuple as the arguments, an exception as the
     * exception (a step returns True or None: kept for any other value). */
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (stop == NULL)
        return;
    if (lp_stop_chains) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    else {  /* no __context__ */
        Py_INCREF(PyExc_StopIteration);
        PyErr_Restore(PyExc_StopIteration, stop, NULL);
    }
}

static inline PyObject *lp_step_iternext(PyObject *self)
{
    PyObject *result;
    int status = lp_step(self, Py_None, &result);
    if (status != 0)
        return status > 0 ? result : NULL;
#if PY_VERSION_HEX >= 0x030C0000 && !defined(Py_GIL_DISABLED)
    if (result == Py_True && lp_raise_kept_stop_true()) {
        Py_DECREF(result);
        return NULL;
    }
#endif
    if (result != Py_None)  /* a return of a value: StopIteration(value) */
        lp_raise_stop(result);
    Py_DECREF(result);
    return NULL;
}

#if PY_VERSION_HEX >= 0x030A0000
static inline PySendResult lp_step_am_send(PyObject *self, PyObject *arg, PyObject **result)
{
    int status = lp_step(self, arg, result);
    if (status < 0) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    return status > 0 ? PYGEN_NEXT : PYGEN_RETURN;
}
#endif

/* type's objects stepped by step (a cdef function of the lp_step_fn shape). The type defines
 * __await__ (so it has async slots) and __next__. */
static inline void lp_type_set_step(PyTypeObject *type, void *step)
{
    lp_step = (lp_step_fn)step;
    type->tp_iternext = lp_step_iternext;
#if PY_VERSION_HEX >= 0x030A0000
    if (type->tp_as_async != NULL)
        type->tp_as_async->am_send = lp_step_am_send;
#endif
    PyType_Modified(type);
}

/* Send arg into iter: 1 with *result the value it yields, 0 with *result the value it returns,
 * -1 with an exception set. */
static inline int lp_send(PyObject *iter, PyObject *arg, PyObject **result)
{
#if PY_VERSION_HEX >= 0x030A0000
    PySendResult sent = PyIter_Send(iter, arg, result);
    return sent == PYGEN_NEXT ? 1 : sent == PYGEN_RETURN ? 0 : -1;
#else
    PyObject *value = (arg == Py_None && Py_TYPE(iter)->tp_iternext != NULL)
                          ? Py_TYPE(iter)->tp_iternext(iter)
                          : PyObject_CallMethod(iter, "send", "O", arg);
    if (value != NULL) {
        *result = value;
        return 1;
    }
    if (_PyGen_FetchStopIterationValue(result) == 0)
        return 0;
    *result = NULL;
    return -1;
#endif
}

/* ------------------------------------------------------------------ the stepping method
 * A coroutine function (an asyncio primitive's acquire, __aenter__ or __aexit__, a Condition's
 * wait) whose call with its usual positional arguments (nargs of them, the object first) and no
 * keywords is make_step(function, args, context) instead: a step, or the function's own
 * coroutine where make_step declines; context says which method it is. Every other call, and
 * every attribute read or set but __class__ (a function's), is the function's: its name, its
 * code (whose flags inspect.iscoroutinefunction() reads), its signature. A method descriptor
 * like a function: `obj.method()` calls it with obj and no bound method, and `obj.method` is a
 * bound method of it. */
typedef PyObject *(*lp_make_step_fn)(PyObject *function, PyObject *const *args, int context);

typedef struct {
    PyObject_HEAD
    PyObject *function;
    lp_make_step_fn make_step;
    int context;
    Py_ssize_t nargs;
    vectorcallfunc vectorcall;
} lp_stepping_method;

static PyObject *lp_stepping_call(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    lp_stepping_method *self = (lp_stepping_method *)callable;
    if (PyVectorcall_NARGS(nargsf) == self->nargs && kwnames == NULL)
        return self->make_step(self->function, args, self->context);
    return PyObject_Vectorcall(self->function, args, nargsf, kwnames);
}

static PyObject *lp_stepping_get(PyObject *self, PyObject *obj, PyObject *type)
{
    (void)type;
    if (obj == NULL || obj == Py_None) {  /* read from the class: itself, as a function is */
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyObject *lp_stepping_getattro(PyObject *self, PyObject *name)
{
    /* Its class reads as a function's, as the standard method's does: isinstance() reads it,
     * and 3.9's inspect.iscoroutinefunction() takes only a function (a Cython one is not). */
    if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, "__class__") == 0) {
        Py_INCREF(&PyFunction_Type);
        return (PyObject *)&PyFunction_Type;
    }
    return PyObject_GetAttr(((lp_stepping_method *)self)->function, name);
}

static int lp_stepping_setattro(PyObject *self, PyObject *name, PyObject *value)
{
    return PyObject_SetAttr(((lp_stepping_method *)self)->function, name, value);
}

static PyObject *lp_stepping_repr(PyObject *self)
{
    return PyObject_Repr(((lp_stepping_method *)self)->function);
}

static int lp_stepping_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((lp_stepping_method *)self)->function);
    return 0;
}

/* No tp_clear: the function is never NULL while the method lives (its cycle, through the
 * function's globals and the class that holds the method, is broken by the dicts in it). */
static void lp_stepping_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(((lp_stepping_method *)self)->function);
    Py_TYPE(self)->tp_free(self);
}

/* Readied by the first lp_stepping_method_new(), which _primitives' module init calls (one
 * thread, at import). */
static inline PyTypeObject *lp_stepping_method_type(void)
{
    static PyTypeObject type = {
        PyVarObject_HEAD_INIT(NULL, 0)
        .tp_name = "lockprof._primitives.stepping_method",
        .tp_basicsize = sizeof(lp_stepping_method),
        .tp_dealloc = lp_stepping_dealloc,
        .tp_vectorcall_offset = offsetof(lp_stepping_method, vectorcall),
        .tp_repr = lp_stepping_repr,
        .tp_call = PyVectorcall_Call,
        .tp_getattro = lp_stepping_getattro,
        .tp_setattro = lp_stepping_setattro,
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
                    | Py_TPFLAGS_METHOD_DESCRIPTOR,
        .tp_traverse = lp_stepping_traverse,
        .tp_descr_get = lp_stepping_get,
    };
    if (type.tp_flags & Py_TPFLAGS_READY)
        return &type;
    return PyType_Ready(&type) < 0 ? NULL : &type;
}

/* function (a coroutine function) called with nargs positional arguments as
 * make_step(function, args, context). */
static inline PyObject *lp_stepping_method_new(PyObject *function, void *make_step, int context, Py_ssize_t nargs)
{
    PyTypeObject *type = lp_stepping_method_type();
    if (type == NULL)
        return NULL;
    lp_stepping_method *self = PyObject_GC_New(lp_stepping_method, type);
    if (self == NULL)
        return NULL;
    Py_INCREF(function);
    self->function = function;
    self->make_step = (lp_make_step_fn)make_step;
    self->context = context;
    self->nargs = nargs;
    self->vectorcall = lp_stepping_call;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

#endif /* LOCKPROF_AWAIT_H */
