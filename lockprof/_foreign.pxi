# ProfiledForeignLock and ProfiledForeignRLock: the locks gevent's factories make, wrapped.
# Included by _lock.pyx (one extension module: the parts call each other's cdef functions directly).

cdef class _ForeignWrapper(_LockWrapper):
    """A profiled lock that another library's factory made: gevent's, once it has patched
    threading, whose locks switch greenlets instead of blocking the thread. The wrapped lock's
    own methods do all the work. An acquire is timed when the lock is taken, which is asked
    without side effects: gevent's failing non-blocking acquire yields to other greenlets, so
    it is never tried first. Every other attribute is the wrapped lock's, set ones too."""

    def acquire(self, *args, **kwargs):
        if not self._recorder.is_active() or self._info is None:
            return self._wrapped.acquire(*args, **kwargs)
        return _foreign_acquire(self, args, kwargs, False)

    def release(self):
        if not release_ends(&self._hold, &self._blocking):
            return self._wrapped.release()
        cdef int64_t released_at = lp_monotonic_ns()
        result = self._wrapped.release()
        # gevent's locks serve the greenlets of one thread: nothing runs between its release
        # and this, so the hold is taken after it, once the last level is released.
        if self._released_all():
            _released(self, &self._hold, blocking_take(&self._blocking, self._recorder, released_at),
                      released_at, True)
        return result

    def __exit__(self, *args):
        self.release()

    def _at_fork_reinit(self):
        self._wrapped._at_fork_reinit()
        _forget_holds(self)

    def __getattr__(self, name):
        return getattr(self._wrapped, name)

    def __setattr__(self, name, value):
        setattr(self._wrapped, name, value)

    def __delattr__(self, name):
        delattr(self._wrapped, name)

    def __reduce_ex__(self, protocol):
        # Pickled, the wrapped lock fails with its own error; copied, it is copied as the
        # unprofiled lock would be (threading's RLock can be, sharing gevent's lock).
        return _copy_of, (self._wrapped,)

    cdef bint _would_block(self) except -1:
        return self._wrapped.locked()

    cdef bint _released_all(self) except -1:
        return True  # a Lock has one level


def _copy_of(lock):
    """copy.copy(lock): what copying a profiled foreign lock gives."""
    return copy.copy(lock)


@cython.final
cdef class ProfiledForeignLock(_ForeignWrapper):
    """A profiled threading.Lock made by another library's factory (gevent's)."""

    def __enter__(self):
        self.acquire()  # None, as gevent's lock returns


@cython.final
cdef class ProfiledForeignRLock(_ForeignWrapper):
    """A profiled threading.RLock that is not CPython's C RLock: threading's Python RLock once
    gevent has patched threading (or gevent's own). Only the owner's outermost acquire and
    release are profiled, and Condition.wait()'s release and re-acquire of every level."""

    def __enter__(self):
        return self.acquire()  # threading's RLock returns acquire()'s result

    cdef bint _would_block(self) except -1:
        return not self._wrapped._is_owned() and self._wrapped._block.locked()

    cdef bint _released_all(self) except -1:
        return not self._wrapped._is_owned()

    def _release_save(self):
        cdef int64_t released_at = lp_monotonic_ns()
        cdef CapturedHold taken = hold_take(&self._hold)
        cdef int64_t blocked_ns = blocking_take(&self._blocking, self._recorder, released_at)
        result = self._wrapped._release_save()
        _released(self, &taken, blocked_ns, released_at, False)  # no naming: nothing may raise before the restore
        return result

    def _acquire_restore(self, state):
        if not self._recorder.is_active() or self._info is None:
            return self._wrapped._acquire_restore(state)
        return _foreign_acquire(self, (state,), None, True)


cdef object _foreign_acquire(_ForeignWrapper self, tuple args, dict kwargs, bint restore):
    """A profiled acquire (or, with restore, _acquire_restore) of a foreign lock: sampled when
    it takes the lock, timed and counted when the lock was taken by another; the call is always
    the wrapped lock's own, with the caller's arguments."""
    wrapped = self._wrapped
    call = wrapped._acquire_restore if restore else wrapped.acquire
    if isinstance(self, ProfiledForeignRLock) and not restore and wrapped._is_owned():
        return call(*args, **kwargs)  # nested: part of the outermost hold
    cdef int kind = LP_ACQUIRE_BLOCKING if restore else lp_classify_acquire_call(
        args, <PyObject*>kwargs if kwargs else NULL)
    if kind == LP_ACQUIRE_NONBLOCKING or not self._would_block():
        result = call(*args, **kwargs) if kwargs else call(*args)  # never waits: nothing to time
        if (restore or result) and self._recorder.sampler.should_capture():
            hold_captured(&self._hold, self._recorder, self._info)
        return result
    cdef TimedWait wait
    wait_begin(&wait, self._recorder, self._info, &self._blocking, kind == LP_ACQUIRE_BLOCKING, NULL)
    acquired = False
    try:
        result = call(*args, **kwargs) if kwargs else call(*args)
        acquired = restore or bool(result)
    finally:
        wait_end(&wait, acquired)
    if wait_record(&wait, self._recorder, self._info, acquired) == WAIT_CAPTURED:
        hold_start(&self._hold, self._recorder, wait.entry, wait.end)
    return result


cdef object wrap_foreign(object lock, str kind, LockInfo info, Recorder recorder):
    """lock, made by a factory that is not CPython's, profiled as `kind`; lock itself when it
    lacks the methods the wrapper reads its state with."""
    if kind == LOCK:
        if callable(getattr(lock, "locked", None)):
            return new_wrapper(ProfiledForeignLock, FOREIGN_LOCK_TYPE, lock, info, recorder)
    elif (callable(getattr(lock, "_is_owned", None)) and callable(getattr(lock, "_release_save", None))
          and callable(getattr(getattr(lock, "_block", None), "locked", None))):
        return new_wrapper(ProfiledForeignRLock, FOREIGN_RLOCK_TYPE, lock, info, recorder)
    return lock
