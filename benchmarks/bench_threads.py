#!/usr/bin/env python3
"""Two threads at once, native against profiled: each on its own lock (no contention: what
profiling shares between threads shows as lost parallelism), and both on one lock (contention).

Written for free-threaded CPython (3.13t), where the two threads really run in parallel; it runs
on any CPython. Each measurement of the cells is a process of its own, so that a native one
never imports lockprof: on a free-threaded build, a lockprof whose modules need the GIL turns it
on for the whole process at import, and the native figures must be those of the program without
it. Each process starts two threads that run `with lock: pass` (unrolled 10x) OPS times each,
between two barriers, once to warm up and then --repeat times; its figure is the wall time of
its fastest run. The native and profiled processes alternate, in rotated order, for --rounds
rounds; a cell's figure is the median over the rounds, its ratio to the native cell of the same
round's set. The profiled process runs a LockCollector at its default settings (1% capture), and
for the shared lock reads from it the exact number of contended acquires: the extra wall and CPU
time (all threads) per contended acquire are the profiled run's excess over native divided by
it. Last, private Locks in one profiled process, native and profiled alternating every round
(measure_interleaved): the two compared under the same memory layout and machine state, without
and with asyncio imported.

Run it from outside the source tree with the interpreter whose installed lockprof you want to
measure:  cd /tmp && python /path/to/benchmarks/bench_threads.py [--quick] [--json PATH]
"""

from __future__ import annotations

import _thread
import json
import platform
import statistics
import subprocess
import sys
import threading
import time

from benchcli import parse_args, write_json
from benchutil import cpu_model, gil_state, load_average, rotated

THREADS = 2
VARIANTS = ("native", "lockprof")
# (shape, kind, operations per thread per run): sized for runs of roughly 20 to 100 ms.
CELLS = (("private", "Lock", 500_000), ("private", "RLock", 500_000), ("shared", "Lock", 100_000))
INTERLEAVED_OPS = 200_000  # per thread per run (measure_interleaved)
BLOCK = "\n".join(["        with lock:\n            pass"] * 10)
LOOP = f"def loop(lock, n):\n    for _ in range(n):\n{BLOCK}\n"


def measure_in_process(variant: str, shape: str, kind: str, ops: int, repeat: int) -> dict:
    """One process's figures: the fastest of `repeat` runs of two threads."""
    collector = None
    if variant == "lockprof":
        from lockprof import LockCollector
        collector = LockCollector()
        collector.start()
    factory = getattr(threading, kind)
    locks = [factory() for _ in range(THREADS)] if shape == "private" else [factory()] * THREADS
    best = None
    for run, (wall, cpu, contended) in enumerate(two_threads(locks, ops, repeat + 1, collector)):
        if run and (best is None or wall < best["wall_ns"]):  # the first warms up
            best = {"wall_ns": wall, "cpu_ns": cpu, "contended": contended}
    if collector is not None:
        collector.stop()
    best["gil"] = gil_state()
    return best


def two_threads(locks, ops: int, runs: int, collector=None) -> list:
    """(wall ns, CPU ns, contended acquires) of `runs` runs of two threads, one per lock in locks,
    each doing `with lock: pass` ops times; the collector (if any) drained outside each run."""
    namespace: dict = {}
    exec(compile(LOOP, "<bench_threads loop>", "exec"), namespace)
    loop = namespace["loop"]
    barrier = threading.Barrier(THREADS + 1)

    def thread_body(lock) -> None:
        for _ in range(runs):
            barrier.wait()
            loop(lock, ops // 10)
            barrier.wait()

    threads = [threading.Thread(target=thread_body, args=(lock,)) for lock in locks]
    for thread in threads:
        thread.start()
    figures = []
    for _ in range(runs):
        if collector is not None:
            collector.snapshot()
        barrier.wait()
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        barrier.wait()
        wall, cpu = time.perf_counter_ns() - wall, time.process_time_ns() - cpu
        contended = 0
        if collector is not None:
            contended = sum(t.contended_count for t in collector.snapshot().lock_totals)
        figures.append((wall, cpu, contended))
    for thread in threads:
        thread.join()
    return figures


def measure_interleaved(with_asyncio: bool, ops: int, rounds: int) -> dict:
    """Private Locks in one profiled process (the last cells): each round runs two threads on
    native locks (_thread.allocate_lock), then on profiled ones (threading.Lock()), so the
    two compare under the same memory layout and machine state; with_asyncio: asyncio imported
    first, as most services have it (a capture then asks it for the running task)."""
    if with_asyncio:
        import asyncio  # noqa: F401
    from lockprof import LockCollector
    collector = LockCollector()
    collector.start()
    native, profiled = [], []
    for _ in range(rounds):
        for figures, factory in ((native, _thread.allocate_lock), (profiled, threading.Lock)):
            figures.append(two_threads([factory() for _ in range(THREADS)], ops, 2, collector)[1][0])
    collector.stop()
    ratios = [p / n for n, p in zip(native, profiled)]
    return {"native_ns_per_op": statistics.median(native) / ops,
            "lockprof_ns_per_op": statistics.median(profiled) / ops,
            "median_ratio": statistics.median(ratios), "gil": gil_state()}


def spawn(measure, *arguments) -> dict:
    """measure(*arguments) (a function of CHILDREN) run in a process of its own."""
    command = [sys.executable, __file__, "--child", measure.__name__, json.dumps(arguments)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def measure(rounds: int, repeat: int, scale: float) -> dict:
    results = {}
    for shape, kind, ops in CELLS:
        ops = max(10, int(ops * scale)) // 10 * 10
        figures = {variant: [] for variant in VARIANTS}
        for r in range(rounds):
            for variant in rotated(VARIANTS, r):
                figures[variant].append(spawn(measure_in_process, variant, shape, kind, ops, repeat))
        native_wall = statistics.median(f["wall_ns"] for f in figures["native"])
        native_cpu = statistics.median(f["cpu_ns"] for f in figures["native"])
        for variant, runs in figures.items():
            wall = statistics.median(f["wall_ns"] for f in runs)
            cpu = statistics.median(f["cpu_ns"] for f in runs)
            contended = statistics.median(f["contended"] for f in runs)
            results[f"{shape}.{kind}.{variant}"] = {
                "ops_per_thread": ops,
                "wall_ns": wall,
                "ns_per_op": wall / ops,
                "ratio": wall / native_wall,
                "cpu_ns": cpu,
                "contended": contended,
                # per contended acquire: the profiled run's excess over the native run
                "extra_wall_per_contended_ns": (wall - native_wall) / contended if contended else None,
                "extra_cpu_per_contended_ns": (cpu - native_cpu) / contended if contended else None,
                "gil": sorted({f["gil"] for f in runs}),
            }
    return results


CHILDREN = {measure.__name__: measure for measure in (measure_in_process, measure_interleaved)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(CHILDREN[argv[1]](*json.loads(argv[2]))))
        return 0
    args = parse_args(__doc__, 9, argv)
    repeat, scale = (1, 0.05) if args.quick else (3, 1.0)
    load = load_average()
    results = measure(args.rounds, repeat, scale)
    interleaved = {"asyncio imported" if with_asyncio else "plain":
                   spawn(measure_interleaved, with_asyncio, max(10, int(INTERLEAVED_OPS * scale)) // 10 * 10,
                         args.rounds)
                   for with_asyncio in (False, True)}
    build = "a build with the GIL" if gil_state() == "n/a" else "free-threaded"
    print(f"lockprof, {THREADS} threads at once: Python {platform.python_version()} ({build}), "
          f"{cpu_model()}, load average at start {load}")
    print(f"  each figure: median over {args.rounds} rounds of a process's fastest of {repeat} runs; "
          "the profiled process at the default settings (1% capture)")
    print(f"  {'cell':<24} {'GIL':>6} {'ns/op':>8} {'ratio':>7} {'contended':>10} "
          f"{'extra wall ns':>14} {'extra CPU ns':>13}  (per contended acquire)")
    for key, cell in results.items():
        extra_wall, extra_cpu = cell["extra_wall_per_contended_ns"], cell["extra_cpu_per_contended_ns"]
        print(f"  {key:<24} {'/'.join(cell['gil']):>6} {cell['ns_per_op']:>8.1f} {cell['ratio']:>6.3f}x "
              f"{cell['contended']:>10.0f} {'' if extra_wall is None else f'{extra_wall:+.0f}':>14} "
              f"{'' if extra_cpu is None else f'{extra_cpu:+.0f}':>13}")
    print(f"  in one profiled process, private Locks, native and profiled alternating for {args.rounds} rounds "
          "(median ns/op, median of the rounds' ratios):")
    for name, cell in interleaved.items():
        print(f"  {'interleaved, ' + name:<31} {cell['gil']:>6} {cell['native_ns_per_op']:>8.1f} native, "
              f"{cell['lockprof_ns_per_op']:.1f} lockprof, {cell['median_ratio']:.3f}x")
    if args.quick:
        print("  QUICK RUN: a smoke test, the numbers are not meaningful")
    write_json(args.json, {**results, **{f"interleaved.{name}": cell for name, cell in interleaved.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
