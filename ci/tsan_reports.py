"""Read ThreadSanitizer's report files and judge them for lockprof (issue 18, ci/tsan.sh).

A report counts against lockprof when one of the stacks of the code involved (the racing
accesses, a free, a signal handler's call) has a frame in lockprof's code: a source file
lockprof/_*.c/.h/.pyx/.pxd/.pxi or a module lockprof/_*.so. The stacks that only give context
(where the memory was allocated, where a mutex or a thread was created) do not count: a race
inside CPython on an object lockprof allocated is CPython's. Reports with no frame of ours are
CPython's own (or a library's): counted, and summarised one line each.

    python ci/tsan_reports.py LOG_FILE...     # TSAN_OPTIONS=log_path=DIR/report writes DIR/report.PID

Exits 1 when a report is lockprof's or TSan itself failed (a crash it caught, a CHECK failure).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, List, Optional

SEPARATOR = "=================="
FRAME = re.compile(r"^\s+#\d+ (\S+) (.*)$")
OURS = re.compile(r"(?:^|[\s(/])lockprof/_\w+\.(?:c|h|pyx|pxd|pxi|so|cpython-[^\s)]*\.so)\b")
# Section headers whose stack says where something was made, not which code raced.
CONTEXT = re.compile(r"^\s+(?:Location is|Mutex |Thread T\d|Thread main|As if synchronized)")
# TSan's own failures, outside any report: a caught signal, an internal check.
FATAL = re.compile(r"ThreadSanitizer: (?:SEGV|BUS|FPE|ILL|ABRT|CHECK failed|nested bug)|"
                   r"ERROR: ThreadSanitizer|ThreadSanitizer:DEADLYSIGNAL")


@dataclass
class Report:
    text: str
    title: str  # "data race", "heap-use-after-free", ...
    summary: str  # TSan's SUMMARY line without its prefix
    ours: List[str] = field(default_factory=list)  # per involved stack: its first frame of ours

    @property
    def in_lockprof(self) -> bool:
        return bool(self.ours)


def demangle(name: str) -> str:
    """A Cython C name made readable: __pyx_f_8lockprof_9_recorder_8Recorder_record_release
    -> _recorder.Recorder.record_release. Other names are returned as they are."""
    match = re.match(r"__pyx_[a-z]+_(\d.*)$", name)
    if not match:
        return name
    rest, parts = match.group(1), []
    while True:
        length = re.match(r"\d+", rest)
        if not length:
            break
        start, end = len(length.group()), len(length.group()) + int(length.group())
        if end > len(rest) or rest[end:end + 1] not in ("", "_"):
            rest = rest[start:]  # not a length but a method's index: 13ProfiledLock_3acquire
            break
        parts.append(rest[start:end])
        rest = rest[end:].lstrip("_")
    if parts and parts[0] == "lockprof":
        parts = parts[1:]
    return ".".join(parts + ([rest] if rest else []))


def parse_report(text: str) -> Report:
    lines = text.splitlines()
    title = re.sub(r"^WARNING: ThreadSanitizer: | \(pid=\d+\)$", "", lines[0])
    summary = next((line.split("SUMMARY: ThreadSanitizer: ", 1)[1] for line in lines
                    if line.startswith("SUMMARY: ThreadSanitizer: ")), title)
    report = Report(text=text, title=title, summary=summary)
    counted = True  # the report's first stack comes right after its title
    first_of_ours: Optional[str] = None
    for line in lines[1:]:
        frame = FRAME.match(line)
        if frame is None:
            if line.strip():  # a section header: the stack of the previous one has ended
                if first_of_ours:
                    report.ours.append(first_of_ours)
                first_of_ours = None
                counted = CONTEXT.match(line) is None
            continue
        if counted and first_of_ours is None and OURS.search(frame.group(2)):
            first_of_ours = demangle(frame.group(1))
    if first_of_ours:
        report.ours.append(first_of_ours)
    return report


def split_reports(log: str) -> List[str]:
    """The text of each report in a log: from its WARNING line to its SUMMARY line."""
    reports, current = [], None
    for line in log.splitlines():
        if line.startswith("WARNING: ThreadSanitizer:"):
            current = [line]
        elif current is not None:
            current.append(line)
            if line.startswith("SUMMARY: ThreadSanitizer:"):
                reports.append("\n".join(current))
                current = None
    if current is not None:  # cut short: the process died while writing it
        reports.append("\n".join(current))
    return reports


def judge(logs: Iterable[str], out=print, shown: int = 20) -> int:
    """Print the verdict on the reports in these logs' texts; return the exit status."""
    reports: List[Report] = []
    fatal: List[str] = []
    for log in logs:
        reports += [parse_report(text) for text in split_reports(log)]
        fatal += [line for line in log.splitlines() if FATAL.search(line)]
    ours = [report for report in reports if report.in_lockprof]
    theirs = Counter(report.summary for report in reports if not report.in_lockprof)
    out(f"ThreadSanitizer: {len(ours)} reports in lockprof's code, "
        f"{sum(theirs.values())} outside it (CPython's own: ignored)")
    for summary, count in theirs.most_common():
        out(f"  ignored x{count}: {summary}")
    printed = set()
    for report in ours:
        key = (report.title, tuple(report.ours))
        if key in printed or len(printed) >= shown:
            continue
        printed.add(key)
        out(SEPARATOR)
        out(report.text)
    if ours:
        out(SEPARATOR)
        out(f"lockprof's reports by function ({len(printed)} distinct shown above):")
        by_function = Counter(f"{report.title}: {' / '.join(sorted(set(report.ours)))}" for report in ours)
        for what, count in by_function.most_common():
            out(f"  x{count:<4} {what}")
    for line in dict.fromkeys(fatal):
        out(f"TSan failure: {line.strip()}")
    return 1 if ours or fatal else 0


def main(argv: List[str]) -> int:
    logs = []
    for path in argv:
        with open(path, encoding="utf-8", errors="replace") as f:
            logs.append(f.read())
    return judge(logs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
