/* Walking the Python stack as (code object, instruction offset) pairs, and the frame accessors
 * of every supported version. */
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

/* The offset of a frame object's current instruction in bytes (3.10 counts f_lasti in code
 * units, 3.9 in bytes). */
#if PY_VERSION_HEX >= 0x030B0000
static inline int lp_frame_lasti(PyObject *f) { return PyFrame_GetLasti((PyFrameObject *)f); }
#elif PY_VERSION_HEX >= 0x030A0000
static inline int lp_frame_lasti(PyObject *f) { return ((PyFrameObject *)f)->f_lasti * (int)sizeof(_Py_CODEUNIT); }
#else
static inline int lp_frame_lasti(PyObject *f) { return ((PyFrameObject *)f)->f_lasti; }
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

/* The site of a call from Python into C: the innermost running frame's code and globals
 * (borrowed) and the byte offset of its current instruction (the call). 0 when no Python frame
 * runs. On 3.11+ it reads the interpreter's frame, as the walk above does: PyEval_GetFrame()
 * would make a frame object for it, an allocation per lock created in a fresh function. */
static inline int lp_caller_site(PyObject **code, int *lasti, PyObject **globals)
{
#if PY_VERSION_HEX >= 0x030B0000
    _PyInterpreterFrame *frame = lp_top_frame(PyThreadState_Get());
    while (frame != NULL && _PyFrame_IsIncomplete(frame))
        frame = frame->previous;
    if (frame == NULL)
        return 0;
    int units = _PyInterpreterFrame_LASTI(frame);
    *code = lp_interpreter_frame_code(frame);
    *lasti = units < 0 ? -1 : units * (int)sizeof(_Py_CODEUNIT);
    *globals = frame->f_globals;
#else
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL)
        return 0;
    *code = (PyObject *)frame->f_code;
    *lasti = lp_frame_lasti((PyObject *)frame);
    *globals = frame->f_globals;
#endif
    return 1;
}

#endif /* LOCKPROF_STACK_H */
