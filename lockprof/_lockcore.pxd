# cython: language_level=3
# Declarations of the C half of the core: _lockcore.h and its parts, one block per header.

from cpython.object cimport PyObject, PyTypeObject
from libc.stdint cimport int64_t, uint64_t


cdef extern from "Python.h":
    ctypedef struct PyMethodDef:
        const char* ml_name
        void* ml_meth
        int ml_flags
        const char* ml_doc
    int METH_NOARGS, METH_O, METH_VARARGS, METH_KEYWORDS, METH_FASTCALL
    object PyCFunction_NewEx(PyMethodDef* ml, PyObject* self, PyObject* module)


cdef extern from "_lockcore.h":
    # Every module that cimports this calls it once at import.
    int lp_module_init() except -1
    # "internals" or "portable": the core this module was built as (setup.py, LOCKPROF_CORE).
    const char* LP_CORE_MODE


cdef extern from "_sync.h":
    # Free-threaded builds: a PyMutex and relaxed atomics; with the GIL, plain accesses.
    enum:
        LP_FREE_THREADED  # 1 without the GIL: code under `if LP_FREE_THREADED` is compiled out with it
    ctypedef struct lp_mutex:
        pass
    void lp_lock(lp_mutex* m) noexcept nogil
    void lp_unlock(lp_mutex* m) noexcept nogil
    void lp_mutex_reset(lp_mutex* m) noexcept nogil
    int lp_load_int(const int* p) noexcept nogil
    void lp_store_int(int* p, int v) noexcept nogil
    int lp_load_int_acquire(const int* p) noexcept nogil
    void lp_store_int_release(int* p, int v) noexcept nogil
    void* lp_load_ptr(void** p) noexcept nogil
    void* lp_exchange_ptr(void** p, void* v) noexcept nogil
    long lp_load_long(const long* p) noexcept nogil
    void lp_store_long(long* p, long v) noexcept nogil
    int64_t lp_load_i64(const int64_t* p) noexcept nogil
    void lp_store_i64(int64_t* p, int64_t v) noexcept nogil
    unsigned long lp_load_ulong(const unsigned long* p) noexcept nogil
    void lp_store_ulong(unsigned long* p, unsigned long v) noexcept nogil
    bint lp_sample_check(long long* counter, uint64_t serial, uint64_t* threads, long long step,
                         long long full) noexcept nogil
    uint64_t lp_new_sampler_serial() noexcept nogil


cdef extern from "_clock.h":
    int64_t lp_monotonic_ns() nogil
    unsigned long lp_thread_ident() nogil
    unsigned long lp_thread_native_id() nogil


cdef extern from "_native.h":
    ctypedef struct lp_native_method:
        PyObject* descr
        int kind  # its calling convention, from its ml_flags (LP_CALL_*)
    enum:
        LP_CALL_NOARGS
    int lp_native_method_resolve(lp_native_method* m, PyTypeObject* type, const char* name) except -1
    const char* lp_descr_doc(PyObject* descr)
    # `self` is borrowed (PyObject*) so the hot path takes no reference of its own.
    object lp_call0(const lp_native_method* m, PyObject* self)
    object lp_call0_then_store(const lp_native_method* m, PyObject* self, long* depth, long value)
    object lp_call(const lp_native_method* m, PyObject* self, object args, PyObject* kwds)
    object lp_call_vector(const lp_native_method* m, PyObject* self, PyObject** args,
                          Py_ssize_t nargs, PyObject* kwnames)
    int lp_type_set_method(PyTypeObject* type, PyMethodDef* defn) except -1
    void lp_type_set_vectorcall(PyObject* obj, void** field, void* func) noexcept
    object lp_call_noargs(object f)
    object lp_call_first(object callable, object first, PyObject** args, Py_ssize_t nargs, PyObject* kwnames)
    object lp_object_new(PyTypeObject* type)
    void lp_type_set_init(PyTypeObject* type, void* init) noexcept
    Py_ssize_t lp_vectorcall_nargs(size_t nargsf) noexcept
    object lp_vectorcall(object callable, PyObject** args, size_t nargsf, PyObject* kwnames)

    enum:
        LP_ACQUIRE_BLOCKING
        LP_ACQUIRE_NONBLOCKING
        LP_ACQUIRE_UNCLEAR
    enum:
        LP_TRY_BY_METHOD
        LP_TRY_LOCK
        LP_TRY_MUTEX_LOCK
        LP_TRY_RLOCK
    # Whether an acquire may block (LP_ACQUIRE_*): the one decision, from the arguments as given.
    enum:
        LP_TIMEOUT_NATIVE
        LP_TIMEOUT_SEMAPHORE
    int lp_acquire_kind(PyObject* blocking, PyObject* timeout, int timeouts) noexcept
    int lp_classify_acquire(PyObject** args, Py_ssize_t nargs, PyObject* kwnames) noexcept
    int lp_classify_acquire_call(object args, PyObject* kwargs) noexcept


cdef extern from "_blocked.h":
    uint64_t lp_random(uint64_t* state) noexcept

    ctypedef struct lp_blocking:
        int waiters
        int64_t since
        int64_t carry
    void lp_blocking_enter(lp_blocking* b, int64_t now) noexcept
    void lp_blocking_leave(lp_blocking* b, int waited, int acquired, int64_t now) noexcept
    bint lp_blocking_pending(const lp_blocking* b) noexcept
    int64_t lp_blocking_release(lp_blocking* b, int64_t released_at) noexcept


cdef extern from "_stack.h":
    ctypedef struct lp_frame_ref:
        PyObject* code
        int lasti
    int LP_MAX_WALK
    PyObject* lp_current_frame()
    int lp_frame_lasti(PyObject* frame)
    enum:
        LP_MAX_FRAMES


cdef extern from "_sites.h":
    ctypedef struct lp_sites:
        pass
    PyObject* lp_sites_get(lp_sites* sites, PyObject* code, int offset, PyObject* globals_) noexcept
    void lp_sites_put(lp_sites* sites, PyObject* code, int offset, PyObject* globals_, PyObject* answer) noexcept
    void lp_sites_clear(lp_sites* sites) noexcept
    PyObject* lp_globals_name(PyObject* globals_) noexcept


# The core's mode: _internals.h or _portable.h, as _lockcore.h chose; the same functions.
cdef extern from "_lockcore.h":
    # The native lock: the attempt its layout allows (LP_TRY_*); tried without blocking (1 taken,
    # 0 held), a Lock so taken released; an
    # RLock's owner (1, 0), a nested level counted or released in place (1 done, 0 the method's).
    int lp_native_layout(PyTypeObject* type, int lock_kind)
    int lp_try_acquire(const lp_native_method* acquire, int try_kind, PyObject* self) except -1
    object lp_lock_release_taken(const lp_native_method* release, int try_kind, PyObject* lock)
    # The same two, for a caller that handles their error itself (-1, NULL: PyErr_Clear()) rather
    # than in a try statement, which saves and restores the exception state at every call.
    int lp_try_acquire_unchecked "lp_try_acquire"(const lp_native_method* acquire, int try_kind, PyObject* self) noexcept
    PyObject* lp_lock_release_taken_unchecked "lp_lock_release_taken"(const lp_native_method* release, int try_kind,
                                                                       PyObject* lock) noexcept
    int lp_rlock_owned(const lp_native_method* is_owned, int try_kind, PyObject* rlock) except -1
    int lp_rlock_nest(int try_kind, PyObject* rlock) except -1
    bint lp_rlock_unnest(int try_kind, PyObject* rlock) noexcept
    int lp_capture_stack(lp_frame_ref* out, int max, int* depth)
    bint lp_caller_site(PyObject** code, int* lasti, PyObject** globals_) noexcept
    PyObject* lp_frame_local_name(PyObject* frame, PyObject* target, PyObject** first)
    # Whether obj's attribute name is still function, its class's (no attribute of obj shadows it).
    int lp_own_method(object obj, object name, object function) except -1


cdef extern from "_await.h":
    int lp_send(object iter, object arg, PyObject** result) except -1
    void lp_type_set_step(PyTypeObject* type, void* step) noexcept
    object lp_stepping_method_new(object function, void* make_step, int context, Py_ssize_t nargs)
    void lp_set_stop_chains(int chains) noexcept
    void lp_raise_stop(object value) noexcept  # always leaves an exception set


cdef extern from "_naming.h":
    enum:
        LP_OP_OTHER
        LP_OP_CACHE
        LP_OP_EXTENDED_ARG
        LP_OP_LOAD
        LP_OP_STORE_NAME
        LP_OP_STORE_ATTR
        LP_OP_STORE_FAST
        LP_OP_STORE_FAST_PAIR
        LP_OP_STORE_DEREF
        LP_OP_JUMP_FORWARD
        LP_OP_JUMP_ABSOLUTE
    enum:
        LP_NAME_NONE
        LP_NAME_SITE
        LP_NAME_LOCAL
    int lp_assigned_name(object code, int offset, const unsigned char* classes, PyObject** name) except -1
    dict lp_class_dict(type klass)


cdef extern from "_table.h":
    ctypedef struct lp_entry:
        PyObject* lock_info
        unsigned long thread_id
        unsigned long thread_native_id
        Py_ssize_t task_id
        PyObject* task_name
        int64_t acquire_count
        int64_t release_count
        int64_t release_hold_ns
        double contended_count
        int64_t acquire_wait_ns
        int64_t blocking_hold_ns
        int64_t condition_wait_ns
        int timed_out
        int pending
        int nframes
        int omitted
        lp_frame_ref* frames

    ctypedef struct lp_table:
        lp_entry** slots
        size_t mask
        size_t count
        size_t max_entries
        uint64_t dropped

    ctypedef struct lp_key:
        PyObject* lock_info
        unsigned long thread_id
        unsigned long thread_native_id
        Py_ssize_t task_id
        PyObject* task_name
        const lp_frame_ref* frames
        int nframes
        int omitted
        int timed_out

    int lp_table_init(lp_table* t, size_t max_entries)
    lp_entry* lp_table_upsert(lp_table* t, const lp_key* k)
    size_t lp_table_evict_idle(lp_table* t, lp_entry** evicted)
    void lp_entry_free(lp_entry* e)
    bint lp_entry_is_idle(const lp_entry* e)

    enum:
        LP_LONG_WAITS
        LP_LONG_WAIT_FRAMES
    ctypedef struct lp_long_wait:
        int64_t wait_ns
        PyObject* lock_info
        unsigned long thread_id
        Py_ssize_t task_id
        PyObject* task_name
        int timed_out
        int nframes
        lp_frame_ref frames[8]
    lp_long_wait* lp_long_wait_slot(lp_long_wait* slots, int64_t wait_ns)
    void lp_long_wait_clear(lp_long_wait* w)
    void lp_long_wait_fill(lp_long_wait* w, int64_t wait_ns, PyObject* lock_info,
                           unsigned long thread_id, Py_ssize_t task_id, PyObject* task_name,
                           int timed_out, const lp_frame_ref* frames, int nframes)
