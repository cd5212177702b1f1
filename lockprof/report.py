"""The top locks of one or more profiles: rows per lock (or thread, or task, or trace span).

build_report() is the one place where profiles become report rows: every form of the report
(lockprof.renderers: text, JSON, CSV) and the summary `lockprof run` prints at exit go through
it. A profile read from a file has only the columns it had (another tool's, or an older
lockprof's), and the rows are made of what it has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from lockprof._resolve import display_path
from lockprof.collector import UNTRACKED_LOCKS
from lockprof.profile import SAMPLE_TYPES, Frame, LockSample, LongWait, Snapshot

GROUPINGS = ("lock", "thread", "task", "span")

# The exact columns: a profile with both counts every contended acquire on its lock.
_EXACT_COLUMNS = {t.type for t in SAMPLE_TYPES if t.exact}
_NO_TASK = "(no task)"


@dataclass
class ReportRow:
    """One lock (or thread, or task), summed over stacks, threads and files."""

    name: str  # the lock's name, or "thread-name (id)", or "task-name (id)", or "span id (trace ...)"
    kind: str = ""  # lock, rlock, ... (rows by lock)
    site: Optional[Frame] = None  # where the lock was created, from its exact totals
    acquires: int = 0  # all acquires, estimated from the sampled ones
    contended: int = 0  # acquires that had to wait, timeouts included
    wait_ns: int = 0
    max_wait_ns: Optional[int] = None  # known only from exact totals
    hold_ns: int = 0  # estimated
    blocking_hold_ns: int = 0  # estimated: hold time while others were blocked
    condition_wait_ns: int = 0  # estimated: Condition.wait() waiting for a notify
    timeouts: int = 0
    exact: bool = False  # contended, wait_ns, max_wait_ns and timeouts are exact counts
    top_stack: Tuple[Frame, ...] = ()  # the stack with the most wait (else hold), leaf first
    top_stack_metric: str = ""  # "wait" or "hold": what top_stack is the top of
    top_lock: Optional[str] = None  # rows by thread or task: the lock waited on the most

    @property
    def average_wait_ns(self) -> Optional[int]:
        return self.wait_ns // self.contended if self.contended else None

    def as_dict(self) -> Dict[str, Any]:
        """The row as JSON-ready values, in column order (the JSON and CSV forms)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "site": _frame_dict(self.site) if self.site else None,
            "acquires": self.acquires,
            "contended_acquires": self.contended,
            "total_wait_ns": self.wait_ns,
            "average_wait_ns": self.average_wait_ns,
            "max_wait_ns": self.max_wait_ns,
            "hold_ns": self.hold_ns,
            "blocking_hold_ns": self.blocking_hold_ns,
            "condition_wait_ns": self.condition_wait_ns,
            "timeouts": self.timeouts,
            "exact": self.exact,
            "top_lock": self.top_lock,
            "top_stack_metric": self.top_stack_metric,
            "top_stack": [_frame_dict(f) for f in self.top_stack],
        }


@dataclass
class Report:
    by: str
    rows: List[ReportRow]
    long_waits: List[LongWait] = field(default_factory=list)  # longest first
    dropped_events: int = 0


SORT_KEYS: Dict[str, Callable[[ReportRow], Union[int, str]]] = {
    "wait": lambda r: r.wait_ns,
    "avg-wait": lambda r: r.average_wait_ns or 0,
    "max-wait": lambda r: r.max_wait_ns or 0,
    "contended": lambda r: r.contended,
    "hold": lambda r: r.hold_ns,
    "blocking-hold": lambda r: r.blocking_hold_ns,
    "condition-wait": lambda r: r.condition_wait_ns,
    "acquires": lambda r: r.acquires,
    "timeouts": lambda r: r.timeouts,
    "name": lambda r: r.name,
}


# ---------------------------------------------------------------------------------------------
# Profiles to rows


@dataclass
class _Sums:
    """A row being summed, with the per-stack and per-lock weights that pick its top stack
    and top lock once every profile is in."""

    row: ReportRow
    stack_wait: Dict[Tuple[Frame, ...], int] = field(default_factory=dict)
    stack_hold: Dict[Tuple[Frame, ...], int] = field(default_factory=dict)
    lock_wait: Dict[str, int] = field(default_factory=dict)
    estimated: bool = False  # some file had no exact totals for it
    # Contended acquires estimated from the stacks of the profiles whose lock-acquire column
    # leaves them out: added to acquires, unless the exact count is known.
    contended_outside_acquires: int = 0

    def finish(self, by: str) -> ReportRow:
        row = self.row
        row.exact = by == "lock" and not self.estimated
        row.acquires += row.contended if row.exact else self.contended_outside_acquires
        if not row.exact:
            row.max_wait_ns = None  # a maximum over part of the files would mislead
        elif row.max_wait_ns is None:
            row.max_wait_ns = 0  # exact, and no totals: the lock never had to wait
        for metric, weights in (("wait", self.stack_wait), ("hold", self.stack_hold)):
            stack, weight = max(weights.items(), key=lambda item: item[1], default=((), 0))
            if weight > 0:
                row.top_stack, row.top_stack_metric = stack, metric
                break
        if by != "lock" and self.lock_wait:
            row.top_lock = max(self.lock_wait.items(), key=lambda item: item[1])[0]
        return row


def program_frames(frames: Sequence[Frame]) -> Tuple[Frame, ...]:
    """A stack (leaf first) without what `lockprof run` put under the program: the runner's
    frames and runpy's, at the root of the main thread's stacks."""
    for i, frame in enumerate(frames):
        if frame.name == "_execute" and frame.filename.replace("\\", "/").endswith("lockprof/runner.py"):
            kept = list(frames[:i])
            while kept and os.path.basename(kept[-1].filename) in ("runpy.py", "<frozen runpy>"):
                kept.pop()
            return tuple(kept)
    return tuple(frames)


def _group(sample: LockSample, by: str) -> str:
    if by == "lock":
        return sample.lock_name
    if by == "task":
        if sample.task_id is None:
            return _NO_TASK
        return f"{sample.task_name or '?'} ({sample.task_id})"
    if by == "span":
        trace = f"trace {sample.trace_id}" if sample.trace_id else "no trace id"
        root = f", local root {sample.local_root_span_id}" if sample.local_root_span_id else ""
        return f"{sample.span_id} ({trace}{root})"
    if sample.thread_id is None:
        return "(no thread)"
    return f"{sample.thread_name or '?'} ({sample.thread_id})"


def build_report(profiles: Iterable[Snapshot], by: str = "lock", sort: str = "wait") -> Report:
    """Merge the lock samples of `profiles` into one row per lock, thread or task, sorted.

    Contended acquires, waits, the maximum wait and timeouts come from a lock's exact totals
    where a profile has them (a lock without totals in a profile that has them for all its
    contended locks had none); from the estimated columns of its stack samples otherwise.
    Rows by span hold the captured waits spans are the labels of: per lock sample, its longest
    captured wait with a span active, and that span (docs/usage.md#trace-correlation).
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    sums: Dict[str, _Sums] = {}
    long_waits: List[LongWait] = []
    dropped_events = 0
    for profile in profiles:
        with_totals = {totals.lock_name for totals in profile.lock_totals}
        # A profile with the exact columns has totals for every lock that had contention,
        # unless it ran out of room for them: then the rest are summed as UNTRACKED_LOCKS.
        # Its lock-acquire column samples only the acquires that did not wait.
        counts_contention = _EXACT_COLUMNS <= {t.type for t in profile.sample_types}
        complete = counts_contention and UNTRACKED_LOCKS not in with_totals
        for totals in profile.lock_totals if by == "lock" else ():
            if not totals.lock_name:
                continue
            row = sums.setdefault(totals.lock_name, _Sums(ReportRow(totals.lock_name))).row
            row.kind = row.kind or totals.lock_kind
            if row.site is None and totals.site.filename:
                row.site = totals.site
            row.contended += totals.contended_count
            row.wait_ns += totals.wait_ns
            row.max_wait_ns = max(row.max_wait_ns or 0, totals.max_wait_ns)
            row.timeouts += totals.timeouts
        for sample in profile.samples:
            lock = sample.lock_name
            if not lock:
                continue  # not a lock sample (a CPU sample of another tool's profile, ...)
            if by == "span" and sample.span_id is None:
                continue
            exact = by == "lock" and (lock in with_totals or complete)
            key = _group(sample, by)
            group = sums.setdefault(key, _Sums(ReportRow(key)))
            row = group.row
            if by == "span":
                _add_span_wait(group, sample)
                continue
            if by == "lock":
                row.kind = row.kind or sample.lock_kind
                if row.site is None and sample.site is not None and sample.site.filename:
                    row.site = Frame(lock, sample.site.filename, sample.site.line)
            wait, hold = sample.acquire_wait_ns, sample.release_hold_ns
            row.acquires += sample.acquire_count
            if counts_contention:
                group.contended_outside_acquires += sample.contended_count
            row.hold_ns += hold
            row.blocking_hold_ns += sample.blocking_hold_ns
            row.condition_wait_ns += sample.condition_wait_ns
            if not exact:
                group.estimated = True
                row.contended += sample.contended_count
                row.wait_ns += wait
                if sample.timed_out:
                    row.timeouts += sample.contended_count
            stack = program_frames(sample.frames)
            group.stack_wait[stack] = group.stack_wait.get(stack, 0) + wait
            group.stack_hold[stack] = group.stack_hold.get(stack, 0) + hold
            group.lock_wait[lock] = group.lock_wait.get(lock, 0) + wait
        long_waits += profile.long_waits
        dropped_events += profile.dropped_events
    return Report(
        by=by,
        rows=sort_rows([group.finish(by) for group in sums.values()], sort),
        long_waits=sorted(long_waits, key=lambda wait: wait.wait_ns, reverse=True),
        dropped_events=dropped_events,
    )


def _add_span_wait(group: _Sums, sample: LockSample) -> None:
    """The one captured wait a sample's span label stands for, into its span's row."""
    group.estimated = True
    group.row.contended += 1
    group.row.wait_ns += sample.span_wait_ns
    stack = program_frames(sample.frames)
    group.stack_wait[stack] = group.stack_wait.get(stack, 0) + sample.span_wait_ns
    group.lock_wait[sample.lock_name] = group.lock_wait.get(sample.lock_name, 0) + sample.span_wait_ns


def is_lock_profile(profile: Snapshot) -> bool:
    """Whether the profile is one of lock activity (a CPU profile of another tool is not)."""
    lockprof_types = {t.type for t in SAMPLE_TYPES}
    if any(t.type in lockprof_types for t in profile.sample_types):
        return True
    return bool(profile.lock_totals) or any(sample.lock_name for sample in profile.samples)


def sort_rows(rows: List[ReportRow], sort: str) -> List[ReportRow]:
    """Largest first (names alphabetically), ties broken by name."""
    key = SORT_KEYS[sort]
    if sort == "name":
        return sorted(rows, key=lambda r: r.name)
    return sorted(rows, key=lambda r: (-key(r), r.name))  # type: ignore[operator]


# ---------------------------------------------------------------------------------------------
# Formatting


def format_duration(ns: Optional[int]) -> str:
    """A duration for people: 3 significant digits and a unit (ns, us, ms, s); None as "-"."""
    if ns is None:
        return "-"
    if ns == 0:
        return "0"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= scale:
            x = ns / scale
            digits = f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}" if abs(x) < 100 else f"{x:,.0f}"
            return f"{digits} {unit}"
    return f"{ns} ns"


def short_path(filename: str) -> str:
    """A file name as people read it here: relative to the working directory when under it,
    else to the sys.path entry it lives under (the standard library's files)."""
    if os.path.isabs(filename):
        try:
            relative = os.path.relpath(filename)
        except ValueError:  # another drive (Windows)
            relative = os.pardir
        if not relative.startswith(os.pardir):
            return relative.replace(os.sep, "/")
    return display_path(filename)


def format_frame(frame: Frame) -> str:
    return f"{frame.name} ({short_path(frame.filename)}:{frame.line})"


def _frame_dict(frame: Frame) -> Dict[str, Any]:
    return {"function": frame.name, "file": frame.filename, "line": frame.line}
