"""The in-memory form of a lock profile, shared by the collector, the exporters and the reader.

The compiled core aggregates raw events keyed by (lock, stack, thread, task, outcome); the
collector resolves them into these plain objects (names, files, line numbers) outside any lock
operation. Every count and duration here is already an estimate of the real total (see
docs/design.md, "Sampling"), except LockTotals, which is exact.
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
    """Estimated counters for one (lock, stack, thread, task, outcome) key."""

    lock_name: str
    lock_kind: str
    frames: Tuple[Frame, ...]  # leaf first
    thread_id: int
    thread_native_id: int
    thread_name: str
    task_id: Optional[int] = None
    task_name: Optional[str] = None
    # Acquires and holds, sampled at capture_pct and upscaled.
    acquire_count: int = 0
    release_count: int = 0
    release_hold_ns: int = 0
    # Contended waits, sampled in proportion to their length and weighted (unbiased).
    contended_count: int = 0
    acquire_wait_ns: int = 0
    # Releases that ended a hold while other threads were blocked on the lock: the part of the
    # hold during which at least one thread waited, sampled like the waits.
    blocking_hold_ns: int = 0
    # Condition.wait() waiting for a notify (the lock released meanwhile), sampled like waits.
    condition_wait_ns: int = 0
    # The waits of this key ended in a timeout, not with the lock.
    timed_out: bool = False
    # The core's LockInfo, while the sample is in-process: a lock not named at its creation is
    # named at its first captured release, so lock_name is refreshed from it when a period is
    # exported. None once decoded.
    lock_info: Any = field(default=None, compare=False, repr=False)

    def merge(self, other: LockSample) -> None:
        """Add the counters of a sample with the same key."""
        self.acquire_count += other.acquire_count
        self.release_count += other.release_count
        self.release_hold_ns += other.release_hold_ns
        self.contended_count += other.contended_count
        self.acquire_wait_ns += other.acquire_wait_ns
        self.blocking_hold_ns += other.blocking_hold_ns
        self.condition_wait_ns += other.condition_wait_ns


@dataclass
class LockTotals:
    """Exact contention counters of one lock (all locks of one name once merged), no stack."""

    lock_name: str
    lock_kind: str
    site: Frame  # where the lock was created; name is the lock's name
    contended_count: int = 0  # acquires that had to block, timeouts included
    wait_ns: int = 0
    max_wait_ns: int = 0
    timeouts: int = 0  # blocking acquires that gave up after their timeout
    lock_info: Any = field(default=None, compare=False, repr=False)

    def merge(self, other: LockTotals) -> None:
        self.contended_count += other.contended_count
        self.wait_ns += other.wait_ns
        self.max_wait_ns = max(self.max_wait_ns, other.max_wait_ns)
        self.timeouts += other.timeouts


@dataclass
class LongWait:
    """One of the longest waits of a period, as it happened (not sampled)."""

    lock_name: str
    wait_ns: int
    thread_id: int
    thread_name: str
    task_id: Optional[int]
    task_name: Optional[str]
    frames: Tuple[Frame, ...]  # the waiter's innermost frames, leaf first
    timed_out: bool = False
    lock_info: Any = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """One line: what waited how long where (the pprof comment form)."""
        who = f"thread {self.thread_name or '?'} ({self.thread_id})"
        if self.task_id is not None:
            who += f", task {self.task_name or '?'} ({self.task_id})"
        outcome = ", timed out" if self.timed_out else ""
        where = " <- ".join(f"{f.name} ({f.filename}:{f.line})" for f in self.frames)
        return f"long wait: {self.wait_ns / 1e6:.3f} ms on {self.lock_name}{outcome}; {who}; at {where}"


@dataclass
class Snapshot:
    """Everything collected over one period [start_ns, end_ns) of wall-clock time."""

    samples: List[LockSample]
    start_ns: int  # time.time_ns() at the start of the period
    end_ns: int
    capture_pct: float
    wait_sample_interval_ns: int = 0
    # The largest interval in force: above wait_sample_interval_ns when the capture budget
    # raised it (docs/configuration.md).
    max_wait_sample_interval_ns: int = 0
    lock_totals: List[LockTotals] = field(default_factory=list)
    long_waits: List[LongWait] = field(default_factory=list)  # longest first
    dropped_events: int = 0  # captured events the bounded table had no room for
    comments: List[str] = field(default_factory=list)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def empty(self) -> bool:
        """No lock activity at all in the period."""
        return not (self.samples or self.lock_totals or self.long_waits or self.dropped_events)

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
