"""The output formats: one Renderer subclass per format, in a file of its own (base.py says what
a renderer is). RENDERERS is the table the command line picks them from by name; the pprof
writer (pprof.py) is what the profiler writes its files with."""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Type

from lockprof.renderers.base import FlameGraphRenderer, Renderer, ReportRenderer
from lockprof.renderers.csv_rows import CsvRenderer
from lockprof.renderers.folded import FoldedRenderer
from lockprof.renderers.html_page import HtmlRenderer
from lockprof.renderers.json_rows import JsonRenderer
from lockprof.renderers.speedscope import SpeedscopeRenderer
from lockprof.renderers.svg import SvgRenderer
from lockprof.renderers.text import TextRenderer

RENDERERS: Dict[str, Type[Renderer]] = {
    renderer.name: renderer
    for renderer in (TextRenderer, JsonRenderer, CsvRenderer,  # lockprof report
                     HtmlRenderer, SvgRenderer, SpeedscopeRenderer, FoldedRenderer)  # flamegraph
}


def formats(kind: Type[Renderer]) -> List[str]:
    """The names of the formats of one kind (ReportRenderer, FlameGraphRenderer), first the
    default."""
    return [name for name, renderer in RENDERERS.items() if issubclass(renderer, kind)]


def flame_graph_format_of(path: str) -> Optional[str]:
    """The flame graph format a file name's ending selects, if any."""
    extension = os.path.splitext(path)[1].lower()
    for name, renderer in RENDERERS.items():
        if issubclass(renderer, FlameGraphRenderer) and extension in renderer.extensions:
            return name
    return None


__all__ = ["RENDERERS", "FlameGraphRenderer", "Renderer", "ReportRenderer", "flame_graph_format_of", "formats"]
