"""lockprof's collector as one of ddtrace's profiler collectors, and its samples in ddtrace's
sample API (ddup). Imported only once ddtrace is (lockprof.integrations.ddtrace checks its
version first).

ddtrace's profiler calls snapshot() of each collector from its scheduler thread just before it
writes or uploads a profile (Scheduler.flush: before_flush, then ddup.upload), and once more at
stop(); so lockprof's period is ddtrace's period, and its samples go out on ddtrace's schedule.

Under ddtrace-run (or ddtrace.auto) the profiler starts inside ddtrace's bootstrap, which then
unloads threading and _thread for the program to import afresh: lockprof's compiled core, which
holds on to the _thread of its first import, is loaded only once that is done (post-preload).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Dict, Optional

from ddtrace.internal.datadog.profiling import ddup
from ddtrace.profiling import collector as dd_collector

from lockprof.config import Config

if TYPE_CHECKING:
    from lockprof.profile import LockSample, Snapshot


class _SpanIds:
    """What ddup's SampleHandle.push_span() reads of a span (ddtrace 4.16): the ids a sample
    carries, without the span itself (gone by the time the period is pushed)."""

    __slots__ = ("span_id", "_local_root", "span_type", "_resource")

    def __init__(self, span_id: int, local_root: Optional[_SpanIds]) -> None:
        self.span_id = span_id
        self._local_root = local_root  # None: push_span labels the span id only
        self.span_type = None
        self._resource = None


class DdtraceLockCollector(dd_collector.Collector):
    """A ddtrace profiler collector that runs lockprof's LockCollector and pushes each period's
    samples through ddup, with ddtrace's lock sample types and labels."""

    def __init__(self, overrides: Dict[str, Any]) -> None:
        super().__init__()
        # DD_PROFILING_CAPTURE_PCT, _MAX_FRAMES, _LOCK_EXCLUDE_MODULES mean the same to both.
        self.config = Config.from_env(**overrides)
        self.lockprof: Any = None  # the LockCollector, once made
        self._running = False

    def _start_service(self) -> None:
        self._running = True
        if _threading_replaced_later():
            from ddtrace.bootstrap import preload

            preload.register_post_preload(self._start_lockprof)
        else:
            self._start_lockprof()

    def _start_lockprof(self) -> None:
        if not self._running:
            return
        if self.lockprof is None:
            from lockprof.collector import LockCollector

            config = self.config
            self.lockprof = LockCollector(config.capture_pct, config.max_frames, config.exclude_modules,
                                          wait_sample_interval=config.wait_sample_interval)
        self.lockprof.start()

    def _stop_service(self) -> None:
        self._running = False
        if self.lockprof is not None:
            self.lockprof.stop()

    def snapshot(self) -> None:  # type: ignore[override]
        if self.lockprof is not None:
            push_snapshot(self.lockprof.snapshot())


def _threading_replaced_later() -> bool:
    """Whether ddtrace's bootstrap is running and has yet to unload threading and _thread
    (ddtrace.bootstrap.cloning: enabled until its cleanup_loaded_modules() ran)."""
    cloning = sys.modules.get("ddtrace.bootstrap.cloning")
    if cloning is None or not getattr(cloning, "enabled", False):
        return False
    bootstrap = sys.modules.get("ddtrace.bootstrap.sitecustomize") or sys.modules.get("sitecustomize")
    spec = getattr(bootstrap, "__spec__", None)
    return bool(getattr(spec, "_initializing", False)) and "ddtrace.bootstrap.preload" in sys.modules


def push_snapshot(snapshot: Snapshot) -> None:
    """Push a lockprof period into ddtrace's current profile, one sample per lockprof key."""
    for sample in snapshot.samples:
        if sample.lock_info is not None:
            sample.lock_name = sample.lock_info.display_name  # named at a release since
        push_sample(sample)


def push_sample(sample: LockSample) -> None:
    """One lockprof key as one ddup sample. lockprof's values are already estimates of the
    period's totals (acquires and holds upscaled by 100 / capture_pct, waits weighted), so they
    go in as they are: ddup writes what it is given."""
    wait_ns, acquires = sample.acquire_wait_ns, sample.acquire_count
    hold_ns, releases = sample.release_hold_ns, sample.release_count
    if not (wait_ns or acquires or hold_ns or releases):
        return  # only blocking holds or condition waits: ddtrace has no column for them
    handle = ddup.SampleHandle()
    handle.push_lock_name(sample.lock_name)
    if wait_ns or acquires:
        handle.push_acquire(wait_ns, acquires)
    if hold_ns or releases:
        handle.push_release(hold_ns, releases)
    if sample.thread_id is not None:
        handle.push_threadinfo(sample.thread_id, sample.thread_native_id or 0, sample.thread_name or "")
    if sample.task_id is not None:
        handle.push_task_id(sample.task_id)
        if sample.task_name:
            handle.push_task_name(sample.task_name)
    if sample.span_id:
        # An OpenTelemetry span has no local root id: ddtrace then labels the span id alone.
        root = _SpanIds(sample.local_root_span_id, None) if sample.local_root_span_id else None
        handle.push_span(_SpanIds(sample.span_id, root))
    for frame in sample.frames:  # leaf first, as ddtrace pushes them
        handle.push_frame(frame.name, frame.filename, 0, frame.line)
    handle.flush_sample()
