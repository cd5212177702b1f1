#!/usr/bin/env python3
"""What profiling adds to a contended acquire, next to the time the wait itself takes.

Another thread holds the lock throughout, so every `l.acquire(timeout=T)` is contended: it
tries, blocks in the kernel for T and times out. The native lock's wall time per call is the
wait (T plus the kernel's timer slack); what lockprof adds is CPU work in the waiting thread:
the failed attempt, two clock reads, the exact per-lock counters, the long-wait check, and the
stack capture that proportional sampling makes with probability wait / interval (always, in
the `every wait captured` rows, whose interval is 1 ns). So each cell reports the wall time
per call (the wait) and the waiting thread's CPU time per call (time.thread_time_ns), whose
difference to native is the extra cost. Native and profiled cells alternate in every round; a
cell's result is the median over the rounds of each round's minimum.

Run it from outside the source tree with the interpreter whose installed lockprof you want
to measure:  cd /tmp && python /path/to/benchmarks/bench_contended.py [--quick] [--json PATH]
"""

from __future__ import annotations

import platform
import statistics
import sys
import threading
import time

from benchcli import parse_args, write_json
from benchutil import gil_state

TIMEOUTS_US = (10, 100)


def time_calls(lock, timeout: float, number: int):
    """(wall ns, CPU ns of this thread) per lock.acquire(timeout=timeout) call."""
    acquire = lock.acquire
    wall_start, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
    for _ in range(number):
        acquire(timeout=timeout)
    cpu_end, wall_end = time.thread_time_ns(), time.perf_counter_ns()
    return (wall_end - wall_start) / number, (cpu_end - cpu_start) / number


def measure(rounds: int, repeat: int, number: int) -> dict:
    from lockprof import LockCollector

    native = threading.Lock(), threading.RLock()
    collectors = []
    profiled = {}
    for variant, interval in (("every wait captured", 1), ("default settings", 1_000_000)):
        collector = LockCollector(wait_sample_interval=interval)
        collector.start()
        collectors.append(collector)
        profiled[variant] = threading.Lock(), threading.RLock()
    for collector in reversed(collectors):
        collector.stop()
        collector.start()  # keep them running, threading.Lock restored in the right order
    held = threading.Event()
    done = threading.Event()
    every_lock = (*native, *(lock for pair in profiled.values() for lock in pair))

    def holder():
        for lock in every_lock:
            lock.acquire()
        held.set()
        done.wait()
        for lock in every_lock:
            lock.release()

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    held.wait()
    results = {}
    try:
        for timeout_us in TIMEOUTS_US:
            for index, kind in enumerate(("Lock", "RLock")):
                cells = {"native": native[index]}
                cells.update({variant: locks[index] for variant, locks in profiled.items()})
                wall = {name: [] for name in cells}
                cpu = {name: [] for name in cells}
                for _ in range(rounds):
                    for name, lock in cells.items():
                        best_wall, best_cpu = min(
                            time_calls(lock, timeout_us / 1e6, number) for _ in range(repeat))
                        wall[name].append(best_wall)
                        cpu[name].append(best_cpu)
                    for collector in collectors:
                        collector.snapshot()  # drain, outside the timed region
                group = f"{kind}.timeout_{timeout_us}us"
                native_cpu = statistics.median(cpu["native"])
                for name in cells:
                    results[f"{group}.{name}"] = {
                        "wall_ns": statistics.median(wall[name]),
                        "cpu_ns": statistics.median(cpu[name]),
                        "extra_cpu_ns": statistics.median(cpu[name]) - native_cpu,
                    }
    finally:
        done.set()
        thread.join()
        for collector in reversed(collectors):
            collector.stop()
    return results


def main(argv=None) -> int:
    args = parse_args(__doc__, 7, argv)
    rounds = args.rounds
    repeat, number = (2, 20) if args.quick else (5, 200)
    results = measure(rounds, repeat, number)
    print(f"lockprof contended acquire: Python {platform.python_version()} (GIL {gil_state()}), "
          f"{platform.machine()}, {rounds} rounds")
    print("another thread holds the lock: every acquire(timeout=T) waits T and times out")
    print(f"  {'cell':<44} {'wall ns':>10} {'CPU ns':>10} {'extra CPU ns':>13}")
    for key, cell in results.items():
        print(f"  {key:<44} {cell['wall_ns']:>10.0f} {cell['cpu_ns']:>10.0f} {cell['extra_cpu_ns']:>+13.0f}")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
