# cython: language_level=3

from lockprof._lockcore cimport lp_blocking, lp_native_method
from lockprof._recorder cimport LockInfo, Recorder
from lockprof._wait cimport CapturedHold


cdef struct NativeOps:
    # The wrapped type's methods, called straight from C; descr is NULL where the type has none.
    lp_native_method acquire
    lp_native_method release
    lp_native_method locked
    lp_native_method at_fork_reinit
    lp_native_method is_owned
    lp_native_method release_save
    lp_native_method acquire_restore
    lp_native_method recursion_count
    int try_kind  # how acquire is tried without blocking (LP_TRY_*)


cdef class _LockWrapper:
    cdef object _wrapped
    cdef const NativeOps* _ops  # the wrapped type's methods (static, one table per type)
    cdef Recorder _recorder
    cdef LockInfo _info
    # The captured acquire whose hold is running, if any.
    cdef CapturedHold _hold
    # RLock only: the depth of the tracked hold (0: none).
    cdef long _depth
    # The threads blocked in acquire() now, for the blocking hold of the release that ends it.
    cdef lp_blocking _blocking
    cdef object __weakref__


cdef class LockFactory:
    cdef readonly object original
    cdef readonly str kind
    cdef object _make_native  # the C constructor the stock factory calls, or None
    cdef object _innermost  # the original, looking through other collectors' factories
    cdef tuple _wrapper_types  # the types of the profiled locks it makes
    cdef type _native_type
    cdef Recorder _recorder
    cdef object _excludes
    cdef dict _decisions
    cdef LockInfo _info_now(self)
    cdef bint _still_stock(self)


cdef class _ForeignWrapper(_LockWrapper):
    cdef bint _would_block(self) except -1
    cdef bint _released_all(self) except -1


cdef class ProfiledForeignLock(_ForeignWrapper):
    pass


cdef class ProfiledForeignRLock(_ForeignWrapper):
    pass


# For the other profiled primitives (_primitives.pyx).
cdef object profiled_rlock(LockInfo info, Recorder recorder)
cdef LockInfo new_lock_info(Recorder recorder, str kind, object excludes, dict decisions)
# A native threading.Lock taken and released in place (threading's semaphores' Conditions).
cdef int take_native_lock(object lock) noexcept
cdef void release_native_lock(object lock) noexcept
