"""lockprof as the lock collector of Datadog's profiler (ddtrace 4.x): docs/ddtrace.md.

``install()``, called before ddtrace's profiler is made, has every ``ddtrace.profiling.Profiler``
made from then on (``ddtrace-run`` with ``DD_PROFILING_ENABLED=true`` too) run lockprof's
collector instead of its own lock collectors, for the nine primitives, and send lockprof's
samples through ddtrace's sample API on ddtrace's schedule. ``LOCKPROF_DDTRACE=true`` does the
same without a code change: lockprof's start-up hook (the ``lockprof-ddtrace.pth`` file an
installed lockprof puts in site-packages) installs it as soon as ddtrace's profiler module is
imported.

What it relies on in ddtrace, checked by version (SUPPORTED): ``_ProfilerInstance.__post_init__``
builds the collectors from ``_lock_collector_enabled``; a collector is a
``ddtrace.profiling.collector.Collector`` whose ``snapshot()`` the scheduler calls before each
upload; ``ddup.SampleHandle`` takes lock samples (``push_lock_name``, ``push_acquire``,
``push_release``, ``push_threadinfo``, ``push_task_id``/``_name``, ``push_span``, ``push_frame``).
"""

from __future__ import annotations

import _thread
import importlib.metadata
import re
import sys
import warnings
from types import ModuleType
from typing import Any, Dict, Optional, Tuple

from lockprof.config import Config, LockprofConfigWarning, env_setting

# The ddtrace releases whose internals this integration was written and tested against:
# [first, end) by (major, minor). Outside it ddtrace keeps its own lock collector.
SUPPORTED: Tuple[Tuple[int, int], Tuple[int, int]] = ((4, 16), (4, 17))
SUPPORTED_TEXT = ">=4.16,<4.17"

PROFILER_MODULE = "ddtrace.profiling.profiler"

_state_lock = _thread.allocate_lock()  # the profiler's own locks are native
_overrides: Optional[Dict[str, Any]] = None  # set once installed: the settings given to install()


def ddtrace_version() -> Optional[str]:
    """The installed ddtrace's version, or None when it is not installed."""
    try:
        return importlib.metadata.version("ddtrace")
    except importlib.metadata.PackageNotFoundError:
        return None


def supported(version: str) -> bool:
    """Whether a ddtrace version is in the range this integration supports."""
    found = re.match(r"(\d+)\.(\d+)", version)
    return found is not None and SUPPORTED[0] <= (int(found.group(1)), int(found.group(2))) < SUPPORTED[1]


def install(capture_pct: Optional[float] = None, max_frames: Optional[int] = None,
            exclude_modules: Any = None, wait_sample_interval: Any = None) -> bool:
    """Make the ddtrace profilers made from now on use lockprof's lock collector.

    The settings not given come from the DD_PROFILING_* variables (lockprof's and ddtrace's
    share their names) when a profiler is made; bad arguments raise TypeError/ValueError. With
    ddtrace missing or outside SUPPORTED, one LockprofConfigWarning and nothing changes: ddtrace
    keeps its own lock collector. Returns whether lockprof's collector is installed. Idempotent.
    """
    global _overrides
    overrides = {name: value for name, value in (
        ("capture_pct", capture_pct), ("max_frames", max_frames),
        ("exclude_modules", exclude_modules), ("wait_sample_interval", wait_sample_interval),
    ) if value is not None}
    Config(**overrides)  # bad arguments raise here, not when ddtrace makes its profiler
    version = ddtrace_version()
    if version is None or not supported(version):
        found = f"ddtrace {version}" if version else "ddtrace is not installed"
        warnings.warn(f"lockprof.integrations.ddtrace: {found}, outside the supported range "
                      f"ddtrace{SUPPORTED_TEXT}; ddtrace keeps its own lock collector",
                      LockprofConfigWarning, stacklevel=2)
        return False
    from ddtrace.profiling import profiler

    with _state_lock:
        if _overrides is None:
            _host_lock_collector(profiler._ProfilerInstance)
        _overrides = overrides
        running = profiler.Profiler._active_instance is not None
    if running:
        warnings.warn("lockprof.integrations.ddtrace: a ddtrace profiler is already running and "
                      "keeps its own lock collector; the profilers started from now on use "
                      "lockprof's (call install() before ddtrace's profiler starts)",
                      LockprofConfigWarning, stacklevel=2)
    return True


def _host_lock_collector(instance_class: type) -> None:
    """Wrap _ProfilerInstance.__post_init__, which builds a profiler's collectors: with lock
    profiling enabled (DD_PROFILING_LOCK_ENABLED), ddtrace's lock collectors are never made,
    and lockprof's is added to the collectors the profiler starts, snapshots and stops."""
    original = instance_class.__post_init__

    def __post_init__(self: Any) -> None:
        enabled = self._lock_collector_enabled
        self._lock_collector_enabled = False
        try:
            original(self)
        finally:
            self._lock_collector_enabled = enabled
        if enabled:
            from lockprof.integrations.ddtrace_collector import DdtraceLockCollector

            self._collectors.append(DdtraceLockCollector(dict(_overrides or {})))

    instance_class.__post_init__ = __post_init__


class _InstallOnImport:
    """The start-up hook's: install() once ddtrace's profiler module has been imported."""

    def installed(self, module: ModuleType) -> None:
        install()
        _remove_import_hook()


_import_hook: Any = None
_on_import = _InstallOnImport()  # the import hook holds it weakly


def install_from_environment() -> None:
    """lockprof's start-up hook (lockprof-ddtrace.pth runs it when LOCKPROF_DDTRACE is set):
    with LOCKPROF_DDTRACE true, install() when ddtrace's profiler module is imported (now, if
    it is already). ddtrace itself is not imported here."""
    global _import_hook
    if not env_setting("ddtrace"):
        return
    if PROFILER_MODULE in sys.modules:
        install()
        return
    from lockprof.import_hooks import PatchOnImport

    _import_hook = PatchOnImport([PROFILER_MODULE], _on_import.installed)
    sys.meta_path.insert(0, _import_hook)


def _remove_import_hook() -> None:
    global _import_hook
    if _import_hook is not None and _import_hook in sys.meta_path:
        sys.meta_path.remove(_import_hook)
    _import_hook = None
