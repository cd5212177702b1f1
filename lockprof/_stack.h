/* The Python stack as (code object, instruction offset) pairs, and the frame accessors of
 * every supported version (public C API). */
#ifndef LOCKPROF_STACK_H
#define LOCKPROF_STACK_H

#include <Python.h>
#include <frameobject.h>

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

/* Each core's lp_capture_stack(out, max, &depth) (_internals.h, _portable.h) fills out[0..max)
 * leaf first with the current thread's Python frames and returns how many were stored; depth
 * receives the whole depth (capped at LP_MAX_WALK), so the caller knows how many frames were
 * cut. Line numbers are not computed then: they cost ~35 ns a frame on 3.11+, and are resolved
 * from (code, offset) at export. */
#define LP_MAX_WALK 4096

#endif /* LOCKPROF_STACK_H */
