"""The top locks of one or more profiles: rows per lock (or thread, or task), as text, JSON or CSV.

build_report() is the one place where pprof samples become report rows: `lockprof report`, the
summary `lockprof run` prints at exit, and top_locks() (used by examples/) all go through it.
Columns are found by name, so profiles from other tools (which lack some of them) read too.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from lockprof import pprof
from lockprof._resolve import display_path
from lockprof._term import Style
from lockprof.collector import UNTRACKED_LOCKS
from lockprof.pprof import MAX_WAIT_LABEL, OUTCOME_LABEL, TIMED_OUT, TIMEOUTS_LABEL, DecodedProfile
from lockprof.profile import Frame, Snapshot

GROUPINGS = ("lock", "thread", "task")
FORMATS = ("text", "json", "csv")

# Sample types read by name (pprof.SAMPLE_TYPES).
_ACQUIRES, _WAIT, _CONTENDED = "lock-acquire", "lock-acquire-wait", "lock-contended-acquire"
_HOLD, _BLOCKING_HOLD = "lock-release-hold", "lock-blocking-hold"
_CONDITION_WAIT = "lock-condition-wait"
_CONTENDED_TOTAL, _WAIT_TOTAL = "lock-contended-total", "lock-wait-total"
_COLUMNS = (_ACQUIRES, _WAIT, _CONTENDED, _HOLD, _BLOCKING_HOLD, _CONDITION_WAIT, _CONTENDED_TOTAL,
            _WAIT_TOTAL)

_LONG_WAIT_PREFIX = "long wait: "
_LONG_WAIT_MS = re.compile(r"long wait: ([0-9]+(?:\.[0-9]+)?) ms")
_DROPPED_PREFIX = "dropped events: "
_NO_TASK = "(no task)"


@dataclass
class ReportRow:
    """One lock (or thread, or task), summed over stacks, threads and files."""

    name: str  # the lock's name, or "thread-name (id)", or "task-name (id)"
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
    long_waits: List[str] = field(default_factory=list)  # "12.3 ms on ...", longest first
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


def _text(value: Union[str, int, None]) -> str:
    return "" if value is None else str(value)


def _number(value: Union[str, int, None]) -> int:
    return value if isinstance(value, int) else 0


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


def _group(labels: Dict[str, Union[str, int]], lock: str, by: str) -> str:
    if by == "lock":
        return lock
    prefix = "task" if by == "task" else "thread"
    if f"{prefix} id" not in labels:
        return _NO_TASK if by == "task" else "(no thread)"
    return f"{_text(labels.get(f'{prefix} name')) or '?'} ({_text(labels[f'{prefix} id'])})"


def build_report(profiles: Iterable[DecodedProfile], by: str = "lock", sort: str = "wait") -> Report:
    """Merge the lock samples of `profiles` into one row per lock, thread or task, sorted.

    Contended acquires, waits, the maximum wait and timeouts come from a lock's exact totals
    where a profile has them (a lock without totals in a profile that has them for all its
    contended locks had none); from the estimated columns of its stack samples otherwise.
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    sums: Dict[str, _Sums] = {}
    long_waits: List[Tuple[float, str]] = []
    dropped_events = 0
    for profile in profiles:
        columns = {name: _column(profile, name) for name in _COLUMNS}

        def value(values: List[int], name: str) -> int:
            index = columns[name]
            return values[index] if index is not None else 0

        with_totals = {_text(s.labels.get("lock name")) for s in profile.samples
                       if MAX_WAIT_LABEL in s.labels}
        # A profile with the exact columns has totals for every lock that had contention,
        # unless it ran out of room for them: then the rest are summed as UNTRACKED_LOCKS.
        # Its lock-acquire column samples only the acquires that did not wait.
        counts_contention = columns[_CONTENDED_TOTAL] is not None and columns[_WAIT_TOTAL] is not None
        complete = counts_contention and UNTRACKED_LOCKS not in with_totals
        for sample in profile.samples:
            lock = _text(sample.labels.get("lock name"))
            if not lock:
                continue  # not a lock sample (a CPU sample of another tool's profile, ...)
            exact = by == "lock" and (lock in with_totals or complete)
            if MAX_WAIT_LABEL in sample.labels:  # the lock's exact totals, no stack
                if exact:
                    row = sums.setdefault(lock, _Sums(ReportRow(lock))).row
                    row.kind = row.kind or _text(sample.labels.get("lock kind"))
                    if row.site is None and sample.frames and sample.frames[0].filename:
                        row.site = sample.frames[0]
                    row.contended += value(sample.values, _CONTENDED_TOTAL)
                    row.wait_ns += value(sample.values, _WAIT_TOTAL)
                    max_wait = _number(sample.labels.get(MAX_WAIT_LABEL))
                    row.max_wait_ns = max(row.max_wait_ns or 0, max_wait)
                    row.timeouts += _number(sample.labels.get(TIMEOUTS_LABEL))
                continue
            key = _group(sample.labels, lock, by)
            group = sums.setdefault(key, _Sums(ReportRow(key)))
            row = group.row
            if by == "lock":
                row.kind = row.kind or _text(sample.labels.get("lock kind"))
            wait, hold = value(sample.values, _WAIT), value(sample.values, _HOLD)
            row.acquires += value(sample.values, _ACQUIRES)
            if counts_contention:
                group.contended_outside_acquires += value(sample.values, _CONTENDED)
            row.hold_ns += hold
            row.blocking_hold_ns += value(sample.values, _BLOCKING_HOLD)
            row.condition_wait_ns += value(sample.values, _CONDITION_WAIT)
            if not exact:
                group.estimated = True
                row.contended += value(sample.values, _CONTENDED)
                row.wait_ns += wait
                if sample.labels.get(OUTCOME_LABEL) == TIMED_OUT:
                    row.timeouts += value(sample.values, _CONTENDED)
            stack = program_frames(sample.frames)
            group.stack_wait[stack] = group.stack_wait.get(stack, 0) + wait
            group.stack_hold[stack] = group.stack_hold.get(stack, 0) + hold
            group.lock_wait[lock] = group.lock_wait.get(lock, 0) + wait
        for comment in profile.comments:
            if comment.startswith(_LONG_WAIT_PREFIX):
                ms = _LONG_WAIT_MS.match(comment)
                long_waits.append((float(ms.group(1)) if ms else 0.0, comment[len(_LONG_WAIT_PREFIX):]))
            elif comment.startswith(_DROPPED_PREFIX) and comment[len(_DROPPED_PREFIX):].isdigit():
                dropped_events += int(comment[len(_DROPPED_PREFIX):])
    return Report(
        by=by,
        rows=sort_rows([group.finish(by) for group in sums.values()], sort),
        long_waits=[text for _, text in sorted(long_waits, key=lambda w: -w[0])],
        dropped_events=dropped_events,
    )


def is_lock_profile(profile: DecodedProfile) -> bool:
    """Whether the profile is one of lock activity (a CPU profile of another tool is not)."""
    if any(t.type in _COLUMNS for t in profile.sample_types):
        return True
    return any(sample.labels.get("lock name") for sample in profile.samples)


def _column(profile: DecodedProfile, name: str) -> Optional[int]:
    try:
        return profile.value_index(name)
    except ValueError:
        return None


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


@dataclass(frozen=True)
class _Column:
    title: str
    cell: Callable[[ReportRow], str]
    drop_order: int  # columns that do not fit the terminal are dropped lowest first; 0: never


def _estimated(row: ReportRow, text: str) -> str:
    return text if row.exact or text == "-" else "~" + text


_COLUMNS_BY_LOCK = (
    _Column("kind", lambda r: r.kind or "-", 2),
    _Column("acquires", lambda r: f"{r.acquires:,}", 1),
    _Column("contended", lambda r: _estimated(r, f"{r.contended:,}"), 7),
    _Column("total wait", lambda r: _estimated(r, format_duration(r.wait_ns)), 0),
    _Column("avg wait", lambda r: _estimated(r, format_duration(r.average_wait_ns)), 3),
    _Column("max wait", lambda r: format_duration(r.max_wait_ns), 4),
    _Column("hold", lambda r: format_duration(r.hold_ns), 6),
    _Column("blocking hold", lambda r: format_duration(r.blocking_hold_ns), 5),
    _Column("condition wait", lambda r: format_duration(r.condition_wait_ns), 2),
)


_SECONDARY = 4  # drop_order of the last column dropped before names are shortened
_MIN_NAME = 24
_SHORTEST_NAME = 8


def format_text(report: Report, *, limit: int = 0, width: Optional[int] = None,
                color: bool = False, stack_depth: int = 4, long_waits: int = 5) -> str:
    """The report as an aligned table, with each row's top stack under it, then the
    `long_waits` longest waits.

    width: the terminal's width (columns that do not fit are dropped, long names and stacks
    shortened), or None for no limit; color: ANSI styles.
    """
    style = Style(color)
    if not report.rows:
        return "lockprof: no lock activity was captured"
    rows = report.rows[:limit] if limit > 0 else report.rows
    columns = [c for c in _COLUMNS_BY_LOCK if report.by == "lock" or c.title not in ("kind", "max wait")]
    if not any(row.condition_wait_ns for row in report.rows):  # only Conditions have any
        columns = [c for c in columns if c.title != "condition wait"]
    first_title = report.by
    def widths(cols: Sequence[_Column]) -> List[int]:
        return [max(len(c.title), *(len(c.cell(r)) for r in rows)) for c in cols]

    name_width = max(len(first_title), *(len(r.name) for r in rows))
    while width is not None:
        excess = name_width + sum(w + 2 for w in widths(columns)) - width
        if excess <= 0:
            break
        droppable = sorted((c for c in columns if c.drop_order), key=lambda c: c.drop_order)
        # The secondary columns go first, then names are shortened (down to a readable
        # minimum), then the other columns go, then names get shorter still; the name and
        # the total wait always stay.
        if droppable and (droppable[0].drop_order <= _SECONDARY or name_width <= _MIN_NAME):
            columns.remove(droppable[0])
        elif name_width > _MIN_NAME:
            name_width = max(_MIN_NAME, name_width - excess)
        elif name_width > _SHORTEST_NAME:
            name_width = max(_SHORTEST_NAME, name_width - excess)
        else:
            break
    cell_widths = widths(columns)
    header = first_title.ljust(name_width) + "".join(
        "  " + c.title.rjust(w) for c, w in zip(columns, cell_widths))
    lines = [style(header, "bold", "underline")]
    for row in rows:
        name = _shorten(row.name, name_width).ljust(name_width)
        cells = "".join("  " + c.cell(row).rjust(w) for c, w in zip(columns, cell_widths))
        lines.append(style(name, "bold") + cells)
        for detail in _details(row, report.by, stack_depth):
            lines.append(style(_clip("  " + detail, width), "dim"))
    notes = []
    if any(not r.exact and (r.contended or r.wait_ns) for r in rows):
        notes.append("~ estimated from sampled stacks (the profile has no exact totals for it)")
    if report.long_waits and long_waits > 0:
        # Each with its innermost frame only: the whole stack is in the JSON form.
        shown = [w.split(" <- ")[0] + (" <- ..." if " <- " in w else "")
                 for w in report.long_waits[:long_waits]]
        notes += ["", style("longest waits", "bold")] + ["  " + w for w in shown]
    if report.dropped_events:
        notes.append(f"({report.dropped_events:,} captured events did not fit the event table)")
    return "\n".join(lines + [_clip(note, width) for note in notes])


def _details(row: ReportRow, by: str, stack_depth: int) -> List[str]:
    details = []
    if row.site is not None:
        # Lock names start with their creation site, as a path relative to sys.path.
        if f"{os.path.basename(row.site.filename)}:{row.site.line}" not in row.name:
            details.append(f"created at {short_path(row.site.filename)}:{row.site.line}")
    if row.top_lock:
        details.append(f"waits most on {row.top_lock}")
    if row.top_stack:
        verb = "waits at" if row.top_stack_metric == "wait" else "held at"
        shown = " < ".join(format_frame(f) for f in row.top_stack[:stack_depth])
        more = " < ..." if len(row.top_stack) > stack_depth else ""
        details.append(f"{verb} {shown}{more}")
    if row.timeouts:
        details.append(f"{row.timeouts:,} acquires timed out")
    return details


def _shorten(text: str, width: int) -> str:
    """Keep the end of a long name: its variable and line are what tells locks apart."""
    return text if len(text) <= width else "..." + text[-(width - 3):]


def _clip(text: str, width: Optional[int]) -> str:
    return text if width is None or len(text) <= width else text[: max(0, width - 3)] + "..."


def format_json(report: Report, *, limit: int = 0, files: Sequence[str] = ()) -> str:
    rows = report.rows[:limit] if limit > 0 else report.rows
    return json.dumps({
        "by": report.by,
        "files": list(files),
        "rows": [r.as_dict() for r in rows],
        "long_waits": report.long_waits,
        "dropped_events": report.dropped_events,
    }, indent=2)


def format_csv(report: Report, *, limit: int = 0) -> str:
    """One line per row; the site and the stack as text (`function (file:line)`, leaf first)."""
    rows = report.rows[:limit] if limit > 0 else report.rows
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    fieldnames = list(ReportRow("").as_dict())
    writer.writerow(fieldnames)
    for row in rows:
        values = row.as_dict()
        values["site"] = f"{row.site.filename}:{row.site.line}" if row.site else ""
        values["top_stack"] = " < ".join(f"{f.name} ({f.filename}:{f.line})" for f in row.top_stack)
        writer.writerow(["" if values[k] is None else values[k] for k in fieldnames])
    return out.getvalue()


def top_locks(snapshot: Snapshot, limit: int = 10) -> str:
    """The text table `lockprof report` prints for this snapshot's profile, `limit` rows."""
    return format_text(build_report([pprof.decode(pprof.encode(snapshot))]), limit=limit)
