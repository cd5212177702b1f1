#!/usr/bin/env python3
"""Per-operation cost of a lock under ddtrace's profiler with its own lock collector, then with
lockprof's hosted in it (lockprof.integrations.ddtrace), against the native lock, in one process.

Each phase starts a ddtrace Profiler (lock collection only: its stack, memory and exception
collectors off, writing its profiles to a temporary directory, never uploading) at its default
capture_pct (1%), makes a threading.Lock and RLock through threading, and times one uncontended
`acquire(); release()` pair and one `with lock: pass` block (each statement unrolled 10x) on
them and on native locks made before any profiling, native and profiled cells alternating in
every round. A cell's result is the median over the rounds of each round's minimum; its ratio
is to the native cell of the same phase. ddtrace's phase runs first: install() lasts for the
process.

Run it from outside the source tree with an interpreter that has lockprof and ddtrace (4.16):
    cd /tmp && python /path/to/benchmarks/bench_ddtrace_host.py [--quick] [--json PATH]
"""

from __future__ import annotations

import _thread
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import timeit

from benchcli import parse_args, write_json

UNROLL = 10
STATEMENTS = {"pair": "l.acquire(); l.release()", "with": "with l:\n    pass"}
NATIVE = {"Lock": _thread.allocate_lock, "RLock": _thread.RLock}


def cell_ns(lock, statement: str, number: int) -> float:
    timer = timeit.Timer("\n".join([statement] * UNROLL), globals={"l": lock})
    return timer.timeit(number) / (number * UNROLL) * 1e9


def phase(name: str, out_dir: str, rounds: int, repeat: int, number: int) -> dict:
    from ddtrace.profiling import Profiler

    os.environ["DD_PROFILING_OUTPUT_PPROF"] = os.path.join(out_dir, name)
    profiler = Profiler(_stack_collector_enabled=False, _memory_collector_enabled=False,
                        _exception_profiling_enabled=False)
    profiler.start()
    try:
        profiled = {kind: getattr(threading, kind)() for kind in NATIVE}
        native = {kind: make() for kind, make in NATIVE.items()}
        results = {}
        for kind in NATIVE:
            if type(profiled[kind]) is type(native[kind]):
                raise RuntimeError(f"{name}: threading.{kind}() made a native lock")
            for op, statement in STATEMENTS.items():
                per_round = {"native": [], "profiled": []}
                for _ in range(rounds):
                    for cell, lock in (("native", native[kind]), ("profiled", profiled[kind])):
                        per_round[cell].append(min(cell_ns(lock, statement, number) for _ in range(repeat)))
                native_ns = statistics.median(per_round["native"])
                ns = statistics.median(per_round["profiled"])
                results[f"{kind}.{op}"] = {"native_ns": native_ns, "ns": ns, "extra_ns": ns - native_ns,
                                           "ratio": ns / native_ns, "type": type(profiled[kind]).__qualname__}
        return results
    finally:
        profiler.stop()


def main(argv=None) -> int:
    args = parse_args(__doc__, 9, argv)
    repeat, number = (2, 20) if args.quick else (5, 20000)
    from lockprof.integrations import ddtrace as integration

    out_dir = tempfile.mkdtemp(prefix="bench-ddtrace-host-")
    try:
        results = {"ddtrace": phase("ddtrace", out_dir, args.rounds, repeat, number)}
        if not integration.install():
            raise RuntimeError("lockprof.integrations.ddtrace.install() refused this ddtrace")
        results["lockprof-in-ddtrace"] = phase("lockprof", out_dir, args.rounds, repeat, number)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    print(f"Lock operations under ddtrace {integration.ddtrace_version()}'s profiler, capture_pct=1: "
          f"Python {platform.python_version()}, {platform.machine()}, {args.rounds} rounds")
    print(f"  {'collector':<22} {'cell':<12} {'native ns':>10} {'ns/op':>9} {'extra ns':>10} {'ratio':>7}")
    for collector, cells in results.items():
        for key, cell in cells.items():
            print(f"  {collector:<22} {key:<12} {cell['native_ns']:>10.1f} {cell['ns']:>9.1f} "
                  f"{cell['extra_ns']:>+10.1f} {cell['ratio']:>6.2f}x")
    for key in results["ddtrace"]:
        dd, lp = results["ddtrace"][key]["extra_ns"], results["lockprof-in-ddtrace"][key]["extra_ns"]
        print(f"  {key}: ddtrace's collector adds {dd:.1f} ns, lockprof's {lp:+.1f} ns")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
