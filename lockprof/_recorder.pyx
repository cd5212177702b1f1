# cython: language_level=3
"""The recorder: turns lock operations into counts in the bounded event table.

Three kinds of events come here, each with its own sampling rule:
- an acquire sampled at capture_pct (the sampler's choice), whose release adds the hold time to
  the same table entry without walking the stack again;
- every contended wait: counted exactly on its lock (no stack), and captured with its stack
  with probability wait / interval (always when at least the interval), weighted so the totals
  stay unbiased; the longest waits of the period are also kept as they were. The interval is
  wait_sample_interval, raised while captures would exceed the capture budget (hundreds of
  tasks queued on one asyncio.Lock wait a hundred seconds every second);
- a release that ended a hold while other threads were blocked: the blocked part of the hold,
  sampled like a wait, on the releaser's stack.
The stack is walked as (code object, instruction offset) per frame; names, files and line
numbers are resolved later, by drain()'s caller, outside any lock operation. Nothing here runs
the caller's code or allocates a Python object that the garbage collector tracks.
"""

import sys
from functools import partial
from contextvars import ContextVar
from types import (BuiltinFunctionType, CoroutineType, FunctionType, GeneratorType,
                   GetSetDescriptorType, MemberDescriptorType, MethodDescriptorType, MethodType)
from weakref import ReferenceType

from cpython.contextvars cimport get_value
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawMalloc, PyMem_RawFree
cimport cython
from cpython.object cimport PyObject, PyObject_GenericGetAttr
from libc.stdint cimport int64_t, uint64_t, uintptr_t
from libc.string cimport memcpy, memset

from lockprof._lockcore cimport (
    LP_LONG_WAIT_FRAMES, LP_LONG_WAITS, LP_MAX_FRAMES, LP_MAX_WALK,
    lp_capture_stack, lp_entry, lp_entry_free, lp_entry_is_idle, lp_frame_lasti, lp_frame_ref, lp_key,
    lp_load_int_acquire, lp_load_ulong, lp_lock, lp_mutex_reset, lp_store_int, lp_store_int_release,
    lp_store_ulong, lp_unlock,
    lp_long_wait, lp_long_wait_clear, lp_long_wait_fill, lp_long_wait_slot, lp_monotonic_ns,
    lp_random, lp_module_init, lp_table_evict_idle, lp_table_init, lp_table_upsert,
    lp_thread_ident, lp_thread_native_id, lp_assigned_name, lp_class_dict, lp_current_frame, lp_frame_local_name,
    LP_OP_OTHER, LP_OP_CACHE, LP_OP_EXTENDED_ARG, LP_OP_LOAD, LP_OP_STORE_NAME, LP_OP_STORE_ATTR,
    LP_OP_STORE_FAST, LP_OP_STORE_FAST_PAIR, LP_OP_STORE_DEREF, LP_OP_JUMP_FORWARD,
    LP_OP_JUMP_ABSOLUTE, LP_NAME_SITE,
)
from lockprof._sampler cimport CaptureSampler

from lockprof import _resolve

cdef extern from "Python.h":
    object PyObject_GenericGetDict(object obj, void* context)
    unsigned long long PyLong_AsUnsignedLongLongMask(object obj) except? -1
    ctypedef object (*descrgetfunc)(object descr, object obj, object owner)
    ctypedef struct PyTypeObject:
        descrgetfunc tp_descr_get
    PyTypeObject* Py_TYPE(object obj)
    # Called through a borrowed pointer: no write to the shared callable's reference count,
    # which threads capturing at once would each take a cache miss on (3.13t).
    object PyObject_CallNoArgs(PyObject* callable)
    object PyObject_CallOneArg(PyObject* callable, object arg)

# The most locks whose exact contention counters one period keeps apart; the contention of
# further locks is summed under no name.
DEF MAX_CONTENDED_LOCKS = 65536

# The capture budget: stacks of waits, blocking holds and condition waits taken per second, at
# most (Recorder.capture_budget), about 0.1 to 0.5% of a core (docs/configuration.md). The rate
# is measured over windows of RATE_WINDOW_NS, or fewer once the window's share is spent; the
# interval in force is then rescaled by the rate found over the budget, at most MAX_GROWTH
# times up per window (a burst is not a rate), between wait_sample_interval and
# MAX_INTERVAL_NS.
DEF CAPTURE_BUDGET = 5000
DEF RATE_WINDOW_NS = 100000000
DEF MAX_GROWTH = 4
DEF MAX_INTERVAL_NS = 1000000000

# The most creation sites whose shared LockInfo a Recorder keeps (each holds its code object);
# locks made at further sites get a LockInfo of their own.
DEF MAX_SITES = 16384
# A site that does not name its locks shares one LockInfo from its HOT_SITE_LOCKS-th lock on,
# counted over up to MAX_COUNTED_SITES such sites at once (the counts start again when full).
DEF HOT_SITE_LOCKS = 64
DEF MAX_COUNTED_SITES = 4096

lp_module_init()

include "_naming.pxi"
include "_context.pxi"



cdef inline void _sampled_here(Recorder recorder, LockInfo info, Count what, int64_t duration_ns,
                               int64_t now) noexcept:
    """A duration (a blocking hold, a condition wait) sampled like a wait: when it is, its
    weighted length is added to the entry of this stack."""
    lp_lock(&recorder._mutex)
    cdef int64_t interval = recorder._sampled(duration_ns, now)
    lp_unlock(&recorder._mutex)
    if interval != 0:
        recorder._count_here(info, what, duration_ns if duration_ns >= interval else interval)


cdef class LockInfo:

    def __cinit__(self, str kind, object created_code, int created_offset, str module):
        self.kind = kind
        self.created_code = created_code
        self.created_offset = created_offset
        self.module = module
        self.name = None
        self.name_attempts = 0
        self.owner = None
        self.site_named = False
        self.local_named = False

    @property
    def site(self):
        """'path/to/module.py:42', where the lock was created."""
        return _resolve.site(self.created_code, self.created_offset)

    @property
    def display_name(self):
        """'path/to/module.py:42:variable', the lock's name in profiles."""
        return _resolve.lock_display_name(self)


include "_records.pxi"
include "_spans.pxi"
include "_drain.pxi"


cdef class Recorder:
    """Shared by every lock one collector creates; lives as long as the collector."""

    def __cinit__(self, CaptureSampler sampler not None, int max_frames=64, Py_ssize_t max_entries=4096,
                  int64_t wait_sample_interval=1000000):
        if max_frames < 1 or max_frames > LP_MAX_FRAMES:
            raise ValueError(f"max_frames must be an integer between 1 and {LP_MAX_FRAMES}, got {max_frames}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be a positive integer, got {max_entries}")
        if wait_sample_interval < 1:
            raise ValueError(f"wait_sample_interval must be a positive number of nanoseconds, got {wait_sample_interval}")
        if lp_table_init(&self._table, <size_t>max_entries) != 0:
            raise MemoryError()
        self.sampler = sampler
        self.max_frames = max_frames
        self.wait_sample_interval = wait_sample_interval
        self._interval_in_force = self._period_max_interval = wait_sample_interval
        self._capture_budget = CAPTURE_BUDGET
        self._window_start_ns = lp_monotonic_ns()
        self._window_captures = 0
        self._active = 0
        self._random_state = <uint64_t>lp_monotonic_ns() * 0x9E3779B97F4A7C15ULL | 1
        self._contended_locks = []
        self._thread_names = {}
        self._modules = sys.modules
        self._sites = {}
        self._site_counts = {}

    def __dealloc__(self):
        cdef size_t i
        cdef int w
        cdef lp_entry* e
        for w in range(LP_LONG_WAITS):
            lp_long_wait_clear(&self._long_waits[w])
        if self._table.slots == NULL:
            return
        for i in range(self._table.mask + 1):
            e = self._table.slots[i]
            if e != NULL:
                lp_entry_free(e)
        PyMem_RawFree(self._table.slots)
        self._table.slots = NULL
        PyMem_RawFree(self._entry_spans)
        self._entry_spans = NULL

    @property
    def active(self):
        """Whether the locks of this recorder profile their operations (False after stop())."""
        return self.is_active()

    @active.setter
    def active(self, value):
        lp_store_int(&self._active, 1 if value else 0)

    # -------------------------------------------------------------- locks

    cdef LockInfo lock_info_at(self, str kind, object code, int offset, str module, bint* shared):
        """The LockInfo of a lock made now by instruction `offset` of `code`; *shared tells
        whether every later lock of the site gets the same one. The locks a site
        makes share one, so that locks made per request add one event table key, not one per
        request: when the site stores them under one attribute or module or class variable
        (`self._lock = threading.Lock()`), which profiles name alike anyway, named after it;
        and once any other site has made HOT_SITE_LOCKS of them, named after the local they are
        stored in, if any. Until then (and beyond MAX_SITES), such a site's locks get one each,
        named at their first captured release when they are held under an attribute or global
        there (a factory's lock is better named where it is held), else after the site's local:
        never after a local of the releasing code, which would make one site two names."""
        cdef PyObject* name
        cdef LockInfo info
        # The code's address is unique while the shared LockInfo holds the code. A count may
        # outlive its code and be continued by another at the same address: it only counts.
        site = (<uintptr_t><PyObject*>code, offset, kind)
        known = self._sites.get(site)
        shared[0] = known is not None
        if known is not None:
            return <LockInfo>known
        what = site_name(code, offset, &name)
        info = LockInfo.__new__(LockInfo, kind, code, offset, module)
        if what != LP_NAME_SITE:
            made = self._site_counts.get(site, 0) + 1
            if made < HOT_SITE_LOCKS or len(self._sites) >= MAX_SITES:
                if len(self._site_counts) >= MAX_COUNTED_SITES:
                    self._site_counts.clear()
                self._site_counts[site] = made
                if name != NULL:
                    info.name = <object>name
                    info.local_named = True
                return info
            self._site_counts.pop(site, None)
        if name != NULL:
            info.name = <object>name
        info.site_named = True
        if len(self._sites) < MAX_SITES:
            info = <LockInfo>self._sites.setdefault(site, info)
            shared[0] = True
        return info

    # -------------------------------------------------------------- events
    # Called from inside the user's lock operations: they never raise and run no user code.

    cdef lp_entry* record_acquire(self, LockInfo info) noexcept:
        """Count an acquire chosen by the sampler; the entry (or NULL when dropped) is pending
        until record_release."""
        return self._count_here(info, COUNT_ACQUIRE, 1)

    cdef void release_pending(self, lp_entry* entry) noexcept:
        """A pending entry's hold will never be released (the lock died or was reinitialised)."""
        lp_lock(&self._mutex)
        entry.pending -= 1
        lp_unlock(&self._mutex)

    cdef lp_entry* record_wait(self, LockInfo info, int64_t wait_ns, int64_t now, bint timed_out,
                              bint count_acquire) noexcept:
        """Count a contended wait that ended at now (the caller's clock read, which the capture
        budget's window is measured with too: a clock read saved on every event). With
        count_acquire (the sampler chose this acquire, which got the lock) the acquire is counted
        too and the entry returned is pending, as from record_acquire; otherwise the result is
        NULL."""
        cdef lp_frame_ref frames[LP_MAX_FRAMES]
        cdef WaiterStack waiter
        waiter_init(&waiter, frames)  # walked and drawn in record_wait_of, only when needed
        return self.record_wait_of(info, wait_ns, now, timed_out, count_acquire, &waiter)

    cdef object capture_waiter(self, WaiterStack* waiter):
        """Walk the stack and read the thread and task of an acquire about to block (into
        waiter.frames, max_frames long), for record_wait_of() once it returns: so that a
        recorded wait adds nothing to the critical section the waiter then enters. Returns the
        task name, which the caller keeps alive while waiter.context borrows it."""
        waiter.nframes = lp_capture_stack(waiter.frames, self.max_frames, &waiter.depth)
        return fill_context(self, &waiter.context)

    cdef lp_entry* record_wait_of(self, LockInfo info, int64_t wait_ns, int64_t now, bint timed_out,
                                  bint count_acquire, WaiterStack* waiter) noexcept:
        """record_wait() for a waiter whose stack capture_waiter() took (or, nframes < 0, is
        taken here when needed). The waiter's task name stays alive in its caller."""
        cdef lp_entry* entry = NULL
        cdef lp_long_wait* slot
        cdef lp_long_wait replaced  # a long wait this one replaces, released outside the mutex
        lp_lock(&self._mutex)
        cdef int64_t interval = (self._chosen(wait_ns, waiter.interval, waiter.threshold, now) if waiter.interval > 0
                                 else self._sampled(wait_ns, now))
        cdef bint sampled = interval > 0
        cdef bint long_wait = lp_long_wait_slot(self._long_waits, wait_ns) != NULL
        self._count_contention(info, wait_ns, timed_out)
        lp_unlock(&self._mutex)
        if not (sampled or count_acquire or long_wait):
            return NULL
        task_name = None
        if waiter.nframes < 0:
            task_name = fill_context(self, &waiter.context)
            max_frames = self.max_frames if (sampled or count_acquire) else LP_LONG_WAIT_FRAMES
            waiter.nframes = awaiters_stack(self, waiter, max_frames)
            if waiter.nframes == 0:
                waiter.nframes = lp_capture_stack(waiter.frames, max_frames, &waiter.depth)
        cdef lp_frame_ref* frames = waiter.frames
        cdef int nframes = waiter.nframes, depth = waiter.depth
        cdef Context context = waiter.context
        cdef SpanIds span
        cdef bint has_span = False
        span.wait_ns = wait_ns
        if sampled or long_wait:  # read before the mutex is taken: it runs Python code
            has_span = current_span(self, &span)
        memset(&replaced, 0, sizeof(replaced))
        lp_lock(&self._mutex)
        if sampled or count_acquire:
            entry = self._entry(info, &context, frames, nframes, depth, timed_out)
        if entry != NULL:
            if sampled:
                if wait_ns >= interval:
                    entry.contended_count += 1.0
                    entry.acquire_wait_ns += wait_ns
                else:  # captured with probability wait / interval: weight interval / wait
                    entry.contended_count += <double>interval / <double>wait_ns
                    entry.acquire_wait_ns += interval
                if has_span:
                    keep_span(self, entry, &span)
            if count_acquire:
                entry.acquire_count += 1
                entry.pending += 1
        slot = lp_long_wait_slot(self._long_waits, wait_ns) if long_wait else NULL  # chosen again
        if slot != NULL:
            replaced = slot[0]
            memset(slot, 0, sizeof(replaced))
            lp_long_wait_fill(slot, wait_ns, <PyObject*>info, context.thread_id, context.task_id,
                              <PyObject*>context.task_name, timed_out, frames, nframes)
            self._long_wait_spans[slot - self._long_waits] = span
        lp_unlock(&self._mutex)
        lp_long_wait_clear(&replaced)
        return entry if count_acquire else NULL

    cdef void record_release(self, lp_entry* entry, int64_t hold_ns) noexcept:
        """End the hold that record_acquire started; counted only while profiling is active."""
        lp_lock(&self._mutex)
        entry.pending -= 1
        if self.is_active():
            entry.release_count += 1
            entry.release_hold_ns += hold_ns
        lp_unlock(&self._mutex)

    cdef void record_blocking_hold(self, LockInfo info, int64_t blocked_ns, int64_t now) noexcept:
        """A release at now ended a hold during which other threads were blocked for blocked_ns
        (the time from the first of them starting to wait); sampled like a wait, on this stack."""
        _sampled_here(self, info, COUNT_BLOCKING_HOLD, blocked_ns, now)

    cdef void record_condition_wait(self, LockInfo info, int64_t wait_ns, int64_t now) noexcept:
        """Condition.wait() waited wait_ns for a notify until now (its lock released meanwhile);
        sampled like a wait, on this stack, apart from lock contention."""
        _sampled_here(self, info, COUNT_CONDITION_WAIT, wait_ns, now)

    cdef bint draw_before_wait(self, LockInfo info, WaiterStack* waiter, int64_t now) noexcept:
        """Decide, before an acquire blocks, which wait of it will be captured: one longer than
        a threshold drawn uniformly below the interval in force (so with probability
        min(1, wait / interval), as _sampled). Returns whether its stack is worth taking now:
        when the threshold is below the lock's mean wait this period, so that the wait will
        likely exceed it. Taken after the wait, the stack would lengthen the critical section
        the other waiters are queued behind; taken for every waiter, it would cost every
        contended acquire, beyond the capture budget."""
        lp_lock(&self._mutex)
        waiter.interval = self._interval_now(now)
        waiter.threshold = self._threshold(waiter.interval)
        cdef bint likely = info.contended > 0 and info.wait_ns > waiter.threshold * info.contended
        lp_unlock(&self._mutex)
        return likely

    cdef lp_entry* _count_here(self, LockInfo info, Count what, int64_t amount) noexcept:
        """Add amount to the entry for this stack, thread and task (an acquire: 1, pending until
        its release); the entry, or NULL when the table dropped it."""
        cdef lp_frame_ref frames[LP_MAX_FRAMES]
        cdef int depth = 0
        cdef Context context
        # The walk comes first, before any call below can push frames of its own.
        cdef int nframes = lp_capture_stack(frames, self.max_frames, &depth)
        task_name = fill_context(self, &context)
        lp_lock(&self._mutex)
        entry = self._entry(info, &context, frames, nframes, depth, False)
        if entry != NULL:
            if what == COUNT_ACQUIRE:
                entry.acquire_count += amount
                entry.pending += 1
            elif what == COUNT_BLOCKING_HOLD:
                entry.blocking_hold_ns += amount
            else:
                entry.condition_wait_ns += amount
        lp_unlock(&self._mutex)
        return entry

    cdef int64_t _sampled(self, int64_t duration_ns, int64_t now) noexcept:
        """The interval a duration was chosen at (a weight: a duration shorter than it stands
        for interval / duration of them), or 0 when it is not captured."""
        if duration_ns <= 0:
            return 0
        cdef int64_t interval = self._interval_now(now)
        return self._chosen(duration_ns, interval, self._threshold(interval), now)

    cdef int64_t _interval_now(self, int64_t now) noexcept:
        """The interval in force, a raised one brought up to date first: after a quiet spell it
        is the configured one again, which always captures a wait at least that long."""
        if self._interval_in_force != self.wait_sample_interval:
            self._rescale_interval(now)
        return self._interval_in_force

    cdef int64_t _threshold(self, int64_t interval) noexcept:
        """A duration's threshold, drawn uniformly in [0, interval)."""
        return <int64_t>((lp_random(&self._random_state) >> 1) % <uint64_t>interval)

    cdef int64_t _chosen(self, int64_t duration_ns, int64_t interval, int64_t threshold, int64_t now) noexcept:
        """interval when a duration exceeds the threshold drawn for it uniformly below interval
        (so with probability min(1, duration / interval)), counted in the capture budget; else
        0."""
        if interval > self._period_max_interval:
            self._period_max_interval = interval
        if duration_ns <= threshold:
            return 0
        self._window_captures += 1
        self._rescale_interval(now)
        return interval

    cdef void _rescale_interval(self, int64_t now) noexcept:
        """Keep captures under capture_budget a second: at the end of a window, the interval in
        force is scaled by the window's capture rate over the budget (fewer captures in
        proportion, the waits at least the interval aside). Each duration is chosen with the
        interval in force when its threshold is drawn and weighted by it, so the totals stay
        unbiased as it changes. now is a caller's clock read: one older than the window's start
        (read before another thread began the window) decides nothing."""
        cdef int64_t elapsed = now - self._window_start_ns
        if elapsed < 0:
            return
        cdef double budget = <double>(self._capture_budget if self._capture_budget > 0 else 1)
        cdef double window_share = budget * RATE_WINDOW_NS / 1e9
        if self._window_captures < window_share and elapsed < RATE_WINDOW_NS:
            return
        cdef double current = <double>self._interval_in_force
        cdef double scaled = current * <double>self._window_captures * 1e9 / (<double>(elapsed if elapsed > 0 else 1) * budget)
        if scaled > current * MAX_GROWTH:
            scaled = current * MAX_GROWTH
        if elapsed >= 2 * RATE_WINDOW_NS:
            scaled = 0  # a quiet spell, not a rate: start again from the configured interval
        cdef int64_t interval = self.wait_sample_interval
        if scaled > <double>MAX_INTERVAL_NS:
            interval = MAX_INTERVAL_NS if MAX_INTERVAL_NS > interval else interval
        elif scaled > <double>interval:
            interval = <int64_t>scaled
        self._interval_in_force = interval
        self._window_start_ns = now
        self._window_captures = 0

    cdef void _count_contention(self, LockInfo info, int64_t wait_ns, bint timed_out) noexcept:
        cdef int64_t* counters
        if not info.listed:
            if len(self._contended_locks) >= MAX_CONTENDED_LOCKS:
                counters = self._untracked
                counters[0] += 1
                counters[1] += wait_ns
                if wait_ns > counters[2]:
                    counters[2] = wait_ns
                counters[3] += timed_out
                return
            self._contended_locks.append(info)  # a list resize allocates no tracked object
            info.listed = True
        info.contended += 1
        info.wait_ns += wait_ns
        if wait_ns > info.max_wait_ns:
            info.max_wait_ns = wait_ns
        info.timeouts += timed_out

    cdef lp_entry* _entry(self, LockInfo info, Context* context, lp_frame_ref* frames, int nframes,
                          int depth, bint timed_out) noexcept:
        cdef lp_key key
        key.lock_info = <PyObject*>info
        key.frames = frames
        key.nframes = nframes
        key.omitted = depth - nframes
        key.thread_id = context.thread_id
        key.thread_native_id = context.thread_native_id
        key.task_id = context.task_id
        key.task_name = <PyObject*>context.task_name
        key.timed_out = timed_out
        # The table update runs no Python code: atomic under the GIL, else under the mutex the
        # caller holds.
        return lp_table_upsert(&self._table, &key)

    cdef object _current_task(self):
        if not lp_load_int_acquire(&self._asyncio_found):
            # Not imported: no task to look for, and no critical section, which threads that
            # capture at once would queue on.
            asyncio = self._modules.get("asyncio")
            if asyncio is None:
                return None
            with cython.critical_section(self):
                if not self._asyncio_found:
                    # All of them, or none yet: asyncio's own import creates locks before it has them.
                    namespace = PyObject_GenericGetDict(asyncio, NULL)
                    events = namespace.get("events")
                    tasks = namespace.get("tasks")
                    task_type = namespace.get("Task")
                    loop_getter = PyObject_GenericGetDict(events, NULL).get("_get_running_loop") if events is not None else None
                    # The running task where asyncio.current_task(loop) finds it, for the C and the
                    # Python Task alike: its C implementation (3.12+; from 3.14 the task is kept on the
                    # thread state, and asyncio.tasks._current_tasks stays empty), a C function that
                    # runs no Python code; else the dict the Python one reads (3.9 to 3.11, or asyncio
                    # without its C module), through the dict's own get.
                    task_namespace = PyObject_GenericGetDict(tasks, NULL) if tasks is not None else {}
                    task_of = task_namespace.get("current_task")
                    if type(task_of) is not BuiltinFunctionType:
                        current_tasks = task_namespace.get("_current_tasks")
                        task_of = (<dict>current_tasks).get if type(current_tasks) is dict else None
                    if loop_getter is None or task_of is None or task_type is None:
                        return None
                    get_name = vars(task_type).get("get_name")
                    # Only the C Task's own get_name() is called inside a lock operation: an override is
                    # user code, which may take locks (a deadlock) or let other threads run.
                    self._c_task_get_name = get_name if type(get_name) is MethodDescriptorType else None
                    self._c_task_type = task_type if self._c_task_get_name is not None else None
                    self._asyncio_task_of = task_of
                    self._asyncio_loop_getter = loop_getter
                    lp_store_int_release(&self._asyncio_found, 1)
        loop = PyObject_CallNoArgs(<PyObject*>self._asyncio_loop_getter)
        if loop is None:
            return None
        return PyObject_CallOneArg(<PyObject*>self._asyncio_task_of, loop)

    def discard(self):
        """Forget what was gathered: in a fork child, whose parent reports it. A drain the
        fork interrupted (another thread of the parent) is over too, and so is the mutex a thread
        of the parent held."""
        lp_mutex_reset(&self._mutex)
        self._draining = False
        self.drain()

    def drain(self):
        """Take what was gathered since the last drain and reset it, as a Drained record."""
        cdef Drained drained
        cdef int64_t max_interval
        with cython.critical_section(self):
            if self._draining:
                raise RuntimeError("Recorder.drain() is already running")
            self._draining = True
        try:
            drained = Drained.__new__(Drained)
            drained.events, drained.dropped = drain_events(self)
            lp_lock(&self._mutex)
            max_interval, self._period_max_interval = self._period_max_interval, self.wait_sample_interval
            lp_unlock(&self._mutex)
            drained.max_interval = max_interval
            drained.lock_totals = drain_lock_totals(self)
            drained.long_waits = drain_long_waits(self)
            drained.thread_names = drain_thread_names(self)
            return drained
        finally:
            with cython.critical_section(self):
                self._draining = False

    @property
    def interval_in_force(self):
        """The wait sampling interval now: wait_sample_interval, or more while captures exceed
        the budget."""
        cdef int64_t interval  # a C value: no allocation while the mutex is held
        lp_lock(&self._mutex)
        interval = self._interval_in_force
        lp_unlock(&self._mutex)
        return interval

    @property
    def capture_budget(self):
        """Wait, blocking-hold and condition-wait captures per second, at most."""
        cdef int64_t budget
        lp_lock(&self._mutex)
        budget = self._capture_budget
        lp_unlock(&self._mutex)
        return budget

    @capture_budget.setter
    def capture_budget(self, int64_t value):
        lp_lock(&self._mutex)
        self._capture_budget = value
        lp_unlock(&self._mutex)

    @property
    def entry_count(self):
        """Keys currently held in the table (bounded by max_entries)."""
        cdef size_t count
        lp_lock(&self._mutex)
        count = self._table.count
        lp_unlock(&self._mutex)
        return count

    @property
    def max_entries(self):
        return self._table.max_entries

