# What Recorder.drain() takes from the table, the per-lock totals, the long-wait slots and the
# thread names, each reset as it is read. Included by _recorder.pyx.


cdef object drain_events(Recorder recorder):
    cdef size_t i, n = 0, count
    cdef size_t evicted_count = 0, room
    cdef lp_entry* e
    cdef lp_entry** taken
    cdef lp_entry* values
    cdef int k
    cdef EventCounts event
    cdef EntrySpan* spans = NULL
    cdef EntrySpan* slot
    cdef size_t spans_mask
    cdef bint has_spans
    lp_lock(&recorder._mutex)  # the table's size and its spans', as their writers leave them (no GIL)
    count = recorder._table.count
    has_spans = recorder._entry_spans != NULL  # once made, never freed or resized before dealloc
    spans_mask = recorder._entry_spans_mask
    lp_unlock(&recorder._mutex)
    # Phase 1, no Python allocation: copy out and zero the counters of the active entries,
    # marking them pending so nothing evicts them while phase 2 reads their frames. Entries
    # made since count was read (no GIL) keep their counts for the next drain.
    taken = <lp_entry**>PyMem_RawMalloc((count + 1) * sizeof(lp_entry*))
    values = <lp_entry*>PyMem_RawMalloc((count + 1) * sizeof(lp_entry))
    if has_spans:
        spans = <EntrySpan*>PyMem_RawMalloc((spans_mask + 1) * sizeof(EntrySpan))
    if taken == NULL or values == NULL or (has_spans and spans == NULL):
        PyMem_RawFree(taken)
        PyMem_RawFree(values)
        PyMem_RawFree(spans)
        raise MemoryError()
    lp_lock(&recorder._mutex)
    if spans != NULL:  # the period's spans, taken with the counts (spans made since: the next drain's)
        memcpy(spans, recorder._entry_spans, (spans_mask + 1) * sizeof(EntrySpan))
        memset(recorder._entry_spans, 0, (spans_mask + 1) * sizeof(EntrySpan))
    for i in range(recorder._table.mask + 1):
        e = recorder._table.slots[i]
        if e == NULL or lp_entry_is_idle(e):
            continue
        if n == count:
            break
        taken[n] = e
        values[n] = e[0]  # the counters (the copied frames array is never read)
        e.acquire_count = e.release_count = e.release_hold_ns = 0
        e.contended_count = 0.0
        e.acquire_wait_ns = e.blocking_hold_ns = e.condition_wait_ns = 0
        e.pending += 1
        n += 1
    dropped = recorder._table.dropped
    recorder._table.dropped = 0
    lp_unlock(&recorder._mutex)
    # Phase 2: build the Python records (this may run the garbage collector, and through it
    # code that uses profiled locks: the table stays consistent throughout).
    records = []
    try:
        for i in range(n):
            e = taken[i]
            event = EventCounts.__new__(EventCounts)
            event.lock_info = <LockInfo>e.lock_info
            event.frames = tuple([(<object>e.frames[k].code, e.frames[k].lasti) for k in range(e.nframes)])
            event.omitted = e.omitted
            event.thread_id = e.thread_id
            event.thread_native_id = e.thread_native_id
            event.task_id = e.task_id if e.task_id != 0 else None
            event.task_name = <object>e.task_name if e.task_name != NULL else None
            event.timed_out = e.timed_out
            event.acquire_count = values[i].acquire_count
            event.release_count = values[i].release_count
            event.release_hold_ns = values[i].release_hold_ns
            event.contended_count = values[i].contended_count
            event.acquire_wait_ns = values[i].acquire_wait_ns
            event.blocking_hold_ns = values[i].blocking_hold_ns
            event.condition_wait_ns = values[i].condition_wait_ns
            if spans != NULL:
                slot = _entry_span(spans, spans_mask, e)
                if slot.entry == e:
                    _set_span(event, &slot.span)
                    event.span_wait_ns = slot.span.wait_ns
            records.append(event)
    finally:
        PyMem_RawFree(values)
        PyMem_RawFree(spans)
        # Phase 3: evict the entries idle since phase 1, then free them with the table whole
        # and the mutex released (freeing runs code: a weakref callback of a code object).
        room = count
        while True:
            lp_lock(&recorder._mutex)
            for i in range(n):
                taken[i].pending -= 1
            n = 0
            if recorder._table.count <= room:
                evicted_count = lp_table_evict_idle(&recorder._table, taken)
                lp_unlock(&recorder._mutex)
                break
            room = recorder._table.count + 16
            lp_unlock(&recorder._mutex)
            PyMem_RawFree(taken)
            taken = <lp_entry**>PyMem_RawMalloc((room + 1) * sizeof(lp_entry*))
            if taken == NULL:
                break
        for i in range(evicted_count):
            lp_entry_free(taken[i])
        PyMem_RawFree(taken)
    return records, dropped


cdef list drain_lock_totals(Recorder recorder):
    cdef LockInfo info
    cdef int64_t untracked[4]
    cdef int64_t* counts = NULL
    cdef Py_ssize_t i, n, room = 0
    fresh = []
    # Taken and reset under the mutex, with no allocation in between: a lock operation (of
    # another thread, or run by the garbage collector) then counts into the next period.
    while True:
        lp_lock(&recorder._mutex)
        locks = recorder._contended_locks
        n = len(locks)
        if n <= room:
            break
        lp_unlock(&recorder._mutex)
        room = n + 64
        PyMem_RawFree(counts)
        counts = <int64_t*>PyMem_RawMalloc(room * 4 * sizeof(int64_t))
        if counts == NULL:
            raise MemoryError()
    recorder._contended_locks = fresh  # `locks` keeps the old list alive: no code runs
    for i in range(n):
        info = <LockInfo>(<list>locks)[i]
        counts[4 * i], counts[4 * i + 1] = info.contended, info.wait_ns
        counts[4 * i + 2], counts[4 * i + 3] = info.max_wait_ns, info.timeouts
        info.contended = info.wait_ns = info.max_wait_ns = info.timeouts = 0
        info.listed = False
    memcpy(untracked, recorder._untracked, sizeof(untracked))
    memset(recorder._untracked, 0, sizeof(recorder._untracked))
    lp_unlock(&recorder._mutex)
    totals = []
    try:
        for i in range(n):
            if counts[4 * i]:
                totals.append(_contention(locks[i], counts[4 * i], counts[4 * i + 1], counts[4 * i + 2],
                                          counts[4 * i + 3]))
    finally:
        PyMem_RawFree(counts)
    if untracked[0]:
        totals.append(_contention(None, untracked[0], untracked[1], untracked[2], untracked[3]))
    return totals


cdef list drain_long_waits(Recorder recorder):
    cdef lp_long_wait taken[LP_LONG_WAITS]
    cdef SpanIds spans[LP_LONG_WAITS]
    cdef int i, k
    cdef LongWaitRecord wait
    # Moved out whole, then read: the slots are empty for waits recorded meanwhile.
    lp_lock(&recorder._mutex)
    memcpy(taken, recorder._long_waits, sizeof(taken))
    memset(recorder._long_waits, 0, sizeof(recorder._long_waits))
    memcpy(spans, recorder._long_wait_spans, sizeof(spans))
    memset(recorder._long_wait_spans, 0, sizeof(recorder._long_wait_spans))
    lp_unlock(&recorder._mutex)
    waits = []
    try:
        for i in range(LP_LONG_WAITS):
            if taken[i].wait_ns == 0:
                continue
            wait = LongWaitRecord.__new__(LongWaitRecord)
            wait.wait_ns = taken[i].wait_ns
            wait.lock_info = <LockInfo>taken[i].lock_info
            wait.thread_id = taken[i].thread_id
            wait.task_id = taken[i].task_id if taken[i].task_id != 0 else None
            wait.task_name = <object>taken[i].task_name if taken[i].task_name != NULL else None
            wait.timed_out = taken[i].timed_out
            wait.frames = tuple([(<object>taken[i].frames[k].code, taken[i].frames[k].lasti)
                                 for k in range(taken[i].nframes)])
            _set_span(wait, &spans[i])
            waits.append(wait)
    finally:
        for i in range(LP_LONG_WAITS):
            lp_long_wait_clear(&taken[i])
    waits.sort(key=_wait_length, reverse=True)
    return waits


cdef dict drain_thread_names(Recorder recorder):
    cdef int i
    fresh = {}
    with cython.critical_section(recorder):  # threads add names to the dict under it
        thread_names = recorder._thread_names
        recorder._thread_names = fresh
    for i in range(256):
        lp_store_ulong(&recorder._seen_threads[i], 0)
    return thread_names


def _wait_length(LongWaitRecord wait):
    return wait.wait_ns
