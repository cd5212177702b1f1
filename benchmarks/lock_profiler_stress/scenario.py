#!/usr/bin/env python3
"""One lock-profiler stress scenario, run without profiling, with lockprof or with ddtrace.

    python scenario.py --scenario_type high_contention --num_threads 50 --num_locks 2 \\
        --operations_per_thread 1000 [--profiler lockprof --profile_dir DIR] [--json PATH]

Every acquire the scenario makes is timed around the call (time.perf_counter_ns), so it reports
the duration, the lock operations made, operations per second, the average and maximum acquire
time, contentions (acquires that took over 1 ms) and errors (timeouts). It also reports, for the
validation of a profile, the waits it measured on the primitives the running profiler wraps
(whatever their kind: the check is on the object, so new kinds count as soon as they are
profiled) and the other ones separately. run.py runs the configurations of config.yaml.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import hashlib
import os
import queue
import random
import resource
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import profilers  # noqa: E402  (benchmarks/profilers.py)
from benchutil import write_json  # noqa: E402

CONTENTION_NS = 1_000_000  # an acquire that took longer counts as a contention
PROFILER_PACKAGES = ("lockprof", "ddtrace")


_profiled_types: Dict[type, bool] = {}


def is_profiled(primitive: Any) -> bool:
    """Whether a profiler wrapped this object: its type, or a class it derives from, comes from
    a profiler's package (lockprof profiles Lock and RLock with its own types, and the other
    primitives with subclasses that keep the standard class's name and module). Decided once
    per type: reading a compiled type's __module__ builds a new string each time, which would
    cost the profiled runs more than the native ones."""
    kind = type(primitive)
    profiled = _profiled_types.get(kind)
    if profiled is None:
        profiled = any(str(getattr(klass, "__module__", "")).split(".")[0] in PROFILER_PACKAGES
                       for klass in kind.__mro__)
        _profiled_types[kind] = profiled
    return profiled


class Stats:
    """One thread's (or task's) counters; merged at the end, so recording takes no lock."""

    def __init__(self) -> None:
        self.operations = 0
        self.acquire_ns = 0
        self.max_acquire_ns = 0
        self.contentions = 0
        self.errors = 0
        # Measured waits by whether the primitive is profiled: [acquires, ns, ns of those over 1 ms].
        self.waits = {True: [0, 0, 0], False: [0, 0, 0]}

    def record(self, primitive: Any, elapsed_ns: int, acquired: bool) -> None:
        waits = self.waits[is_profiled(primitive)]
        waits[0] += 1
        waits[1] += elapsed_ns
        if elapsed_ns > CONTENTION_NS:
            waits[2] += elapsed_ns
            self.contentions += 1
        self.acquire_ns += elapsed_ns
        if elapsed_ns > self.max_acquire_ns:
            self.max_acquire_ns = elapsed_ns
        if acquired:
            self.operations += 1
        else:
            self.errors += 1

    def merge(self, other: Stats) -> None:
        self.operations += other.operations
        self.acquire_ns += other.acquire_ns
        self.max_acquire_ns = max(self.max_acquire_ns, other.max_acquire_ns)
        self.contentions += other.contentions
        self.errors += other.errors
        for profiled, (count, ns, over) in other.waits.items():
            mine = self.waits[profiled]
            mine[0] += count
            mine[1] += ns
            mine[2] += over


def acquire(stats: Stats, primitive: Any, timeout: float = -1) -> bool:
    """primitive.acquire(timeout=...), timed; False when it timed out."""
    start = time.perf_counter_ns()
    acquired = primitive.acquire(timeout=timeout) if timeout >= 0 else primitive.acquire()
    stats.record(primitive, time.perf_counter_ns() - start, acquired)
    return acquired


async def acquire_async(stats: Stats, primitive: Any) -> None:
    start = time.perf_counter_ns()
    await primitive.acquire()
    stats.record(primitive, time.perf_counter_ns() - start, True)


_DATA_VIEW = memoryview(bytes(range(256)) * 1024)  # hashed by critical sections doing "I/O"


def work(units: int, io_bytes: int = 0) -> int:
    """The body of a critical section: `units` loop iterations of Python work, then hashing
    io_bytes bytes, which releases the GIL (from 2 KiB on) the way I/O under a lock does, so
    other threads run meanwhile and find the lock taken."""
    total = 0
    for i in range(units):
        total += i * i
    if io_bytes:
        total += hashlib.sha256(_DATA_VIEW[:io_bytes]).digest()[0]
    return total


class LockProfilerStress:
    """The scenarios: _run_<scenario_type>(stats_list) runs one and fills per-thread Stats."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.random = random.Random(args.seed)
        self.shared = collections.Counter()  # state the critical sections update

    def count(self, n: int) -> int:
        """A count from the configuration, scaled down for smoke runs (at least 1)."""
        return max(1, int(n * self.args.scale))

    def run(self) -> Dict[str, Any]:
        runner = getattr(self, f"_run_{self.args.scenario_type}")
        stats_list: List[Stats] = []
        gc.collect()
        cpu_start = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        runner(stats_list)
        duration = time.perf_counter() - start
        cpu_end = resource.getrusage(resource.RUSAGE_SELF)
        total = Stats()
        for stats in stats_list:
            total.merge(stats)
        timed = total.waits[True][0] + total.waits[False][0]
        return {
            "scenario": self.args.scenario_type,
            "duration_s": duration,
            "cpu_s": (cpu_end.ru_utime + cpu_end.ru_stime) - (cpu_start.ru_utime + cpu_start.ru_stime),
            "total_operations": total.operations,
            "operations_per_sec": total.operations / duration if duration > 0 else 0.0,
            "avg_acquire_ms": total.acquire_ns / timed / 1e6 if timed else 0.0,
            "max_acquire_ms": total.max_acquire_ns / 1e6,
            "contentions": total.contentions,
            "errors": total.errors,
            "measured_waits": {
                "profiled": dict(zip(("acquires", "wait_ns", "wait_over_1ms_ns"), total.waits[True])),
                "unprofiled": dict(zip(("acquires", "wait_ns", "wait_over_1ms_ns"), total.waits[False])),
            },
        }

    def threads(self, stats_list: List[Stats], count: int, target: Callable[..., None], *args: Any,
                name: str = "worker") -> None:
        """Run target(stats, index, *args) in `count` threads and wait for all of them."""
        workers = []
        for index in range(count):
            stats = Stats()
            stats_list.append(stats)
            workers.append(threading.Thread(target=target, args=(stats, index) + args, name=f"{name}-{index}"))
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    # ------------------------------------------------------------------ 1. high contention

    def _run_high_contention(self, stats_list: List[Stats]) -> None:
        a = self.args
        locks = [threading.Lock() for _ in range(a.num_locks)]
        operations = self.count(a.operations_per_thread)

        def worker(stats: Stats, index: int) -> None:
            for i in range(operations):
                lock = locks[(index + i) % len(locks)]
                acquire(stats, lock)
                try:
                    self.shared["high_contention"] += work(a.work_units, a.io_bytes)
                finally:
                    lock.release()

        self.threads(stats_list, a.num_threads, worker)

    # ------------------------------------------------------------------ 2. lock hierarchy

    def _run_lock_hierarchy(self, stats_list: List[Stats]) -> None:
        a = self.args
        levels = [threading.RLock() if level % 2 else threading.Lock() for level in range(a.levels)]
        operations = self.count(a.operations_per_thread)

        def worker(stats: Stats, index: int) -> None:
            for _ in range(operations):
                # Always in level order, released innermost first: no deadlock is possible.
                for lock in levels:
                    acquire(stats, lock)
                try:
                    self.shared["hierarchy"] += work(a.work_units, a.io_bytes)
                finally:
                    for lock in reversed(levels):
                        lock.release()

        self.threads(stats_list, a.num_threads, worker)

    # ------------------------------------------------------------------ 3. high frequency

    def _run_high_frequency(self, stats_list: List[Stats]) -> None:
        a = self.args
        shared_lock = threading.Lock()
        own_locks = [threading.Lock() for _ in range(a.num_threads)]
        operations = self.count(a.operations_per_thread)

        def worker(stats: Stats, index: int) -> None:
            own = own_locks[index]
            for i in range(operations):
                # Mostly the thread's own lock (uncontended: the per-operation cost), now and
                # then the shared one.
                lock = shared_lock if i % 16 == 0 else own
                acquire(stats, lock)
                lock.release()

        self.threads(stats_list, a.num_threads, worker)

    # ------------------------------------------------------------------ 4. mixed primitives

    def _run_mixed_primitives(self, stats_list: List[Stats]) -> None:
        a = self.args
        lock = threading.Lock()
        rlock = threading.RLock()
        condition = threading.Condition()
        semaphore = threading.Semaphore(max(1, a.num_threads // 4))
        bounded = threading.BoundedSemaphore(2)
        event = threading.Event()
        operations = self.count(a.operations_per_thread)
        pending = collections.deque()

        def worker(stats: Stats, index: int) -> None:
            for i in range(operations):
                step = (index + i) % 5
                if step == 0:
                    acquire(stats, lock)
                    self.shared["lock"] += work(a.work_units, a.io_bytes)
                    lock.release()
                elif step == 1:
                    acquire(stats, rlock)
                    acquire(stats, rlock)  # reentrant
                    self.shared["rlock"] += work(a.work_units, a.io_bytes)
                    rlock.release()
                    rlock.release()
                elif step == 2:
                    acquire(stats, condition)
                    pending.append(i)
                    condition.notify()
                    condition.release()
                elif step == 3:
                    acquire(stats, semaphore)
                    self.shared["semaphore"] += work(a.work_units, a.io_bytes)
                    semaphore.release()
                else:
                    acquire(stats, bounded)
                    event.set()
                    self.shared["bounded"] += work(a.work_units)
                    bounded.release()
            event.wait(timeout=1.0)

        self.threads(stats_list, a.num_threads, worker)

    # ------------------------------------------------------------------ 5. long-held locks

    def _run_long_held(self, stats_list: List[Stats]) -> None:
        a = self.args
        locks = [threading.Lock() for _ in range(a.num_locks)]
        operations = self.count(a.operations_per_thread)
        holds = [[self.random.uniform(a.hold_min_ms, a.hold_max_ms) * a.scale / 1000.0 for _ in range(operations)]
                 for _ in range(a.num_threads)]

        def worker(stats: Stats, index: int) -> None:
            for i in range(operations):
                lock = locks[(index + i) % len(locks)]
                acquire(stats, lock)
                try:
                    time.sleep(holds[index][i])  # a long hold: I/O under the lock
                finally:
                    lock.release()

        self.threads(stats_list, a.num_threads, worker)

    # ------------------------------------------------------------------ 6. producer-consumer

    def _run_producer_consumer(self, stats_list: List[Stats]) -> None:
        a = self.args
        items = queue.Queue(maxsize=a.queue_size)
        stats_lock = threading.Lock()
        per_producer = self.count(a.items_per_producer)
        total_items = per_producer * a.num_producers
        consumed = [0]
        done = object()

        def producer(stats: Stats, index: int) -> None:
            for i in range(per_producer):
                items.put((index, i, work(a.work_units, a.io_bytes)))
                acquire(stats, stats_lock)
                self.shared["produced"] += 1
                stats_lock.release()

        def consumer(stats: Stats, index: int) -> None:
            while True:
                item = items.get()
                if item is done:
                    return
                acquire(stats, stats_lock)
                consumed[0] += 1
                self.shared["consumed"] += item[2] & 1
                stats_lock.release()

        producer_stats: List[Stats] = []
        consumer_thread = threading.Thread(
            target=self.threads, args=(stats_list, a.num_consumers, consumer), kwargs={"name": "consumer"},
            name="consumers")
        consumer_thread.start()
        self.threads(producer_stats, a.num_producers, producer, name="producer")
        for _ in range(a.num_consumers):
            items.put(done)
        consumer_thread.join()
        stats_list.extend(producer_stats)
        if consumed[0] != total_items:
            raise RuntimeError(f"producer_consumer: {consumed[0]} items consumed of {total_items}")

    # ------------------------------------------------------------------ 7. reader-writer

    def _run_reader_writer(self, stats_list: List[Stats]) -> None:
        a = self.args
        # Readers-preference read-write lock: the first reader in takes the resource, the last
        # one out gives it back (possibly from another thread: a Lock allows that).
        readers_mutex = threading.Lock()
        resource_lock = threading.Lock()
        readers = [0]
        data = {"version": 0}
        operations = self.count(a.operations_per_thread)

        def reader(stats: Stats, index: int) -> None:
            for _ in range(operations):
                acquire(stats, readers_mutex)
                readers[0] += 1
                if readers[0] == 1:
                    acquire(stats, resource_lock)
                readers_mutex.release()
                work(a.work_units, a.io_bytes)  # the read
                self.shared["reads"] += data["version"]
                acquire(stats, readers_mutex)
                readers[0] -= 1
                if readers[0] == 0:
                    resource_lock.release()
                readers_mutex.release()

        def writer(stats: Stats, index: int) -> None:
            for _ in range(max(1, operations // 4)):
                acquire(stats, resource_lock)
                data["version"] += 1
                work(a.work_units, a.io_bytes * 4)
                resource_lock.release()
                time.sleep(0)

        writer_stats: List[Stats] = []
        writers = threading.Thread(target=self.threads, args=(writer_stats, a.num_writers, writer),
                                   kwargs={"name": "writer"}, name="writers")
        writers.start()
        self.threads(stats_list, a.num_readers, reader, name="reader")
        writers.join()
        stats_list.extend(writer_stats)

    # ------------------------------------------------------------------ 8. memory pressure

    def _run_memory_pressure(self, stats_list: List[Stats]) -> None:
        a = self.args
        locks = [threading.Lock() for _ in range(a.num_locks)]
        operations = self.count(a.operations_per_thread)
        size = int(a.allocate_mb_per_op * 1024 * 1024)

        def worker(stats: Stats, index: int) -> None:
            kept = collections.deque(maxlen=4)  # keep a few buffers alive: real memory in use
            for i in range(operations):
                lock = locks[(index + i) % len(locks)]
                acquire(stats, lock)
                try:
                    kept.append(bytearray(b"x") * size)  # written, not lazily mapped
                    garbage = [{"i": i, "n": [j]} for j in range(200)]  # container churn: GC runs
                    self.shared["allocated"] += len(kept[-1]) + len(garbage)
                finally:
                    lock.release()

        self.threads(stats_list, a.num_threads, worker)

    # ------------------------------------------------------------------ 9. deadlock-prone

    def _run_deadlock_prone(self, stats_list: List[Stats]) -> None:
        a = self.args
        locks = [threading.Lock() for _ in range(a.num_locks)]
        operations = self.count(a.operations_per_thread)
        seeds = [self.random.randrange(1 << 30) for _ in range(a.num_threads)]

        def worker(stats: Stats, index: int) -> None:
            rng = random.Random(seeds[index])
            for _ in range(operations):
                pair = rng.sample(locks, 2)
                if a.ordered:
                    pair.sort(key=locks.index)  # one global order: never a deadlock
                held = []
                for lock in pair:
                    if not acquire(stats, lock, a.timeout_s):
                        break  # a timeout: give up this operation, release what is held
                    held.append(lock)
                if len(held) == len(pair):
                    self.shared["transfers"] += work(a.work_units, a.io_bytes)
                for lock in reversed(held):
                    lock.release()
                if len(held) < len(pair):
                    time.sleep(rng.uniform(0, a.timeout_s))  # back off

        self.threads(stats_list, a.num_threads, worker)

    # ------------------------------------------------------------------ 10. async/await

    def _run_async_await(self, stats_list: List[Stats]) -> None:
        a = self.args
        operations = self.count(a.operations_per_thread)

        async def main() -> None:
            async_lock = asyncio.Lock()
            semaphore = asyncio.Semaphore(max(1, a.num_tasks // 10))
            counter_lock = threading.Lock()  # a threading lock used from coroutines, as code does

            async def task(stats: Stats) -> None:
                for i in range(operations):
                    await acquire_async(stats, async_lock)
                    try:
                        await asyncio.sleep(0)  # give the loop to another task while holding it
                        self.shared["async"] += work(a.work_units)
                    finally:
                        async_lock.release()
                    await acquire_async(stats, semaphore)
                    try:
                        acquire(stats, counter_lock)
                        self.shared["async_counter"] += 1
                        counter_lock.release()
                    finally:
                        semaphore.release()

            tasks = []
            for index in range(a.num_tasks):
                stats = Stats()
                stats_list.append(stats)
                tasks.append(asyncio.create_task(task(stats), name=f"stress-task-{index}"))
            await asyncio.gather(*tasks)

        asyncio.run(main())


SCENARIOS = sorted(name[len("_run_"):] for name in vars(LockProfilerStress) if name.startswith("_run_"))


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {text}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario_type", required=True, choices=SCENARIOS)
    parser.add_argument("--num_threads", type=positive_int, default=10)
    parser.add_argument("--num_locks", type=positive_int, default=2)
    parser.add_argument("--operations_per_thread", type=positive_int, default=1000)
    parser.add_argument("--work_units", type=int, default=20, help="loop iterations of work inside a critical section")
    parser.add_argument("--io_bytes", type=int, default=0,
                        help="bytes hashed inside a critical section, releasing the GIL as I/O does (0: none)")
    parser.add_argument("--levels", type=positive_int, default=3, help="lock_hierarchy: nested locks")
    parser.add_argument("--hold_min_ms", type=non_negative_float, default=100.0, help="long_held")
    parser.add_argument("--hold_max_ms", type=non_negative_float, default=500.0, help="long_held")
    parser.add_argument("--num_producers", type=positive_int, default=4)
    parser.add_argument("--num_consumers", type=positive_int, default=4)
    parser.add_argument("--queue_size", type=positive_int, default=100)
    parser.add_argument("--items_per_producer", type=positive_int, default=5000)
    parser.add_argument("--num_readers", type=positive_int, default=30)
    parser.add_argument("--num_writers", type=positive_int, default=5)
    parser.add_argument("--allocate_mb_per_op", type=non_negative_float, default=1.0)
    parser.add_argument("--timeout_s", type=non_negative_float, default=0.05, help="deadlock_prone: acquire timeout")
    parser.add_argument("--ordered", type=boolean, default=False, help="deadlock_prone: one global lock order")
    parser.add_argument("--num_tasks", type=positive_int, default=100, help="async_await: concurrent tasks")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=non_negative_float, default=1.0,
                        help="multiply operation counts and hold times (a smoke run uses a small fraction)")
    parser.add_argument("--profiler", choices=profilers.PROFILERS, default="none")
    parser.add_argument("--profile_dir", help="where the profiler writes its files (lockprof, ddtrace)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.hold_min_ms > args.hold_max_ms:
        parser.error("--hold_min_ms must not exceed --hold_max_ms")
    if args.scenario_type == "deadlock_prone" and args.num_locks < 2:
        parser.error("--num_locks must be at least 2 for deadlock_prone")
    if args.profiler != "none" and not args.profile_dir:
        parser.error(f"--profiler {args.profiler} needs --profile_dir")
    # The profiler starts before the scenario creates its primitives, as in an application.
    session = profilers.start(args.profiler, args.profile_dir)
    try:
        result = LockProfilerStress(args).run()
    finally:
        files = session.stop()
    result.update({
        "profiler": args.profiler,
        "profiler_settings": session.settings,
        "profile_files": files,
        "scenario_file": os.path.abspath(__file__),
        "python": sys.version.split()[0],
        "arguments": {k: v for k, v in vars(args).items() if k not in ("json", "profile_dir")},
    })
    print(f"Scenario: {result['scenario']} (profiler: {args.profiler})")
    print(f"Duration: {result['duration_s']:.2f}s")
    print(f"Total operations: {result['total_operations']}")
    print(f"Operations/sec: {result['operations_per_sec']:.2f}")
    print(f"Avg acquire time: {result['avg_acquire_ms']:.3f}ms")
    print(f"Max acquire time: {result['max_acquire_ms']:.3f}ms")
    print(f"Contentions: {result['contentions']}")
    print(f"Errors: {result['errors']}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
