"""ThreadSanitizer workout (issue 18): every primitive lockprof profiles, used from several
threads at once while profilers start, stop, snapshot and export, at 100% capture (every wait
captured too) and at the default 1% in turn, on free-threaded CPython with the GIL off.
ci/tsan.sh builds lockprof's core with -fsanitize=thread, runs this under the TSan build of
CPython and judges the reports with ci/tsan_reports.py.

The work, for --seconds, in generations of --generation seconds: a conductor thread starts a
Profiler (100% or 1%, alternating), makes the generation's shared primitives under it, and
snapshots it while the workers use them (the exporter thread writes profiles meanwhile); at the
generation's end it stops the Profiler while the workers still hold the old locks. Each worker
makes its own private Lock and RLock in every generation, and runs ci/soak.py's operations on
the shared ones (Lock, a Lock released by other threads, RLock nesting, Condition notify/wait,
the semaphores, Event, Queue, Barrier, lock creation) and the timeouts and error paths below.
Two threads run asyncio event loops of their own (ci/soak.py's tasks), another starts and stops
extra collectors, another snapshots whatever Profiler runs.

    PYTHON_GIL=0 TSAN_OPTIONS=... python ci/tsan_workout.py [--seconds S] [--threads N]
    python ci/tsan_workout.py --selfcheck DIR

--selfcheck races on purpose instead, in a C file laid out as lockprof's own
(DIR/lockprof/_tsan_selfcheck.c) and in the same file elsewhere (DIR/elsewhere/): ci/tsan.sh
checks that the first fails the run and the second is only counted. Exits 1 if a primitive raised or
misbehaved, a thread hung, or the GIL is on; TSan's reports are judged separately.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import faulthandler
import os
import random
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from typing import Callable, List, Optional

import soak  # ci/soak.py, beside this file: its primitives and operations
from lockprof import LockCollector, Profiler


class Generation:
    """The primitives the workers share while one Profiler runs, made under it."""

    def __init__(self, threads: int, capture_pct: float) -> None:
        self.capture_pct = capture_pct
        self.shared = soak.Shared(threads)
        self.operations = soak.operations(self.shared)
        self.held = threading.Lock()  # held by the conductor all generation: waits time out
        self.held.acquire()
        self.ended = False  # set before held is released: then an acquire may succeed
        self.quiet = threading.Condition(threading.Lock())  # never notified: waits time out
        self.empty = threading.Semaphore(0)


class Mine:
    """A worker's private locks, made by the worker under the generation's Profiler."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.lock = threading.Lock()
        self.rlock = threading.RLock()
        self.bounded = threading.BoundedSemaphore(1)


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def raises(error: type, call: Callable[[], object], what: str) -> None:
    try:
        call()
    except error:
        return
    raise AssertionError(f"{what} did not raise {error.__name__}")


def private(mine: Mine) -> None:
    with mine.lock:
        expect(mine.lock.locked(), "a held private Lock is not locked()")
    expect(mine.lock.acquire(), "acquire() of a free private Lock failed")
    mine.lock.release()
    with mine.rlock:
        expect(mine.rlock.acquire(timeout=0.01), "a nested RLock acquire failed")
        with mine.rlock:
            expect(mine.rlock._is_owned(), "a held RLock is not owned")
        mine.rlock.release()
    raises(RuntimeError, mine.lock.release, "release() of an unlocked Lock")
    expect(mine.bounded.acquire(blocking=False), "a free BoundedSemaphore was not acquired")
    mine.bounded.release()
    raises(ValueError, mine.bounded.release, "a BoundedSemaphore released over its limit")


def timeouts(generation: Generation) -> None:
    if generation.held.acquire(timeout=0.0002):
        expect(generation.ended, "a held Lock was acquired")
        generation.held.release()
    with generation.quiet:
        expect(not generation.quiet.wait(0.0002), "an unnotified Condition wait returned True")
        expect(not generation.quiet.wait_for(lambda: False, 0.0002), "wait_for returned True")
    expect(not generation.empty.acquire(timeout=0.0002), "an empty Semaphore was acquired")
    raises(RuntimeError, generation.shared.rlock.release, "release() of an RLock not owned")


class Workout:
    def __init__(self, seconds: float, threads: int, generation_s: float, output: str) -> None:
        self.deadline = time.monotonic() + seconds
        self.threads = threads
        self.generation_s = generation_s
        self.output = output
        self.errors: List[str] = []
        self.operations: List[int] = []  # per worker, at its end
        self.samples = {100.0: 0, 1.0: 0}  # captured samples seen in snapshots, per capture_pct
        self.generations = 0
        self.profiler: Optional[Profiler] = None
        self.generation: Optional[Generation] = None

    def guarded(self, name: str, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as error:  # any exception from a primitive is a failure
                self.errors.append(f"{name}: {error!r}")
        return run

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        mine: Optional[Mine] = None
        done = 0
        while time.monotonic() < self.deadline:
            generation = self.generation
            if mine is None or mine.generation is not generation:
                mine = Mine(generation)  # lock creation in this thread, under the new Profiler
            for _ in range(20):
                rng.choice(generation.operations)(rng)
                private(mine)
            timeouts(generation)
            done += 41
        self.operations.append(done)

    def event_loops(self) -> None:
        while time.monotonic() < self.deadline:  # new primitives in a new loop every time
            asyncio.run(soak.asyncio_work(min(self.deadline, time.monotonic() + 0.5)))

    def reader(self) -> None:
        while time.monotonic() < self.deadline:
            profiler = self.profiler
            if profiler is not None:
                profiler.snapshot()  # races the conductor's snapshots and the exporter
            time.sleep(0.01)

    def run_generations(self) -> None:
        capture = [100.0, 1.0]
        while time.monotonic() < self.deadline or self.generations < 2:  # both rates, however slow
            pct = capture[self.generations % 2]
            profiler = Profiler(capture_pct=pct, wait_sample_interval=1 if pct == 100 else "1ms",
                                output=self.output, upload_interval=self.generation_s / 3)
            profiler.start()
            generation = Generation(self.threads, pct)
            self.profiler, self.generation = profiler, generation
            self.generations += 1
            end = min(self.deadline, time.monotonic() + self.generation_s)
            while time.monotonic() < end:
                time.sleep(0.02)
                self.samples[pct] += len(profiler.snapshot().samples)
                if self.generations < 2:  # both capture rates run, however slow the machine
                    self.deadline = max(self.deadline, time.monotonic() + 30)
            generation.ended = True
            generation.held.release()  # with waiters: the contended release
            profiler.stop(flush=self.generations % 3 == 0)  # the workers still use its locks

    def run(self) -> bool:
        side = [("reader", self.reader), ("asyncio-1", self.event_loops), ("asyncio-2", self.event_loops)]
        extra = [LockCollector(capture_pct=100), LockCollector(capture_pct=50)]
        toggles: List[int] = []
        side.append(("toggler", lambda: soak.toggle(extra, self.deadline, toggles)))
        conductor = threading.Thread(target=self.guarded("conductor", self.run_generations), name="conductor")
        conductor.start()
        while self.generation is None and conductor.is_alive():  # the first exists before any worker
            time.sleep(0.001)
        threads = [threading.Thread(target=self.guarded(f"worker-{n}", lambda n=n: self.worker(n)),
                                    name=f"worker-{n}") for n in range(self.threads)]
        threads += [threading.Thread(target=self.guarded(name, body), name=name) for name, body in side]
        for thread in threads:
            thread.start()
        threads.append(conductor)
        limit = self.deadline + 120
        for thread in threads:
            thread.join(max(1.0, limit - time.monotonic()))
        hung = [thread.name for thread in threads if thread.is_alive()]
        if hung:
            faulthandler.dump_traceback(all_threads=True)
        for collector in extra:
            collector.stop()
        gil = getattr(sys, "_is_gil_enabled", lambda: True)()
        checks = [
            ("the GIL is off", not gil, "sys._is_gil_enabled() is " + str(gil)),
            ("threads finished", not hung, f"still running: {hung}" if hung else f"{len(threads)} threads"),
            ("no error in a primitive", not self.errors, "; ".join(self.errors[:5]) or "none"),
            ("generations of both capture rates", self.generations >= 2, f"{self.generations} generations"),
            ("captured samples at 100%", self.samples[100.0] > 0, f"{self.samples} samples by capture_pct"),
            ("collectors toggled", len(toggles) > 0, f"{len(toggles)} start/stop pairs"),
        ]
        print(f"{sum(self.operations)} worker operations")
        for name, ok, detail in checks:
            print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        return all(ok for _, ok, _ in checks)


RACY_C = """
/* The self-check's deliberate data race, compiled as if it were lockprof's own code. The two
   callers meet here first (relaxed atomics: no ordering for TSan), so both are inside at once. */
static int arrived;
volatile long counter;
void racy_increment(long n) {
    __atomic_fetch_add(&arrived, 1, __ATOMIC_RELAXED);
    for (long spin = 0; spin < 100000000 && __atomic_load_n(&arrived, __ATOMIC_RELAXED) < 2; spin++) {}
    for (long i = 0; i < n; i++) counter++;
}
"""


def selfcheck(directory: str) -> None:
    """The race of RACY_C twice from two threads: built as lockprof's (DIR/lockprof/) and as
    someone else's (DIR/elsewhere/), each its own library with its own globals."""
    calls = []
    for owner in ("lockprof", "elsewhere"):
        os.makedirs(os.path.join(directory, owner), exist_ok=True)
        source = os.path.join(directory, owner, "_tsan_selfcheck.c")
        library = os.path.join(directory, owner, "_tsan_selfcheck.so")
        with open(source, "w") as f:
            f.write(RACY_C)
        compiler = sysconfig.get_config_var("CC").split()
        subprocess.run(compiler + ["-fsanitize=thread", "-g", "-O1", "-shared", "-fPIC", "-o", library, source],
                       check=True)
        calls.append(library)

    def race() -> None:
        for library in calls:
            racy = ctypes.CDLL(library).racy_increment  # a function object per thread: nothing shared
            racy.argtypes = [ctypes.c_long]
            racy(100_000)

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"self-check: raced in {directory}/lockprof/_tsan_selfcheck.c and in {directory}/elsewhere/")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to run (default 20)")
    parser.add_argument("--threads", type=int, default=4, help="worker threads (default 4)")
    parser.add_argument("--generation", type=float, default=0.5,
                        help="seconds each Profiler runs before the next replaces it (default 0.5)")
    parser.add_argument("--selfcheck", metavar="DIR", help="race on purpose in DIR instead (see above)")
    args = parser.parse_args(argv)
    if args.selfcheck:
        selfcheck(args.selfcheck)
        return 0
    if args.seconds <= 0 or args.threads < 1 or args.generation <= 0:
        parser.error("--seconds, --threads and --generation must be positive")
    faulthandler.dump_traceback_later(args.seconds + 600, exit=True)  # a hang anywhere ends it
    print(f"tsan workout: {args.seconds:g} s, {args.threads} workers, a Profiler every "
          f"{args.generation:g} s, Python {sys.version.split()[0]}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        ok = Workout(args.seconds, args.threads, args.generation, os.path.join(scratch, "tsan")).run()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
