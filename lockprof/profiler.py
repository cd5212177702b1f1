"""The Profiler: owns the collectors, exports profiles periodically and at the end.

    with Profiler(lock_enabled=True, output="/tmp/app"):
        run_the_program()

writes /tmp/app.<pid>.<seq>.pprof every upload_interval seconds, at stop() and at interpreter
exit. Arguments win over the DD_PROFILING_* environment variables (see lockprof.config).
"""

from __future__ import annotations

import _thread
import atexit
import dataclasses
import os
import sys
import time
import warnings
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from lockprof import pprof
from lockprof._lock import call_every, original_thread_attribute
from lockprof.collector import LockCollector, collector_from_config, lock_site
from lockprof.config import Config
from lockprof.forking import call_after_fork_in_child
from lockprof.profile import Frame, LockSample, LockTotals, LongWait, Snapshot
from lockprof.renderers.pprof import PprofRenderer


# The longest waits a period's profile reports.
LONG_WAITS_KEPT = 10


def _lock_key(item: Any) -> Any:
    """A sample's or totals' lock: by identity while in-process, since a lock's name can appear
    later; by name once decoded."""
    return id(item.lock_info) if item.lock_info is not None else item.lock_name


def _merged_by_name(totals: Iterable[LockTotals]) -> List[LockTotals]:
    """One LockTotals per lock name (locks made on one line under one name are one lock in the
    profile), refreshing names found since the counts were collected; most waited first."""
    by_name: Dict[str, LockTotals] = {}
    for item in totals:
        if item.lock_info is not None:
            item.lock_name = item.lock_info.display_name
            item.site = lock_site(item.lock_info)
        merged = by_name.get(item.lock_name)
        if merged is None:
            by_name[item.lock_name] = dataclasses.replace(item)
        else:
            merged.merge(item)
    return sorted(by_name.values(), key=lambda t: t.wait_ns, reverse=True)


# The exporter runs on an OS thread of its own with native locks, whatever threading and
# _thread hold (gevent replaces them with greenlets; a threading.Thread started before that
# fails at its end with gevent's thread ids).
_start_new_thread = original_thread_attribute("start_new_thread")
_allocate_lock = original_thread_attribute("allocate_lock")
_get_ident = original_thread_attribute("get_ident")


class _Exporter:
    """Calls export() every interval seconds on its own thread until stop()."""

    def __init__(self, export: Any, interval: float) -> None:
        self._stopping = _allocate_lock()  # held until stop(): the wait between exports
        self._stopping.acquire()
        self._done = _allocate_lock()  # held until the thread ends
        self._done.acquire()
        self._ident = _start_new_thread(call_every, (self._stopping, interval, export, self._done))

    def stop(self) -> None:
        self._stopping.release()
        if _get_ident() != self._ident:  # stop() from an export (at exit) cannot wait for itself
            self._done.acquire()
            self._done.release()


def _stop_at_multiprocessing_exit(profiler: "Profiler") -> None:
    # A multiprocessing child runs its finalizers, then os._exit(): no interpreter exit.
    sys.modules["multiprocessing.util"].Finalize(None, profiler._stop_at_exit, exitpriority=0)


class LockprofExportWarning(UserWarning):
    """A profile could not be written; profiling goes on and the next export retries."""


# The same lock, stack, thread, task and outcome.
_SampleKey = Tuple[Any, Tuple[Frame, ...], int, Optional[int], bool]


class Profiler:
    """Profiles the program's locks and writes pprof files.

    snapshot() returns what was collected since the last export without writing anything;
    export() writes it and starts a new period.
    """

    def __init__(
        self,
        lock_enabled: Optional[bool] = None,
        capture_pct: Optional[float] = None,
        max_frames: Optional[int] = None,
        exclude_modules: Optional[Iterable[str]] = None,
        wait_sample_interval: Optional[Union[int, str]] = None,
        output: Optional[str] = None,
        upload_interval: Optional[float] = None,
    ) -> None:
        self.config = Config.from_env(
            lock_enabled=lock_enabled,
            capture_pct=capture_pct,
            max_frames=max_frames,
            exclude_modules=exclude_modules,
            wait_sample_interval=wait_sample_interval,
            output=output,
            upload_interval=upload_interval,
        )
        lock_collector = collector_from_config(self.config)
        self.collectors: List[LockCollector] = [lock_collector] if lock_collector else []
        # Native on purpose: the profiler's own locks are never profiled.
        self._lifecycle_lock = _thread.allocate_lock()
        self._pending_lock = _thread.allocate_lock()
        self._export_lock = _thread.allocate_lock()  # one export at a time: sequence numbers
        self._pending: Dict[_SampleKey, LockSample] = {}
        self._pending_totals: Dict[Any, LockTotals] = {}  # by LockInfo identity, like samples
        self._pending_long_waits: List[LongWait] = []
        self._pending_dropped = 0
        self._pending_max_interval = 0  # ns: the largest wait sampling interval in force
        self._period_start_ns = time.time_ns()
        self._sequence = 0
        self._running = False
        self._exporter: Optional[_Exporter] = None
        self._forked = False  # a fork child of the process that started profiling
        # Written into every profile: the children it forks keep it (lockprof run's children
        # started with --subprocesses are given it).
        self.root_pid = os.getpid()
        self.last_path: Optional[str] = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        with self._lifecycle_lock:
            if self._running:
                return
            self._running = True
            self._period_start_ns = time.time_ns()
            for collector in self.collectors:
                collector.start()
            self._start_exporter()
            atexit.register(self._stop_at_exit)
            call_after_fork_in_child(self)

    def _start_exporter(self) -> None:
        self._exporter = _Exporter(self.export, self.config.upload_interval)

    def _after_fork_in_child(self) -> None:
        """A fork child goes on profiling into its own files (its pid in their names), with
        none of the parent's events, and with locks and an exporter thread of its own: the
        parent's may have been held, or running, in a thread the child does not have. It
        writes a profile only for a period with lock activity in it, periodically and when it
        ends (at its interpreter's exit, or at multiprocessing's exit of a worker process,
        which skips the interpreter's)."""
        self._lifecycle_lock = _thread.allocate_lock()
        self._pending_lock = _thread.allocate_lock()
        self._export_lock = _thread.allocate_lock()
        self._pending, self._pending_totals, self._pending_long_waits = {}, {}, []
        self._pending_dropped = 0
        self._pending_max_interval = 0
        self._period_start_ns = time.time_ns()
        self._sequence = 0
        self._forked = True
        self._exporter = None  # the parent's thread: not in this process
        if self._running:
            self._start_exporter()
            multiprocessing_util = sys.modules.get("multiprocessing.util")
            if multiprocessing_util is not None:
                # Run in a multiprocessing child after it clears the finalizers it inherited.
                multiprocessing_util.register_after_fork(self, _stop_at_multiprocessing_exit)

    def stop(self, flush: bool = True) -> Optional[str]:
        """Stop profiling; with flush, write the final profile and return its path."""
        with self._lifecycle_lock:
            if not self._running:
                return None
            self._running = False
            for collector in self.collectors:
                collector.stop()
            if self._exporter is not None:
                self._exporter.stop()
                self._exporter = None
            atexit.unregister(self._stop_at_exit)
        return self.export() if flush else None

    def _stop_at_exit(self) -> None:
        self.stop(flush=True)

    def __enter__(self) -> Profiler:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ data

    def _collect(self) -> None:
        """Move what the collectors hold into the pending period, merging equal keys."""
        for collector in self.collectors:
            snapshot = collector.snapshot()
            with self._pending_lock:
                self._pending_dropped += snapshot.dropped_events
                self._pending_max_interval = max(self._pending_max_interval, snapshot.max_wait_sample_interval_ns)
                for sample in snapshot.samples:
                    key = (_lock_key(sample), sample.frames, sample.thread_id, sample.task_id, sample.timed_out)
                    merged = self._pending.get(key)
                    if merged is None:
                        self._pending[key] = sample
                    else:
                        merged.merge(sample)
                for totals in snapshot.lock_totals:
                    merged_totals = self._pending_totals.setdefault(_lock_key(totals), totals)
                    if merged_totals is not totals:
                        merged_totals.merge(totals)
                waits = self._pending_long_waits + snapshot.long_waits
                waits.sort(key=lambda wait: wait.wait_ns, reverse=True)
                self._pending_long_waits = waits[:LONG_WAITS_KEPT]

    def snapshot(self) -> Snapshot:
        """Everything collected since the last export, without resetting it."""
        return self._period(reset=False)

    def _period(self, reset: bool) -> Snapshot:
        """The period so far; with reset, a new period starts."""
        self._collect()
        with self._pending_lock:
            end_ns = time.time_ns()
            samples = list(self._pending.values())
            lock_totals = _merged_by_name(self._pending_totals.values())
            long_waits = list(self._pending_long_waits)
            for named in (*samples, *long_waits):
                if named.lock_info is not None:  # named since it was collected, perhaps
                    named.lock_name = named.lock_info.display_name
            max_interval = max(self._pending_max_interval, self.config.wait_sample_interval)
            snapshot = Snapshot(samples, self._period_start_ns, end_ns, self.config.capture_pct,
                                wait_sample_interval_ns=self.config.wait_sample_interval,
                                max_wait_sample_interval_ns=max_interval, lock_totals=lock_totals, long_waits=long_waits,
                                dropped_events=self._pending_dropped, root_pid=self.root_pid)
            if reset:
                self._pending = {}
                self._pending_totals = {}
                self._pending_long_waits = []
                self._pending_dropped = 0
                self._pending_max_interval = 0
                self._period_start_ns = end_ns
        return snapshot

    # ------------------------------------------------------------------ export

    def export(self) -> Optional[str]:
        """Write the period's profile to <output>.<pid>.<seq>.pprof and start a new period.

        Returns the path, or None when nothing was written: in a fork child, a period with no
        lock activity; or when the write failed: then one LockprofExportWarning is issued, the
        data of that period is lost, and the next export tries again.
        """
        with self._export_lock:
            snapshot = self._period(reset=True)
            if self._forked and snapshot.empty:
                return None
            path = f"{self.config.output}.{os.getpid()}.{self._sequence}.pprof"
            try:
                directory = os.path.dirname(path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                pprof.write_atomic(path, PprofRenderer().render(snapshot))
            except (OSError, ValueError) as error:
                warnings.warn(f"lockprof could not write {path}: {error}", LockprofExportWarning, stacklevel=2)
                return None
            self._sequence += 1
            self.last_path = path
            return path
