"""Shared fixtures for the lock-profiling tests.

Every test is checked on teardown to leave ``threading.Lock`` / ``threading.RLock`` exactly as
they were before the session (the native factories), whatever the test did.
"""

from __future__ import annotations

import _thread
import threading

import pytest

from lockprof import LockCollector
from lockprof._lock import ProfiledLock, ProfiledRLock

# What threading held when the test session started: the native factories.
ORIGINAL_LOCK = threading.Lock
ORIGINAL_RLOCK = threading.RLock
NATIVE_LOCK_TYPE = _thread.LockType
NATIVE_RLOCK_TYPE = _thread.RLock
# 3.13+: threading.Lock is the lock class itself; before, a factory function.
LOCK_IS_TYPE = isinstance(ORIGINAL_LOCK, type)


@pytest.fixture(autouse=True)
def threading_restored():
    """Fail the test (at teardown) if it leaves threading.Lock/RLock patched."""
    assert threading.Lock is ORIGINAL_LOCK, "a previous test leaked a patched threading.Lock"
    assert threading.RLock is ORIGINAL_RLOCK, "a previous test leaked a patched threading.RLock"
    yield
    leaked = (threading.Lock, threading.RLock)
    # Restore first so one leaking test does not fail every later one.
    threading.Lock = ORIGINAL_LOCK
    threading.RLock = ORIGINAL_RLOCK
    assert leaked[0] is ORIGINAL_LOCK, f"test left threading.Lock = {leaked[0]!r}"
    assert leaked[1] is ORIGINAL_RLOCK, f"test left threading.RLock = {leaked[1]!r}"


@pytest.fixture
def collector():
    """A LockCollector(capture_pct=100), running for the duration of the test."""
    c = LockCollector(capture_pct=100)
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def make_collector():
    """Factory for started collectors with custom settings; all are stopped at teardown
    (in reverse order of creation)."""
    made = []

    def make(**kwargs):
        c = LockCollector(**kwargs)
        made.append(c)
        c.start()
        return c

    yield make
    for c in reversed(made):
        c.stop()


FLAVOURS = ["native", "profiled-100", "profiled-0"]


@pytest.fixture(params=FLAVOURS)
def flavour(request):
    """'native', or 'profiled-<capture_pct>'."""
    return request.param


@pytest.fixture
def make_lock(flavour):
    """make_lock('Lock' | 'RLock') -> a native lock, or a profiled one created through
    threading.Lock()/RLock() while a collector with `capture_pct` runs (it keeps running
    for the whole test, so every operation goes through the profiled path)."""
    running = []

    def make(kind: str):
        if flavour == "native":
            lock = (ORIGINAL_LOCK if kind == "Lock" else ORIGINAL_RLOCK)()
            assert type(lock) is (NATIVE_LOCK_TYPE if kind == "Lock" else NATIVE_RLOCK_TYPE)
            return lock
        if not running:
            c = LockCollector(capture_pct=float(flavour.split("-")[1]))
            c.start()
            running.append(c)
        lock = getattr(threading, kind)()
        assert type(lock) is (ProfiledLock if kind == "Lock" else ProfiledRLock)
        return lock

    make.flavour = flavour
    yield make
    for c in running:
        c.stop()
