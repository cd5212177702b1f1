# cython: language_level=3

from libc.stdint cimport int64_t, uint64_t
from lockprof._lockcore cimport lp_entry, lp_frame_ref, lp_load_int, lp_long_wait, lp_mutex, lp_table
from lockprof._sampler cimport CaptureSampler


cdef class LockInfo:
    """What the profile says about one profiled lock (or about all the locks one site makes,
    Recorder.lock_info_at): its kind, creation site and name, and its exact contention counters
    for the current period."""
    cdef readonly str kind
    cdef readonly object created_code
    cdef readonly int created_offset
    cdef readonly str module
    cdef public object name
    cdef public int name_attempts
    cdef int64_t contended
    cdef int64_t wait_ns
    cdef int64_t max_wait_ns
    cdef int64_t timeouts
    cdef bint listed  # in its Recorder's list of locks contended this period
    # A weak reference to what the program holds in a variable when that is not the lock
    # itself (a Condition holding its own lock), for naming; None otherwise.
    cdef public object owner
    # Named by its creation site (Recorder.lock_info_at), and shared by the locks the site
    # makes up to MAX_SITES: never named at a release.
    cdef readonly bint site_named
    # Named after the local its creation site stored it in, until a release finds it held
    # under an attribute or global (a factory's `lock = Lock(); return lock`).
    cdef public bint local_named


cdef struct Context:
    # Who runs a lock operation; task_name is borrowed from a reference the caller keeps.
    unsigned long thread_id
    unsigned long thread_native_id
    Py_ssize_t task_id
    void* task_name


cdef struct SpanIds:
    # The trace span active where a wait was captured (span_id 0: none) and that wait.
    uint64_t span_id
    uint64_t local_root_span_id  # ddtrace's spans only
    uint64_t trace_id_high
    uint64_t trace_id_low
    int64_t wait_ns


cdef struct EntrySpan:
    # An event table key's span: that of its longest wait captured with one this period.
    lp_entry* entry
    SpanIds span


cdef struct WaiterStack:
    # An acquire's stack (frames borrowed: alive while it waits in them) and context, taken
    # before it blocks; nframes < 0: not taken. Its wait is captured when longer than
    # threshold, drawn below interval before it blocks (interval 0: drawn when it is recorded).
    lp_frame_ref* frames
    int nframes
    int depth
    Context context
    int64_t interval
    int64_t threshold


cdef inline void waiter_init(WaiterStack* waiter, lp_frame_ref* frames) noexcept:
    # Nothing taken or drawn yet; frames: room for the deepest stack (LP_MAX_FRAMES).
    waiter.frames = frames
    waiter.nframes = -1
    waiter.depth = 0
    waiter.interval = 0


# Lock naming at release (_naming.pxi): the wrappers call it once a lock matters.
cdef int name_lock(object target, LockInfo info) except -1


cdef enum Count:
    # What an event adds to the entry of the stack it happens on (Recorder._count_here).
    COUNT_ACQUIRE  # a captured acquire, pending until its release
    COUNT_BLOCKING_HOLD
    COUNT_CONDITION_WAIT


cdef class Recorder:
    # Every lock operation of every thread reads sampler and _active; other threads write the
    # object's header (its reference count) and the fields after _hot_end. Without the GIL a
    # cache line another core writes turns each read of it into a miss: the pads keep these
    # two fields on a line of their own.
    cdef char _hot_start[64]
    cdef readonly CaptureSampler sampler
    # Checked first by every profiled lock operation (is_active(), a relaxed atomic load
    # without the GIL; the property `active` sets it): 0 after stop(), so the locks created
    # while profiling run at native speed without being unwrapped.
    cdef int _active
    cdef char _hot_end[64]
    cdef readonly int max_frames
    # A contended wait (or blocking hold) at least this long is always captured with its
    # stack; a shorter one with probability duration / interval. The configured interval is
    # the least: under a capture rate beyond the budget, the interval in force grows.
    cdef readonly int64_t wait_sample_interval
    # Under the mutex, which the capture paths hold: the properties interval_in_force and
    # capture_budget take it too.
    cdef int64_t _interval_in_force
    cdef int64_t _capture_budget  # captures per second, at most (CAPTURE_BUDGET)
    cdef int64_t _period_max_interval  # the largest interval used since the last drain
    cdef int64_t _window_start_ns
    cdef int64_t _window_captures
    # Without the GIL: what the contended and captured paths change (the table and its pending
    # counts, LockInfo totals and the list of them, the long waits and spans, the capture
    # budget's window, the random state, each lock's blocked waiters). Taken only around C
    # code that runs no Python code; never on the uncontended path. A no-op with the GIL.
    cdef lp_mutex _mutex
    cdef lp_table _table
    cdef bint _draining
    cdef uint64_t _random_state
    cdef list _contended_locks  # the LockInfos with contention counted this period
    cdef int64_t _untracked[4]  # contended, wait, max wait, timeouts of locks beyond the list
    cdef lp_long_wait _long_waits[10]  # LP_LONG_WAITS
    cdef dict _thread_names
    cdef unsigned long _seen_threads[256]  # threads already named this period (_note_thread)
    cdef dict _modules
    cdef dict _sites  # (code address, offset, kind) -> the LockInfo its locks share (lock_info_at)
    cdef dict _site_counts  # (code address, offset, kind) -> locks made by a site not yet shared
    # asyncio's, ddtrace's and OpenTelemetry's objects below are found once, whichever thread
    # comes first, under the Recorder's critical section; each group's flag is then set (a
    # release store) and read without it (an acquire load): who sees it set sees them.
    cdef int _asyncio_found
    cdef object _asyncio_loop_getter
    cdef object _asyncio_task_of  # a loop's running task: asyncio's C current_task, or a dict's get
    cdef object _c_task_type  # asyncio's C Task, or None
    cdef object _c_task_get_name  # its own get_name, or None
    # Per event table key, the span of its longest captured wait (open addressing on the entry
    # pointer, twice the table's keys: never full); NULL until a span is first seen.
    cdef EntrySpan* _entry_spans
    cdef size_t _entry_spans_mask
    cdef SpanIds _long_wait_spans[10]  # LP_LONG_WAITS, the span of each long-wait slot
    # Where the active span is read, found once its tracer is imported: ddtrace's context
    # variable, Span type and C getters; OpenTelemetry's context variable, span key, SpanContext.
    cdef int _dd_found
    cdef object _dd_span_var
    cdef object _dd_span_type
    cdef object _dd_span_id
    cdef object _dd_trace_id
    cdef object _dd_local_root
    cdef int _otel_found
    cdef object _otel_context_var
    cdef object _otel_span_key
    cdef object _otel_span_context_type

    cdef inline bint is_active(self) noexcept:
        return lp_load_int(&self._active)

    cdef LockInfo lock_info_at(self, str kind, object code, int offset, str module, bint* shared)
    cdef void release_pending(self, lp_entry* entry) noexcept
    cdef lp_entry* record_acquire(self, LockInfo info) noexcept
    cdef lp_entry* record_wait(self, LockInfo info, int64_t wait_ns, int64_t now, bint timed_out,
                              bint count_acquire) noexcept
    cdef object capture_waiter(self, WaiterStack* waiter)
    cdef lp_entry* record_wait_of(self, LockInfo info, int64_t wait_ns, int64_t now, bint timed_out,
                                  bint count_acquire, WaiterStack* waiter) noexcept
    cdef void record_release(self, lp_entry* entry, int64_t hold_ns) noexcept
    cdef void record_blocking_hold(self, LockInfo info, int64_t blocked_ns, int64_t now) noexcept
    cdef void record_condition_wait(self, LockInfo info, int64_t wait_ns, int64_t now) noexcept
    cdef bint draw_before_wait(self, LockInfo info, WaiterStack* waiter, int64_t now) noexcept
    cdef lp_entry* _count_here(self, LockInfo info, Count what, int64_t amount) noexcept
    cdef int64_t _sampled(self, int64_t duration_ns, int64_t now) noexcept
    cdef int64_t _chosen(self, int64_t duration_ns, int64_t interval, int64_t threshold, int64_t now) noexcept
    cdef int64_t _interval_now(self, int64_t now) noexcept
    cdef int64_t _threshold(self, int64_t interval) noexcept
    cdef void _rescale_interval(self, int64_t now) noexcept
    cdef void _count_contention(self, LockInfo info, int64_t wait_ns, bint timed_out) noexcept
    cdef lp_entry* _entry(self, LockInfo info, Context* context, lp_frame_ref* frames, int nframes,
                          int depth, bint timed_out) noexcept
    cdef object _current_task(self)
