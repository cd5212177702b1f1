"""The in-memory form of a lock profile, shared by the collector, the exporters and the reader.

The compiled core aggregates raw events keyed by (lock, stack, thread, task); the collector
resolves them into these plain objects (names, files, line numbers) outside any lock operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Frame:
    """One stack frame, resolved: function name (qualified on 3.11+), file and line."""

    name: str
    filename: str
    line: int


@dataclass
class LockSample:
    """Counters for one (lock, stack, thread, task) key, already upscaled by the sampling rate."""

    lock_name: str
    lock_kind: str
    frames: Tuple[Frame, ...]  # leaf first
    thread_id: int
    thread_native_id: int
    thread_name: str
    task_id: Optional[int] = None
    task_name: Optional[str] = None
    acquire_count: int = 0
    acquire_wait_ns: int = 0
    release_count: int = 0
    release_hold_ns: int = 0
    # The core's LockInfo, while the sample is in-process: a lock is named at its first captured
    # release, so lock_name is refreshed from it when a period is exported. None once decoded.
    lock_info: Any = field(default=None, compare=False, repr=False)


@dataclass
class Snapshot:
    """Everything collected over one period [start_ns, end_ns) of wall-clock time."""

    samples: List[LockSample]
    start_ns: int  # time.time_ns() at the start of the period
    end_ns: int
    capture_pct: float
    dropped_events: int = 0  # captured events the bounded table had no room for
    comments: List[str] = field(default_factory=list)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    def totals_by_lock(self) -> Dict[str, Tuple[int, int, int, int]]:
        """lock name -> (acquires, wait ns, releases, hold ns), summed over stacks and threads."""
        totals: Dict[str, List[int]] = {}
        for s in self.samples:
            t = totals.setdefault(s.lock_name, [0, 0, 0, 0])
            t[0] += s.acquire_count
            t[1] += s.acquire_wait_ns
            t[2] += s.release_count
            t[3] += s.release_hold_ns
        return {name: (a, w, r, h) for name, (a, w, r, h) in totals.items()}
