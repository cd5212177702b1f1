/* What the profiled asyncio primitives' acquire() returns needs from C (_asyncio_primitives.pxi
 * _Acquire): one step of a coroutine it hands on to, telling a value it yields from the value it
 * returns without a StopIteration, and the am_send slot (3.10+) through which `await` and the
 * event loop's tasks step it the same way. */
#ifndef LOCKPROF_AWAIT_H
#define LOCKPROF_AWAIT_H

#include <Python.h>

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

/* One step of an awaitable: new reference, NULL with an exception set; *returned tells a
 * returned value from a yielded one. */
typedef PyObject *(*lp_step_fn)(PyObject *self, PyObject *arg, int *returned);

#if PY_VERSION_HEX >= 0x030A0000
static lp_step_fn lp_awaitable_step = NULL;

static PySendResult lp_awaitable_am_send(PyObject *self, PyObject *arg, PyObject **result)
{
    int returned = 0;
    *result = lp_awaitable_step(self, arg, &returned);
    if (*result == NULL)
        return PYGEN_ERROR;
    return returned ? PYGEN_RETURN : PYGEN_NEXT;
}
#endif

/* Make type's objects stepped through step by `await` and tasks (3.10+; 3.9 calls __next__ and
 * send). The type must define __await__, so that it has async slots. */
static inline void lp_type_set_am_send(PyTypeObject *type, void *step)
{
#if PY_VERSION_HEX >= 0x030A0000
    lp_awaitable_step = (lp_step_fn)step;
    if (type->tp_as_async != NULL)
        type->tp_as_async->am_send = lp_awaitable_am_send;
#else
    (void)type;
    (void)step;
#endif
}

#endif /* LOCKPROF_AWAIT_H */
