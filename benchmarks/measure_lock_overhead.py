#!/usr/bin/env python3
"""Per-operation overhead of profiled locks against the native locks, lockprof and (with
--compare ddtrace) Datadog's own lock collector, measured in one process run.

Run it with the interpreter whose installed lockprof you want to measure, from a directory
outside the source tree (so the installed, compiled package is imported):

    cd /tmp && /path/to/venv/bin/python /path/to/lockprof/benchmarks/measure_lock_overhead.py
    ... measure_lock_overhead.py --compare ddtrace     # needs benchmarks/requirements.txt

The rows are the seeds' table: native (baseline), capture_pct 0, 1 (the default) and 100, a lock
made while profiling and used after stop(), and a lock made after stop(); for Lock and RLock,
`acquire(); release()` and `with`. Method (docs/overhead.md has the full description):

* every timed statement is unrolled 10x (`l.acquire(); l.release()` ten times, or ten
  `with l: pass` blocks, or ten `Lock()` calls), so timeit's loop costs a tenth per operation;
* every statement runs from a stack of exactly --depth Python frames (10 by default), so a
  captured operation walks a known stack and the native baseline runs at the same depth;
* the profiled locks come from running collectors, made through threading.Lock() /
  threading.RLock() while the collector at that capture_pct runs; the collectors keep running
  while timed, and their data is drained between rounds (outside the timed region);
* a round times every cell `--repeat` times, the cells of a group (native first among them)
  alternating; a cell's result is the median over the rounds of each round's minimum, and its
  ratio is to the native cell of the same group in the same phase of the same run.

The profilers are measured one after the other in the same process (the collectors of two
profilers cannot both patch threading at once): lockprof's phase, then ddtrace's. Only the
standard library and lockprof are needed without --compare. Exit status is 0 whatever the
numbers are: the targets check is informative.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import timeit
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List

from benchutil import cpu_model, gil_state, load_average, rotated, write_json
from profilers import ddtrace_version

UNROLL = 10
# The name of the module the timed statements appear to come from (their globals' __name__);
# the "excluded" creation cells use a module the collector is told to exclude.
MODULE = "measure_lock_overhead"
EXCLUDED_MODULE = "measure_lock_overhead_excluded"

# The ddtrace release the comparison is made against (benchmarks/requirements.txt pins it).
DDTRACE_PIN = "4.16.0"
COMPARABLE = ("ddtrace",)

CAPTURE_VARIANTS = ("pct0", "pct1", "pct100")
CAPTURE_PCT = {"pct0": 0.0, "pct1": 1.0, "pct100": 100.0}
# The seeds' rows, in their order.
SEED_ROWS = ("native",) + CAPTURE_VARIANTS + ("after_stop", "made_after_stop")

# Targets (informative): (description, cell keys, kind, limit), checked on lockprof's cells.
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
# lockprof's overhead per operation must be at most this fraction of the compared profiler's,
# at the same capture_pct.
COMPARE_FACTOR = 10.0

IMPACT_RATES = (10_000, 100_000, 1_000_000, 10_000_000)

VARIANT_LABELS = {
    "native": "native",
    "pct0": "capture_pct=0",
    "pct1": "capture_pct=1 (default)",
    "pct100": "capture_pct=100",
    "after_stop": "made while profiling, used after stop()",
    "made_after_stop": "made after stop()",
    "native_stopped": "native (measured with the stopped locks)",
    "profiled": "while profiling (capture_pct=1)",
    "excluded": "while profiling, excluded module",
    "empty": "empty statement",
}


# ----------------------------------------------------------------------------- environment


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
        self.rounds: List[float] = []  # per round: the minimum over the repeats, ns per operation

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
FORMS = (("pair", PAIR), ("with", WITH))
KINDS = ("Lock", "RLock")
# The fresh-frames group: each statement calls a chain of FRESH new Python frames whose
# innermost one makes the pair, as code does when a lock is used from a call stack that has not
# been captured before (on 3.11+ a capture then creates the frame objects of those frames).
FRESH = 8
FRESH_PAIR = unrolled("chain(l)")


def make_chain(frames: int):
    source = "def f1(l):\n    l.acquire(); l.release()\n"
    source += "".join(f"def f{i}(l):\n    f{i - 1}(l)\n" for i in range(2, frames + 1))
    namespace = {"__name__": MODULE}
    exec(compile(source, "<measure_lock_overhead chain>", "exec"), namespace)
    return namespace[f"f{frames}"]


@dataclass
class Phase:
    """Cells timed together while a profiler is in one state (running, or stopped)."""

    profiler: str
    name: str
    groups: List[List[Cell]]  # the first cell of each group is its native baseline
    drain: Callable[[], None]  # between rounds, outside the timed region
    notes: Dict[str, Any] = field(default_factory=dict)


def lock_groups(native: Dict[str, Any], locks: Dict[str, Dict[str, Any]], native_variant: str = "native"):
    """One group per kind and form: the native lock, then each variant's lock of that kind."""
    groups = []
    for kind in KINDS:
        for form, stmt in FORMS:
            group = f"{kind}.{form}"
            members = [Cell(group, native_variant, stmt, native[kind])]
            members += [Cell(group, variant, stmt, made[kind]) for variant, made in locks.items()]
            groups.append(members)
    return groups


def made_by_threading() -> Dict[str, Any]:
    """A Lock and an RLock made through whatever threading holds now."""
    return {"Lock": threading.Lock(), "RLock": threading.RLock()}


def native_locks(factories: Dict[str, Callable[[], Any]]) -> Dict[str, Any]:
    return {kind: factories[kind]() for kind in KINDS}


def check_types(made: Dict[str, Any], expected: Callable[[str], str], what: str) -> None:
    for kind, lock in made.items():
        if type(lock).__name__ != expected(kind):
            raise RuntimeError(f"{what}: threading.{kind}() made a {type(lock).__name__}, "
                               f"expected a {expected(kind)}")


def lockprof_phases(args, native_factories) -> Iterator[Phase]:
    """lockprof's one phase. Several collectors run at once: each profiled lock only consults
    its own collector's recorder, so a lock made under capture_pct=X behaves as if that
    collector ran alone, and a lock of a stopped collector stays stopped."""
    from lockprof import LockCollector

    native_name = {kind: type(native_factories[kind]()).__name__ for kind in KINDS}
    running: Dict[float, Any] = {}

    def restore():
        for collector in reversed(list(running.values())):  # newest first: each restores its own patch
            collector.stop()
        if any(getattr(threading, kind) is not native_factories[kind] for kind in KINDS):
            raise RuntimeError("threading.Lock / threading.RLock were not restored")

    try:
        after = LockCollector(capture_pct=1.0, max_frames=args.max_frames)
        after.start()
        locks = {"after_stop": made_by_threading()}
        after.stop()
        locks["made_after_stop"] = made_by_threading()
        check_types(locks["made_after_stop"], native_name.get, "lockprof, after stop()")
        # Order matters: threading.Lock is left patched by the last collector started
        # (capture_pct=1, the default), which the creation cells use.
        for variant in ("pct0", "pct100", "pct1"):
            collector = LockCollector(capture_pct=CAPTURE_PCT[variant], max_frames=args.max_frames,
                                      exclude_modules=[EXCLUDED_MODULE])
            collector.start()
            running[variant] = collector
            locks[variant] = made_by_threading()
        for variant in CAPTURE_VARIANTS + ("after_stop",):
            check_types(locks[variant], lambda kind: f"Profiled{kind}",
                        f"lockprof {variant} (is lockprof installed and compiled?)")
        profiled_factories = {kind: getattr(threading, kind) for kind in KINDS}

        native = native_locks(native_factories)
        ordered = {variant: locks[variant] for variant in SEED_ROWS[1:]}
        groups = lock_groups(native, ordered)
        chain = {"chain": make_chain(FRESH)}
        group = f"Lock.fresh{FRESH}"
        groups.append([Cell(group, "native", FRESH_PAIR, native["Lock"], names=chain)]
                      + [Cell(group, variant, FRESH_PAIR, locks[variant]["Lock"], names=chain)
                         for variant in ("pct1", "pct100")])
        for kind in KINDS:
            group = f"create.{kind}"
            groups.append([
                Cell(group, "native", CREATE, native_factories[kind]),
                Cell(group, "profiled", CREATE, profiled_factories[kind]),
                Cell(group, "excluded", CREATE, profiled_factories[kind], module=EXCLUDED_MODULE),
            ])
        groups.append([Cell("loop", "empty", EMPTY, None)])

        def drain():
            for collector in running.values():
                collector.snapshot()

        depth_cell = next(cell for cell in groups[0] if cell.variant == "pct100")
        notes = {"captured_depth": captured_depth(depth_cell, running["pct100"], args.depth)}
        yield Phase("lockprof", "running", groups, drain, notes)
    finally:
        restore()


def captured_depth(cell: Cell, collector, depth: int) -> int:
    """Run one captured statement and return the stack depth the profiler recorded."""
    collector.snapshot()
    saved = cell.number
    cell.number = 1
    cell.run(depth)
    cell.number = saved
    depths = set()
    for sample in collector.snapshot().samples:
        frames = sample.frames
        omitted = 0
        if frames and frames[-1].name.startswith("<") and frames[-1].name.endswith("frames omitted>"):
            omitted = int(frames[-1].name[1:].split()[0])
            frames = frames[:-1]
        depths.add(len(frames) + omitted)
    return max(depths) if depths else -1


def ddtrace_phases(args, native_factories) -> Iterator[Phase]:
    """ddtrace's two phases, with its own Lock and RLock collectors and its profile writer
    (ddup) writing files to a temporary directory, never uploading.

    Its collectors cannot run side by side (the first one started keeps threading patched) and
    every lock it ever wrapped captures again whenever any of its collectors runs. So the
    capture_pct locks are made by collectors started one after the other, the last one (1%, the
    default) left running while they are timed; the "after stop" cells are timed in a second
    phase, once every collector is stopped, on the 1% locks."""
    from ddtrace.internal.datadog.profiling import ddup
    from ddtrace.profiling.collector import threading as dd_threading

    classes = {"Lock": dd_threading.ThreadingLockCollector, "RLock": dd_threading.ThreadingRLockCollector}
    native_name = {kind: type(native_factories[kind]()).__name__ for kind in KINDS}
    out_dir = tempfile.mkdtemp(prefix="measure-ddtrace-")
    running: List[Any] = []

    def stop_all():
        while running:
            running.pop().stop()

    try:
        ddup.config(service="measure_lock_overhead", max_nframes=args.max_frames,
                    output_filename=os.path.join(out_dir, "ddtrace"))
        ddup.start()
        locks: Dict[str, Dict[str, Any]] = {}
        for variant in ("pct0", "pct100", "pct1"):
            stop_all()
            for kind in KINDS:
                collector = classes[kind](capture_pct=CAPTURE_PCT[variant])
                collector.start()
                running.append(collector)
            locks[variant] = made_by_threading()
            for kind, lock in locks[variant].items():
                pct = lock.capture_sampler.capture_pct
                if pct != CAPTURE_PCT[variant]:
                    raise RuntimeError(f"ddtrace {variant}: {kind} captures at {pct}%")
        profiled_factories = {kind: getattr(threading, kind) for kind in KINDS}
        native = native_locks(native_factories)
        groups = lock_groups(native, {variant: locks[variant] for variant in CAPTURE_VARIANTS})
        for kind in KINDS:
            group = f"create.{kind}"
            groups.append([Cell(group, "native", CREATE, native_factories[kind]),
                           Cell(group, "profiled", CREATE, profiled_factories[kind])])
        yield Phase("ddtrace", "running", groups, ddup.upload)

        stop_all()
        after = {"after_stop": locks["pct1"], "made_after_stop": made_by_threading()}
        check_types(after["made_after_stop"], native_name.get, "ddtrace, after stop()")
        yield Phase("ddtrace", "stopped", lock_groups(native_locks(native_factories), after, "native_stopped"),
                    lambda: None)
    finally:
        stop_all()
        shutil.rmtree(out_dir, ignore_errors=True)
        if any(getattr(threading, kind) is not native_factories[kind] for kind in KINDS):
            raise RuntimeError("ddtrace left threading.Lock / threading.RLock patched")


PHASES = {"lockprof": lockprof_phases, "ddtrace": ddtrace_phases}


# ----------------------------------------------------------------------------- measurement


def run_phase(phase: Phase, args) -> None:
    """Calibrate and time every cell of the phase; each cell keeps one figure per round."""
    cells = [cell for group in phase.groups for cell in group]
    # Warm up (specialisation, caches) and calibrate each cell's loop count.
    for cell in cells:
        cell.run(args.depth)
        cell.calibrate(args.depth, args.target_ms / 1000.0)
    phase.drain()
    gc.collect()
    groups = phase.groups
    for r in range(args.rounds):
        # Rotate the order of the groups and, inside each group, of its cells, so no cell is
        # always first or always right after the same neighbour.
        for g in range(len(groups)):
            group = groups[(g + r) % len(groups)]
            order = rotated(group, r)
            best = {cell.key: float("inf") for cell in group}
            for _ in range(args.repeat):
                for cell in order:
                    best[cell.key] = min(best[cell.key], cell.run(args.depth))
            for cell in group:
                cell.rounds.append(best[cell.key])
        phase.drain()


def summarize(phase: Phase, cells: Dict[str, dict]) -> None:
    """Medians, spread, and overhead and ratio against the group's native cell, into cells."""
    for group in phase.groups:
        native_median = statistics.median(group[0].rounds)
        for cell in group:
            median = statistics.median(cell.rounds)
            q = _quartiles(cell.rounds)
            cells[cell.key] = {
                "group": cell.group,
                "variant": cell.variant,
                "phase": phase.name,
                "ns": median,
                "q1": q[0],
                "q3": q[1],
                "min": min(cell.rounds),
                "rounds_ns": cell.rounds,
                "number": cell.number,
                "native_ns": native_median,
                "overhead_ns": median - native_median,
                "ratio": median / native_median,
            }


def measure(args) -> Dict[str, dict]:
    """{profiler: {"cells": {key: figures}, "notes": {...}}}, profilers measured in turn."""
    native_factories = {kind: getattr(threading, kind) for kind in KINDS}
    results: Dict[str, dict] = {}
    for profiler in ["lockprof"] + args.compare:
        cells: Dict[str, dict] = {}
        notes: Dict[str, Any] = {}
        with contextlib.closing(PHASES[profiler](args, native_factories)) as phases:
            for phase in phases:
                run_phase(phase, args)
                summarize(phase, cells)
                notes.update(phase.notes)
        results[profiler] = {"cells": cells, "notes": notes}
    return results


def _quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def evaluate_targets(results: Dict[str, dict], depth: int) -> list:
    cells = results["lockprof"]["cells"]
    checks = []
    for description, keys, kind, limit in TARGETS:
        for key in keys:
            cell = cells[key]
            if kind == "ratio":
                value = cell["ratio"]
                shown = f"{value:.3f}x (limit {limit:.2f}x)"
            else:
                value = cell["overhead_ns"]
                shown = f"+{value:.1f} ns (limit +{limit:.0f} ns)"
            checks.append({"target": description.format(depth=depth), "cell": key, "value": value,
                           "limit": limit, "kind": kind, "pass": value <= limit, "text": shown})
    for other in results:
        if other == "lockprof":
            continue
        for kind in KINDS:
            for form, _ in FORMS:
                for variant in CAPTURE_VARIANTS:
                    key = f"{kind}.{form}.{variant}"
                    ours = cells[key]["overhead_ns"]
                    theirs = results[other]["cells"][key]["overhead_ns"]
                    # A negative overhead of ours (faster than native) passes against any
                    # positive overhead of theirs.
                    ok = ours * COMPARE_FACTOR <= theirs
                    factor = f"{theirs / ours:.0f}x less" if ours > 0 else "no overhead"
                    checks.append({
                        "target": f"overhead <= 1/{COMPARE_FACTOR:g} of {other}'s",
                        "cell": key, "value": ours, "limit": theirs / COMPARE_FACTOR, "kind": "compare",
                        "pass": ok, "text": f"{ours:+.1f} ns vs {other} {theirs:+.1f} ns ({factor})",
                    })
    return checks


def impact(results: Dict[str, dict]) -> list:
    """CPU ms per second spent on profiling at each lock-operation rate, per profiler."""
    rows = []
    for rate in IMPACT_RATES:
        row: Dict[str, Any] = {"ops_per_sec": rate}
        for profiler, result in results.items():
            cells = result["cells"]
            for key in ("Lock.pair.pct1", "Lock.with.pct1", "Lock.pair.pct100", "Lock.pair.after_stop"):
                row[f"{profiler}.{key}"] = rate * cells[key]["overhead_ns"] / 1e6
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- output


def header(args) -> dict:
    import lockprof
    from lockprof import _lock

    return {
        "python": sys.version.replace("\n", " "),
        "python_version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "gil": gil_state(),  # after lockprof's import, which may have turned it on
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "load_average_at_start": load_average(),
        "lockprof_version": lockprof.__version__,
        "lockprof_extension": _lock.__file__,
        "compare": {name: ddtrace_version() for name in args.compare},
        "rounds": args.rounds,
        "repeat": args.repeat,
        "target_ms": args.target_ms,
        "depth": args.depth,
        "max_frames": args.max_frames,
        "unroll": UNROLL,
        "quick": args.quick,
    }


def print_report(meta: dict, results: Dict[str, dict], checks: list, impact_rows: list, out=print) -> None:
    out("lockprof lock overhead benchmark")
    out(f"  Python          {meta['python']}")
    free_threaded = "" if meta["gil"] == "n/a" else f", free-threaded build, GIL {meta['gil']}"
    out(f"  implementation  {meta['implementation']}{free_threaded}")
    out(f"  CPU             {meta['cpu']} ({meta['cpus']} logical CPUs)")
    out(f"  date            {meta['date']}   load average at start: {meta['load_average_at_start']}")
    out(f"  lockprof        {meta['lockprof_version']} from {os.path.dirname(meta['lockprof_extension'])}")
    for name, version in meta["compare"].items():
        pinned = "" if version == DDTRACE_PIN else f" (NOT the pinned {DDTRACE_PIN})"
        out(f"  compared with   {name} {version}{pinned}, measured after lockprof in the same process")
    out(f"  method          timeit, statement unrolled {UNROLL}x, {meta['rounds']} interleaved rounds x "
        f"{meta['repeat']} repeats of ~{meta['target_ms']:g} ms;")
    out(f"                  median over rounds of each round's minimum; every statement runs at a stack "
        f"depth of {meta['depth']} frames")
    ours = results["lockprof"]
    out(f"                  (a lockprof capture recorded {ours['notes']['captured_depth']} frames; "
        f"collectors use max_frames={meta['max_frames']})")
    out(f"  loop overhead   {ours['cells']['loop.empty']['ns']:.1f} ns per operation (timeit loop / {UNROLL}; "
        f"included in every figure, not subtracted)")
    if meta["quick"]:
        out("  QUICK RUN: a smoke test, the numbers are not meaningful")
    out("")
    seed_table(out, results)
    out("")
    lockprof_extras(out, ours["cells"], meta)
    for name in meta["compare"]:
        cells = results[name]["cells"]
        out(f"{name}: threading.Lock() / threading.RLock() creation while profiling (ns per lock)")
        for kind in KINDS:
            _row(out, 44, cells[f"create.{kind}.native"], f"{kind} native")
            _row(out, 44, cells[f"create.{kind}.profiled"], f"{kind} while profiling")
    out("")
    out("targets (informative; the exit status is always 0)")
    for check in checks:
        verdict = "PASS" if check["pass"] else "MISS"
        out(f"  {verdict}  {check['target']:<44} {check['cell']:<22} {check['text']}")
    out("")
    impact_table(out, results, impact_rows)


def seed_table(out, results: Dict[str, dict]) -> None:
    """The seeds' table: one row per variant, one column block per profiler."""
    profilers = list(results)
    titles = {"pair": "acquire(); release(), ns per pair", "with": "with lock: pass, ns per block"}
    head = f"{'':<42}" + "".join(f" {name + ': ns/op   overhead    ratio':>36}" for name in profilers)
    for kind in KINDS:
        for form, _ in FORMS:
            out(f"{kind}, {titles[form]}")
            out(head)
            for variant in SEED_ROWS:
                line = f"  {VARIANT_LABELS[variant]:<40}"
                for name in profilers:
                    cell = results[name]["cells"][f"{kind}.{form}.{variant}"]
                    if variant == "native":
                        line += f" {cell['ns']:>15.1f}{'':>21}"
                    else:
                        line += f" {cell['ns']:>15.1f} {cell['overhead_ns']:>+10.1f} ns {cell['ratio']:>7.3f}x"
                out(line)
    if len(profilers) > 1:
        out("  (after-stop rows of a compared profiler are timed against a native lock in a second phase, once")
        out("   its collectors are stopped: its stopped locks capture again whenever any of its collectors runs)")


def lockprof_extras(out, cells: dict, meta: dict) -> None:
    width = 44
    out(f"lockprof: Lock through {FRESH} new frames: chain(l) -> ... -> l.acquire(); l.release()")
    out(f"  (ns per call, the call included; the lock is called at depth {meta['depth'] + FRESH}, "
        f"the top {FRESH} frames new at every call)")
    for variant in ("native", "pct1", "pct100"):
        _row(out, width, cells[f"Lock.fresh{FRESH}.{variant}"], VARIANT_LABELS[variant])
    for kind in KINDS:
        out(f"lockprof: threading.{kind}()  creation (ns per lock, includes its deallocation)")
        for variant in ("native", "profiled", "excluded"):
            _row(out, width, cells[f"create.{kind}.{variant}"], VARIANT_LABELS[variant])


def impact_table(out, results: Dict[str, dict], impact_rows: list) -> None:
    out("impact: CPU time spent on profiling, ms per second, from the measured overhead per Lock operation")
    out("  (a negative figure means the profiled lock is faster than the native one)")
    columns = [("Lock.pair.pct1", "1% pair"), ("Lock.with.pct1", "1% with"),
               ("Lock.pair.pct100", "100% pair"), ("Lock.pair.after_stop", "pair after stop()")]
    out(f"  {'lock ops/sec:':<28}" + "".join(f" {row['ops_per_sec']:>12,}" for row in impact_rows))
    for name in results:
        for key, label in columns:
            out(f"  {name + ' ' + label:<28}" + "".join(f" {row[f'{name}.{key}']:>12.2f}" for row in impact_rows))


def _row(out, width, cell, label):
    label = "  " + label
    spread = f"[{cell['q1']:.1f} - {cell['q3']:.1f}]"
    if cell["variant"] in ("native", "native_stopped", "empty"):
        out(f"{label:<{width}} {cell['ns']:>9.1f} {spread:>17}")
    else:
        out(f"{label:<{width}} {cell['ns']:>9.1f} {spread:>17} {cell['overhead_ns']:>+8.1f} ns "
            f"{cell['ratio']:>6.3f}x")


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run (CI uses it): few rounds, short timings, numbers not meaningful")
    parser.add_argument("--compare", action="append", default=[], choices=COMPARABLE,
                        help="also measure this profiler's lock collector, after lockprof in the same "
                             f"process (ddtrace: pip install -r benchmarks/requirements.txt, ddtrace=={DDTRACE_PIN})")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 15; 3 with --quick)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timings per cell per round, the round keeps the minimum (default 7; 2 with --quick)")
    parser.add_argument("--target-ms", type=float, default=None,
                        help="duration of one timing in ms (default 5; 0.5 with --quick)")
    parser.add_argument("--depth", type=int, default=10,
                        help="stack depth, in Python frames, of every timed statement (default 10)")
    parser.add_argument("--max-frames", type=int, default=64,
                        help="max_frames of the profiling collectors (default 64, lockprof's default)")
    parser.add_argument("--json", metavar="PATH", nargs="?", const="-",
                        help="write the results as JSON to PATH; without PATH, print only the JSON on stdout")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 15
    if args.repeat is None:
        args.repeat = 2 if args.quick else 7
    if args.target_ms is None:
        args.target_ms = 0.5 if args.quick else 5.0
    if args.rounds < 1 or args.repeat < 1 or args.target_ms <= 0:
        parser.error("--rounds, --repeat and --target-ms must be positive")
    args.compare = list(dict.fromkeys(args.compare))
    if "ddtrace" in args.compare and ddtrace_version() is None:
        parser.error("--compare ddtrace: ddtrace is not installed for this Python; "
                     "pip install -r benchmarks/requirements.txt")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    meta = header(args)
    results = measure(args)
    checks = evaluate_targets(results, args.depth)
    impact_rows = impact(results)
    document = {"meta": meta, "profilers": results, "targets": checks, "impact": impact_rows}
    if args.json == "-":
        json.dump(document, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print_report(meta, results, checks, impact_rows)
    if args.json:
        write_json(args.json, document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
