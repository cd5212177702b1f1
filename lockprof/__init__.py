"""lockprof: a lock-contention profiler for Python with a compiled hot path.

    from lockprof import Profiler
    with Profiler(lock_enabled=True):
        ...
"""

from typing import TYPE_CHECKING, Any

from lockprof._version import __version__

if TYPE_CHECKING:  # what __getattr__ gives, for type checkers
    from lockprof._lock import CORE_MODE
    from lockprof.collector import LockCollector
    from lockprof.profile import Frame, LockSample, Snapshot
    from lockprof.profiler import LockprofExportWarning, Profiler

__all__ = [
    "CORE_MODE",
    "Frame",
    "LockCollector",
    "LockSample",
    "LockprofExportWarning",
    "Profiler",
    "Snapshot",
    "__version__",
]

# The public names, loaded at their first use (CORE_MODE, "internals" or "portable", is the
# compiled modules' own: docs/design.md, "Two cores"): `import lockprof.config` (lockprof's start-up
# hook, lockprof.integrations.ddtrace) must not load the compiled core, which ties itself to
# the _thread and threading modules of its import, before ddtrace-run replaces them.
_PUBLIC = {"CORE_MODE": "lockprof._lock", "Frame": "lockprof.profile", "LockCollector": "lockprof.collector",
           "LockSample": "lockprof.profile", "LockprofExportWarning": "lockprof.profiler",
           "Profiler": "lockprof.profiler", "Snapshot": "lockprof.profile"}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'lockprof' has no attribute {name!r}")
    value = getattr(__import__(module, fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> Any:
    return sorted(set(globals()) | set(_PUBLIC))
