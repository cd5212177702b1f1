"""The report as CSV for spreadsheets: one line per row, the columns of the JSON form, with the
site and the stack as text (`function (file:line)`, leaf first)."""

from __future__ import annotations

import csv
import io
from typing import Sequence

from lockprof.profile import Snapshot
from lockprof.renderers.base import ReportRenderer
from lockprof.report import ReportRow


class CsvRenderer(ReportRenderer):
    name = "csv"

    def render(self, profiles: Sequence[Snapshot]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        fieldnames = list(ReportRow("").as_dict())
        writer.writerow(fieldnames)
        for row in self.shown(self.report(profiles)):
            values = row.as_dict()
            values["site"] = f"{row.site.filename}:{row.site.line}" if row.site else ""
            values["top_stack"] = " < ".join(f"{f.name} ({f.filename}:{f.line})" for f in row.top_stack)
            writer.writerow(["" if values[k] is None else values[k] for k in fieldnames])
        return out.getvalue()
