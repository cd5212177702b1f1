"""lockprof: a lock-contention profiler for Python with a compiled hot path.

    from lockprof import Profiler
    with Profiler(lock_enabled=True):
        ...
"""

from lockprof._version import __version__
from lockprof.collector import LockCollector
from lockprof.profile import Frame, LockSample, Snapshot
from lockprof.profiler import LockprofExportWarning, Profiler

__all__ = [
    "Frame",
    "LockCollector",
    "LockSample",
    "LockprofExportWarning",
    "Profiler",
    "Snapshot",
    "__version__",
]
