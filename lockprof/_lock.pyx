# cython: language_level=3, always_allow_keywords=False, auto_pickle=False
"""Profiled Lock and RLock: wrappers around the native locks with a C fast path.

While profiling runs, an acquire first tries the native lock without blocking (its own C
function, prebuilt arguments). When that succeeds the acquire was uncontended: its wait is zero
by definition, no clock is read, and only the capture sampler's check follows. When it fails the
acquire is contended: the caller's own blocking call is timed and always counted (see
_recorder.pyx for how it is sampled). A release reads the clock only when it ends a captured
hold or when threads are blocked on the lock (its blocking hold). After stop() every operation
is the native C function behind one flag test. The lock methods are installed at import from
the native type's own method table, so each wrapper has exactly the native type's methods and
docstrings on the running Python, and arguments reach the native method as they were given, so
every argument error is the native lock's own.

One extension module, in parts: _wrappers.pxi (the fast paths), _foreign.pxi (gevent's locks),
_install.pxi (method installation, the direct attempt) and _factory.pxi (LockFactory); the
start-up runs at the end of this file. Naming is _recorder's (_naming.pxi).
"""

import _thread
import copy
import functools
import operator
import sys

cimport cython
from cpython.exc cimport PyErr_Clear
from cpython.module cimport PyModule_CheckExact, PyModule_GetDict
from cpython.object cimport PyObject, PyTypeObject, newfunc
from cpython.ref cimport Py_XDECREF
from cpython.type cimport PyType_Modified
from libc.stdint cimport int64_t

from lockprof._lockcore cimport (
    LP_ACQUIRE_BLOCKING, LP_ACQUIRE_NONBLOCKING, LP_ACQUIRE_UNCLEAR, LP_CALL_NOARGS, LP_CORE_MODE,
    LP_FREE_THREADED, LP_MAX_FRAMES, LP_TRY_BY_METHOD, LP_TRY_LOCK, LP_TRY_RLOCK, METH_FASTCALL,
    METH_KEYWORDS, METH_NOARGS, METH_VARARGS, PyMethodDef, lp_call, lp_call0,
    lp_call0_then_store, lp_call_noargs, lp_call_vector, lp_caller_site, lp_classify_acquire,
    lp_classify_acquire_call, lp_current_frame, lp_descr_doc, lp_frame_lasti, lp_frame_ref,
    lp_globals_name, lp_load_long, lp_lock_release_taken, lp_lock_release_taken_unchecked, lp_module_init,
    lp_monotonic_ns,
    lp_native_layout, lp_native_method, lp_native_method_resolve, lp_rlock_nest, lp_rlock_owned,
    lp_rlock_unnest, lp_sites_clear, lp_sites_get, lp_sites_put, lp_store_long, lp_thread_ident,
    lp_try_acquire, lp_try_acquire_unchecked, lp_type_set_method, lp_type_set_vectorcall, lp_vectorcall,
    lp_vectorcall_nargs,
)
from lockprof._recorder cimport LockInfo, Recorder, WaiterStack, name_lock, waiter_init
from lockprof._wait cimport (
    CapturedHold, TimedWait, WAIT_CAPTURED, blocking_take, hold_captured, hold_forget,
    hold_released, hold_start, hold_take, release_ends, wait_begin, wait_end, wait_record,
)

from lockprof._kinds import LOCK, RLOCK
from lockprof._recorder import LockInfo  # the Python name too: lockprof._lock.LockInfo

cdef NativeOps LOCK_OPS
cdef NativeOps RLOCK_OPS

# "internals" or "portable": the core these modules were built as (setup.py, LOCKPROF_CORE;
# lockprof.CORE_MODE).
CORE_MODE = (<bytes>LP_CORE_MODE).decode("ascii")


def original_thread_attribute(str name):
    """_thread's attribute as CPython made it, also when gevent patched _thread before
    lockprof was imported (gevent keeps the originals)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        try:
            return monkey.get_original("_thread", name)
        except Exception:
            pass
    return getattr(_thread, name)


def call_every(stopping, double interval, call, done):
    """call() every interval seconds until the lock stopping is released, then release the lock
    done (both held by the caller): the exporter thread's function. Compiled, so that the thread
    has no Python frame while it waits: a fork child's threads look, until its first export, as
    they would unprofiled (sys._current_frames() right after fork: the forking thread only)."""
    try:
        while not stopping.acquire(True, interval):
            call()
    finally:
        done.release()


cdef object ORIGINAL_ALLOCATE_LOCK = original_thread_attribute("allocate_lock")
cdef type NATIVE_LOCK = type(ORIGINAL_ALLOCATE_LOCK())
cdef type NATIVE_RLOCK = original_thread_attribute("RLock")


include "_wrappers.pxi"
include "_foreign.pxi"
include "_install.pxi"
include "_factory.pxi"


# ------------------------------------------------------------------ start-up
lp_module_init()
_install_methods()
_choose_try(&LOCK_OPS, NATIVE_LOCK, LP_TRY_LOCK)
_choose_try(&RLOCK_OPS, NATIVE_RLOCK, LP_TRY_RLOCK)
from lockprof._sampler import CaptureSampler
# The recorder of the locks a wrapper type makes while no collector profiles, never active.
cdef Recorder INERT_RECORDER = Recorder(CaptureSampler(0.0), 1, 1)
install_type_constructors()
