#!/usr/bin/env python3
"""What trace correlation costs: lock operations with no span, an OpenTelemetry span or a
ddtrace span active in the thread, while a LockCollector runs.

Two measurements, each row with no span, an OpenTelemetry SDK span and a ddtrace span active:

* a captured pair: `with lock: pass` on an uncontended lock at capture_pct=100 (every pair
  captured), timed (ns per op; rows alternate in every round; median over the rounds of each
  round's minimum). No span is read here: spans label contended waits only;
* a captured contended wait: `lock.acquire(True, 1e-9)` on a lock this thread holds (it tries,
  waits 1 ns, times out), every one captured (wait_sample_interval=1 ns, no capture budget):
  the span is read for each. Its wait is kernel timer work that varies by microseconds, so it
  is counted in instructions by valgrind's callgrind (as benchmarks/instructions.py does: loops
  of N and of 0 operations, the difference over N), and timed too when valgrind is missing.

Run it from outside the source tree with an interpreter that has lockprof, ddtrace and
opentelemetry-sdk:  cd /tmp && python /path/to/benchmarks/bench_span_capture.py [--quick] [--json PATH]
"""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import timeit

from benchcli import parse_args, write_json
from instructions import MARKER, totals

UNROLL = 10
SPANS = ("none", "opentelemetry", "ddtrace")
WAIT = "l.acquire(True, 1e-9)"


def span_factories():
    """A context manager per row that makes its span active in this thread."""
    import ddtrace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("bench_span_capture")
    return {"none": contextlib.nullcontext, "opentelemetry": lambda: tracer.start_as_current_span("request"),
            "ddtrace": lambda: ddtrace.tracer.trace("request")}


def contended_collector():
    """A running LockCollector that captures every contended wait, and a lock this thread holds."""
    from lockprof import LockCollector

    collector = LockCollector(wait_sample_interval=1)
    collector._recorder.capture_budget = 10**9  # no budget: every wait is captured
    collector.start()
    lock = threading.Lock()
    lock.acquire()
    return collector, lock


def timed(statement: str, lock, number: int, repeat: int) -> float:
    timer = timeit.Timer("\n".join([statement] * UNROLL), globals={"l": lock})
    return min(timer.timeit(number) for _ in range(repeat)) / (number * UNROLL) * 1e9


def time_rows(make_lock, statement: str, rounds: int, repeat: int, number: int, drain) -> dict:
    spans = span_factories()
    lock = make_lock()
    per_round = {name: [] for name in SPANS}
    for _ in range(rounds):
        for name in SPANS:
            with spans[name]():
                per_round[name].append(timed(statement, lock, number, repeat))
        drain()
    base = statistics.median(per_round["none"])
    return {name: {"ns": statistics.median(v), "extra_ns": statistics.median(v) - base} for name, v in per_round.items()}


def captured_pairs(rounds: int, repeat: int, number: int) -> dict:
    from lockprof import LockCollector

    collector = LockCollector(capture_pct=100.0)
    collector.start()
    try:
        return time_rows(threading.Lock, "with l:\n    pass", rounds, repeat, number, collector.snapshot)
    finally:
        collector.stop()


def child(operations: int) -> None:
    """The program callgrind counts: a loop of operations waits per row, each row's count
    ended by os.getppid() (--dump-before)."""
    spans = span_factories()
    collector, lock = contended_collector()
    for name in SPANS:
        with spans[name]():
            timeit.Timer("\n".join([WAIT] * UNROLL), globals={"l": lock}).timeit(100)  # warm up
            collector.snapshot()
            os.getppid()
            timeit.Timer("\n".join([WAIT] * UNROLL), globals={"l": lock}).timeit(operations // UNROLL)
            os.getppid()
    collector.stop()


def count(operations: int, work: str) -> list:
    out = os.path.join(work, f"callgrind.{operations}")
    program = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
               f"import bench_span_capture; bench_span_capture.child({operations})")
    env = dict(os.environ, PYTHONHASHSEED="0", DD_TRACE_ENABLED="false")
    done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                           f"--dump-before={MARKER}", sys.executable, "-c", program],
                          env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"callgrind run failed:\n{done.stdout[-3000:]}")
    parts = sorted(glob.glob(out + ".*"), key=lambda path: int(path.rsplit(".", 1)[1]))
    # Dumps alternate: what came before a row's loop (start-up, warm-up, drain), then the loop.
    loops = [totals(path) for path in parts[1::2][:len(SPANS)]]
    if len(loops) != len(SPANS):
        raise RuntimeError(f"callgrind wrote {len(parts)} dumps, expected {2 * len(SPANS) + 1}: "
                           f"is {MARKER}() in this Python's C library, and called only by os.getppid()?")
    return loops


def contended_waits(rounds: int, repeat: int, number: int, operations: int) -> dict:
    if shutil.which("valgrind") is None:
        collector, lock = contended_collector()
        try:
            return time_rows(lambda: lock, WAIT, rounds, repeat, number, collector.snapshot)
        finally:
            collector.stop()
    work = tempfile.mkdtemp(prefix="bench-span-capture-")
    try:
        full, empty = count(operations, work), count(0, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_op = {name: (n - e) / operations for name, n, e in zip(SPANS, full, empty)}
    return {name: {"instructions": per_op[name], "extra_instructions": per_op[name] - per_op["none"]}
            for name in SPANS}


def main(argv=None) -> int:
    args = parse_args(__doc__, 9, argv)
    repeat, number, operations = (2, 20, 100) if args.quick else (5, 2000, 2000)
    results = {"captured_pair": captured_pairs(args.rounds, repeat, number),
               "captured_contended_wait": contended_waits(args.rounds, repeat, number // 10, operations)}
    print(f"Trace correlation cost: Python {platform.python_version()}, {platform.machine()}, {args.rounds} rounds")
    print("  captured pair (with lock: pass, capture_pct=100), ns per op:")
    for name, cell in results["captured_pair"].items():
        print(f"    {name:<14} {cell['ns']:>9.1f} {cell['extra_ns']:>+9.1f}")
    waits = results["captured_contended_wait"]
    unit = "instructions" if "instructions" in waits["none"] else "ns"
    print(f"  captured contended wait (acquire(True, 1e-9) on a held lock), {unit} per op:")
    for name, cell in waits.items():
        value, extra = (cell["instructions"], cell["extra_instructions"]) if unit == "instructions" \
            else (cell["ns"], cell["extra_ns"])
        print(f"    {name:<14} {value:>9.1f} {extra:>+9.1f}")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
