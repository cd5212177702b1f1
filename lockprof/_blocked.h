/* The waiters blocked on one lock, counted for the release that ends their wait (its blocking
 * hold), and the random draws that sample their waits in proportion to their length. */
#ifndef LOCKPROF_BLOCKED_H
#define LOCKPROF_BLOCKED_H

#include <Python.h>
#include <stdint.h>
#include "_sync.h"

/* Threads (or asyncio tasks) blocked on one lock right now, so that the release that ends
 * their wait can be told for how long its hold blocked them (its "blocking hold"). Changed
 * only under the recorder's mutex (no GIL) or the GIL; lp_blocking_pending(), on every
 * release, reads it without the mutex. */
typedef struct {
    int waiters;
    int64_t since; /* when the current stretch of blocking began: a first waiter's start, or
                    * the last release, after which the remaining waiters wait on the next hold */
    int64_t carry; /* blocked time of waiters that gave up, not yet credited to a release */
} lp_blocking;

static inline void lp_blocking_enter(lp_blocking *b, int64_t now)
{
    int waiters = b->waiters;
    if (waiters == 0)
        b->since = now;
    lp_store_int(&b->waiters, waiters + 1);
}

/* A waiter is done. One that gave up after really waiting (a timeout, an exception from a
 * signal handler, a cancelled task) was still blocked by the holder: its time is carried to
 * the holder's release. */
static inline void lp_blocking_leave(lp_blocking *b, int waited, int acquired, int64_t now)
{
    int waiters = b->waiters - 1;
    lp_store_int(&b->waiters, waiters);
    if (waiters == 0 && waited && !acquired) {
        lp_store_i64(&b->carry, b->carry + now - b->since);
        b->since = now;
    }
}

static inline int lp_blocking_pending(const lp_blocking *b)
{
    return lp_load_int(&b->waiters) != 0 || lp_load_i64(&b->carry) != 0;
}

/* At a release: the blocked time to credit to it (0 for none). */
static inline int64_t lp_blocking_release(lp_blocking *b, int64_t released_at)
{
    int64_t blocked = b->carry;
    if (b->waiters != 0) {
        blocked += released_at - b->since;
        b->since = released_at;
    }
    lp_store_i64(&b->carry, 0);
    return blocked;
}

/* xorshift64*: the random draws of wait-proportional sampling, under the recorder's mutex (or
 * the GIL). */
static inline uint64_t lp_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#endif /* LOCKPROF_BLOCKED_H */
