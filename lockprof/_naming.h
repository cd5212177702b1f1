/* The C helpers of lock naming (see _naming.pxi): the name a creation site stores its result
 * under, read from the bytecode through the core's code accessors (lp_code_bytecode,
 * lp_code_name, lp_code_local_name, lp_code_deref_name: _internals.h or _portable.h, included
 * before this by _lockcore.h, as is the local of a running frame bound to an object,
 * lp_frame_local_name). */
#ifndef LOCKPROF_NAMING_H
#define LOCKPROF_NAMING_H

#include <Python.h>

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
    *name = NULL;
    if (offset < 0)
        return LP_NAME_NONE;
    PyObject *bytecode = lp_code_bytecode(code); /* without the specializations, caches as CACHE */
    if (bytecode == NULL)
        return -1;
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
    Py_DECREF(bytecode);
    switch (cls) {
    case LP_OP_STORE_NAME:
    case LP_OP_STORE_ATTR:
        *name = lp_code_name(code, arg);
        return *name != NULL ? LP_NAME_SITE : LP_NAME_NONE;
    case LP_OP_STORE_FAST_PAIR:
        arg >>= 4;
        /* fall through */
    case LP_OP_STORE_FAST:
        *name = lp_code_local_name(code, arg);
        break;
    case LP_OP_STORE_DEREF:
        *name = lp_code_deref_name(code, arg);
        break;
    }
    if (*name == NULL && PyErr_Occurred())
        return -1;
    return *name != NULL ? LP_NAME_LOCAL : LP_NAME_NONE;
}

/* A class's own namespace (new reference), without the mappingproxy that cls.__dict__ makes: an
 * allocation, which may run the garbage collector, and a finaliser that takes the very lock
 * being acquired, inside the user's lock operation. The one read of a class's namespace for
 * code that runs there (a capture's thread and greenlet names, lock naming). */
static inline PyObject *lp_class_dict(PyTypeObject *klass)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyType_GetDict(klass);
#else
    PyObject *dict = klass->tp_dict;
    Py_XINCREF(dict);
    return dict;
#endif
}

#endif /* LOCKPROF_NAMING_H */
