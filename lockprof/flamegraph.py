"""Flame graphs of lock profiles: what every form of them is drawn from.

folded_stacks() gives the summed value of one metric (wait, hold, blocking hold, condition
wait, or another tool's sample type) per stack, root first, with the lock as the last frame;
tree() nests them. The forms (lockprof.renderers: the interactive HTML page, SVG, speedscope,
folded stacks) draw these with the labels and colours here.
"""

from __future__ import annotations

import colorsys
import html
import re
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, TextIO, Tuple, Union

from lockprof._term import Progress
from lockprof.profile import Frame, LockSample, LockTotals, Snapshot
from lockprof.report import format_duration, program_frames, short_path

Stack = Tuple[Frame, ...]  # root first


@dataclass(frozen=True)
class Metric:
    """What a flame graph measures: a sample type of the profiles."""

    id: str  # "wait", "hold", "blocking-hold", or another tool's sample type name
    sample_type: str
    unit: str
    title: str


# lockprof's metrics, by the id the command line and the page use.
LOCK_METRICS = (
    Metric("wait", "lock-acquire-wait", "nanoseconds", "wait time"),
    Metric("hold", "lock-release-hold", "nanoseconds", "hold time"),
    Metric("blocking-hold", "lock-blocking-hold", "nanoseconds", "blocking hold time"),
    Metric("condition-wait", "lock-condition-wait", "nanoseconds", "condition wait time"),
)


def available_metrics(profiles: Sequence[Snapshot]) -> List[Metric]:
    """lockprof's metrics that the profiles have; for other tools' profiles, every sample type."""
    types = {t.type: t.unit for p in profiles for t in p.sample_types}
    ours = [m for m in LOCK_METRICS if m.sample_type in types]
    if ours:
        return ours
    return [Metric(name, name, unit, name) for name, unit in types.items()]


def choose_metric(profiles: Sequence[Snapshot], wanted: Optional[str]) -> Metric:
    """The metric named `wanted` (an id or a sample type), else the first available one;
    ValueError when the profiles have no such sample type."""
    metrics = available_metrics(profiles)
    if not metrics:
        raise ValueError("the profiles have no sample types")
    if wanted is None:
        return metrics[0]
    for metric in metrics:
        if wanted in (metric.id, metric.sample_type):
            return metric
    types = {t.type: t.unit for p in profiles for t in p.sample_types}
    if wanted in types:  # a sample type other than the three lockprof metrics
        return Metric(wanted, wanted, types[wanted], wanted)
    raise ValueError(f"the profiles have no {wanted!r} values; choose from "
                     + ", ".join(m.id for m in metrics))


# ---------------------------------------------------------------------------------------------
# The one builder


def folded_stacks(profiles: Sequence[Snapshot], metric: Metric,
                  progress_to: Optional[TextIO] = None) -> Dict[Stack, int]:
    """The metric's value summed per stack, root first; a lock sample's last frame is its lock.
    The frames `lockprof run` put under the program are left out (report.program_frames); a
    lock's exact totals are drawn at its creation site."""
    folded: Dict[Stack, int] = {}
    total = sum(len(p.samples) + len(p.lock_totals) for p in profiles)
    done = 0
    with Progress(progress_to, "building the flame graph: samples", total) as progress:
        for profile in profiles:
            records: List[Union[LockSample, LockTotals]] = [*profile.samples, *profile.lock_totals]
            for record in records:
                done += 1
                progress.update(done)
                value = record.value(metric.sample_type)
                if value <= 0:
                    continue
                frames = record.frames if isinstance(record, LockSample) else (record.site,)
                stack = tuple(reversed(program_frames(frames)))
                if record.lock_name:
                    stack += (lock_frame(record.lock_name),)
                folded[stack] = folded.get(stack, 0) + value
    return folded


def lock_frame(lock_name: str) -> Frame:
    """The frame that stands for the lock itself, on top of the stacks that used it."""
    return Frame(f"lock {lock_name}", "", 0)


def frame_label(frame: Frame) -> str:
    if not frame.filename:
        return frame.name
    return f"{frame.name} ({short_path(frame.filename)}:{frame.line})"


# ---------------------------------------------------------------------------------------------
# What the pictures share


@dataclass
class Node:
    frame: Optional[Frame]  # None for the root, "all"
    value: int = 0
    children: Dict[Frame, Node] = field(default_factory=dict)

    def sorted_children(self) -> List[Node]:
        """Alphabetical, as flame graphs order siblings (the x axis is not time)."""
        return sorted(self.children.values(), key=lambda n: frame_label(n.frame))  # type: ignore[arg-type]


def tree(folded: Dict[Stack, int]) -> Node:
    root = Node(None)
    for stack, value in folded.items():
        node = root
        node.value += value
        for frame in stack:
            node = node.children.setdefault(frame, Node(frame))
            node.value += value
    return root


def frame_color(frame: Frame) -> str:
    """A stable colour per function: warm hues for code, blue for the lock frames."""
    name = frame.name
    h = zlib.crc32(name.encode("utf-8", "surrogatepass"))
    shade, tint = (h & 0xFF) / 255, ((h >> 8) & 0xFF) / 255
    if frame.name.startswith("lock ") and not frame.filename:
        hue, lightness, saturation = 0.58 + 0.05 * shade, 0.62 + 0.1 * tint, 0.55
    else:
        hue, lightness, saturation = 0.0 + 0.14 * shade, 0.55 + 0.12 * tint, 0.85
    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    return f"rgb({round(r * 255)},{round(g * 255)},{round(b * 255)})"


def format_value(value: int, unit: str) -> str:
    return format_duration(value) if unit == "nanoseconds" else f"{value:,} {unit}".rstrip()


# Characters XML 1.0 cannot hold: profiles may carry control characters or lone surrogates.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Text escaped for XML and HTML, with what XML cannot hold replaced."""
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)
