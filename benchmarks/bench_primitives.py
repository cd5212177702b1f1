#!/usr/bin/env python3
"""Per-operation cost of the profiled Semaphore, BoundedSemaphore and Condition of threading
and Lock, Semaphore, BoundedSemaphore and Condition of asyncio, against the standard classes,
and of a nested level of a threading.RLock.

Each row times one uncontended `with obj: pass` (threading) or `async with obj: pass` inside a
running task (asyncio), for an object made by the standard class and one made while a
LockCollector runs at the default settings (capture_pct=1). The RLock row's lock is already held
by the timing thread, so each `with` takes and gives back a nested level. Native and profiled
cells alternate in every round; a cell's result is the median over the rounds of each round's
minimum.

Run it from outside the source tree with the interpreter whose installed lockprof you want to
measure:  cd /tmp && python /path/to/benchmarks/bench_primitives.py [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import sys
import threading
import time
import timeit

from benchcli import parse_args, write_json

THREADING = ("Semaphore", "BoundedSemaphore", "Condition")
NESTED_RLOCK = "threading.RLock.nested"
ASYNCIO = ("Lock", "Semaphore", "BoundedSemaphore", "Condition")
UNROLL = 10


def threading_cell(obj, number: int) -> float:
    """ns per `with obj: pass`."""
    timer = timeit.Timer("\n".join(["with l:\n    pass"] * UNROLL), globals={"l": obj})
    return timer.timeit(number) / (number * UNROLL) * 1e9


def asyncio_cell(loop, obj, number: int) -> float:
    """ns per `async with obj: pass`, run in one task."""
    async def body():
        start = time.perf_counter_ns()
        for _ in range(number):
            async with obj:
                pass
        return time.perf_counter_ns() - start

    return loop.run_until_complete(body()) / number


def held_rlock():
    """A threading.RLock this thread holds once."""
    lock = threading.RLock()
    lock.acquire()
    return lock


def measure(rounds: int, repeat: int, number: int) -> dict:
    from lockprof import LockCollector

    native = {f"threading.{n}": getattr(threading, n)() for n in THREADING}
    native[NESTED_RLOCK] = held_rlock()
    collector = LockCollector()  # the default settings
    collector.start()
    loop = asyncio.new_event_loop()
    try:
        profiled = {f"threading.{n}": getattr(threading, n)() for n in THREADING}
        profiled[NESTED_RLOCK] = held_rlock()

        async def make_asyncio(names):
            return {f"asyncio.{n}": getattr(asyncio, n)() for n in names}

        profiled.update(loop.run_until_complete(make_asyncio(ASYNCIO)))
        collector.stop()
        native.update(loop.run_until_complete(make_asyncio(ASYNCIO)))
        collector.start()
        results = {}
        for key in native:
            cells = {"native": native[key], "profiled": profiled[key]}
            if key.startswith("threading."):
                run = lambda obj: threading_cell(obj, number)  # noqa: E731
            else:
                run = lambda obj: asyncio_cell(loop, obj, number * UNROLL)  # noqa: E731
            per_round = {name: [] for name in cells}
            for _ in range(rounds):
                for name, obj in cells.items():
                    per_round[name].append(min(run(obj) for _ in range(repeat)))
                collector.snapshot()  # drain, outside the timed region
            native_ns = statistics.median(per_round["native"])
            for name, values in per_round.items():
                ns = statistics.median(values)
                results[f"{key}.{name}"] = {"ns": ns, "extra_ns": ns - native_ns, "ratio": ns / native_ns,
                                            "rounds_ns": values}
    finally:
        collector.stop()
        loop.close()
    return results


def main(argv=None) -> int:
    args = parse_args(__doc__, 9, argv)
    rounds = args.rounds
    repeat, number = (2, 20) if args.quick else (5, 2000)
    results = measure(rounds, repeat, number)
    print(f"lockprof primitives, uncontended, capture_pct=1: Python {platform.python_version()}, "
          f"{platform.machine()}, {rounds} rounds")
    print(f"  {'cell':<38} {'ns/op':>9} {'extra ns':>10} {'ratio':>7}")
    for key, cell in results.items():
        print(f"  {key:<38} {cell['ns']:>9.1f} {cell['extra_ns']:>+10.1f} {cell['ratio']:>6.3f}x")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
