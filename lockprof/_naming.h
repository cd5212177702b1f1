/* The C helpers of lock naming (see _naming.pxi): the local of a running frame bound to an
 * object, and the name a creation site stores its result under, read from the bytecode. */
#ifndef LOCKPROF_NAMING_H
#define LOCKPROF_NAMING_H

#include <Python.h>
#include "_stack.h"

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

#endif /* LOCKPROF_NAMING_H */
