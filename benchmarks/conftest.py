"""Fixtures for the pytest-benchmark suite (``pytest benchmarks/ --benchmark-only``).

Run it from a directory outside the source tree, with lockprof installed, so that the installed
compiled package is what is measured; the report header says which lockprof was imported.
"""

from __future__ import annotations

import os
import threading

import pytest

import lockprof
from lockprof import LockCollector
from lockprof import _lock

# What threading held when the session started: the native factories.
NATIVE_LOCK = threading.Lock
NATIVE_RLOCK = threading.RLock


def pytest_report_header(config):
    return [f"lockprof {lockprof.__version__}: {os.path.dirname(_lock.__file__)}"]


@pytest.fixture(autouse=True)
def threading_restored():
    """Every benchmark leaves threading.Lock / threading.RLock native (checked at teardown)."""
    assert threading.Lock is NATIVE_LOCK and threading.RLock is NATIVE_RLOCK, "threading.Lock leaked"
    yield
    leaked = (threading.Lock, threading.RLock)
    threading.Lock, threading.RLock = NATIVE_LOCK, NATIVE_RLOCK
    assert leaked == (NATIVE_LOCK, NATIVE_RLOCK), f"a benchmark left threading patched: {leaked!r}"


@pytest.fixture
def profiling():
    """Start collectors: ``profiling(capture_pct=1.0, **kwargs)`` returns a running
    LockCollector; every collector started is stopped at teardown, newest first, and
    threading.Lock / threading.RLock are the native factories again."""
    started = []

    def start(capture_pct: float = 1.0, **kwargs) -> LockCollector:
        collector = LockCollector(capture_pct=capture_pct, **kwargs)
        collector.start()
        started.append(collector)
        return collector

    yield start
    for collector in reversed(started):
        collector.stop()
    assert threading.Lock is NATIVE_LOCK and threading.RLock is NATIVE_RLOCK


@pytest.fixture(scope="session")
def ddtrace_writer(tmp_path_factory):
    """ddtrace's profile writer (ddup), configured once per session to write files into a
    temporary directory; the ddtrace tests are skipped when ddtrace is not installed."""
    pytest.importorskip("ddtrace", reason="ddtrace is not installed (benchmarks/requirements.txt)")
    from ddtrace.internal.datadog.profiling import ddup

    ddup.config(service="lockprof-benchmarks", output_filename=str(tmp_path_factory.mktemp("ddtrace") / "ddtrace"))
    ddup.start()
    return ddup


@pytest.fixture
def ddtrace_collectors(ddtrace_writer):
    """Start ddtrace's collector for one kind: ``ddtrace_collectors("Lock", 1.0)`` returns it
    running; every collector started is stopped at teardown, and its data written out."""
    from ddtrace.internal.service import ServiceStatus
    from ddtrace.profiling.collector import threading as dd_threading

    classes = {"Lock": dd_threading.ThreadingLockCollector, "RLock": dd_threading.ThreadingRLockCollector}
    started = []

    def start(kind: str, capture_pct: float):
        collector = classes[kind](capture_pct=capture_pct)
        collector.start()
        started.append(collector)
        return collector

    yield start
    for collector in reversed(started):
        if collector.status == ServiceStatus.RUNNING:  # its stop() refuses a stopped collector
            collector.stop()
    ddtrace_writer.upload()
    assert threading.Lock is NATIVE_LOCK and threading.RLock is NATIVE_RLOCK
