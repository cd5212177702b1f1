"""Start and stop the profiler a benchmark runs under: none, lockprof, or Datadog's ddtrace.

Shared by the stress scenarios and the service benchmark, so that "with lockprof" and "with
ddtrace" mean the same setup everywhere:

* lockprof: lockprof.Profiler at its defaults (the DD_PROFILING_* environment variables apply),
  writing its profiles under the given directory;
* ddtrace: ddtrace's own lock collectors for the kinds lockprof profiles (threading's Lock,
  RLock, Semaphore, BoundedSemaphore and Condition, asyncio's Lock, Semaphore, BoundedSemaphore
  and Condition) at ddtrace's default capture_pct, recording into its profile writer (ddup),
  which writes files under the given directory and never uploads. No tracer, agent or other
  collector is involved;
* ddtrace-lockprof: the same ddtrace setup with lockprof's collector in place of ddtrace's lock
  collectors (lockprof.integrations.ddtrace's DdtraceLockCollector at the DD_PROFILING_*
  settings), its samples pushed into ddup at stop, as ddtrace's profiler does before it writes.

When lockprof profiles another kind of primitive, add ddtrace's matching collector to
DDTRACE_COLLECTORS so both profile the same things.
"""

from __future__ import annotations

import glob
import importlib
import importlib.metadata
import os
from typing import Callable, Dict, List, Optional

PROFILERS = ("none", "lockprof", "ddtrace", "ddtrace-lockprof")
# (module under ddtrace.profiling.collector, collector class)
DDTRACE_COLLECTORS = (
    ("threading", "ThreadingLockCollector"),
    ("threading", "ThreadingRLockCollector"),
    ("threading", "ThreadingSemaphoreCollector"),
    ("threading", "ThreadingBoundedSemaphoreCollector"),
    ("threading", "ThreadingConditionCollector"),
    ("asyncio", "AsyncioLockCollector"),
    ("asyncio", "AsyncioSemaphoreCollector"),
    ("asyncio", "AsyncioBoundedSemaphoreCollector"),
    ("asyncio", "AsyncioConditionCollector"),
)


def ddtrace_version() -> Optional[str]:
    """The installed ddtrace's version, or None when it is not installed."""
    try:
        return importlib.metadata.version("ddtrace")
    except importlib.metadata.PackageNotFoundError:
        return None


def choose(spec: Optional[str]) -> List[str]:
    """The profilers a --profilers value names (comma-separated); None: every installed one.
    ValueError names what is wrong."""
    if spec is None:
        return [name for name in PROFILERS if not name.startswith("ddtrace") or ddtrace_version() is not None]
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names or any(name not in PROFILERS for name in names):
        raise ValueError(f"--profilers: a comma-separated list from {', '.join(PROFILERS)}, got {spec!r}")
    if any(name.startswith("ddtrace") for name in names) and ddtrace_version() is None:
        raise ValueError("--profilers ddtrace: ddtrace is not installed (pip install -r benchmarks/requirements.txt)")
    return names


class Session:
    """A started profiler: stop() ends it and returns the profile files it wrote."""

    def __init__(self, name: str, output_dir: Optional[str], stop: Callable[[], None], pattern: str,
                 settings: Dict[str, object]) -> None:
        self.name = name
        self.output_dir = output_dir
        self._stop = stop
        self._pattern = pattern
        self.settings = settings  # what the profile was taken with (capture_pct, ...)

    def stop(self) -> List[str]:
        self._stop()
        if not self._pattern:
            return []
        return sorted(glob.glob(self._pattern))


def start(name: str, output_dir: Optional[str] = None) -> Session:
    """Start profiler `name` (one of PROFILERS); its files go to output_dir."""
    if name not in PROFILERS:
        raise ValueError(f"profiler must be one of {', '.join(PROFILERS)}, got {name!r}")
    if name == "none":
        return Session(name, None, lambda: None, "", {})
    if not output_dir:
        raise ValueError(f"profiler {name!r} needs an output directory")
    os.makedirs(output_dir, exist_ok=True)
    if name == "lockprof":
        return _start_lockprof(output_dir)
    return _start_ddtrace(output_dir, hosting_lockprof=name == "ddtrace-lockprof")


def _start_lockprof(output_dir: str) -> Session:
    from lockprof import Profiler

    prefix = os.path.join(output_dir, "lockprof")
    profiler = Profiler(lock_enabled=True, output=prefix)
    profiler.start()
    settings = {"capture_pct": profiler.config.capture_pct, "max_frames": profiler.config.max_frames}
    return Session("lockprof", output_dir, profiler.stop, f"{prefix}.{os.getpid()}.*.pprof", settings)


def _start_ddtrace(output_dir: str, hosting_lockprof: bool) -> Session:
    from ddtrace.internal.datadog.profiling import ddup

    prefix = os.path.join(output_dir, "ddtrace")
    ddup.config(service="lockprof-benchmark", output_filename=prefix)
    ddup.start()
    if hosting_lockprof:
        from lockprof.integrations.ddtrace_collector import DdtraceLockCollector

        collectors = [DdtraceLockCollector({})]
        settings = {"capture_pct": collectors[0].config.capture_pct, "collectors": ["DdtraceLockCollector"]}
    else:
        collectors = [getattr(importlib.import_module(f"ddtrace.profiling.collector.{module}"), name)()
                      for module, name in DDTRACE_COLLECTORS]
        settings = {"capture_pct": collectors[0].capture_pct, "collectors": [name for _, name in DDTRACE_COLLECTORS]}
    for collector in collectors:
        collector.start()

    def stop() -> None:
        for collector in collectors:
            collector.snapshot()  # what ddtrace's scheduler does before it writes (a no-op for its own)
        for collector in reversed(collectors):
            collector.stop()
        ddup.upload()  # writes the profile file

    name = "ddtrace-lockprof" if hosting_lockprof else "ddtrace"
    return Session(name, output_dir, stop, f"{prefix}.{os.getpid()}.*.pprof", settings)
