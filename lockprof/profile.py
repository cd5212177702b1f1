"""The one form of a lock profile: what the collector builds, the pprof writer writes, the pprof
reader returns and the report and flame graph renderers read.

The compiled core aggregates raw events keyed by (lock, stack, thread, task, outcome); the
collector resolves them into these plain objects (names, files, line numbers) outside any lock
operation. Every count and duration here is already an estimate of the real total (see
docs/design.md, "Sampling"), except LockTotals, which is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple


@dataclass(frozen=True)
class ValueType:
    """A pprof sample type: what a column of values measures, and in what unit."""

    type: str
    unit: str


@dataclass(frozen=True)
class SampleType(ValueType):
    """One of lockprof's sample types, and the field that holds its values: a LockSample's
    (estimated, per stack) or, when exact, a LockTotals' (per lock)."""

    field: str
    exact: bool = False


# lockprof's sample types, in the order its profiles hold them.
SAMPLE_TYPES = (
    SampleType("lock-acquire", "count", "acquire_count"),  # sampled at capture_pct
    SampleType("lock-acquire-wait", "nanoseconds", "acquire_wait_ns"),  # sampled in proportion to length
    SampleType("lock-contended-acquire", "count", "contended_count"),  # timeouts included
    SampleType("lock-release", "count", "release_count"),  # releases ending a sampled hold
    SampleType("lock-release-hold", "nanoseconds", "release_hold_ns"),
    SampleType("lock-blocking-hold", "nanoseconds", "blocking_hold_ns"),  # while others were blocked
    SampleType("lock-condition-wait", "nanoseconds", "condition_wait_ns"),  # waiting for a notify
    SampleType("lock-contended-total", "count", "contended_count", exact=True),
    SampleType("lock-wait-total", "nanoseconds", "wait_ns", exact=True),
)
_SAMPLE_FIELDS = {t.type: t.field for t in SAMPLE_TYPES if not t.exact}
_TOTALS_FIELDS = {t.type: t.field for t in SAMPLE_TYPES if t.exact}


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
    thread_id: Optional[int]  # None only in another tool's profile, which may not say
    thread_native_id: Optional[int]
    thread_name: str
    task_id: Optional[int] = None
    task_name: Optional[str] = None
    # Where the lock was created (file and line; named after the lock), when known.
    site: Optional[Frame] = None
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
    # The trace span that was active in the thread or task of this key's longest captured
    # contended wait of the period, and that wait (docs/usage.md#trace-correlation); None and
    # 0 when no span was active in any. span_id and local_root_span_id are ddtrace's 64-bit
    # ids (local_root_span_id: ddtrace spans only), trace_id OpenTelemetry's hex form.
    span_id: Optional[int] = None
    local_root_span_id: Optional[int] = None
    trace_id: Optional[str] = None
    span_wait_ns: int = 0
    # Values of sample types other than lockprof's, by type (other tools' profiles).
    other_values: Dict[str, int] = field(default_factory=dict)
    # The core's LockInfo, while the sample is in-process: a lock not named at its creation is
    # named at its first captured release, so lock_name is refreshed from it when a period is
    # exported. None once decoded.
    lock_info: Any = field(default=None, compare=False, repr=False)

    def value(self, sample_type: str) -> int:
        """This sample's value of a sample type (0 for lockprof's exact, per-lock ones)."""
        name = _SAMPLE_FIELDS.get(sample_type)
        return int(getattr(self, name)) if name else self.other_values.get(sample_type, 0)

    def merge(self, other: LockSample) -> None:
        """Add the counters of a sample with the same key."""
        self.acquire_count += other.acquire_count
        self.release_count += other.release_count
        self.release_hold_ns += other.release_hold_ns
        self.contended_count += other.contended_count
        self.acquire_wait_ns += other.acquire_wait_ns
        self.blocking_hold_ns += other.blocking_hold_ns
        self.condition_wait_ns += other.condition_wait_ns
        if other.span_wait_ns > self.span_wait_ns:
            self.span_id, self.local_root_span_id = other.span_id, other.local_root_span_id
            self.trace_id, self.span_wait_ns = other.trace_id, other.span_wait_ns


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

    def value(self, sample_type: str) -> int:
        """This lock's value of a sample type (0 for the estimated, per-stack ones)."""
        name = _TOTALS_FIELDS.get(sample_type)
        return int(getattr(self, name)) if name else 0

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
    thread_id: Optional[int]
    thread_name: str
    task_id: Optional[int]
    task_name: Optional[str]
    frames: Tuple[Frame, ...]  # the waiter's innermost frames, leaf first
    timed_out: bool = False
    # The trace span active in the waiter's thread or task, as on LockSample.
    span_id: Optional[int] = None
    local_root_span_id: Optional[int] = None
    trace_id: Optional[str] = None
    lock_info: Any = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """One line: how long what waited where."""
        who = f"thread {self.thread_name or '?'} ({self.thread_id})"
        if self.task_id is not None:
            who += f", task {self.task_name or '?'} ({self.task_id})"
        if self.span_id is not None:
            who += f", span {self.span_id}"
        outcome = ", timed out" if self.timed_out else ""
        where = " <- ".join(f"{f.name} ({f.filename}:{f.line})" for f in self.frames)
        return f"{self.wait_ns / 1e6:.3f} ms on {self.lock_name}{outcome}; {who}; at {where}"


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
    # The process profiling started in, for it and the children it profiles (forked, or with
    # `lockprof run --subprocesses`): what `lockprof run` lists as its run's profiles.
    root_pid: int = 0
    # The sample types the profile has values of: all of lockprof's, but a profile read from a
    # file has its own (another tool's, or one with only some of lockprof's columns).
    sample_types: List[ValueType] = field(
        default_factory=lambda: [ValueType(t.type, t.unit) for t in SAMPLE_TYPES])

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
