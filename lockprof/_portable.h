/* The portable core: the functions of _internals.h on CPython's public C API alone, for a
 * CPython whose structures lockprof was not built and tested against (3.14 and later by
 * default, anywhere with LOCKPROF_CORE=portable; _lockcore.h chooses). What it reads is what the
 * interpreter documents: a native lock is tried, and an RLock's owner asked, through the lock's
 * own methods; frames are walked with PyThreadState_GetFrame() and PyFrame_GetBack(); code
 * objects and frame locals are read through their Python-level attributes. */
#ifndef LOCKPROF_PORTABLE_H
#define LOCKPROF_PORTABLE_H

#include <Python.h>
#include <frameobject.h>
#include "_native.h"
#include "_stack.h"

#define LP_CORE_MODE "portable"

/* ------------------------------------------------------------ native locks
 * No layout is read: every attempt is the method call with the prebuilt argument, and an RLock
 * counts its nested levels itself. */
static inline int lp_native_layout(PyTypeObject *type, int lock_kind)
{
    (void)type;
    (void)lock_kind;
    return LP_TRY_BY_METHOD;
}

static inline int lp_try_acquire(const lp_native_method *acquire, int try_kind, PyObject *self)
{
    (void)try_kind;
    return lp_try_by_method(acquire, self);
}

static inline PyObject *lp_lock_release_taken(const lp_native_method *release, int try_kind, PyObject *lock)
{
    (void)try_kind;
    return lp_call0(release, lock);
}

static inline int lp_rlock_owned(const lp_native_method *is_owned, int try_kind, PyObject *rlock)
{
    (void)try_kind;
    return lp_bool_result(lp_call0(is_owned, rlock));
}

/* 0: the native acquire and release count every level. */
static inline int lp_rlock_nest(int try_kind, PyObject *rlock)
{
    (void)try_kind;
    (void)rlock;
    return 0;
}

static inline int lp_rlock_unnest(int try_kind, PyObject *rlock)
{
    (void)try_kind;
    (void)rlock;
    return 0;
}

/* ------------------------------------------------------------ methods */

static inline int lp_own_method(PyObject *obj, PyObject *name, PyObject *function)
{
    PyObject *method = PyObject_GetAttr(obj, name);
    if (method == NULL)
        return -1;
    int own = lp_bound_to(method, function, obj);
    Py_DECREF(method);
    return own;
}

/* ------------------------------------------------------------ code objects
 * What naming reads of a code object (_naming.h), through its attributes (C getters of a type
 * that cannot be subclassed: no user code). A name is borrowed from the code: the attribute
 * tuples hold the code's own strings. */
static inline PyObject *lp_code_bytecode(PyObject *code)
{
    return PyObject_GetAttrString(code, "co_code"); /* 3.11+: without the specializations */
}

static inline PyObject *lp_code_name(PyObject *code, unsigned int i)
{
    PyObject *names = PyObject_GetAttrString(code, "co_names");
    if (names == NULL)
        return NULL;
    PyObject *name = (PyTuple_Check(names) && i < (unsigned int)PyTuple_GET_SIZE(names)) ? PyTuple_GET_ITEM(names, i) : NULL;
    Py_DECREF(names);
    return name;
}

/* The names of code's local slots in slot order (a new list): its locals, then its cell
 * variables (3.11+: those that are not also locals, which share the local's slot), then its
 * free variables. */
static inline PyObject *lp_code_slot_names(PyObject *code)
{
    static const char *const groups[3] = {"co_varnames", "co_cellvars", "co_freevars"};
    PyObject *names = PyList_New(0), *varnames = NULL;
    for (int g = 0; names != NULL && g < 3; g++) {
        PyObject *group = PyObject_GetAttrString(code, groups[g]);
        if (group == NULL || !PyTuple_Check(group)) {
            Py_XDECREF(group);
            Py_CLEAR(names);
            break;
        }
        for (Py_ssize_t i = 0; names != NULL && i < PyTuple_GET_SIZE(group); i++) {
            PyObject *name = PyTuple_GET_ITEM(group, i);
#if PY_VERSION_HEX >= 0x030B0000
            int shared = 0;
            for (Py_ssize_t j = 0; g == 1 && j < PyTuple_GET_SIZE(varnames); j++)
                shared |= PyUnicode_Check(name) && PyUnicode_Compare(name, PyTuple_GET_ITEM(varnames, j)) == 0;
            if (shared)
                continue;
#endif
            if (PyList_Append(names, name) < 0)
                Py_CLEAR(names);
        }
        if (g == 0)
            varnames = group;
        else
            Py_DECREF(group);
    }
    Py_XDECREF(varnames);
    return names;
}

static inline PyObject *lp_code_local_name(PyObject *code, Py_ssize_t i)
{
    PyObject *names = lp_code_slot_names(code);
    if (names == NULL)
        return NULL;
    PyObject *name = (i >= 0 && i < PyList_GET_SIZE(names)) ? PyList_GET_ITEM(names, i) : NULL;
    Py_DECREF(names);
    return name;
}

static inline PyObject *lp_code_deref_name(PyObject *code, unsigned int arg)
{
#if PY_VERSION_HEX >= 0x030B0000
    return lp_code_local_name(code, arg); /* a slot index */
#else
    PyObject *nlocals = PyObject_GetAttrString(code, "co_nlocals");
    Py_ssize_t offset = nlocals != NULL ? PyLong_AsSsize_t(nlocals) : -1;
    Py_XDECREF(nlocals);
    return offset < 0 ? NULL : lp_code_local_name(code, offset + (Py_ssize_t)arg);
#endif
}

/* ------------------------------------------------------------------ frames
 * Each frame object is a new reference, released at the next step; a code object is stored
 * borrowed, kept alive by its running frame. A frame without a frame object gets one (3.11+):
 * ~40 ns once per frame, reused while the frame runs. Before 3.12 that allocation could run the
 * garbage collector (and a finalizer's code) at once, so the collector is held off meanwhile;
 * 3.12+ only schedules it for the eval loop. An allocation that fails ends the walk there. */
static inline int lp_capture_stack(lp_frame_ref *out, int max, int *depth)
{
    int n = 0, total = 0, had_error = PyErr_Occurred() != NULL;
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    int collecting = PyGC_Disable();
#endif
    PyFrameObject *frame = PyThreadState_GetFrame(PyThreadState_Get());
    while (frame != NULL && total < LP_MAX_WALK) {
        if (n < max) {
            PyCodeObject *code = PyFrame_GetCode(frame);
            out[n].code = (PyObject *)code;
            Py_DECREF(code);
            out[n].lasti = lp_frame_lasti((PyObject *)frame);
            n++;
        }
        total++;
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    if (collecting)
        PyGC_Enable();
#endif
    if (!had_error && PyErr_Occurred())
        PyErr_Clear();
    *depth = total;
    return n;
}

/* The site of a call from Python into C: the innermost running frame's code and globals
 * (borrowed, alive while it runs) and the byte offset of its current instruction (the call).
 * 0 when no Python frame runs. PyEval_GetFrame() may make the frame's object (3.11+), once. */
static inline int lp_caller_site(PyObject **code, int *lasti, PyObject **globals)
{
    PyFrameObject *frame = PyEval_GetFrame(); /* borrowed */
    if (frame == NULL)
        return 0;
    PyCodeObject *frame_code = PyFrame_GetCode(frame);
    *code = (PyObject *)frame_code;
    Py_DECREF(frame_code);
    *lasti = lp_frame_lasti((PyObject *)frame);
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *frame_globals = PyFrame_GetGlobals(frame);
    *globals = frame_globals;
    Py_DECREF(frame_globals);
#else
    *globals = frame->f_globals;
#endif
    return 1;
}

/* The bound locals of a function's running frame as (name, value) pairs (a new list), or NULL:
 * 3.13+ through its locals proxy (PEP 667), which reads the frame's slots; earlier versions
 * through its f_locals dict, a snapshot the frame keeps. A module's or class body's f_locals is
 * its namespace, which may be any mapping, and is not read. Nothing here raises for an unbound
 * variable: formatting that error calls repr(), which runs pending signal handlers. */
static inline PyObject *lp_frame_items(PyObject *frame, PyObject *code)
{
    PyObject *flags = PyObject_GetAttrString(code, "co_flags"), *locals, *items = NULL;
    int optimized = flags != NULL && PyLong_Check(flags) && (PyLong_AsLong(flags) & CO_OPTIMIZED);
    Py_XDECREF(flags);
    if (!optimized || (locals = PyObject_GetAttrString(frame, "f_locals")) == NULL)
        return NULL;
#if PY_VERSION_HEX >= 0x030D0000
    if (PyFrameLocalsProxy_Check(locals))
        items = PyMapping_Items(locals);
#else
    if (PyDict_CheckExact(locals))
        items = PyDict_Items(locals);
#endif
    Py_DECREF(locals);
    return items;
}

/* The name of the local of `frame` bound to `target` (directly or through a cell), or NULL;
 * *first receives the value of its first argument, or NULL (both borrowed: the code's own
 * string, the value the frame holds), as in _internals.h. Names are matched by identity with
 * the code's own: no key's __eq__ runs. */
static inline PyObject *lp_frame_local_name(PyObject *frame, PyObject *target, PyObject **first)
{
    PyObject *found = NULL, *items = NULL, *names = NULL, *argcount = NULL;
    PyObject *code = (PyObject *)PyFrame_GetCode((PyFrameObject *)frame);
    *first = NULL;
    if ((items = lp_frame_items(frame, code)) == NULL || (names = lp_code_slot_names(code)) == NULL
        || (argcount = PyObject_GetAttrString(code, "co_argcount")) == NULL)
        goto done;
    int has_first = PyLong_Check(argcount) && PyLong_AsLong(argcount) > 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2)
            continue;
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        for (Py_ssize_t slot = 0; slot < PyList_GET_SIZE(names); slot++) {
            if (PyList_GET_ITEM(names, slot) != name)
                continue;
            if (slot == 0 && has_first)
                *first = value;
            if (value == target && found == NULL)
                found = name;
            break;
        }
    }
done:
    Py_XDECREF(argcount);
    Py_XDECREF(names);
    Py_XDECREF(items);
    Py_DECREF(code);
    if (PyErr_Occurred())
        PyErr_Clear(); /* a frame that cannot be read names nothing */
    return found;
}

#endif /* LOCKPROF_PORTABLE_H */
