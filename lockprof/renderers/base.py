"""What every output format of `lockprof report` and `lockprof flamegraph` is: a Renderer whose
render() turns the profiles read into the text written. A new format is a new subclass in a
file of its own, listed in lockprof.renderers.RENDERERS."""

from __future__ import annotations

from typing import ClassVar, Dict, List, Optional, Sequence, TextIO, Tuple

from lockprof.flamegraph import Metric, Stack, available_metrics, folded_stacks
from lockprof.profile import Snapshot
from lockprof.report import Report, ReportRow, build_report


class Renderer:
    """One output format, found by its name (the --format value)."""

    name: ClassVar[str]

    def render(self, profiles: Sequence[Snapshot]) -> str:
        """The output for the profiles, merged (several files are read as one)."""
        raise NotImplementedError


class ReportRenderer(Renderer):
    """A form of the report: the top locks (or threads, or tasks) of the profiles.

    The options are the command's; each form uses those that apply to it: width (None: no
    limit) and color for text on a terminal, files for the list of files read."""

    def __init__(self, *, by: str = "lock", sort: str = "wait", limit: int = 0,
                 files: Sequence[str] = (), width: Optional[int] = None, color: bool = False) -> None:
        self.by, self.sort, self.limit = by, sort, limit
        self.files, self.width, self.color = list(files), width, color

    def report(self, profiles: Sequence[Snapshot]) -> Report:
        return build_report(profiles, by=self.by, sort=self.sort)

    def shown(self, report: Report) -> List[ReportRow]:
        """The rows within the limit (0: all)."""
        return report.rows[: self.limit] if self.limit > 0 else report.rows


class FlameGraphRenderer(Renderer):
    """A form of the flame graph of one metric of the profiles."""

    # The file name endings that choose this form when --format is not given.
    extensions: ClassVar[Tuple[str, ...]] = ()

    def __init__(self, metric: Metric, title: str = "lockprof", progress_to: Optional[TextIO] = None) -> None:
        self.metric, self.title, self.progress_to = metric, title, progress_to

    def folded(self, profiles: Sequence[Snapshot], metric: Optional[Metric] = None) -> Dict[Stack, int]:
        """The metric's (by default the chosen one's) value per stack, counting progress."""
        return folded_stacks(profiles, metric or self.metric, self.progress_to)

    def metrics(self, profiles: Sequence[Snapshot]) -> List[Metric]:
        """What a form holding every metric shows: the available ones and the chosen one."""
        metrics = available_metrics(profiles)
        return metrics if self.metric in metrics else metrics + [self.metric]


def encode_text(text: str) -> bytes:
    """The bytes written for text: UTF-8, with a file name's undecodable bytes given back."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")
