"""The compiled core through the collector: sampling, events, stacks, labels, the bounded
table and module exclusion."""

from __future__ import annotations

import _thread
import asyncio
import math
import os
import subprocess
import sys
import threading
import time
import types

import pytest

from lockprof import LockCollector
from lockprof._lock import ProfiledLock, ProfiledRLock
from lockprof._sampler import CaptureSampler

ORIGINAL_CONDITION = threading.Condition
# The native lock types.
NATIVE_LOCK_TYPE = _thread.LockType
NATIVE_RLOCK_TYPE = _thread.RLock

from lockhelpers import JOIN, MS, hold_in_thread, lineno, samples_of, totals_of


# ------------------------------------------------------------------ CaptureSampler


@pytest.mark.parametrize("pct, expected", [(0, 0), (0.0, 0), (1, 30), (1.0, 30), (100, 3000), (50, 1500), (10, 300)])
def test_sampler_exact_counts(pct, expected):
    sampler = CaptureSampler(pct)
    assert sum(bool(sampler.capture()) for _ in range(3000)) == expected


def test_sampler_33_3_exact():
    sampler = CaptureSampler(33.3)
    assert sum(bool(sampler.capture()) for _ in range(3000)) == 999


def test_sampler_evenly_spaced():
    sampler = CaptureSampler(1)
    captured = [i for i in range(1, 501) if sampler.capture()]
    assert captured == [100, 200, 300, 400, 500]
    sampler = CaptureSampler(25)
    assert [sampler.capture() for _ in range(8)] == [False, False, False, True] * 2


def test_sampler_33_3_spacing():
    # Each capture is 3 or 4 checks after the previous one, never more, never fewer.
    sampler = CaptureSampler(33.3)
    captured = [i for i in range(3000) if sampler.capture()]
    gaps = {b - a for a, b in zip(captured, captured[1:])}
    assert gaps <= {3, 4}
    assert abs(len(captured) - 999) <= 1


@pytest.mark.parametrize("bad", [-1, -0.001, 100.0001, 101, 1e308, math.nan, math.inf, -math.inf])
def test_sampler_bad_values(bad):
    with pytest.raises(ValueError, match="capture_pct"):
        CaptureSampler(bad)
    with pytest.raises(ValueError, match="capture_pct"):
        LockCollector(capture_pct=bad)


@pytest.mark.parametrize("bad", [True, False, "50", None, [50], b"5", 1j])
def test_sampler_bad_types(bad):
    with pytest.raises(TypeError, match="capture_pct"):
        CaptureSampler(bad)
    with pytest.raises(TypeError, match="capture_pct"):
        LockCollector(capture_pct=bad)


def test_sampler_repr_and_value():
    assert CaptureSampler(12.5).capture_pct == 12.5
    assert "12.5" in repr(CaptureSampler(12.5))


# ------------------------------------------------------------------ events


def test_captured_acquire_records_wait_and_hold(collector):
    lock = threading.Lock()
    with lock:
        time.sleep(0.05)
    holder = hold_in_thread(lock, 0.1)
    with lock:  # waits for the holder
        pass
    holder.join(JOIN)
    snap = collector.snapshot()
    acquires, wait_ns, releases, hold_ns = totals_of(snap, lock)
    assert acquires == 3 and releases == 3
    assert hold_ns >= 50 * MS + 50 * MS  # the sleep in main plus (at least half of) the holder's
    assert wait_ns >= 50 * MS  # the main thread waited for the 100 ms holder
    main_samples = [s for s in samples_of(snap, lock) if s.thread_id == threading.get_ident()]
    assert sum(s.acquire_count for s in main_samples) == 2
    assert all(s.release_hold_ns >= 0 and s.acquire_wait_ns >= 0 for s in snap.samples)


def test_hold_of_sleep_is_at_least_50ms(collector):
    lock = threading.RLock()
    with lock:
        time.sleep(0.05)
    acquires, _, releases, hold_ns = totals_of(collector.snapshot(), lock)
    assert (acquires, releases) == (1, 1)
    assert hold_ns >= 50 * MS
    assert hold_ns < 60 * 1000 * MS  # sanity: not a garbage value


def test_hold_only_for_captured_acquires(make_collector):
    collector = make_collector(capture_pct=50)
    lock = threading.Lock()
    # With 50 % the sampler captures every second check, starting with the second one: the
    # uncaptured acquires (1st, 3rd, ...) hold the lock long, the captured ones not at all.
    for i in range(6):
        with lock:
            if i % 2 == 0:
                time.sleep(0.05)
    acquires, _, releases, hold_ns = totals_of(collector.snapshot(), lock)
    assert acquires == 6 and releases == 6  # 3 captured of each, upscaled x2
    # Were the uncaptured holds counted, there would be >= 150 ms (x2) of hold.
    assert hold_ns < 250 * MS


def test_uncaptured_acquire_captured_release_not_counted(make_collector):
    collector = make_collector(capture_pct=50)
    lock = threading.Lock()
    lock.acquire()  # check 1: not captured
    lock.release()
    assert collector.snapshot().samples == []
    lock.acquire()  # check 2: captured
    lock.release()
    assert totals_of(collector.snapshot(), lock)[0] == 2


def test_rlock_nested_records_one_acquire_one_hold(collector):
    lock = threading.RLock()
    with lock:
        with lock:
            with lock:
                pass
        snap_inside = collector.snapshot()
        time.sleep(0.02)
    # Inside, the outer acquire is counted and its hold is still running.
    assert totals_of(snap_inside, lock)[0] == 1
    assert totals_of(snap_inside, lock)[2] == 0
    acquires, _, releases, hold_ns = totals_of(collector.snapshot(), lock)
    assert (acquires, releases) == (0, 1)
    assert hold_ns >= 20 * MS


def test_rlock_nested_explicit_calls(collector):
    lock = threading.RLock()
    assert lock.acquire()
    assert lock.acquire(False)
    assert lock.acquire(timeout=1)
    lock.release()
    lock.release()
    time.sleep(0.02)
    lock.release()
    acquires, _, releases, hold_ns = totals_of(collector.snapshot(), lock)
    assert (acquires, releases) == (1, 1)
    assert hold_ns >= 20 * MS


def test_condition_wait_ends_and_restarts_rlock_hold(collector):
    lock = threading.RLock()
    cond = threading.Condition(lock)
    with cond:
        with cond:
            cond.wait(0.01)  # _release_save ends the hold, _acquire_restore starts another
    acquires, _, releases, _ = totals_of(collector.snapshot(), lock)
    assert (acquires, releases) == (2, 2)


def test_failed_nonblocking_acquire_records_nothing(collector):
    for factory in (threading.Lock, threading.RLock):
        lock = factory()
        done = threading.Event()
        t = hold_in_thread(lock, until=done)
        collector.snapshot()  # forget the holder's acquire
        assert lock.acquire(False) is False
        assert lock.acquire(True, 0) is False
        assert lock.acquire(blocking=False) is False
        assert lock.acquire(timeout=0.0) is False
        assert lock.acquire(**{"".join(("time", "out")): 0}) is False  # a name not interned
        snap = collector.snapshot()
        assert samples_of(snap, lock) == [] and snap.lock_totals == [] and snap.long_waits == []
        done.set()
        t.join(JOIN)
        snap = collector.snapshot()
        acquires, wait_ns, releases, hold_ns = totals_of(snap, lock)
        assert (acquires, releases) == (0, 1)  # only the holder's release
        assert hold_ns > 0 and wait_ns == 0
        for s in snap.samples:
            assert s.release_hold_ns >= 0 and s.acquire_wait_ns >= 0


def test_bad_arguments_record_nothing(collector):
    lock = threading.Lock()
    for call in (lambda: lock.acquire(timeout=-2), lambda: lock.acquire(False, 1),
                 lambda: lock.acquire(foo=1)):
        with pytest.raises((ValueError, TypeError)):
            call()
    with pytest.raises(RuntimeError):
        lock.release()
    assert samples_of(collector.snapshot(), lock) == []


# ------------------------------------------------------------------ stacks


def _acquire_here(lock):
    line = lineno() + 1
    with lock:
        pass
    return line


def _calls_acquire_here(lock):
    line = lineno() + 1
    return line, _acquire_here(lock)


def test_stack_leaf_first_with_lines(collector):
    lock = threading.Lock()
    outer_line, inner_line = _calls_acquire_here(lock)
    test_line = lineno() - 1
    (sample,) = samples_of(collector.snapshot(), lock)
    frames = sample.frames
    assert frames[0].name.split(".")[-1] == "_acquire_here"
    assert frames[0].line == inner_line
    assert frames[0].filename == __file__
    assert frames[1].name.split(".")[-1] == "_calls_acquire_here"
    assert frames[1].line == outer_line
    assert frames[2].name.split(".")[-1] == "test_stack_leaf_first_with_lines"
    assert frames[2].line == test_line
    assert not any("omitted" in f.name for f in frames)  # 64 frames is enough here


def test_stack_explicit_acquire_line(collector):
    lock = threading.RLock()
    line = lineno() + 1
    lock.acquire()
    lock.release()
    (sample,) = samples_of(collector.snapshot(), lock)
    assert sample.frames[0].line == line
    assert sample.frames[0].name.split(".")[-1] == "test_stack_explicit_acquire_line"


def _depth() -> int:
    """How many Python frames the caller's stack has, the caller's own included."""
    frame, n = sys._getframe(1), 0
    while frame is not None:
        n += 1
        frame = frame.f_back
    return n


def _deep(lock, n, out):
    if n == 0:
        out["depth"] = _depth()
        out["line"] = lineno() + 1
        lock.acquire()
        lock.release()
        return
    _deep(lock, n - 1, out)


def test_max_frames_truncates_with_omitted_frame(make_collector):
    collector = make_collector(capture_pct=100, max_frames=3)
    lock = threading.Lock()
    out = {}
    _deep(lock, 10, out)
    (sample,) = samples_of(collector.snapshot(), lock)
    assert len(sample.frames) == 4
    assert [f.name.split(".")[-1] for f in sample.frames[:3]] == ["_deep"] * 3
    assert sample.frames[0].line == out["line"]
    omitted = out["depth"] - 3
    assert omitted > 10
    assert sample.frames[3].name == f"<{omitted} frames omitted>"


def test_max_frames_exact_depth_no_synthetic_frame(make_collector):
    collector = make_collector(capture_pct=100, max_frames=512)
    lock = threading.Lock()
    out = {}
    _deep(lock, 5, out)
    (sample,) = samples_of(collector.snapshot(), lock)
    assert len(sample.frames) == out["depth"]
    assert not any("omitted" in f.name for f in sample.frames)



# ------------------------------------------------------------------ thread and task labels


def test_thread_labels(collector):
    lock = threading.Lock()
    seen = {}

    def worker():
        seen["ident"] = threading.get_ident()
        seen["native"] = threading.get_native_id()
        with lock:
            pass

    t = threading.Thread(target=worker, name="lockprof-named-worker")
    t.start()
    t.join(JOIN)
    with lock:
        pass
    samples = samples_of(collector.snapshot(), lock)
    by_thread = {s.thread_id: s for s in samples}
    assert set(by_thread) == {seen["ident"], threading.get_ident()}
    worker_sample = by_thread[seen["ident"]]
    assert worker_sample.thread_native_id == seen["native"]
    assert worker_sample.thread_name == "lockprof-named-worker"  # the thread is gone by now
    main_sample = by_thread[threading.get_ident()]
    assert main_sample.thread_native_id == threading.get_native_id()
    assert main_sample.thread_name == threading.current_thread().name
    assert main_sample.task_id is None and main_sample.task_name is None


def test_asyncio_task_labels(collector):
    lock = threading.Lock()
    seen = {}

    async def job():
        task = asyncio.current_task()
        seen["id"], seen["name"] = id(task), task.get_name()
        with lock:
            pass

    async def main():
        await asyncio.create_task(job(), name="lockprof-task")
        # a loop callback runs outside any task
        done = asyncio.get_running_loop().create_future()

        def callback():
            with lock:
                pass
            done.set_result(None)

        asyncio.get_running_loop().call_soon(callback)
        await done

    asyncio.run(main())
    with lock:  # outside the event loop
        pass
    samples = samples_of(collector.snapshot(), lock)
    in_task = [s for s in samples if s.task_id is not None]
    assert len(in_task) == 1
    assert in_task[0].task_id == seen["id"]
    assert in_task[0].task_name == "lockprof-task" == seen["name"]
    outside = [s for s in samples if s.task_id is None]
    assert len(outside) == 2
    assert all(s.task_name is None for s in outside)
    assert sum(s.acquire_count for s in samples) == 3


# ------------------------------------------------------------------ upscaling


def test_upscaling_capture_10_pct(make_collector):
    collector = make_collector(capture_pct=10)
    lock = threading.Lock()
    for _ in range(1000):
        with lock:
            pass
    snap = collector.snapshot()
    acquires, _, releases, _ = totals_of(snap, lock)
    assert acquires == 1000
    assert releases == 1000
    assert snap.capture_pct == 10


@pytest.mark.parametrize("pct, iterations", [(1, 5000), (10, 1000), (50, 1000)])
def test_upscaling_rlock_nested(make_collector, pct, iterations):
    collector = make_collector(capture_pct=pct)
    lock = threading.RLock()
    for _ in range(iterations):
        with lock:
            with lock:  # a re-entrant acquire, as in a method calling another locked method
                pass
    acquires, _, releases, _ = totals_of(collector.snapshot(), lock)
    # One acquire per outermost acquire, upscaled: an unbiased sampler gives `iterations`.
    assert 0.9 * iterations <= acquires <= 1.1 * iterations
    assert 0.9 * iterations <= releases <= 1.1 * iterations


def test_capture_0_records_nothing(make_collector):
    collector = make_collector(capture_pct=0)
    lock = threading.Lock()
    for _ in range(100):
        with lock:
            pass
    assert collector.snapshot().samples == []


# ------------------------------------------------------------------ the bounded table


def _distinct_acquirers(n, tag):
    """n functions with distinct code objects (so distinct stacks) that acquire+release."""
    fns = []
    for i in range(n):
        code = compile("def f(lock):\n    lock.acquire()\n    lock.release()\n", f"<{tag}{i}>", "exec")
        ns = {}
        exec(code, ns)
        fns.append(ns["f"])
    return fns


def test_bounded_table(make_collector):
    collector = make_collector(capture_pct=100, max_entries=8)
    lock = threading.Lock()
    for f in _distinct_acquirers(50, "first"):
        f(lock)
    assert collector.table_size == (8, 8)
    snap = collector.snapshot()
    assert len(snap.samples) <= 8
    assert len({(s.lock_name, s.frames, s.thread_id, s.task_id) for s in snap.samples}) == len(snap.samples)
    assert snap.dropped_events == 42
    assert sum(s.acquire_count for s in snap.samples) == 8
    assert sum(s.release_count for s in snap.samples) == 8
    # After the snapshot the idle keys are evicted: new keys fit again.
    for f in _distinct_acquirers(5, "second"):
        f(lock)
    snap = collector.snapshot()
    assert snap.dropped_events == 0
    assert sorted(s.frames[0].filename for s in snap.samples) == [f"<second{i}>" for i in range(5)]
    assert sum(s.release_count for s in snap.samples) == 5


def test_pending_hold_survives_snapshot(make_collector):
    collector = make_collector(capture_pct=100, max_entries=1)
    lock = threading.Lock()
    other = threading.Lock()
    lock.acquire()
    first = collector.snapshot()
    assert totals_of(first, lock)[:1] == (1,) and totals_of(first, lock)[2] == 0
    time.sleep(0.01)
    # The pending entry is kept (table stays full): another key is dropped, not the pending one.
    other.acquire()
    other.release()
    lock.release()
    second = collector.snapshot()
    acquires, _, releases, hold_ns = totals_of(second, lock)
    assert (acquires, releases) == (0, 1)
    assert hold_ns >= 10 * MS
    assert second.dropped_events == 1
    (sample,) = samples_of(second, lock)
    assert sample.frames == samples_of(first, lock)[0].frames


def test_max_entries_validated():
    for bad in (0, -1, 10**400):
        with pytest.raises(ValueError, match="max_entries must be an integer from 1 to"):
            LockCollector(max_entries=bad)
    for bad in (True, 1.5, "8"):
        with pytest.raises(TypeError, match="max_entries must be an integer from 1 to"):
            LockCollector(max_entries=bad)


# ------------------------------------------------------------------ which locks are profiled


def _module_with_locks(name):
    module = types.ModuleType(name)
    exec(compile("import threading\nLOCK = threading.Lock()\nRLOCK = threading.RLock()\n",
                 f"<{name}>", "exec"), module.__dict__)
    return module


def test_excluded_modules(make_collector):
    make_collector(capture_pct=100, exclude_modules=["excludedpkg"])
    for name in ("excludedpkg", "excludedpkg.sub", "excludedpkg.sub.deeper"):
        module = _module_with_locks(name)
        assert type(module.LOCK) is NATIVE_LOCK_TYPE, name
        assert type(module.RLOCK) is NATIVE_RLOCK_TYPE, name
    for name in ("excludedpkgx", "excluded", "other.excludedpkg"):
        module = _module_with_locks(name)
        assert type(module.LOCK) is ProfiledLock, name
        assert type(module.RLOCK) is ProfiledRLock, name


def test_lockprof_itself_is_excluded(collector):
    module = _module_with_locks("lockprof.fake_submodule")
    assert type(module.LOCK) is NATIVE_LOCK_TYPE


def test_threading_internal_locks_are_native(collector):
    cond = threading.Condition()  # the program's: its own lock is profiled as the Condition
    assert type(cond._lock) is ProfiledRLock and cond._lock.lock_info.kind == "condition"
    event = threading.Event()
    assert type(event._cond) is ORIGINAL_CONDITION and type(event._cond._lock) is NATIVE_LOCK_TYPE
    sem = threading.Semaphore()
    assert type(sem._cond) is ORIGINAL_CONDITION and type(sem._cond._lock) is NATIVE_LOCK_TYPE
    barrier = threading.Barrier(1)
    assert type(barrier._cond._lock) in (NATIVE_LOCK_TYPE, NATIVE_RLOCK_TYPE)
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join(JOIN)
    assert type(threading.Lock()) is ProfiledLock  # while user code gets profiled ones
    event.set()
    assert all(s.lock_kind != "lock" for s in collector.snapshot().samples)  # no internal lock


def test_lock_created_before_start_is_native():
    before_lock, before_rlock = threading.Lock(), threading.RLock()
    c = LockCollector(capture_pct=100)
    c.start()
    try:
        assert type(before_lock) is NATIVE_LOCK_TYPE
        assert type(before_rlock) is NATIVE_RLOCK_TYPE
        with before_lock, before_rlock:
            pass
        assert type(threading.Lock()) is ProfiledLock
        assert c.snapshot().samples == []
    finally:
        c.stop()


def _creation_outcome(factory, *args, **kwargs):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            made = factory(*args, **kwargs)
        except TypeError as e:
            return ("raised", str(e), [str(w.message) for w in caught])
    # what was made, as its native type (a profiled wrapper counts as the type it wraps)
    kind = {ProfiledLock: NATIVE_LOCK_TYPE, ProfiledRLock: NATIVE_RLOCK_TYPE}.get(type(made), type(made))
    return ("made", kind, [str(w.message) for w in caught])


@pytest.mark.parametrize("attribute", ["Lock", "RLock"])
@pytest.mark.parametrize("args, kwargs", [((1,), {}), ((), {"x": 1}), ((1, 2), {"y": 3})])
def test_factory_arguments_go_to_original(attribute, args, kwargs):
    # Arguments go to the original factory: the same error, warning or lock as natively.
    original = getattr(threading, attribute)
    expected = _creation_outcome(original, *args, **kwargs)
    c = LockCollector(capture_pct=100)
    c.start()
    try:
        got = _creation_outcome(getattr(threading, attribute), *args, **kwargs)
    finally:
        c.stop()
    assert got == expected


def test_lock_dropped_while_held_frees_its_entry(make_collector):
    import gc

    collector = make_collector(capture_pct=100, max_entries=1)
    lock = threading.Lock()
    lock.acquire()  # captured: its entry is pending until the release that never comes
    name = lock.lock_info.display_name
    del lock
    gc.collect()
    first = collector.snapshot()
    assert [s.lock_name for s in first.samples] == [name]
    collector.snapshot()  # the entry is idle now: evicted
    other = threading.Lock()
    with other:
        pass
    snap = collector.snapshot()
    assert snap.dropped_events == 0
    assert totals_of(snap, other)[:3:2] == (1, 1)


def test_at_fork_reinit_ends_pending_hold(make_collector):
    collector = make_collector(capture_pct=100, max_entries=1)
    lock = threading.RLock()
    if not hasattr(lock, "_at_fork_reinit"):
        pytest.skip("no _at_fork_reinit")
    lock.acquire()
    lock._at_fork_reinit()
    collector.snapshot()
    collector.snapshot()
    other = threading.Lock()
    with other:
        pass
    snap = collector.snapshot()
    assert snap.dropped_events == 0
    assert totals_of(snap, other)[:3:2] == (1, 1)
    # the reinitialised lock records normally again, no stale hold
    with lock:
        pass
    assert totals_of(collector.snapshot(), lock)[:3:2] == (1, 1)


def test_lock_released_by_other_thread(collector):
    lock = threading.Lock()
    lock.acquire()
    t = threading.Thread(target=lock.release)
    t.start()
    t.join(JOIN)
    assert lock.acquire(False) is True
    lock.release()
    acquires, _, releases, _ = totals_of(collector.snapshot(), lock)
    assert (acquires, releases) == (2, 2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_gets_its_own_thread_labels(collector):
    lock = threading.Lock()
    with lock:
        pass
    collector.snapshot()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            with lock:
                pass
            (sample,) = collector.snapshot().samples
            ok = (sample.thread_native_id == threading.get_native_id()
                  and sample.thread_id == threading.get_ident()
                  and sample.acquire_count == 1 and sample.release_count == 1)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    with lock:
        pass
    (sample,) = collector.snapshot().samples
    assert sample.thread_native_id == threading.get_native_id()


def test_no_user_code_runs_inside_a_lock_operation(collector):
    # A Task subclass's get_name() and a Thread subclass's _name property are user code: they
    # may take locks (a deadlock) or let other threads run mid-update. Neither is called inside
    # a lock operation; the task is still labelled by id.
    calls = []

    class NamedTask(asyncio.Task):
        def get_name(self):
            calls.append("get_name")
            return super().get_name()

    lock = threading.Lock()

    async def work():
        with lock:
            pass

    async def main():
        asyncio.get_running_loop().set_task_factory(
            lambda loop, coro, **kw: NamedTask(coro, loop=loop, **kw))
        await asyncio.create_task(work())

    asyncio.run(main())
    calls.clear()  # asyncio itself may have asked for names outside our lock operations

    class PropertyNameThread(threading.Thread):
        @property
        def _name(self):
            calls.append("_name")
            return "property-name"

        @_name.setter
        def _name(self, value):
            pass

    def use_lock():
        with lock:
            pass
        asyncio.run(main())

    t = PropertyNameThread(target=use_lock)
    t.start()
    t.join(JOIN)
    assert calls == []
    samples = samples_of(collector.snapshot(), lock)
    in_tasks = [s for s in samples if s.task_id is not None]
    assert in_tasks and all(s.task_name is None for s in in_tasks)


def test_task_get_name_taking_the_same_lock_does_not_deadlock(tmp_path):
    # Run in a subprocess: before the fix this hung forever.
    script = tmp_path / "taskname.py"
    script.write_text(
        "import asyncio, threading\n"
        "from lockprof import LockCollector\n"
        "c = LockCollector(capture_pct=100); c.start()\n"
        "names_lock = threading.Lock()\n"
        "class NamedTask(asyncio.Task):\n"
        "    def get_name(self):\n"
        "        with names_lock:\n"
        "            return 'named:' + super().get_name()\n"
        "async def main():\n"
        "    asyncio.get_running_loop().set_task_factory(\n"
        "        lambda loop, coro, **kw: NamedTask(coro, loop=loop, **kw))\n"
        "    async def work():\n"
        "        with names_lock:\n"
        "            return 42\n"
        "    print(await asyncio.create_task(work()))\n"
        "asyncio.run(main())\n"
    )
    import lockprof
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(lockprof.__file__)))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"
