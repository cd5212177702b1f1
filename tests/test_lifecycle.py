"""Lifecycle: LockCollector start/stop/restart and patching, Profiler configuration and export."""

from __future__ import annotations

import _thread
import glob
import os
import pathlib
import random
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

import lockprof
from lockprof import LockCollector, LockprofExportWarning, Profiler, pprof
from lockprof._lock import LockFactory, ProfiledLock, ProfiledRLock
from lockprof.config import LockprofConfigWarning
from lockprof.profile import SAMPLE_TYPES

# The native factories and lock types (no collector runs while tests are collected).
ORIGINAL_LOCK = threading.Lock
ORIGINAL_RLOCK = threading.RLock
NATIVE_LOCK_TYPE = _thread.LockType
NATIVE_RLOCK_TYPE = _thread.RLock


# Where the lockprof under test is imported from (the checkout, when built in place): the
# subprocesses get it on PYTHONPATH so they run the same build.
LOCKPROF_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(lockprof.__file__)))
JOIN = 30
ENV_VARS = (
    "DD_PROFILING_LOCK_ENABLED",
    "DD_PROFILING_CAPTURE_PCT",
    "DD_PROFILING_MAX_FRAMES",
    "DD_PROFILING_LOCK_EXCLUDE_MODULES",
    "DD_PROFILING_UPLOAD_INTERVAL",
    "DD_PROFILING_OUTPUT_PPROF",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def profilers():
    """Profilers made through this fixture are stopped (without export) at teardown."""
    made = []

    def make(**kwargs):
        p = Profiler(**kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop(flush=False)


def totals_for(snapshot, lock):
    site = lock.lock_info.site
    totals = [0, 0, 0, 0]
    for s in snapshot.samples:
        if s.lock_name == site or s.lock_name.startswith(site + ":"):
            for i, v in enumerate((s.acquire_count, s.acquire_wait_ns, s.release_count, s.release_hold_ns)):
                totals[i] += v
    return tuple(totals)


# ------------------------------------------------------------------ LockCollector start / stop


def test_start_stop_idempotent():
    c = LockCollector(capture_pct=100)
    assert not c.running
    c.stop()  # stopping a stopped collector is a no-op
    assert threading.Lock is ORIGINAL_LOCK
    c.start()
    factory_lock, factory_rlock = threading.Lock, threading.RLock
    assert isinstance(factory_lock, LockFactory) and isinstance(factory_rlock, LockFactory)
    assert factory_lock.original is ORIGINAL_LOCK and factory_rlock.original is ORIGINAL_RLOCK
    c.start()  # no second layer of patching
    assert threading.Lock is factory_lock and threading.RLock is factory_rlock
    assert c.running
    c.stop()
    assert threading.Lock is ORIGINAL_LOCK and threading.RLock is ORIGINAL_RLOCK
    assert not c.running
    c.stop()
    assert threading.Lock is ORIGINAL_LOCK and threading.RLock is ORIGINAL_RLOCK


def test_restart_profiles_again():
    c = LockCollector(capture_pct=100)
    c.start()
    try:
        lock = threading.Lock()
        rlock = threading.RLock()
        assert type(lock) is ProfiledLock and type(rlock) is ProfiledRLock
        with lock, rlock:
            pass
        assert totals_for(c.snapshot(), lock)[:3:2] == (1, 1)
        c.stop()
        with lock, rlock:
            pass
        assert c.snapshot().samples == []
        assert type(threading.Lock()) is NATIVE_LOCK_TYPE
        c.start()
        with lock, rlock:  # created during the first run: profiled again
            pass
        snap = c.snapshot()
        assert totals_for(snap, lock)[:3:2] == (1, 1)
        assert totals_for(snap, rlock)[:3:2] == (1, 1)
        assert type(threading.Lock()) is ProfiledLock
    finally:
        c.stop()


def test_stop_restores_exactly_the_previous_objects():
    def previous_lock(*args, **kwargs):
        return ORIGINAL_LOCK(*args, **kwargs)

    def previous_rlock(*args, **kwargs):
        return ORIGINAL_RLOCK(*args, **kwargs)

    threading.Lock, threading.RLock = previous_lock, previous_rlock
    try:
        c = LockCollector(capture_pct=100)
        c.start()
        assert threading.Lock is not previous_lock
        assert threading.Lock.original is previous_lock
        assert threading.RLock.original is previous_rlock
        c.stop()
        assert threading.Lock is previous_lock
        assert threading.RLock is previous_rlock
    finally:
        threading.Lock, threading.RLock = ORIGINAL_LOCK, ORIGINAL_RLOCK


def test_previous_patch_is_still_called_while_profiling():
    calls = []

    class GreenLock:
        pass

    def previous_lock(*args, **kwargs):
        calls.append("lock")
        return GreenLock()

    def previous_rlock(*args, **kwargs):
        calls.append("rlock")
        return ORIGINAL_RLOCK()

    threading.Lock, threading.RLock = previous_lock, previous_rlock
    c = LockCollector(capture_pct=100)
    c.start()
    try:
        lock = threading.Lock()
        rlock = threading.RLock()
    finally:
        c.stop()
        threading.Lock, threading.RLock = ORIGINAL_LOCK, ORIGINAL_RLOCK
    assert calls == ["lock", "rlock"]
    assert type(lock) is GreenLock  # not something we wrap: returned as the patch made it
    assert type(rlock) is ProfiledRLock


def test_stop_leaves_a_patch_made_on_top():
    c = LockCollector(capture_pct=100)
    c.start()

    def on_top(*args, **kwargs):
        return ORIGINAL_LOCK()

    threading.Lock = on_top
    try:
        c.stop()
        assert threading.Lock is on_top  # not ours any more: left alone
        assert threading.RLock is ORIGINAL_RLOCK  # ours: restored
        assert not c.running
    finally:
        threading.Lock = ORIGINAL_LOCK


def test_concurrent_start_stop_while_locks_are_used():
    c = LockCollector(capture_pct=100)
    errors = []
    done = threading.Event()
    c.start()
    shared = threading.Lock()
    shared_r = threading.RLock()
    c.stop()

    def toggler(seed):
        rng = random.Random(seed)
        try:
            for i in range(200):
                if rng.random() < 0.5:
                    c.start()
                else:
                    c.stop()
                if i % 50 == 0:
                    c.snapshot()
        except BaseException as e:  # noqa: B902
            errors.append(e)

    def hammer():
        try:
            while not done.is_set():
                lock = threading.Lock()
                with lock:
                    pass
                rlock = threading.RLock()
                with rlock:
                    with rlock:
                        pass
                with shared:
                    pass
                with shared_r:
                    shared_r.acquire(False)
                    shared_r.release()
                cond = threading.Condition(shared_r)
                with cond:
                    cond.wait(0)
        except BaseException as e:  # noqa: B902
            errors.append(e)

    hammers = [threading.Thread(target=hammer) for _ in range(4)]
    togglers = [threading.Thread(target=toggler, args=(seed,)) for seed in range(8)]
    for t in hammers + togglers:
        t.start()
    for t in togglers:
        t.join(JOIN)
    done.set()
    for t in hammers:
        t.join(JOIN)
    alive = [t for t in hammers + togglers if t.is_alive()]
    c.stop()
    assert not alive, "deadlock: threads still running"
    assert errors == []
    assert threading.Lock is ORIGINAL_LOCK and threading.RLock is ORIGINAL_RLOCK
    snap = c.snapshot()
    for s in snap.samples:
        assert s.acquire_count >= 0 and s.release_count >= 0
        assert s.acquire_wait_ns >= 0 and s.release_hold_ns >= 0
    # and it still works afterwards
    c.start()
    lock = threading.Lock()
    with lock:
        pass
    c.stop()
    assert totals_for(c.snapshot(), lock)[:3:2] == (1, 1)


def test_after_stop_locks_work_and_record_nothing():
    c = LockCollector(capture_pct=100)
    c.start()
    lock = threading.Lock()
    rlock = threading.RLock()
    held = threading.Lock()
    held.acquire()  # acquired while profiling, released after stop
    c.snapshot()
    c.stop()
    held.release()
    for _ in range(10):
        with lock:
            assert lock.acquire(False) is False
        with rlock:
            with rlock:
                pass
    cond = threading.Condition(rlock)
    with cond:
        cond.wait(0.001)
    assert lock.acquire(timeout=0.01) is True
    lock.release()
    assert c.snapshot().samples == []
    assert type(lock) is ProfiledLock  # still the wrapper, just inactive


def test_captured_factory_returns_native_after_stop():
    c = LockCollector(capture_pct=100)
    c.start()
    try:
        from threading import Lock, RLock  # the factories, captured while profiling

        assert type(Lock()) is ProfiledLock and type(RLock()) is ProfiledRLock
    finally:
        c.stop()
    assert type(Lock()) is NATIVE_LOCK_TYPE
    assert type(RLock()) is NATIVE_RLOCK_TYPE
    c.start()
    try:
        assert type(Lock()) is ProfiledLock  # the same collector running again
    finally:
        c.stop()
    assert type(Lock()) is NATIVE_LOCK_TYPE


def test_two_collectors_nested_in_order():
    a = LockCollector(capture_pct=100)
    b = LockCollector(capture_pct=100)
    a.start()
    b.start()
    try:
        lock = threading.Lock()  # made by b's factory, profiled by b
        with lock:
            pass
        assert totals_for(b.snapshot(), lock)[0] == 1
    finally:
        b.stop()
        a.stop()
    assert threading.Lock is ORIGINAL_LOCK and threading.RLock is ORIGINAL_RLOCK


# ------------------------------------------------------------------ Profiler configuration


def test_profiler_arguments_win_over_env(monkeypatch, tmp_path, profilers):
    monkeypatch.setenv("DD_PROFILING_CAPTURE_PCT", "5")
    monkeypatch.setenv("DD_PROFILING_MAX_FRAMES", "7")
    monkeypatch.setenv("DD_PROFILING_UPLOAD_INTERVAL", "33")
    monkeypatch.setenv("DD_PROFILING_OUTPUT_PPROF", str(tmp_path / "from-env"))
    monkeypatch.setenv("DD_PROFILING_LOCK_EXCLUDE_MODULES", "envmod")
    from_env = profilers()
    assert from_env.config.capture_pct == 5.0
    assert from_env.config.max_frames == 7
    assert from_env.config.upload_interval == 33.0
    assert from_env.config.output == str(tmp_path / "from-env")
    assert from_env.config.exclude_modules == ("envmod",)
    assert from_env.collectors[0].capture_pct == 5.0
    p = profilers(capture_pct=100, max_frames=3, upload_interval=60, output=str(tmp_path / "arg"),
                  exclude_modules=["argmod"])
    assert p.config.capture_pct == 100.0
    assert p.config.max_frames == 3
    assert p.config.upload_interval == 60.0
    assert p.config.output == str(tmp_path / "arg")
    assert p.config.exclude_modules == ("argmod",)
    (collector,) = p.collectors
    assert (collector.capture_pct, collector.max_frames, collector.exclude_modules) == (100.0, 3, ("argmod",))


def test_profiler_argument_wins_over_bad_env_without_warning(monkeypatch, profilers, tmp_path):
    monkeypatch.setenv("DD_PROFILING_CAPTURE_PCT", "not-a-number")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = profilers(capture_pct=50, output=str(tmp_path / "p"))
    assert p.config.capture_pct == 50.0
    assert [w for w in caught if issubclass(w.category, LockprofConfigWarning)] == []


def test_profiler_lock_enabled_env(monkeypatch, profilers, tmp_path):
    monkeypatch.setenv("DD_PROFILING_LOCK_ENABLED", "false")
    p = profilers(output=str(tmp_path / "p"))
    assert p.collectors == []
    p2 = profilers(lock_enabled=True, output=str(tmp_path / "p"))
    assert len(p2.collectors) == 1


def test_profiler_bad_env_warns_once_and_starts(monkeypatch, tmp_path, profilers):
    monkeypatch.setenv("DD_PROFILING_CAPTURE_PCT", "lots")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = profilers(output=str(tmp_path / "p"))
        p.start()
        try:
            assert p.running
            assert isinstance(threading.Lock, LockFactory)
            assert type(threading.Lock()) is ProfiledLock
        finally:
            p.stop(flush=False)
    config_warnings = [w for w in caught if issubclass(w.category, LockprofConfigWarning)]
    assert len(config_warnings) == 1
    message = str(config_warnings[0].message)
    assert "DD_PROFILING_CAPTURE_PCT" in message and "lots" in message
    assert p.config.capture_pct == 1.0  # the default
    assert threading.Lock is ORIGINAL_LOCK


@pytest.mark.parametrize("kwargs, error, name", [
    ({"capture_pct": "x"}, TypeError, "capture_pct"),
    ({"capture_pct": True}, TypeError, "capture_pct"),
    ({"capture_pct": 150}, ValueError, "capture_pct"),
    ({"capture_pct": -1}, ValueError, "capture_pct"),
    ({"max_frames": 0}, ValueError, "max_frames"),
    ({"max_frames": 513}, ValueError, "max_frames"),
    ({"max_frames": 2.5}, TypeError, "max_frames"),
    ({"upload_interval": 0}, ValueError, "upload_interval"),
    ({"upload_interval": "10"}, TypeError, "upload_interval"),
    ({"lock_enabled": "yes"}, TypeError, "lock_enabled"),
    ({"lock_enabled": 1}, TypeError, "lock_enabled"),
    ({"exclude_modules": [3]}, TypeError, "exclude_modules"),
    ({"exclude_modules": ["not a module"]}, ValueError, "exclude_modules"),
    ({"output": ""}, ValueError, "output"),
    ({"output": 5}, TypeError, "output"),
])
def test_profiler_bad_argument_raises(kwargs, error, name):
    with pytest.raises(error) as excinfo:
        Profiler(**kwargs)
    assert type(excinfo.value) is error
    assert str(excinfo.value).startswith(name)
    assert threading.Lock is ORIGINAL_LOCK


def test_profiler_lock_disabled_patches_nothing(tmp_path):
    p = Profiler(lock_enabled=False, output=str(tmp_path / "p"))
    assert p.collectors == []
    p.start()
    try:
        assert p.running
        assert threading.Lock is ORIGINAL_LOCK and threading.RLock is ORIGINAL_RLOCK
        assert type(threading.Lock()) is NATIVE_LOCK_TYPE
    finally:
        path = p.stop()
    profile = pprof.read_profile(path)
    assert profile.samples == []


# ------------------------------------------------------------------ Profiler export


def profiled_work_lock():
    work_lock = threading.Lock()
    for _ in range(3):
        with work_lock:
            pass
    return work_lock


def test_profiler_stop_writes_profile(tmp_path):
    p = Profiler(output=tmp_path / "p", capture_pct=100)  # os.PathLike is accepted
    p.start()
    try:
        lock = profiled_work_lock()
    finally:
        path = p.stop()
    assert path == str(tmp_path / f"p.{os.getpid()}.0.pprof")
    assert os.path.isfile(path)
    assert p.last_path == path
    assert threading.Lock is ORIGINAL_LOCK
    profile = pprof.read_profile(path)
    assert [(t.type, t.unit) for t in profile.sample_types] == [(t.type, t.unit) for t in SAMPLE_TYPES]
    assert pprof.parse(pathlib.Path(path).read_bytes()).default_sample_type == "lock-acquire-wait"
    (sample,) = [s for s in profile.samples if s.lock_name == lock.lock_info.display_name]
    assert sample.lock_name.endswith(":work_lock")
    assert sample.lock_kind == "lock"
    assert sample.thread_id == threading.get_ident()
    assert sample.thread_native_id == threading.get_native_id()
    assert sample.thread_name == threading.current_thread().name
    assert sample.task_id is None
    assert sample.acquire_count == 3
    assert sample.release_count == 3
    assert sample.frames[0].name.split(".")[-1] == "profiled_work_lock"
    assert sample.frames[0].filename == __file__
    # nothing of the profiler's own or of threading's locks
    assert all(s.lock_name == lock.lock_info.display_name for s in (*profile.samples, *profile.lock_totals))


def test_profiler_second_export_gets_next_sequence(tmp_path):
    p = Profiler(output=str(tmp_path / "p"), capture_pct=100)
    p.start()
    try:
        first_lock = profiled_work_lock()
        first = p.export()
        second_lock = profiled_work_lock()
    finally:
        second = p.stop()
    assert first == str(tmp_path / f"p.{os.getpid()}.0.pprof")
    assert second == str(tmp_path / f"p.{os.getpid()}.1.pprof")
    names_first = {s.lock_name for s in pprof.read_profile(first).samples}
    names_second = {s.lock_name for s in pprof.read_profile(second).samples}
    assert names_first == {first_lock.lock_info.display_name}
    assert names_second == {second_lock.lock_info.display_name}  # a new period


def test_profiler_export_failure_warns_once_then_recovers(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file where a directory is needed")
    p = Profiler(output=str(blocker / "p"), capture_pct=100)
    p.start()
    try:
        profiled_work_lock()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert p.export() is None
        export_warnings = [w for w in caught if issubclass(w.category, LockprofExportWarning)]
        assert len(export_warnings) == 1
        assert str(blocker / "p") in str(export_warnings[0].message)
        assert p.running
        blocker.unlink()  # fix the location
        lock = profiled_work_lock()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = p.export()
        assert [w for w in caught if issubclass(w.category, LockprofExportWarning)] == []
    finally:
        p.stop(flush=False)
    assert path == str(blocker / f"p.{os.getpid()}.0.pprof")
    profile = pprof.read_profile(path)
    assert lock.lock_info.display_name in {s.lock_name for s in profile.samples}


def test_profiler_periodic_export(tmp_path):
    p = Profiler(output=str(tmp_path / "p"), capture_pct=100, upload_interval=0.2)
    pattern = str(tmp_path / f"p.{os.getpid()}.*.pprof")
    p.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and len(glob.glob(pattern)) < 2:
            profiled_work_lock()
            time.sleep(0.02)
        files = glob.glob(pattern)
    finally:
        p.stop(flush=False)
    assert len(files) >= 2
    for f in files:
        pprof.read_profile(f)
    assert not [t for t in threading.enumerate() if t.name == "lockprof-exporter"]


def test_profiler_context_manager(tmp_path):
    with Profiler(output=str(tmp_path / "cm"), capture_pct=100) as p:
        assert p.running
        profiled_work_lock()
    assert not p.running
    assert threading.Lock is ORIGINAL_LOCK
    assert os.path.isfile(tmp_path / f"cm.{os.getpid()}.0.pprof")


EXIT_SCRIPT = textwrap.dedent('''
    import sys, threading
    from lockprof import Profiler

    p = Profiler(output=sys.argv[1], capture_pct=100, upload_interval=3600)
    p.start()

    def exiting_worker():
        exit_lock = threading.Lock()
        with exit_lock:
            pass

    exiting_worker()
    print(threading.get_ident())
    # no p.stop(): the interpreter's exit must write the profile
''')


def test_interpreter_exit_flushes(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = LOCKPROF_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for var in ENV_VARS:
        env.pop(var, None)
    out = tmp_path / "exit"
    result = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(out)], env=env, cwd=str(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    files = glob.glob(str(tmp_path / "exit.*.0.pprof"))
    assert len(files) == 1
    profile = pprof.read_profile(files[0])
    (sample,) = [s for s in profile.samples if s.lock_name.endswith(":exit_lock")]
    assert sample.acquire_count == 1
    assert sample.release_count == 1
    assert sample.frames[0].name == "exiting_worker"
    assert sample.thread_id == int(result.stdout.strip())


def lockprof_contended_waiter(lock):
    with lock:
        pass


def test_go_tool_pprof_top_lists_waiting_function(tmp_path):
    go = shutil.which("go") or ("/usr/bin/go" if os.path.exists("/usr/bin/go") else None)
    if go is None:
        if os.environ.get("LOCKPROF_REQUIRE_GO") == "1":
            pytest.fail("go is required (LOCKPROF_REQUIRE_GO=1) but was not found")
        pytest.skip("go not installed")
    p = Profiler(output=str(tmp_path / "go"), capture_pct=100)
    p.start()
    try:
        contended = threading.Lock()
        taken = threading.Event()

        def holder():
            with contended:
                taken.set()
                time.sleep(0.1)

        t = threading.Thread(target=holder)
        t.start()
        assert taken.wait(JOIN)
        lockprof_contended_waiter(contended)
        t.join(JOIN)
    finally:
        path = p.stop()
    env = dict(os.environ)
    env.setdefault("HOME", str(tmp_path))
    env.setdefault("GOCACHE", str(tmp_path / "gocache"))
    env["PPROF_TMPDIR"] = str(tmp_path)
    result = subprocess.run([go, "tool", "pprof", "-top", "-sample_index=lock-acquire-wait", path],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "lockprof_contended_waiter" in result.stdout, result.stdout + result.stderr


def test_profiler_concurrent_exports_get_distinct_sequence_numbers(tmp_path):
    p = Profiler(output=str(tmp_path / "c"), capture_pct=100)
    p.start()
    paths = []
    errors = []

    def exporter():
        try:
            for _ in range(5):
                profiled_work_lock()
                paths.append(p.export())
        except BaseException as e:  # noqa: B902
            errors.append(e)

    try:
        threads = [threading.Thread(target=exporter) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN)
    finally:
        last = p.stop()
    assert errors == []
    assert None not in paths
    assert len(set(paths)) == 20
    assert last == str(tmp_path / f"c.{os.getpid()}.20.pprof")
    for path in paths:
        pprof.read_profile(path)


def test_collectors_stopped_out_of_order_restore_native():
    # Start a, start b, stop a, stop b: the dead factory of a must not stay in threading.
    a = LockCollector(capture_pct=100)
    b = LockCollector(capture_pct=100)
    a.start()
    b.start()
    a.stop()
    assert isinstance(threading.Lock(), ProfiledLock)  # b still profiles
    b.stop()
    assert threading.Lock is ORIGINAL_LOCK and threading.RLock is ORIGINAL_RLOCK
