"""The report as text for people: an aligned table, each row's top stack under it, then the
longest waits; fitted to the terminal's width and coloured when it is one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

from lockprof._term import Style
from lockprof.profile import Snapshot
from lockprof.renderers.base import ReportRenderer
from lockprof.report import ReportRow, format_duration, format_frame, short_path


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


_SPAN_COLUMNS = ("contended", "total wait", "avg wait")
_SECONDARY = 4  # drop_order of the last column dropped before names are shortened
_MIN_NAME = 24
_SHORTEST_NAME = 8


class TextRenderer(ReportRenderer):
    """The table; `long_waits` of the longest waits after it, `stack_depth` frames per stack."""

    name = "text"

    def __init__(self, *, long_waits: int = 5, stack_depth: int = 4, **options: Any) -> None:
        super().__init__(**options)
        self.long_waits, self.stack_depth = long_waits, stack_depth

    def render(self, profiles: Sequence[Snapshot]) -> str:
        report = self.report(profiles)
        if not report.rows:
            return "lockprof: no lock activity was captured"
        style, width, rows = Style(self.color), self.width, self.shown(report)
        columns = [c for c in _COLUMNS_BY_LOCK if report.by == "lock" or c.title not in ("kind", "max wait")]
        if report.by == "span":  # a span row holds captured waits only
            columns = [c for c in columns if c.title in _SPAN_COLUMNS]
        if not any(row.condition_wait_ns for row in report.rows):  # only Conditions have any
            columns = [c for c in columns if c.title != "condition wait"]
        name_width = max(len(report.by), *(len(r.name) for r in rows))
        columns, name_width = _fit(columns, rows, name_width, width)
        cell_widths = _widths(columns, rows)
        header = report.by.ljust(name_width) + "".join(
            "  " + c.title.rjust(w) for c, w in zip(columns, cell_widths))
        lines = [style(header, "bold", "underline")]
        for row in rows:
            name = _shorten(row.name, name_width).ljust(name_width)
            cells = "".join("  " + c.cell(row).rjust(w) for c, w in zip(columns, cell_widths))
            lines.append(style(name, "bold") + cells)
            for detail in _details(row, self.stack_depth):
                lines.append(style(_clip("  " + detail, width), "dim"))
        notes = []
        if any(not r.exact and (r.contended or r.wait_ns) for r in rows):
            notes.append("~ estimated from sampled stacks (the profile has no exact totals for it)")
        if report.long_waits and self.long_waits > 0:
            # Each with its innermost frame only: the whole stack is in the JSON form.
            shown = [w.split(" <- ")[0] + (" <- ..." if " <- " in w else "")
                     for w in (wait.describe() for wait in report.long_waits[: self.long_waits])]
            notes += ["", style("longest waits", "bold")] + ["  " + w for w in shown]
        if report.dropped_events:
            notes.append(f"({report.dropped_events:,} captured events did not fit the event table)")
        return "\n".join(lines + [_clip(note, width) for note in notes])


def _widths(columns: Sequence[_Column], rows: Sequence[ReportRow]) -> List[int]:
    return [max(len(c.title), *(len(c.cell(r)) for r in rows)) for c in columns]


def _fit(columns: List[_Column], rows: Sequence[ReportRow], name_width: int,
         width: Optional[int]) -> Tuple[List[_Column], int]:
    """The columns kept and the width of the names, for the table to fit `width`.

    The secondary columns go first, then names are shortened (down to a readable minimum),
    then the other columns go, then names get shorter still; the name and the total wait
    always stay."""
    columns = list(columns)
    while width is not None:
        excess = name_width + sum(w + 2 for w in _widths(columns, rows)) - width
        if excess <= 0:
            break
        droppable = sorted((c for c in columns if c.drop_order), key=lambda c: c.drop_order)
        if droppable and (droppable[0].drop_order <= _SECONDARY or name_width <= _MIN_NAME):
            columns.remove(droppable[0])
        elif name_width > _MIN_NAME:
            name_width = max(_MIN_NAME, name_width - excess)
        elif name_width > _SHORTEST_NAME:
            name_width = max(_SHORTEST_NAME, name_width - excess)
        else:
            break
    return columns, name_width


def _details(row: ReportRow, stack_depth: int) -> List[str]:
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


def top_locks(snapshot: Snapshot, limit: int = 10) -> str:
    """The text table `lockprof report` prints for this snapshot's profile, `limit` rows."""
    return TextRenderer(limit=limit).render([snapshot])
