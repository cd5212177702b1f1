"""pytest-benchmark suite for lockprof's hot paths.

    cd /tmp && pytest /path/to/lockprof/benchmarks --benchmark-only

Nothing here asserts a timing: the published overhead figures come from measure_lock_overhead.py
(docs/overhead.md). Each lock benchmark runs its statement 10 times per call (one call = 10
acquire/release pairs, 10 with-blocks or 10 creations), so the call overhead of the benchmark
loop stays small; divide the reported times by 10 for one operation. Compare the rows of one
group (native against capture_pct 0, 1 and 100).
"""

from __future__ import annotations

import sys
import threading

import pytest

from measure_lock_overhead import frame_depth  # benchmarks/ is on sys.path under pytest
from lockprof import pprof
from lockprof.profile import Frame, LockSample, Snapshot
from lockprof.renderers.pprof import PprofRenderer

# The native factories, as threading held them at collection (conftest.py checks they are back
# after every test).
NATIVE_LOCK = threading.Lock
NATIVE_RLOCK = threading.RLock

UNROLL = 10
# __name__ of the globals the benchmarked statements run with (the module a lock is made from).
MODULE = "bench_lock_ops"
EXCLUDED_MODULE = "bench_lock_excluded"

PAIR = "l.acquire(); l.release()"
WITH = "with l:\n        pass"
CREATE = "l()"

# The seeds' rows: native, capture_pct 0/1/100 (the collector running), a lock made while
# profiling and used after stop(), a lock made after stop().
VARIANTS = {"native": None, "pct0": 0.0, "pct1": 1.0, "pct100": 100.0, "after_stop": 1.0, "made_after_stop": 1.0}


def unrolled(stmt: str, obj, module: str = MODULE):
    """A function running `stmt` UNROLL times with `l` bound to obj (a fast local)."""
    body = "\n".join("    " + stmt for _ in range(UNROLL))
    source = f"def op(l=obj):\n{body}\n"
    namespace = {"__name__": module, "obj": obj}
    exec(compile(source, f"<{module}>", "exec"), namespace)
    return namespace["op"]


def make_lock(kind: str, variant: str, start):
    """(lock, collector) for a variant, made through threading.<kind> with start(capture_pct)
    returning a running collector (lockprof's or another profiler's); native: collector None.
    Collectors of the capture_pct variants keep running until the test's teardown."""
    native_factory = NATIVE_LOCK if kind == "Lock" else NATIVE_RLOCK
    if variant == "native":
        return native_factory(), None
    collector = start(VARIANTS[variant])
    lock = getattr(threading, kind)()
    if variant in ("after_stop", "made_after_stop"):
        collector.stop()
        if variant == "made_after_stop":
            lock = getattr(threading, kind)()
            assert type(lock) is type(native_factory())
    return lock, collector


def captured_depths(snapshot: Snapshot) -> dict:
    """{stack depth (stored frames plus omitted ones): captured acquires} of a snapshot."""
    depths: dict = {}
    for sample in snapshot.samples:
        frames, omitted = sample.frames, 0
        if frames and frames[-1].name.endswith("frames omitted>"):
            omitted = int(frames[-1].name[1:].split()[0])
            frames = frames[:-1]
        depth = len(frames) + omitted
        depths[depth] = depths.get(depth, 0) + sample.acquire_count
    return depths


# ------------------------------------------------------------------------ lock operations


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("form", ["pair", "with"])
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_lock_operation(benchmark, profiling, kind, form, variant):
    """10 x `l.acquire(); l.release()` or 10 x `with l: pass`, at pytest's own stack depth
    (deep: a captured operation walks every frame, see extra_info captured_stack_depths)."""
    lock, collector = make_lock(kind, variant, lambda pct: profiling(capture_pct=pct))
    if variant in CAPTURING:
        assert type(lock).__name__ == f"Profiled{kind}"
    op = unrolled(PAIR if form == "pair" else WITH, lock)
    benchmark.group = f"{kind} {form} x{UNROLL}"
    benchmark.extra_info["operations_per_call"] = UNROLL
    benchmark(op)
    if variant == "pct100":
        benchmark.extra_info["captured_stack_depths"] = captured_depths(collector.snapshot())


CAPTURING = ("pct0", "pct1", "pct100", "after_stop")


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "native"])
@pytest.mark.parametrize("form", ["pair", "with"])
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_ddtrace_lock_operation(benchmark, ddtrace_collectors, kind, form, variant):
    """The same statements on Datadog's lock collector (ddtrace, benchmarks/requirements.txt),
    in the same groups as lockprof's rows. Skipped when ddtrace is not installed."""
    lock, _ = make_lock(kind, variant, lambda pct: ddtrace_collectors(kind, pct))
    if variant in CAPTURING:
        assert type(lock).__module__.startswith("ddtrace.")
    op = unrolled(PAIR if form == "pair" else WITH, lock)
    benchmark.group = f"{kind} {form} x{UNROLL}"
    benchmark.extra_info["operations_per_call"] = UNROLL
    benchmark(op)


# ------------------------------------------------------------------------ creation


@pytest.mark.parametrize("variant", ["native", "profiled", "excluded"])
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_lock_creation(benchmark, profiling, kind, variant):
    """10 x threading.Lock() / threading.RLock(): native, while profiling (capture_pct=1), and
    while profiling from an excluded module (the factory runs, returns a native lock)."""
    native_factory = NATIVE_LOCK if kind == "Lock" else NATIVE_RLOCK
    if variant == "native":
        factory, module = native_factory, MODULE
    else:
        profiling(capture_pct=1.0, exclude_modules=[EXCLUDED_MODULE])
        factory = getattr(threading, kind)
        module = EXCLUDED_MODULE if variant == "excluded" else MODULE
    op = unrolled(CREATE, factory, module)
    made = unrolled("return l()", factory, module)()
    expected = f"Profiled{kind}" if variant == "profiled" else type(native_factory()).__name__
    assert type(made).__name__ == expected
    benchmark.group = f"{kind}() creation x{UNROLL}"
    benchmark.extra_info["operations_per_call"] = UNROLL
    benchmark(op)


# ------------------------------------------------------------------------ captured at depth 10

DEPTH = 10


def at_depth(depth: int, leaf):
    """A function that calls `leaf` from a frame at exactly `depth` (the thread's bottom frame
    counts 1). The padding is chosen at the first call, from where that call is made, so it
    must always be called from the same place (benchmark.pedantic's runner)."""
    chain = [leaf]
    for _ in range(depth):
        chain.append(_pad(chain[-1]))
    chosen = None

    def target():
        nonlocal chosen
        if chosen is None:
            here = frame_depth(sys._getframe())
            k = depth - here - 1  # target at `here`, chain[k] at here + 1, leaf at here + 1 + k
            if k < 0:
                raise RuntimeError(f"already {here} frames deep, cannot run at depth {depth}")
            chosen = chain[k]
        chosen()

    return target


def _pad(inner):
    def pad():
        inner()

    return pad


class _ShallowThread(threading.Thread):
    """Runs fn() in a new thread, whose stack starts almost empty (3 frames of threading)."""

    def __init__(self, fn):
        super().__init__(name="bench-shallow")
        self.fn = fn
        self.error = None

    def run(self):
        try:
            self.fn()
        except BaseException as error:  # re-raised in the test's thread
            self.error = error


@pytest.mark.parametrize("variant", ["native", "pct100"])
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_captured_pair_at_depth_10(benchmark, profiling, kind, variant):
    """10 x `l.acquire(); l.release()` made from a 10-frame stack, every operation captured
    (pct100) or native. Runs in a fresh thread, whose stack is shallow, unlike pytest's."""
    lock, collector = make_lock(kind, variant, lambda pct: profiling(capture_pct=pct))
    leaf = unrolled(PAIR, lock)
    target = at_depth(DEPTH, leaf)
    benchmark.group = f"{kind} pair x{UNROLL} from a {DEPTH}-frame stack"
    benchmark.extra_info["operations_per_call"] = UNROLL
    thread = _ShallowThread(
        lambda: benchmark.pedantic(target, rounds=200, iterations=50, warmup_rounds=1))
    thread.start()
    thread.join()
    if thread.error is not None:
        raise thread.error
    if collector is not None:
        # The stack the profiler recorded (a check of the setup, not of a timing).
        depths = captured_depths(collector.snapshot())
        benchmark.extra_info["captured_stack_depths"] = depths
        # pedantic() makes one last call outside its timing loop, one frame higher: ignore it.
        main_depth = max(depths, key=depths.get)
        assert main_depth == DEPTH, depths


# ------------------------------------------------------------------------ snapshot and export

SNAPSHOT_KEYS = 2000


def test_snapshot_2000_keys(benchmark, profiling):
    """collector.snapshot() over a table of 2000 keys: 2000 locks with one captured acquire and
    release each (at pytest's stack depth), refilled before every round outside the timing. The
    locks are made at 2000 sites, module variables, since the locks of one site share a key."""
    collector = profiling(capture_pct=100.0)
    namespace = {"threading": threading}
    source = "".join(f"lock_{i} = threading.Lock()\n" for i in range(SNAPSHOT_KEYS))
    exec(compile(source, "<2000 lock sites>", "exec"), namespace)
    locks = [namespace[f"lock_{i}"] for i in range(SNAPSHOT_KEYS)]

    def fill():
        for lock in locks:
            lock.acquire()
            lock.release()
        assert collector.table_size[0] == SNAPSHOT_KEYS

    fill()
    first = collector.snapshot()  # this one also resolves the lock names: not what is measured
    benchmark.extra_info["keys"] = SNAPSHOT_KEYS
    benchmark.extra_info["frames_per_key"] = len(first.samples[0].frames)
    snapshot = benchmark.pedantic(collector.snapshot, setup=fill, rounds=30, warmup_rounds=2)
    assert len(snapshot.samples) == SNAPSHOT_KEYS


ENCODE_SAMPLES = 10_000


def large_snapshot(n_samples: int = ENCODE_SAMPLES) -> Snapshot:
    """A synthetic snapshot like a busy service's: 10k samples over 300 locks, 32 threads, 4
    tasks, stacks of 8 to 40 frames drawn from 1000 functions in 200 files."""
    functions = [
        Frame(f"pkg.module_{i % 200}.Class{i % 37}.method_{i}", f"/srv/app/pkg/module_{i % 200}.py", 10 + i % 900)
        for i in range(1000)
    ]
    samples = []
    for i in range(n_samples):
        depth = 8 + (i * 7) % 33
        frames = tuple(functions[(i * 31 + j * 17) % len(functions)] for j in range(depth))
        lock = i % 300
        task = i % 5
        samples.append(LockSample(
            lock_name=f"pkg/module_{lock % 200}.py:{lock}:lock_{lock}",
            lock_kind="lock" if i % 3 else "rlock",
            frames=frames,
            thread_id=140000000000 + (i % 32) * 4096,
            thread_native_id=1000 + i % 32,
            thread_name=f"worker-{i % 32}",
            task_id=None if task == 0 else 94000000 + task,
            task_name=None if task == 0 else f"Task-{task}",
            acquire_count=100 + i,
            acquire_wait_ns=1000 * i,
            release_count=100 + i,
            release_hold_ns=2000 * i,
        ))
    return Snapshot(samples, 1_700_000_000_000_000_000, 1_700_000_060_000_000_000, 1.0,
                    dropped_events=3)


def test_pprof_encode_10k_samples(benchmark):
    """lockprof's PprofRenderer().render() of a 10k-sample snapshot (gzip included)."""
    snapshot = large_snapshot()
    benchmark.extra_info["samples"] = len(snapshot.samples)
    benchmark.extra_info["frames"] = sum(len(s.frames) for s in snapshot.samples)
    data = benchmark.pedantic(PprofRenderer().render, args=(snapshot,), rounds=5, warmup_rounds=1)
    benchmark.extra_info["bytes"] = len(data)
    assert len(pprof.decode(data).samples) == ENCODE_SAMPLES


def test_export_10k_samples(benchmark, tmp_path):
    """Writing a 10k-sample profile as Profiler.export() does: encode, then write_atomic()
    (temporary file, fsync, rename)."""
    snapshot = large_snapshot()
    path = str(tmp_path / "large.pprof")
    benchmark.extra_info["samples"] = len(snapshot.samples)
    benchmark.pedantic(lambda: pprof.write_atomic(path, PprofRenderer().render(snapshot)), rounds=5, warmup_rounds=1)
    with open(path, "rb") as f:
        assert len(pprof.decode(f.read()).samples) == ENCODE_SAMPLES
