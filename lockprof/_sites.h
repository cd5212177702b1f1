/* The creation sites a lock factory has seen, so that making a lock at a site seen before is
 * one lookup: (code object, instruction offset, globals) to what a lock made there gets, either
 * the LockInfo all the site's locks share or Py_None (the module is excluded). As the site's
 * LockInfo keeps the module of its first lock, the answer keeps the decision made for the
 * globals' __name__ then. Direct-mapped: a collision replaces the older site, which then takes
 * the slow path (the filter, the Recorder's own table of sites) once more. Only answers that
 * every later lock of the site gets are stored; entries own references, so that an address
 * stays unique while its entry lives. */
#ifndef LOCKPROF_SITES_H
#define LOCKPROF_SITES_H

#include <Python.h>
#include <stdint.h>

#define LP_SITE_SLOTS 256 /* a power of two */

typedef struct {
    PyObject *code;    /* strong, or NULL: an empty slot */
    PyObject *globals; /* strong */
    PyObject *answer;  /* strong: the shared LockInfo, or Py_None */
    int offset;
} lp_site;

typedef struct {
    lp_site slots[LP_SITE_SLOTS];
} lp_sites;

static inline lp_site *lp_site_slot(lp_sites *sites, PyObject *code, int offset)
{
    uintptr_t h = ((uintptr_t)code >> 4) ^ ((uintptr_t)(unsigned int)offset * 0x9E3779B1u);
    return &sites->slots[(h ^ (h >> 11)) & (LP_SITE_SLOTS - 1)];
}

/* The stored answer for the site (borrowed), or NULL. */
static inline PyObject *lp_sites_get(lp_sites *sites, PyObject *code, int offset, PyObject *globals)
{
    lp_site *slot = lp_site_slot(sites, code, offset);
    if (slot->code == code && slot->offset == offset && slot->globals == globals)
        return slot->answer;
    return NULL;
}

static inline void lp_site_clear(lp_site *slot)
{
    PyObject *code = slot->code, *globals = slot->globals, *answer = slot->answer;
    slot->code = slot->globals = slot->answer = NULL;
    Py_XDECREF(code);
    Py_XDECREF(globals);
    Py_XDECREF(answer);
}

static inline void lp_sites_put(lp_sites *sites, PyObject *code, int offset, PyObject *globals, PyObject *answer)
{
    lp_site *slot = lp_site_slot(sites, code, offset);
    Py_INCREF(code);
    Py_INCREF(globals);
    Py_INCREF(answer);
    lp_site_clear(slot); /* after the new references: the old entry may hold the only ones */
    slot->code = code;
    slot->offset = offset;
    slot->globals = globals;
    slot->answer = answer;
}

static inline void lp_sites_clear(lp_sites *sites)
{
    for (int i = 0; i < LP_SITE_SLOTS; i++)
        lp_site_clear(&sites->slots[i]);
}

static PyObject *lp_name_key; /* "__name__", made at the module's import (lp_sites_init) */

static inline int lp_sites_init(void)
{
    lp_name_key = PyUnicode_InternFromString("__name__");
    return lp_name_key == NULL ? -1 : 0;
}

/* The __name__ of a frame's globals (borrowed), NULL when it has none; read from the dict's
 * own storage, never through an overridden get(). */
static inline PyObject *lp_globals_name(PyObject *globals)
{
    if (globals == NULL || !PyDict_Check(globals))
        return NULL;
    PyObject *name = PyDict_GetItemWithError(globals, lp_name_key);
    if (name == NULL)
        PyErr_Clear(); /* a key's __eq__ failed: no name, as for a missing one */
    return name;
}

#endif /* LOCKPROF_SITES_H */
