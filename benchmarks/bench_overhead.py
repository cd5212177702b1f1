#!/usr/bin/env python3
"""Per-operation overhead of lockprof's profiled locks against the native locks.

Run it with the interpreter whose installed lockprof you want to measure, from a directory
outside the source tree (so the installed, compiled package is imported):

    cd /tmp && /path/to/venv/bin/python /path/to/lockprof/benchmarks/bench_overhead.py

Method (docs/overhead.md has the full description and the published results):

* every timed statement is unrolled 10x (`l.acquire(); l.release()` ten times, or ten
  `with l: pass` blocks, or ten `Lock()` calls), so timeit's loop costs a tenth per operation;
* every statement runs from a stack of exactly --depth Python frames (10 by default), so a
  captured operation walks a known stack and the native baseline runs at the same depth;
* the profiled locks come from running collectors: LockCollector(capture_pct=X).start(), then
  threading.Lock() / threading.RLock(); the collectors keep running while timed, and
  collector.snapshot() runs between rounds (outside the timed region) to drain the table;
* a round times every cell `--repeat` times, native and profiled cells of a group alternating;
  a cell's result is the median over the rounds of each round's minimum.

Only the standard library and lockprof are used. Exit status is 0 whatever the numbers are:
the targets check is informative.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import threading
import timeit

UNROLL = 10
# The name of the module the timed statements appear to come from (their globals' __name__);
# the "excluded" creation cells use a module the collector is told to exclude.
MODULE = "bench_overhead"
EXCLUDED_MODULE = "bench_overhead_excluded"

# Targets (informative): (description, cell keys, kind, limit).
#   kind "ratio": profiled median / native median <= limit
#   kind "plus_ns": profiled median - native median <= limit ns
TARGETS = [
    ("1% pair <= 1.10x native", ["Lock.pair.pct1", "RLock.pair.pct1"], "ratio", 1.10),
    ("1% with <= 1.00x native", ["Lock.with.pct1", "RLock.with.pct1"], "ratio", 1.00),
    ("after stop <= 1.05x native",
     ["Lock.pair.after_stop", "Lock.with.after_stop", "RLock.pair.after_stop", "RLock.with.after_stop"],
     "ratio", 1.05),
    ("100% pair at {depth} frames <= native + 250 ns", ["Lock.pair.pct100", "RLock.pair.pct100"],
     "plus_ns", 250.0),
]

IMPACT_RATES = (10_000, 100_000, 1_000_000, 10_000_000)

VARIANT_LABELS = {
    "native": "native",
    "pct0": "capture_pct=0",
    "pct1": "capture_pct=1 (default)",
    "pct100": "capture_pct=100",
    "after_stop": "made while profiling, used after stop()",
    "profiled": "while profiling (capture_pct=1)",
    "excluded": "while profiling, excluded module",
    "empty": "empty statement",
}


# ----------------------------------------------------------------------------- environment


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


# ----------------------------------------------------------------------------- stack depth


def frame_depth(frame) -> int:
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def _pad(n, fn, arg):
    if n:
        return _pad(n - 1, fn, arg)
    return fn(arg)


def timeit_at_depth(timer: timeit.Timer, number: int, depth: int) -> float:
    """timer.timeit(number), with the timed statement running in a frame at `depth` (the
    bottom frame of the thread counts 1), so a captured operation walks `depth` frames."""
    here = frame_depth(sys._getframe())
    # here -> _pad x (k + 1) -> Timer.timeit -> timeit's inner(): inner is at here + k + 3.
    k = depth - here - 3
    if k < 0:
        raise RuntimeError(f"the stack is already {here} frames deep; --depth must be >= {here + 3}")
    return _pad(k, timer.timeit, number)


# ----------------------------------------------------------------------------- cells


class Cell:
    """One timed statement: `key` is "<group>.<variant>"."""

    def __init__(self, group: str, variant: str, stmt: str, obj, module: str = MODULE, names=None) -> None:
        self.group = group
        self.variant = variant
        self.key = f"{group}.{variant}"
        # `obj` is bound to a local in timeit's setup, so the statement reads a fast local.
        namespace = {"__name__": module, "obj": obj}
        namespace.update(names or {})
        self.timer = timeit.Timer(stmt, setup="l = obj", globals=namespace)
        self.number = 1
        self.rounds = []  # per round: the minimum over the repeats, ns per operation

    def run(self, depth: int) -> float:
        """One timing: ns per operation."""
        return timeit_at_depth(self.timer, self.number, depth) / (self.number * UNROLL) * 1e9

    def calibrate(self, depth: int, target_s: float) -> None:
        number = 1
        while True:
            elapsed = timeit_at_depth(self.timer, number, depth)
            if elapsed >= target_s / 5 or number >= 10_000_000:
                break
            number *= 4 if elapsed < target_s / 50 else 2
        self.number = max(1, int(number * target_s / max(elapsed, 1e-9)))


def unrolled(stmt: str) -> str:
    return "\n".join([stmt] * UNROLL)


PAIR = unrolled("l.acquire(); l.release()")
WITH = unrolled("with l:\n    pass")
CREATE = unrolled("l()")
EMPTY = unrolled("pass")
# The fresh-frames group: each statement calls a chain of FRESH new Python frames whose
# innermost one makes the pair, as code does when a lock is used from a call stack that has not
# been captured before (on 3.11+ a capture then creates the frame objects of those frames).
FRESH = 8
FRESH_PAIR = unrolled("chain(l)")


def make_chain(frames: int):
    source = "def f1(l):\n    l.acquire(); l.release()\n"
    source += "".join(f"def f{i}(l):\n    f{i - 1}(l)\n" for i in range(2, frames + 1))
    namespace = {"__name__": MODULE}
    exec(compile(source, "<bench_overhead chain>", "exec"), namespace)
    return namespace[f"f{frames}"]


def build(args):
    """Start the collectors and make the locks and cells.

    Returns (cells, groups, running collectors, restore(), the capture_pct=100 collector).
    Several collectors run at once: each profiled lock only consults its own collector's
    recorder, so a lock made under capture_pct=X behaves as if that collector ran alone.
    """
    from lockprof import LockCollector

    native_lock_factory = threading.Lock
    native_rlock_factory = threading.RLock
    running = {}

    def restore():
        for collector in reversed(list(running.values())):  # newest first: each restores its own patch
            collector.stop()
        if threading.Lock is not native_lock_factory or threading.RLock is not native_rlock_factory:
            raise RuntimeError("threading.Lock / threading.RLock were not restored")

    def make_locks():
        return threading.Lock(), threading.RLock()

    try:
        # Order matters: threading.Lock is left patched by the last collector started
        # (capture_pct=1, the default), which the creation cells use.
        after = LockCollector(capture_pct=1.0, max_frames=args.max_frames)
        after.start()
        after_locks = make_locks()
        after.stop()
        locks = {}
        for pct in (0.0, 100.0, 1.0):
            collector = LockCollector(capture_pct=pct, max_frames=args.max_frames,
                                      exclude_modules=[EXCLUDED_MODULE])
            collector.start()
            running[pct] = collector
            locks[pct] = make_locks()
        profiled_lock_factory = threading.Lock
        profiled_rlock_factory = threading.RLock
        for made in list(locks.values()) + [after_locks]:
            names = tuple(type(x).__name__ for x in made)
            if names != ("ProfiledLock", "ProfiledRLock"):
                raise RuntimeError(f"expected profiled locks, got {names}: is lockprof installed and compiled?")
    except BaseException:
        restore()
        raise

    native = (native_lock_factory(), native_rlock_factory())
    cells = []
    groups = []
    for index, kind in enumerate(("Lock", "RLock")):
        for form, stmt in (("pair", PAIR), ("with", WITH)):
            group = f"{kind}.{form}"
            members = [
                Cell(group, "native", stmt, native[index]),
                Cell(group, "pct0", stmt, locks[0.0][index]),
                Cell(group, "pct1", stmt, locks[1.0][index]),
                Cell(group, "pct100", stmt, locks[100.0][index]),
                Cell(group, "after_stop", stmt, after_locks[index]),
            ]
            groups.append(members)
            cells += members
    chain = {"chain": make_chain(FRESH)}
    group = f"Lock.fresh{FRESH}"
    members = [
        Cell(group, "native", FRESH_PAIR, native[0], names=chain),
        Cell(group, "pct1", FRESH_PAIR, locks[1.0][0], names=chain),
        Cell(group, "pct100", FRESH_PAIR, locks[100.0][0], names=chain),
    ]
    groups.append(members)
    cells += members
    for kind, native_factory, profiled_factory in (
        ("Lock", native_lock_factory, profiled_lock_factory),
        ("RLock", native_rlock_factory, profiled_rlock_factory),
    ):
        group = f"create.{kind}"
        members = [
            Cell(group, "native", CREATE, native_factory),
            Cell(group, "profiled", CREATE, profiled_factory),
            Cell(group, "excluded", CREATE, profiled_factory, module=EXCLUDED_MODULE),
        ]
        groups.append(members)
        cells += members
    loop = Cell("loop", "empty", EMPTY, None)
    groups.append([loop])
    cells.append(loop)

    return cells, groups, list(running.values()), restore, running[100.0]


def check_depth(cell: Cell, collector, depth: int) -> int:
    """Run one captured statement and return the stack depth the profiler recorded."""
    collector.snapshot()
    saved = cell.number
    cell.number = 1
    cell.run(depth)
    cell.number = saved
    snapshot = collector.snapshot()
    depths = set()
    for sample in snapshot.samples:
        frames = sample.frames
        omitted = 0
        if frames and frames[-1].name.startswith("<") and frames[-1].name.endswith("frames omitted>"):
            omitted = int(frames[-1].name[1:].split()[0])
            frames = frames[:-1]
        depths.add(len(frames) + omitted)
    return max(depths) if depths else -1


# ----------------------------------------------------------------------------- measurement


def measure(args) -> dict:
    cells, groups, collectors, restore, c100 = build(args)
    try:
        by_key = {cell.key: cell for cell in cells}
        captured_depth = check_depth(by_key["Lock.pair.pct100"], c100, args.depth)
        # Warm up (specialisation, caches) and calibrate each cell's loop count.
        for cell in cells:
            cell.run(args.depth)
            cell.calibrate(args.depth, args.target_ms / 1000.0)
        for collector in collectors:
            collector.snapshot()
        gc.collect()
        for r in range(args.rounds):
            # Rotate the order of the groups and, inside each group, of its cells, so no cell is
            # always first or always right after the same neighbour.
            for g in range(len(groups)):
                group = groups[(g + r) % len(groups)]
                shift = r % len(group)
                order = group[shift:] + group[:shift]
                best = {cell.key: float("inf") for cell in group}
                for _ in range(args.repeat):
                    for cell in order:
                        best[cell.key] = min(best[cell.key], cell.run(args.depth))
                for cell in group:
                    cell.rounds.append(best[cell.key])
            for collector in collectors:  # drain the tables, outside the timed region
                collector.snapshot()
    finally:
        restore()

    results = {}
    for group in groups:
        native = group[0]
        native_median = statistics.median(native.rounds)
        for cell in group:
            median = statistics.median(cell.rounds)
            q = _quartiles(cell.rounds)
            results[cell.key] = {
                "group": cell.group,
                "variant": cell.variant,
                "ns": median,
                "q1": q[0],
                "q3": q[1],
                "min": min(cell.rounds),
                "rounds_ns": cell.rounds,
                "number": cell.number,
                "overhead_ns": median - native_median,
                "ratio": median / native_median,
            }
    return {"cells": results, "captured_depth": captured_depth}


def _quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def evaluate_targets(cells: dict, depth: int) -> list:
    checks = []
    for description, keys, kind, limit in TARGETS:
        for key in keys:
            cell = cells[key]
            if kind == "ratio":
                value = cell["ratio"]
                ok = value <= limit
                shown = f"{value:.3f}x (limit {limit:.2f}x)"
            else:
                value = cell["overhead_ns"]
                ok = value <= limit
                shown = f"+{value:.1f} ns (limit +{limit:.0f} ns)"
            checks.append({
                "target": description.format(depth=depth),
                "cell": key,
                "value": value,
                "limit": limit,
                "kind": kind,
                "pass": ok,
                "text": shown,
            })
    return checks


def impact(cells: dict) -> list:
    rows = []
    pair = cells["Lock.pair.pct1"]["overhead_ns"]
    with_ = cells["Lock.with.pct1"]["overhead_ns"]
    full = cells["Lock.pair.pct100"]["overhead_ns"]
    for rate in IMPACT_RATES:
        rows.append({
            "ops_per_sec": rate,
            "pair_pct1_ms_per_sec": rate * pair / 1e6,
            "with_pct1_ms_per_sec": rate * with_ / 1e6,
            "pair_pct100_ms_per_sec": rate * full / 1e6,
        })
    return rows


# ----------------------------------------------------------------------------- output


def header(args) -> dict:
    import lockprof
    from lockprof import _lock

    return {
        "python": sys.version.replace("\n", " "),
        "python_version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "load_average_at_start": load_average(),
        "lockprof_version": lockprof.__version__,
        "lockprof_extension": _lock.__file__,
        "rounds": args.rounds,
        "repeat": args.repeat,
        "target_ms": args.target_ms,
        "depth": args.depth,
        "max_frames": args.max_frames,
        "unroll": UNROLL,
        "quick": args.quick,
    }


def print_report(meta: dict, result: dict, checks: list, impact_rows: list) -> None:
    cells = result["cells"]
    out = print
    out("lockprof lock overhead benchmark")
    out(f"  Python          {meta['python']}")
    out(f"  implementation  {meta['implementation']}")
    out(f"  CPU             {meta['cpu']} ({meta['cpus']} logical CPUs)")
    out(f"  date            {meta['date']}   load average at start: {meta['load_average_at_start']}")
    out(f"  lockprof        {meta['lockprof_version']} from {os.path.dirname(meta['lockprof_extension'])}")
    out(f"  method          timeit, statement unrolled {UNROLL}x, {meta['rounds']} interleaved rounds x "
        f"{meta['repeat']} repeats of ~{meta['target_ms']:g} ms;")
    out(f"                  median over rounds of each round's minimum; every statement runs at a stack "
        f"depth of {meta['depth']} frames")
    out(f"                  (a captured operation recorded {result['captured_depth']} frames; "
        f"collectors use max_frames={meta['max_frames']})")
    loop = cells["loop.empty"]["ns"]
    out(f"  loop overhead   {loop:.1f} ns per operation (timeit loop / {UNROLL}; included in every "
        f"figure, not subtracted)")
    if meta["quick"]:
        out("  QUICK RUN: a smoke test, the numbers are not meaningful")
    out("")
    width = 44
    out(f"{'cell':<{width}} {'ns/op':>9} {'[q1 - q3]':>17} {'overhead':>11} {'ratio':>7}")
    titles = {
        "pair": "acquire(); release()   (ns per pair)",
        "with": "with lock: pass        (ns per block)",
    }
    for kind in ("Lock", "RLock"):
        for form in ("pair", "with"):
            out(f"{kind} {titles[form]}")
            for variant in ("native", "pct0", "pct1", "pct100", "after_stop"):
                _row(out, width, cells[f"{kind}.{form}.{variant}"], variant)
    out(f"Lock through {FRESH} new frames: chain(l) -> ... -> l.acquire(); l.release()")
    out(f"  (ns per call, the call included; the lock is called at depth {meta['depth'] + FRESH}, "
        f"the top {FRESH} frames new at every call)")
    for variant in ("native", "pct1", "pct100"):
        _row(out, width, cells[f"Lock.fresh{FRESH}.{variant}"], variant)
    for kind in ("Lock", "RLock"):
        out(f"threading.{kind}()  creation (ns per lock, includes its deallocation)")
        for variant in ("native", "profiled", "excluded"):
            _row(out, width, cells[f"create.{kind}.{variant}"], variant)
    out("")
    out("targets (informative; the exit status is always 0)")
    for check in checks:
        verdict = "PASS" if check["pass"] else "MISS"
        out(f"  {verdict}  {check['target']:<44} {check['cell']:<22} {check['text']}")
    out("")
    out("impact: CPU time spent on profiling, from the measured overhead per operation")
    pair = cells["Lock.pair.pct1"]["overhead_ns"]
    with_ = cells["Lock.with.pct1"]["overhead_ns"]
    full = cells["Lock.pair.pct100"]["overhead_ns"]
    out(f"  (Lock, capture_pct=1: {pair:+.1f} ns per pair, {with_:+.1f} ns per with-block; "
        f"capture_pct=100: {full:+.1f} ns per pair;")
    out("   a negative figure means the profiled lock is faster than the native one)")
    out(f"  {'lock ops/sec':>14} {'1% pair ms/sec':>16} {'1% with ms/sec':>16} {'100% pair ms/sec':>18}")
    for row in impact_rows:
        out(f"  {row['ops_per_sec']:>14,} {row['pair_pct1_ms_per_sec']:>16.2f} "
            f"{row['with_pct1_ms_per_sec']:>16.2f} {row['pair_pct100_ms_per_sec']:>18.1f}")


def _row(out, width, cell, variant):
    label = "  " + VARIANT_LABELS[variant]
    spread = f"[{cell['q1']:.1f} - {cell['q3']:.1f}]"
    if variant == "native":
        out(f"{label:<{width}} {cell['ns']:>9.1f} {spread:>17}")
    else:
        out(f"{label:<{width}} {cell['ns']:>9.1f} {spread:>17} {cell['overhead_ns']:>+8.1f} ns "
            f"{cell['ratio']:>6.3f}x")


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run (well under 10 s; CI uses it): few rounds, short timings, numbers not meaningful")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 15; 3 with --quick)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timings per cell per round, the round keeps the minimum (default 7; 2 with --quick)")
    parser.add_argument("--target-ms", type=float, default=None,
                        help="duration of one timing in ms (default 5; 0.5 with --quick)")
    parser.add_argument("--depth", type=int, default=10,
                        help="stack depth, in Python frames, of every timed statement (default 10)")
    parser.add_argument("--max-frames", type=int, default=64,
                        help="max_frames of the profiling collectors (default 64, lockprof's default)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 15
    if args.repeat is None:
        args.repeat = 2 if args.quick else 7
    if args.target_ms is None:
        args.target_ms = 0.5 if args.quick else 5.0
    if args.rounds < 1 or args.repeat < 1 or args.target_ms <= 0:
        parser.error("--rounds, --repeat and --target-ms must be positive")

    meta = header(args)
    result = measure(args)
    checks = evaluate_targets(result["cells"], args.depth)
    impact_rows = impact(result["cells"])
    print_report(meta, result, checks, impact_rows)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "captured_depth": result["captured_depth"], "cells": result["cells"],
                       "targets": checks, "impact": impact_rows}, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
