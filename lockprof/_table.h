/* The bounded event table, an open-addressing hash table of malloc'd entries, and the slots of
 * the period's longest waits. */
#ifndef LOCKPROF_TABLE_H
#define LOCKPROF_TABLE_H

#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "_stack.h"

/* ------------------------------------------------------------- event table
 * Captured events are summed per key (lock, thread, task, stack, outcome). Entries are malloc'd with the
 * frames inline and hold strong references to the lock's info object, the task name and the code
 * objects. The slot array never grows: once max_entries keys exist, events for new keys are
 * counted as dropped, so memory is bounded however long the program runs. An entry whose
 * acquire is still waiting for its release (pending > 0) is never evicted, because the lock
 * holds a pointer to it until then.
 */

typedef struct lp_entry {
    uint64_t hash;
    PyObject *lock_info;
    unsigned long thread_id;
    unsigned long thread_native_id;
    Py_ssize_t task_id; /* 0: not in a task */
    PyObject *task_name; /* NULL when not in a task */
    /* Sampled at capture_pct, raw counts (the collector upscales them). */
    int64_t acquire_count;
    int64_t release_count;
    int64_t release_hold_ns;
    /* Sampled in proportion to their length, already weighted (unbiased estimates). */
    double contended_count;
    int64_t acquire_wait_ns;
    int64_t blocking_hold_ns;
    int64_t condition_wait_ns; /* Condition.wait() waiting for a notify, not for the lock */
    int timed_out; /* part of the key: these waits ended in a timeout */
    int pending;
    int nframes;
    int omitted;
    lp_frame_ref frames[1]; /* nframes of them */
} lp_entry;

static inline int lp_entry_is_idle(const lp_entry *e)
{
    return e->acquire_count == 0 && e->release_count == 0 && e->contended_count == 0.0
           && e->acquire_wait_ns == 0 && e->blocking_hold_ns == 0 && e->condition_wait_ns == 0;
}

typedef struct {
    lp_entry **slots;
    size_t mask;
    size_t count;
    size_t max_entries;
    uint64_t dropped;
} lp_table;

typedef struct {
    PyObject *lock_info;
    unsigned long thread_id;
    unsigned long thread_native_id;
    Py_ssize_t task_id;
    PyObject *task_name;
    const lp_frame_ref *frames;
    int nframes;
    int omitted;
    int timed_out;
} lp_key;

static inline int lp_table_init(lp_table *t, size_t max_entries)
{
    size_t capacity = 16;
    while (capacity < max_entries + max_entries / 2) /* load factor at most 2/3 */
        capacity <<= 1;
    t->slots = (lp_entry **)PyMem_RawCalloc(capacity, sizeof(lp_entry *));
    if (t->slots == NULL)
        return -1;
    t->mask = capacity - 1;
    t->count = 0;
    t->max_entries = max_entries;
    t->dropped = 0;
    return 0;
}

/* A captured stack is 64 frames at most, hashed at every capture: one multiply per frame, the
 * frames alternating between two lanes so that the chain of dependent multiplies is half the
 * stack long. Multiplying carries differences only upwards; the final avalanche brings the
 * high bits down into the ones a slot index takes. */
static inline uint64_t lp_fold(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x9e3779b97f4a7c15ULL;
}

static inline uint64_t lp_frame_word(const lp_frame_ref *f)
{
    return (uint64_t)(uintptr_t)f->code ^ ((uint64_t)(uint32_t)f->lasti << 32);
}

static uint64_t lp_key_hash(const lp_key *k)
{
    uint64_t a = lp_fold((uint64_t)(uintptr_t)k->lock_info, (uint64_t)k->task_id);
    uint64_t b = lp_fold((uint64_t)k->thread_id, ((uint64_t)(uint32_t)k->omitted << 1) | (k->timed_out != 0));
    int i = 0;
    for (; i + 1 < k->nframes; i += 2) {
        a = lp_fold(a, lp_frame_word(&k->frames[i]));
        b = lp_fold(b, lp_frame_word(&k->frames[i + 1]));
    }
    if (i < k->nframes)
        a = lp_fold(a, lp_frame_word(&k->frames[i]));
    uint64_t h = a ^ ((b << 31) | (b >> 33));
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h;
}

static int lp_entry_matches(const lp_entry *e, uint64_t hash, const lp_key *k)
{
    if (e->hash != hash || e->lock_info != k->lock_info || e->thread_id != k->thread_id
        || e->task_id != k->task_id || e->nframes != k->nframes || e->omitted != k->omitted
        || e->timed_out != k->timed_out)
        return 0;
    for (int i = 0; i < k->nframes; i++) {
        if (e->frames[i].code != k->frames[i].code || e->frames[i].lasti != k->frames[i].lasti)
            return 0;
    }
    return 1;
}

static lp_entry *lp_entry_new(uint64_t hash, const lp_key *k)
{
    size_t size = sizeof(lp_entry) + (size_t)(k->nframes > 0 ? k->nframes - 1 : 0) * sizeof(lp_frame_ref);
    lp_entry *e = (lp_entry *)PyMem_RawCalloc(1, size);
    if (e == NULL)
        return NULL;
    e->hash = hash;
    e->lock_info = k->lock_info;
    Py_INCREF(e->lock_info);
    e->thread_id = k->thread_id;
    e->thread_native_id = k->thread_native_id;
    e->task_id = k->task_id;
    e->task_name = k->task_name;
    Py_XINCREF(e->task_name);
    e->nframes = k->nframes;
    e->omitted = k->omitted;
    e->timed_out = k->timed_out;
    for (int i = 0; i < k->nframes; i++) {
        e->frames[i] = k->frames[i];
        Py_INCREF(e->frames[i].code);
    }
    return e;
}

/* Releasing the references can run arbitrary code (a weakref callback on a dying code object),
 * so callers free entries only once the table is consistent again. */
static inline void lp_entry_free(lp_entry *e)
{
    Py_DECREF(e->lock_info);
    Py_XDECREF(e->task_name);
    for (int i = 0; i < e->nframes; i++)
        Py_DECREF(e->frames[i].code);
    PyMem_RawFree(e);
}

/* The entry for `k`, created if needed; NULL when the table is full or memory ran out
 * (counted in t->dropped). */
static inline lp_entry *lp_table_upsert(lp_table *t, const lp_key *k)
{
    uint64_t hash = lp_key_hash(k);
    size_t i = (size_t)hash & t->mask;
    for (;;) {
        lp_entry *e = t->slots[i];
        if (e == NULL)
            break;
        if (lp_entry_matches(e, hash, k))
            return e;
        i = (i + 1) & t->mask;
    }
    if (t->count >= t->max_entries) {
        t->dropped++;
        return NULL;
    }
    lp_entry *e = lp_entry_new(hash, k);
    if (e == NULL) {
        t->dropped++;
        return NULL;
    }
    t->slots[i] = e;
    t->count++;
    return e;
}

/* Removes every entry with no counts and no pending hold, rebuilding the probe sequences.
 * The removed entries are returned in `evicted` (capacity t->count) for the caller to free. */
static inline size_t lp_table_evict_idle(lp_table *t, lp_entry **evicted)
{
    size_t capacity = t->mask + 1, kept = 0, removed = 0;
    lp_entry **live = evicted; /* reuse the caller's buffer from the end for the kept entries */
    size_t live_end = t->count;
    for (size_t i = 0; i < capacity; i++) {
        lp_entry *e = t->slots[i];
        if (e == NULL)
            continue;
        t->slots[i] = NULL;
        if (e->pending == 0 && lp_entry_is_idle(e))
            evicted[removed++] = e;
        else
            live[--live_end] = e;
    }
    for (size_t j = live_end; j < t->count; j++) {
        lp_entry *e = live[j];
        size_t i = (size_t)e->hash & t->mask;
        while (t->slots[i] != NULL)
            i = (i + 1) & t->mask;
        t->slots[i] = e;
        kept++;
    }
    t->count = kept;
    return removed;
}

/* ------------------------------------------------------------- long waits
 * The longest waits of a period, kept as they happened (not sampled) in a fixed array: a slot
 * holds strong references to the lock's info, the task name and the waiter's innermost code
 * objects. */

#define LP_LONG_WAITS 10
#define LP_LONG_WAIT_FRAMES 8

typedef struct {
    int64_t wait_ns; /* 0: an empty slot */
    PyObject *lock_info;
    unsigned long thread_id;
    Py_ssize_t task_id;
    PyObject *task_name;
    int timed_out;
    int nframes;
    lp_frame_ref frames[LP_LONG_WAIT_FRAMES];
} lp_long_wait;

/* The slot a wait of wait_ns would replace (an empty one or the shortest), or NULL when every
 * kept wait is at least as long. */
static inline lp_long_wait *lp_long_wait_slot(lp_long_wait *slots, int64_t wait_ns)
{
    lp_long_wait *shortest = &slots[0];
    for (int i = 1; i < LP_LONG_WAITS; i++) {
        if (slots[i].wait_ns < shortest->wait_ns)
            shortest = &slots[i];
    }
    return wait_ns > shortest->wait_ns ? shortest : NULL;
}

static inline void lp_long_wait_clear(lp_long_wait *w)
{
    PyObject *lock_info = w->lock_info, *task_name = w->task_name;
    PyObject *codes[LP_LONG_WAIT_FRAMES];
    int n = w->nframes;
    for (int i = 0; i < n; i++)
        codes[i] = w->frames[i].code;
    memset(w, 0, sizeof(*w));
    /* Released once the slot is empty: a release may run code that reads the slots. */
    Py_XDECREF(lock_info);
    Py_XDECREF(task_name);
    for (int i = 0; i < n; i++)
        Py_DECREF(codes[i]);
}

/* Fills an empty slot; takes new references. */
static inline void lp_long_wait_fill(lp_long_wait *w, int64_t wait_ns, PyObject *lock_info,
                                     unsigned long thread_id, Py_ssize_t task_id, PyObject *task_name,
                                     int timed_out, const lp_frame_ref *frames, int nframes)
{
    w->wait_ns = wait_ns;
    w->lock_info = lock_info;
    Py_INCREF(lock_info);
    w->thread_id = thread_id;
    w->task_id = task_id;
    w->task_name = task_name;
    Py_XINCREF(task_name);
    w->timed_out = timed_out;
    w->nframes = nframes < LP_LONG_WAIT_FRAMES ? nframes : LP_LONG_WAIT_FRAMES;
    for (int i = 0; i < w->nframes; i++) {
        w->frames[i] = frames[i];
        Py_INCREF(frames[i].code);
    }
}

#endif /* LOCKPROF_TABLE_H */
