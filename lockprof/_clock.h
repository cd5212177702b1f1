/* The clock and the thread ids, read without a Python call. Everything in lockprof's headers
 * runs with the GIL held; what runs inside a lock operation's own path (the clock, the attempt,
 * the stack walk, the table) allocates no Python object, so it can neither run Python code nor
 * trigger the garbage collector. */
#ifndef LOCKPROF_CLOCK_H
#define LOCKPROF_CLOCK_H

#include <Python.h>
#include <stdint.h>
#include "_sync.h" /* LP_THREAD_LOCAL */

#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN /* the full headers define macros such as `small` */
#include <windows.h>
#elif defined(__APPLE__)
#include <mach/mach_time.h>
#else
#include <time.h>
#endif

static inline int64_t lp_monotonic_ns(void)
{
#if defined(_WIN32)
    static LARGE_INTEGER freq;
    LARGE_INTEGER now;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    return (int64_t)(now.QuadPart / freq.QuadPart) * 1000000000
           + (int64_t)((now.QuadPart % freq.QuadPart) * 1000000000 / freq.QuadPart);
#elif defined(__APPLE__)
    /* CLOCK_MONOTONIC has only microsecond resolution on macOS (and needs 10.12); the Mach
     * clock is what time.monotonic() reads there, in nanoseconds. */
    static mach_timebase_info_data_t timebase;
    if (timebase.denom == 0)
        mach_timebase_info(&timebase);
    return (int64_t)(mach_absolute_time() * timebase.numer / timebase.denom);
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
#endif
}

/* The thread identifier threading uses (threading.get_ident()). On POSIX it is pthread_self(),
 * which CPython returns as is; calling it here saves a call through libpython on the RLock
 * fast path, which compares it with the owner on every acquire. */
#ifndef _WIN32
#include <pthread.h>
static inline unsigned long lp_thread_ident(void) { return (unsigned long)pthread_self(); }
#else
static inline unsigned long lp_thread_ident(void) { return PyThread_get_thread_ident(); }
#endif

/* The native thread id is a system call (gettid) on Linux; a captured operation needs it every
 * time, so each thread keeps its own in thread-local storage. A fork child's only thread gets a
 * new id: the at-fork handler starts a new generation, and a cache of an older one is read
 * again. The handler touches no thread-local storage: the first access of a module's in a
 * thread may allocate it, and a fork child must not allocate in its handlers (under a
 * sanitizer's allocator, another thread may have held its lock at the fork). */
static LP_THREAD_LOCAL unsigned long lp_cached_native_id = 0;
static LP_THREAD_LOCAL unsigned long lp_cached_generation = 0;
static unsigned long lp_fork_generation = 1;

static inline unsigned long lp_thread_native_id(void)
{
#ifdef PY_HAVE_THREAD_NATIVE_ID
    if (lp_cached_generation != lp_fork_generation) {
        lp_cached_native_id = PyThread_get_thread_native_id();
        lp_cached_generation = lp_fork_generation;
    }
    return lp_cached_native_id;
#else
    return 0;
#endif
}

#ifndef _WIN32
static void lp_after_fork_in_child(void) { lp_fork_generation++; }
/* Called once at import (lp_module_init); 0 on success. */
static inline int lp_register_atfork(void) { return pthread_atfork(NULL, NULL, lp_after_fork_in_child); }
#else
static inline int lp_register_atfork(void) { return 0; }
#endif

#endif /* LOCKPROF_CLOCK_H */
