# cython: language_level=3

from libc.stdint cimport int64_t
from lockprof._lockcore cimport lp_entry, lp_table
from lockprof._sampler cimport CaptureSampler


cdef class Recorder:
    cdef readonly CaptureSampler sampler
    cdef readonly int max_frames
    # Checked first by every profiled lock operation: False after stop(), so the locks created
    # while profiling run at native speed without being unwrapped.
    cdef public bint active
    cdef lp_table _table
    cdef bint _draining
    cdef dict _thread_names
    cdef unsigned long _seen_threads[64]
    cdef dict _modules
    cdef object _asyncio_loop_getter
    cdef object _asyncio_task_getter
    cdef object _c_task_get_name  # asyncio's C Task.get_name, or None

    cdef lp_entry* record_acquire(self, object lock_info, int64_t wait_ns) noexcept
    cdef void record_release(self, lp_entry* entry, int64_t hold_ns) noexcept
    cdef void _note_thread(self, unsigned long thread_id) noexcept
    cdef object _current_task(self)
    cdef object _task_name(self, object task)
    cdef object _drain(self)
