# cython: language_level=3
"""The recorder: turns a captured lock operation into counts in the bounded event table.

Only captured operations come here. A captured acquire walks the stack (code object and
instruction offset per frame), reads the thread and asyncio task, and adds the wait to the table
entry for (lock, thread, task, stack); the lock keeps a pointer to that entry so that its release
adds the hold time to the same entry without walking the stack again. Names, files and line
numbers are resolved later, by drain()'s caller, outside any lock operation.
"""

import sys
from types import MethodDescriptorType

from cpython.mem cimport PyMem_RawMalloc, PyMem_RawFree
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from libc.stdint cimport int64_t

from lockprof._lockcore cimport (
    lp_capture_stack, lp_entry, lp_entry_free, lp_frame_ref, lp_key, lp_thread_ident,
    lp_register_atfork, lp_table_evict_idle, lp_table_init, lp_table_upsert, lp_thread_native_id,
)
from lockprof._sampler cimport CaptureSampler

cdef extern from "Python.h":
    object PyObject_GenericGetDict(object obj, void* context)

# The deepest stack a Recorder can be asked to keep (the config allows 1..512).
DEF MAX_FRAMES_LIMIT = 512

if lp_register_atfork() != 0:
    raise OSError("lockprof: pthread_atfork failed")


cdef class Recorder:
    """Shared by every lock one collector creates; lives as long as the collector."""

    def __cinit__(self, CaptureSampler sampler not None, int max_frames=64, Py_ssize_t max_entries=4096):
        if max_frames < 1 or max_frames > MAX_FRAMES_LIMIT:
            raise ValueError(f"max_frames must be an integer between 1 and {MAX_FRAMES_LIMIT}, got {max_frames}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be a positive integer, got {max_entries}")
        if lp_table_init(&self._table, <size_t>max_entries) != 0:
            raise MemoryError()
        self.sampler = sampler
        self.max_frames = max_frames
        self.active = False
        self._thread_names = {}
        self._modules = sys.modules

    def __dealloc__(self):
        cdef size_t i
        cdef lp_entry* e
        if self._table.slots == NULL:
            return
        for i in range(self._table.mask + 1):
            e = self._table.slots[i]
            if e != NULL:
                lp_entry_free(e)
        PyMem_RawFree(self._table.slots)
        self._table.slots = NULL

    cdef lp_entry* record_acquire(self, object lock_info, int64_t wait_ns) noexcept:
        """Count one acquire that waited wait_ns; the entry (or NULL when dropped) is pending
        until record_release. Never raises, and runs no user code: the caller is inside the user's lock operation."""
        cdef lp_frame_ref frames[MAX_FRAMES_LIMIT]
        cdef int depth = 0
        cdef lp_key key
        cdef lp_entry* entry
        cdef object task = None
        cdef object task_name = None
        # The walk comes first, before any call below can push frames of its own.
        key.nframes = lp_capture_stack(frames, self.max_frames, &depth)
        key.omitted = depth - key.nframes
        key.frames = frames
        key.lock_info = <PyObject*>lock_info
        key.thread_id = lp_thread_ident()
        key.thread_native_id = lp_thread_native_id()
        key.task_id = 0
        key.task_name = NULL
        self._note_thread(key.thread_id)
        try:
            task = self._current_task()
            if task is not None:
                task_name = self._task_name(task)
        except Exception:
            task = None
        if task is not None:
            key.task_id = <Py_ssize_t><PyObject*>task
            if task_name is not None:
                key.task_name = <PyObject*>task_name
        # From here on nothing can run Python code: the table update is atomic under the GIL.
        entry = lp_table_upsert(&self._table, &key)
        if entry != NULL:
            entry.acquire_count += 1
            entry.acquire_wait_ns += wait_ns
            entry.pending += 1
        return entry

    cdef void record_release(self, lp_entry* entry, int64_t hold_ns) noexcept:
        """End the hold that record_acquire started; counted only while profiling is active."""
        entry.pending -= 1
        if self.active:
            entry.release_count += 1
            entry.release_hold_ns += hold_ns

    cdef void _note_thread(self, unsigned long thread_id) noexcept:
        # A direct-mapped cache of the threads already named this period keeps the dict lookups
        # and the Python attribute read off the common path. Thread ids are aligned addresses
        # (pthread_t) or small multiples of 4 (Windows): a multiplicative hash spreads them.
        cdef unsigned long slot = <unsigned long>((<unsigned long long>thread_id * 0x9E3779B97F4A7C15ULL) >> 58)
        if self._seen_threads[slot] == thread_id:
            return
        self._seen_threads[slot] = thread_id
        # Plain dict reads only: no attribute protocol, so no property or __getattr__ of a
        # Thread subclass runs inside the user's lock operation.
        threading = self._modules.get("threading")
        active = PyObject_GenericGetDict(threading, NULL).get("_active") if threading is not None else None
        thread = (<dict>active).get(thread_id) if type(active) is dict else None
        if thread is None:
            return
        try:
            attributes = PyObject_GenericGetDict(thread, NULL)
        except Exception:
            return
        name = (<dict>attributes).get("_name") if type(attributes) is dict else None
        if type(name) is str:
            self._thread_names[thread_id] = name

    cdef object _current_task(self):
        if self._asyncio_loop_getter is None:
            asyncio = self._modules.get("asyncio")  # not imported: no task to look for
            if asyncio is None:
                return None
            self._asyncio_loop_getter = asyncio.events._get_running_loop
            self._asyncio_task_getter = asyncio.current_task
            get_name = vars(asyncio.Task).get("get_name")
            # Only the C Task's own get_name() is called inside a lock operation: an override is
            # user code, which may take locks (a deadlock) or let other threads run.
            self._c_task_get_name = get_name if type(get_name) is MethodDescriptorType else None
        loop = self._asyncio_loop_getter()
        if loop is None:
            return None
        return self._asyncio_task_getter(loop)

    cdef object _task_name(self, object task):
        if self._c_task_get_name is not None and getattr(type(task), "get_name", None) is self._c_task_get_name:
            return self._c_task_get_name(task)
        return None

    def drain(self):
        """Take the counts gathered since the last drain and reset them.

        Returns (records, dropped, thread_names): records are tuples
        (lock_info, frames, omitted, thread_id, thread_native_id, task_id, task_name,
        acquire_count, acquire_wait_ns, release_count, release_hold_ns), raw (not upscaled);
        frames is a tuple of (code, offset) pairs, leaf first; dropped counts the events the
        full table had no room for; thread_names maps the thread ids seen to their names.
        """
        if self._draining:
            raise RuntimeError("Recorder.drain() is already running")
        self._draining = True
        try:
            return self._drain()
        finally:
            self._draining = False

    cdef object _drain(self):
        cdef size_t i, n = 0, count = self._table.count
        cdef size_t evicted_count
        cdef lp_entry* e
        cdef lp_entry** taken
        cdef int64_t* values
        cdef int k
        # Phase 1, no Python allocation: copy out and zero the counters of the active entries,
        # marking them pending so nothing evicts them while phase 2 reads their frames.
        taken = <lp_entry**>PyMem_RawMalloc((count + 1) * sizeof(lp_entry*))
        values = <int64_t*>PyMem_RawMalloc((count + 1) * 4 * sizeof(int64_t))
        if taken == NULL or values == NULL:
            PyMem_RawFree(taken)
            PyMem_RawFree(values)
            raise MemoryError()
        for i in range(self._table.mask + 1):
            e = self._table.slots[i]
            if e == NULL or (e.acquire_count == 0 and e.release_count == 0):
                continue
            taken[n] = e
            values[4 * n] = e.acquire_count
            values[4 * n + 1] = e.acquire_wait_ns
            values[4 * n + 2] = e.release_count
            values[4 * n + 3] = e.release_hold_ns
            e.acquire_count = e.acquire_wait_ns = e.release_count = e.release_hold_ns = 0
            e.pending += 1
            n += 1
        dropped = self._table.dropped
        self._table.dropped = 0
        # Phase 2: build the Python records (this may run the garbage collector, and through it
        # code that uses profiled locks: the table stays consistent throughout).
        records = []
        try:
            for i in range(n):
                e = taken[i]
                frames = tuple([(<object>e.frames[k].code, e.frames[k].lasti) for k in range(e.nframes)])
                records.append((
                    <object>e.lock_info, frames, e.omitted, e.thread_id, e.thread_native_id,
                    e.task_id if e.task_id != 0 else None,
                    <object>e.task_name if e.task_name != NULL else None,
                    values[4 * i], values[4 * i + 1], values[4 * i + 2], values[4 * i + 3],
                ))
        finally:
            for i in range(n):
                taken[i].pending -= 1
            PyMem_RawFree(values)
            # Phase 3: evict the entries idle since phase 1, then free them with the table whole.
            if self._table.count > count:
                PyMem_RawFree(taken)
                taken = <lp_entry**>PyMem_RawMalloc((self._table.count + 1) * sizeof(lp_entry*))
            if taken != NULL:
                evicted_count = lp_table_evict_idle(&self._table, taken)
                for i in range(evicted_count):
                    lp_entry_free(taken[i])
                PyMem_RawFree(taken)
        thread_names = self._thread_names
        self._thread_names = {}
        for i in range(64):
            self._seen_threads[i] = 0
        return records, dropped, thread_names

    @property
    def entry_count(self):
        """Keys currently held in the table (bounded by max_entries)."""
        return self._table.count

    @property
    def max_entries(self):
        return self._table.max_entries
