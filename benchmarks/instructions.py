#!/usr/bin/env python3
"""Instructions per operation, counted by valgrind's callgrind, for native and profiled
primitives (lockprof at its defaults, capture_pct=1), measured in one run.

Instruction counts do not depend on the machine's load, so they compare one commit with another,
or native with profiled, to a few instructions, where timings on a shared machine vary by
percents. Method:

* the measuring process runs `--python` under `valgrind --tool=callgrind`, four times: native
  (never profiling) and profiled (lockprof.Profiler at its defaults, started before the objects
  are made, with no export due during the run), each with --iterations operations per row and
  with zero;
* each run makes every row's object first, then runs the rows' loops one after the other; before
  each loop and after the last it calls os.getppid(), and `--dump-before=getppid` makes callgrind
  write the instructions counted since the previous call, so each loop is counted on its own and
  start-up and exit are never counted;
* a row's count is (its count with N operations - its count with 0) / N: the zero run does the
  same work but the loop, so the call of the loop function and the marker cancel out. Each loop
  runs its statement unrolled 10x on a local `o`, so the `for` costs a tenth of its iteration
  per operation; it is counted (as in measure_lock_overhead.py), and its first row shows how
  much. A loop of one statement per iteration counts the whole iteration (about 200 more);
* N is a multiple of 100, so capture_pct=1 captures exactly one operation in a hundred; each
  row first runs 300 operations that are not counted, past the first captures of a lock, which
  look for its name.

Run it with an interpreter that can import lockprof (the installed package is what is measured);
every row takes about 40 s:
    python benchmarks/instructions.py [--python PATH] [--iterations N] [--rows TEXT] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import glob
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from benchutil import cpu_model, write_json

UNROLL = 10
# Operations per row before any is counted: the first captures of a lock that has no name yet
# look for one (up to 3 times, see _lock.pyx name_lock), which costs far more than a capture.
WARM_UP = 300
MARKER = "getppid"  # the C function os.getppid() calls; nothing else calls it in the child


class Row(NamedTuple):
    name: str
    make: Callable[[], Any]  # the object `o` of stmt, made after profiling started
    stmt: str
    in_coroutine: bool = False  # made and run inside one running coroutine


def primitive_rows() -> List[Row]:
    # The class is looked up when the object is made: while profiling, the patched one.
    rows = []
    for kind in ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition"):
        make = lambda k=kind: getattr(threading, k)()  # noqa: E731
        rows += [Row(f"threading.{kind}: acquire(); release()", make, "o.acquire(); o.release()"),
                 Row(f"threading.{kind}: with", make, "with o:\n    pass")]
    for kind in ("Lock", "Semaphore", "BoundedSemaphore", "Condition"):
        make = lambda k=kind: getattr(asyncio, k)()  # noqa: E731
        rows += [Row(f"asyncio.{kind}: await acquire(); release()", make, "await o.acquire(); o.release()", True),
                 Row(f"asyncio.{kind}: async with", make, "async with o:\n    pass", True)]
    return rows


def creation_rows() -> List[Row]:
    return [Row("threading.Lock()", lambda: threading.Lock, "o()"),
            Row("threading.RLock()", lambda: threading.RLock, "o()"),
            Row("threading.Condition()", lambda: threading.Condition, "o()"),
            Row("threading.Semaphore()", lambda: threading.Semaphore, "o()"),
            Row("asyncio.Lock()", lambda: asyncio.Lock, "o()", True),
            Row("concurrent.futures.Future()", lambda: concurrent.futures.Future, "o()"),
            Row("queue.Queue()", lambda: queue.Queue, "o()"),
            Row("queue.Queue: put(); get()", lambda: queue.Queue(), "o.put(1); o.get()")]


# Every row's count includes a tenth of an iteration of its `for`: this row shows how much.
LOOP = Row("the for loop's share (in every row)", lambda: None, "pass")
ROWS = {row.name: row for row in [LOOP] + primitive_rows() + creation_rows()}


def loop_function(row: Row):
    """loop(iterations, o): row.stmt UNROLL times per iteration, `async def` for a coroutine row.
    The object is not the first argument: lockprof takes such a frame for one of its methods."""
    body = "\n".join(["        " + line for line in row.stmt.split("\n")] * UNROLL)
    header = f"{'async ' if row.in_coroutine else ''}def loop(iterations, o):\n    for _ in range(iterations):\n"
    namespace: Dict[str, Any] = {}
    exec(compile(header + body, f"<{row.name}>", "exec"), namespace)
    return namespace["loop"]


async def made_in_coroutine(make):
    return make()


def child(names: List[str], output: str, iterations: int) -> None:
    """The measured program (run under callgrind): output is a directory to profile into, or ""
    for the native run."""
    if output:
        # Defaults but for upload_interval: no export may fall inside a loop of a long run.
        import lockprof
        lockprof.Profiler(lock_enabled=True, output=os.path.join(output, "lockprof"), upload_interval=3600).start()
        if not type(threading.Lock()).__module__.startswith("lockprof"):
            raise RuntimeError("lockprof is running but threading.Lock() is not profiled")
    event_loop = asyncio.new_event_loop()
    asyncio.set_event_loop(event_loop)  # 3.9's asyncio objects bind the current loop when made
    prepared = []
    for name in names:
        row = ROWS[name]
        obj = event_loop.run_until_complete(made_in_coroutine(row.make)) if row.in_coroutine else row.make()
        prepared.append((row.in_coroutine, loop_function(row), obj))
    run_loops(event_loop, prepared, WARM_UP // UNROLL, mark=False)
    # What start-up allocated is never collected again: the collections the loops cause cost
    # the same whatever the interpreter imported.
    gc.collect()
    gc.freeze()
    run_loops(event_loop, prepared, iterations, mark=True)
    os.getppid()


def run_loops(event_loop, prepared, iterations: int, mark: bool) -> None:
    for in_coroutine, loop, obj in prepared:
        if mark:
            os.getppid()  # callgrind: the count so far ends here
        if in_coroutine:
            event_loop.run_until_complete(loop(iterations, obj))
        else:
            loop(iterations, obj)


def count(python: str, names: List[str], profiled: bool, operations: int, work: str) -> List[int]:
    """Instructions counted in each row's loop, in the order of names."""
    tag = f"{'profiled' if profiled else 'native'}-{operations}"
    output = os.path.join(work, "profiles") if profiled else ""
    program = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
               f"import instructions; instructions.child({names!r}, {output!r}, {operations // UNROLL})")
    return [window["Ir"] for window in windows(python, program, len(names), tag, work)]


def windows(python: str, program: str, expected: int, tag: str, work: str,
            env: Optional[Dict[str, str]] = None, cache: bool = False) -> List[Dict[str, int]]:
    """Run `python -c program` under callgrind in work and return what was counted (all threads)
    between its successive os.getppid() calls: `expected` windows, start-up excluded, each as
    callgrind's totals by event (Ir: instructions; with cache, also the cache misses)."""
    out = os.path.join(work, f"callgrind.{tag}")
    # A fixed hash seed: the same dictionary layouts in every run.
    env = dict(os.environ if env is None else env, PYTHONHASHSEED="0")
    done = subprocess.run(callgrind(out, cache=cache) + [python, "-c", program], env=env, cwd=work,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {tag} run failed ({done.returncode}):\n{done.stdout[-3000:]}")
    return dumped(out, expected)


def callgrind(out: str, marker: str = MARKER, cache: bool = False) -> List[str]:
    """The valgrind command that runs a program under callgrind, writing to out.1, out.2, ... the
    instructions counted before each call of the C function marker, and to out those after the
    last (%p in out: the process id, for a program that forks). Names are not compressed, so
    that callgrind_annotate reads each dump on its own. cache: simulate the caches too, counting
    first-level instruction and data misses (I1mr, D1mr, D1mw), which instructions alone hide."""
    return (["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", f"--dump-before={marker}",
             "--compress-strings=no"] + (["--cache-sim=yes"] if cache else []))


def dumped(out: str, expected: int, marker: str = MARKER) -> List[Dict[str, int]]:
    """The totals by event of the `expected` windows callgrind wrote to out.2 ... (out.1 is
    start-up)."""
    parts = sorted(glob.glob(out + ".*"), key=lambda path: int(path.rsplit(".", 1)[1]))
    if len(parts) != expected + 1:
        raise RuntimeError(f"callgrind wrote {len(parts)} dumps for {expected} windows: "
                           f"is {marker}() in this Python's C library, and called only where marked?")
    return [events(path) for path in parts[1:]]


def events(path: str) -> Dict[str, int]:
    """A callgrind file's totals by event name (its events: and totals: lines)."""
    names: List[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("events:"):
                names = line.split()[1:]
            elif line.startswith("totals:"):
                return dict(zip(names, (int(value) for value in line.split()[1:])))
    raise RuntimeError(f"{path} has no totals: line")


def totals(path: str) -> int:
    """A callgrind file's instructions."""
    return events(path)["Ir"]


def describe(python: str, work: str) -> str:
    """The interpreter's version and lockprof's, checking that it imports lockprof."""
    done = subprocess.run([python, "-c", "import platform, lockprof; print(platform.python_version(), "
                           "lockprof.__version__, lockprof.__file__)"], cwd=work, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        last = (done.stdout.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"instructions.py: {python} cannot import lockprof: {last}")
    version, lockprof_version, where = done.stdout.split()
    return f"Python {version}, lockprof {lockprof_version} ({os.path.dirname(where)})"


def measure(python: str, names: List[str], operations: int, work: str) -> Dict[str, Dict[str, float]]:
    per_op = {}
    for profiled in (False, True):
        loops = count(python, names, profiled, operations, work)
        empty = count(python, names, profiled, 0, work)
        per_op[profiled] = [(n - e) / operations for n, e in zip(loops, empty)]
    return {name: {"native": native, "lockprof": ours, "ratio": ours / native}
            for name, native, ours in zip(names, per_op[False], per_op[True])}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter measured; it must import lockprof (default: this one)")
    parser.add_argument("--iterations", type=int,
                        help="operations per row, a multiple of 100 (default 10000; 100 with --quick)")
    parser.add_argument("--rows", metavar="TEXT", help="only the rows whose name contains TEXT")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 operations per row")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    if args.iterations is None:
        args.iterations = 100 if args.quick else 10_000
    if args.iterations <= 0 or args.iterations % 100:
        parser.error(f"--iterations must be a positive multiple of 100, got {args.iterations}")
    args.names = [name for name in ROWS if name != LOOP.name and (args.rows is None or args.rows in name)]
    if not args.names:
        parser.error(f"--rows {args.rows!r} matches no row; the rows are: {', '.join(list(ROWS)[1:])}")
    args.names.insert(0, LOOP.name)
    if shutil.which(args.python) is None:
        parser.error(f"--python {args.python!r} is not an executable")
    return args


def no_valgrind(program: str) -> bool:
    """True, having said so, when valgrind is not installed."""
    if shutil.which("valgrind") is None:
        print(f"{program}: valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return True
    return False


def main(argv=None) -> int:
    args = parse_args(argv)
    if no_valgrind("instructions.py"):
        return 1
    # The children run in an empty directory: a lockprof/ in the current one would shadow the package.
    with tempfile.TemporaryDirectory(prefix="lockprof-instructions-") as work:
        interpreter = describe(args.python, work)
        results = measure(args.python, args.names, args.iterations, work)
    print(f"instructions per operation (callgrind), {args.iterations} operations per row: {interpreter}")
    print(f"CPU: {cpu_model()}")
    if args.quick:
        print("QUICK RUN: a smoke test, the numbers are not meaningful")
    width = max(len(name) for name in results)
    print(f"  {'operation':<{width}} {'native':>9} {'lockprof':>9} {'ratio':>7}")
    for name, row in results.items():
        print(f"  {name:<{width}} {row['native']:>9,.0f} {row['lockprof']:>9,.0f} {row['ratio']:>6.2f}x")
    if args.json:
        write_json(args.json, {"python": interpreter, "cpu": cpu_model(), "operations": args.iterations,
                               "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
