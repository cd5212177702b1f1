"""The flame graph as a speedscope file (speedscope.app): one sampled profile per metric, the
chosen one shown first."""

from __future__ import annotations

import json
from typing import Dict, List, Sequence

from lockprof._version import __version__
from lockprof.flamegraph import frame_label
from lockprof.profile import Frame, Snapshot
from lockprof.renderers.base import FlameGraphRenderer

_SPEEDSCOPE_UNITS = {"nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"}


class SpeedscopeRenderer(FlameGraphRenderer):
    name = "speedscope"
    extensions = (".json",)

    def render(self, profiles: Sequence[Snapshot]) -> str:
        frame_index: Dict[Frame, int] = {}
        shared: List[Dict[str, object]] = []
        out_profiles = []
        metrics = self.metrics(profiles)
        for metric in metrics:
            folded = self.folded(profiles, metric)
            samples, weights = [], []
            for stack, value in sorted(folded.items(), key=lambda item: [frame_label(f) for f in item[0]]):
                indices = []
                for frame in stack:
                    if frame not in frame_index:
                        frame_index[frame] = len(shared)
                        entry: Dict[str, object] = {"name": frame.name}
                        if frame.filename:
                            entry.update(file=frame.filename, line=frame.line)
                        shared.append(entry)
                    indices.append(frame_index[frame])
                samples.append(indices)
                weights.append(value)
            out_profiles.append({
                "type": "sampled",
                "name": f"lockprof {metric.title}",
                "unit": metric.unit if metric.unit in _SPEEDSCOPE_UNITS else "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            })
        return json.dumps({
            "$schema": "https://www.speedscope.app/file-format-schema.json",
            "shared": {"frames": shared},
            "profiles": out_profiles,
            "name": self.title,
            "activeProfileIndex": metrics.index(self.metric),
            "exporter": f"lockprof {__version__}",
        })
