/* The step of an awaitable written in Cython (_asyncio_steps.pxi, what a profiled asyncio
 * primitive's __aenter__ and __aexit__ return), in the slots through which `await` steps it:
 * tp_iternext (3.9, and 3.12+ whose SEND calls it) and am_send (3.10+, PyIter_Send). Both
 * return None without a StopIteration: a NULL from tp_iternext with no exception set is a
 * return of None to the awaiting frame, so a completed step allocates nothing. */
#ifndef LOCKPROF_AWAIT_H
#define LOCKPROF_AWAIT_H

#include <Python.h>

/* One step: a new reference to the value yielded, lp_step_done (new reference) when the
 * awaitable returned None, NULL with an exception set when it raised. */
typedef PyObject *(*lp_step_fn)(PyObject *self, PyObject *arg);
static lp_step_fn lp_step = NULL;
static PyObject *lp_step_done = NULL;

static inline PyObject *lp_step_iternext(PyObject *self)
{
    PyObject *result = lp_step(self, Py_None);
    if (result == lp_step_done) {
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

#if PY_VERSION_HEX >= 0x030A0000
static inline PySendResult lp_step_am_send(PyObject *self, PyObject *arg, PyObject **result)
{
    PyObject *value = lp_step(self, arg);
    if (value == NULL) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    if (value == lp_step_done) {
        Py_DECREF(value);
        Py_INCREF(Py_None);
        *result = Py_None;
        return PYGEN_RETURN;
    }
    *result = value;
    return PYGEN_NEXT;
}
#endif

/* type's objects stepped by step (a cdef function of the lp_step_fn shape), done its sentinel.
 * The type defines __await__ (so it has async slots) and __next__. */
static inline void lp_type_set_step(PyTypeObject *type, void *step, PyObject *done)
{
    lp_step = (lp_step_fn)step;
    Py_INCREF(done);
    lp_step_done = done;
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

#endif /* LOCKPROF_AWAIT_H */
