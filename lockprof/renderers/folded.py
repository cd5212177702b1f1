"""The flame graph as folded stacks, Brendan Gregg's format: `root;...;leaf value` per line,
sorted, for flamegraph.pl, inferno and similar tools."""

from __future__ import annotations

from typing import Sequence

from lockprof.flamegraph import frame_label
from lockprof.profile import Snapshot
from lockprof.renderers.base import FlameGraphRenderer


class FoldedRenderer(FlameGraphRenderer):
    name = "folded"
    extensions = (".folded", ".txt")

    def render(self, profiles: Sequence[Snapshot]) -> str:
        lines = []
        for stack, value in self.folded(profiles).items():
            # ";" separates frames and a newline ends the line: neither may appear in a label.
            names = ";".join(frame_label(f).replace(";", ",").replace("\n", " ") for f in stack)
            lines.append(f"{names} {value}")
        return "".join(line + "\n" for line in sorted(lines))
