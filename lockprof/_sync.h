/* What keeps lockprof's shared state consistent without a GIL (free-threaded CPython 3.13t+):
 * relaxed atomic loads and stores of flags and counters read on the fast paths, the recorder's
 * mutex for what only the contended and captured paths change, and the sampler's per-thread
 * counters. With the GIL every one of these is the plain access it always was: the GIL
 * serialises the callers, and a GIL build compiles to the same instructions as before. */
#ifndef LOCKPROF_SYNC_H
#define LOCKPROF_SYNC_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(_MSC_VER)
#define LP_THREAD_LOCAL __declspec(thread)
#else
#define LP_THREAD_LOCAL _Thread_local
#endif

#ifdef Py_GIL_DISABLED
#define LP_FREE_THREADED 1

/* A PyMutex: one byte, no allocation; a thread that has to wait for it lets the interpreter
 * stop the world meanwhile. Never held around code that may run Python code. */
typedef PyMutex lp_mutex;
static inline void lp_lock(lp_mutex *m) { PyMutex_Lock(m); }
static inline void lp_unlock(lp_mutex *m) { PyMutex_Unlock(m); }
/* A fork child: the thread that held it does not exist there. */
static inline void lp_mutex_reset(lp_mutex *m) { memset(m, 0, sizeof(*m)); }

static inline int lp_load_int(const int *p) { return _Py_atomic_load_int_relaxed(p); }
static inline void lp_store_int(int *p, int v) { _Py_atomic_store_int_relaxed(p, v); }
static inline long lp_load_long(const long *p) { return (long)_Py_atomic_load_intptr_relaxed((const intptr_t *)p); }
static inline void lp_store_long(long *p, long v) { _Py_atomic_store_intptr_relaxed((intptr_t *)p, (intptr_t)v); }
static inline int64_t lp_load_i64(const int64_t *p) { return _Py_atomic_load_int64_relaxed(p); }
static inline void lp_store_i64(int64_t *p, int64_t v) { _Py_atomic_store_int64_relaxed(p, v); }
static inline unsigned long lp_load_ulong(const unsigned long *p) { return _Py_atomic_load_ulong_relaxed(p); }
static inline uint64_t lp_fetch_add_u64(uint64_t *p, uint64_t v) { return _Py_atomic_add_uint64(p, v); }
static inline void lp_store_ulong(unsigned long *p, unsigned long v) { _Py_atomic_store_ulong_relaxed(p, v); }
static inline unsigned long long lp_load_ullong(const unsigned long long *p) { return _Py_atomic_load_ullong_relaxed(p); }
static inline void lp_store_ullong(unsigned long long *p, unsigned long long v) { _Py_atomic_store_ullong_relaxed(p, v); }
/* A flag set once what it guards is written: a reader that sees it set sees those writes. */
static inline int lp_load_int_acquire(const int *p) { return _Py_atomic_load_int_acquire(p); }
static inline void lp_store_int_release(int *p, int v) { _Py_atomic_store_int_release(p, v); }
/* A pointer that one thread may take while another sets it: exactly one taker gets it. */
static inline void *lp_load_ptr(void *const *p) { return _Py_atomic_load_ptr_relaxed(p); }
static inline void *lp_exchange_ptr(void **p, void *v) { return _Py_atomic_exchange_ptr(p, v); }

#else /* the GIL serialises every caller */
#define LP_FREE_THREADED 0

typedef struct { char unused; } lp_mutex;
static inline void lp_lock(lp_mutex *m) { (void)m; }
static inline void lp_unlock(lp_mutex *m) { (void)m; }
static inline void lp_mutex_reset(lp_mutex *m) { (void)m; }

static inline int lp_load_int(const int *p) { return *p; }
static inline void lp_store_int(int *p, int v) { *p = v; }
static inline long lp_load_long(const long *p) { return *p; }
static inline void lp_store_long(long *p, long v) { *p = v; }
static inline int64_t lp_load_i64(const int64_t *p) { return *p; }
static inline void lp_store_i64(int64_t *p, int64_t v) { *p = v; }
static inline unsigned long lp_load_ulong(const unsigned long *p) { return *p; }
static inline uint64_t lp_fetch_add_u64(uint64_t *p, uint64_t v) { uint64_t old = *p; *p += v; return old; }
static inline void lp_store_ulong(unsigned long *p, unsigned long v) { *p = v; }
static inline unsigned long long lp_load_ullong(const unsigned long long *p) { return *p; }
static inline void lp_store_ullong(unsigned long long *p, unsigned long long v) { *p = v; }
static inline int lp_load_int_acquire(const int *p) { return *p; }
static inline void lp_store_int_release(int *p, int v) { *p = v; }
static inline void *lp_load_ptr(void *const *p) { return *p; }
static inline void *lp_exchange_ptr(void **p, void *v) { void *old = *p; *p = v; return old; }

#endif

/* ------------------------------------------------------------ the sampler's counter
 * The capture sampler adds its step to a counter at every uncontended acquire and captures when
 * it reaches `full`. With the GIL that counter is the sampler's own. Without it, one counter
 * shared by all threads would be a read-modify-write on one cache line by every acquire of
 * every thread: each thread counts in a counter of its own instead (thread-local, a few per
 * thread, by sampler serial), so each thread captures exactly step/full of its checks, as the
 * shared counter does of all of them. A thread's counter starts at a phase spread by the golden
 * ratio over the threads that use the sampler (the first at 0, as the shared counter), so that
 * many short threads still capture their share on average. */

#define LP_THREAD_COUNTERS 4

typedef struct {
    uint64_t serial; /* the sampler's (0: a free slot) */
    long long counter;
} lp_thread_counter;

#ifdef Py_GIL_DISABLED
static LP_THREAD_LOCAL lp_thread_counter lp_thread_counters[LP_THREAD_COUNTERS];

static long long *lp_thread_counter_slot(uint64_t serial, uint64_t *threads, long long full)
{
    lp_thread_counter *slots = lp_thread_counters, found = {serial, 0};
    int i = 1;
    while (i < LP_THREAD_COUNTERS - 1 && slots[i].serial != serial)
        i++;
    if (slots[i].serial == serial) {
        found = slots[i];
    }
    else { /* a new (thread, sampler): the least recently used slot makes room */
        uint64_t k = lp_fetch_add_u64(threads, 1);
        found.counter = (long long)(((k * 0x9E3779B97F4A7C15ULL) >> 32) * (uint64_t)full >> 32);
    }
    memmove(&slots[1], &slots[0], (size_t)i * sizeof(lp_thread_counter));
    slots[0] = found;
    return &slots[0].counter;
}
#endif

/* One check: whether it captures. `counter` is the sampler's shared one (GIL builds);
 * `serial` and `threads` identify the sampler and count its threads (free-threaded builds). */
static inline int lp_sample_check(long long *counter, uint64_t serial, uint64_t *threads, long long step,
                                  long long full)
{
#ifdef Py_GIL_DISABLED
    counter = lp_thread_counters[0].serial == serial ? &lp_thread_counters[0].counter
                                                     : lp_thread_counter_slot(serial, threads, full);
#else
    (void)serial;
    (void)threads;
#endif
    *counter += step;
    if (*counter >= full) {
        *counter -= full;
        return 1;
    }
    return 0;
}

/* A new sampler's serial (never 0); samplers are made by any thread. */
static uint64_t lp_sampler_serials = 0;
static inline uint64_t lp_new_sampler_serial(void) { return lp_fetch_add_u64(&lp_sampler_serials, 1) + 1; }

#endif /* LOCKPROF_SYNC_H */
