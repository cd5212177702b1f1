"""The report as JSON for programs: every row with times in nanoseconds, full file names and
the whole stack, then the longest waits and the dropped events."""

from __future__ import annotations

import json
from typing import Sequence

from lockprof.profile import Snapshot
from lockprof.renderers.base import ReportRenderer


class JsonRenderer(ReportRenderer):
    name = "json"

    def render(self, profiles: Sequence[Snapshot]) -> str:
        report = self.report(profiles)
        return json.dumps({
            "by": report.by,
            "files": self.files,
            "rows": [row.as_dict() for row in self.shown(report)],
            "long_waits": [wait.describe() for wait in report.long_waits],
            "dropped_events": report.dropped_events,
        }, indent=2)
