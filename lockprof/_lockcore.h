/* The C half of lockprof's core, included by the .pyx modules through _lockcore.pxd: what
 * Cython cannot express cheaply, one header per concept.
 *   _sync.h       atomics, the recorder's mutex, per-thread counters (no-ops with the GIL)
 *   _clock.h      the monotonic clock and the thread ids
 *   _native.h     native lock methods called from C, the attempt by method, acquire arguments,
 *                 a bound method's function
 *   _blocked.h    the waiters blocked on a lock, the random draws of wait sampling
 *   _stack.h      the stack as (code, offset) pairs, frame accessors
 *   _internals.h  or _portable.h: the core's mode (below)
 *   _naming.h     the name a creation site stores a lock under, read from its bytecode
 *   _sites.h      the creation sites seen, each one lookup
 *   _await.h      an awaitable's step in the slots `await` calls, and the method making it (asyncio)
 *   _table.h      the event table and the long-wait slots
 *
 * The one place the core's mode is chosen. LOCKPROF_CORE_PORTABLE (setup.py defines it for
 * LOCKPROF_CORE=portable, and by default on a CPython newer than 3.13) builds the portable core:
 * CPython's public C API only. Otherwise the internals core reads the interpreter's own
 * structures where that saves a call or an allocation (_internals.h). Both define the same
 * functions: the lock attempt and an RLock's levels, whether an object's method is still its
 * class's, the stack walk, a code object's names and a frame's locals; LP_CORE_MODE names the
 * one built (lockprof.CORE_MODE). */
#ifndef LOCKPROF_LOCKCORE_H
#define LOCKPROF_LOCKCORE_H

#include "_sync.h"
#include "_clock.h"
#include "_native.h"
#include "_blocked.h"
#include "_stack.h"
#ifdef LOCKPROF_CORE_PORTABLE
#include "_portable.h"
#else
#include "_internals.h"
#endif
#include "_naming.h"
#include "_sites.h"
#include "_await.h"
#include "_table.h"

/* The headers' state (the prebuilt arguments and names of _native.h, the cached native thread
 * id of _clock.h) is static: each extension module is its own shared object and has its own
 * copy. Sharing one copy would need a capsule and an indirection on every lock operation, so
 * instead every module calls this once at import, and each copy is initialised (and the
 * thread-id cache of each renewed in a fork child). 0 on success. */
static inline int lp_module_init(void)
{
    if (lp_native_init() < 0 || lp_sites_init() < 0)
        return -1;
    if (lp_register_atfork() != 0) {
        PyErr_SetString(PyExc_OSError, "lockprof: pthread_atfork failed");
        return -1;
    }
    return 0;
}

#endif /* LOCKPROF_LOCKCORE_H */
