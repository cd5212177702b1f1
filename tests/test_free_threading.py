"""Exact stays exact with threads that really run at once.

On a free-threaded build with the GIL off, N threads contend on shared locks at the same time
and count what they did themselves; the profile's per-lock counts must match that ground truth
exactly (no update lost between threads) and its durations must lie within what the threads
measured around their own calls. The same tests run on every build: with the GIL the threads
take turns, and the counts must be as exact. A free-threaded build must also stay free-threaded
once lockprof is imported and has profiled."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time

import pytest

from lockhelpers import JOIN, hold_in_thread, samples_of

FREE_THREADED = sysconfig.get_config_var("Py_GIL_DISABLED") == 1
THREADS = 4
ROUNDS = 60
TIMEOUT_S = 0.001
KINDS = ["Lock", "RLock"]


def exact_collector(make_collector):
    """Every acquire's hold captured, every wait captured with weight 1 (an interval of 1 ns,
    and a budget no burst reaches): the table's counts are then exact too."""
    collector = make_collector(capture_pct=100, wait_sample_interval=1)
    collector._recorder.capture_budget = 10**9
    return collector


def run_at_once(work):
    """work(i) in THREADS threads started together; their results, by i."""
    start = threading.Barrier(THREADS)
    results = [None] * THREADS
    errors = []

    def run(i):
        try:
            start.wait(JOIN)
            results[i] = work(i)
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,), name=f"worker-{i}") for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN * 6)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    return results


def lock_totals(snapshot, lock):
    (totals,) = [t for t in snapshot.lock_totals if t.lock_info is lock.lock_info]
    return totals


@pytest.mark.parametrize("kind", KINDS)
def test_timed_out_waits_are_counted_exactly(make_collector, kind):
    """Every acquire times out on a lock another thread holds throughout: each one is a
    contended wait and a timeout, however many threads time out at once."""
    collector = exact_collector(make_collector)
    first = getattr(threading, kind)()
    second = getattr(threading, kind)()  # a line of its own: samples are found by site
    locks = [first, second]
    release = threading.Event()
    holders = [hold_in_thread(lock, until=release) for lock in locks]

    def work(i):
        waited = [[], []]  # per lock, each call's duration measured around it
        for _ in range(ROUNDS):
            for n, lock in enumerate(locks):
                start = time.monotonic_ns()
                acquired = lock.acquire(timeout=TIMEOUT_S)
                waited[n].append(time.monotonic_ns() - start)
                assert not acquired
        return waited

    results = run_at_once(work)
    release.set()
    for holder in holders:
        holder.join(JOIN)
    snapshot = collector.snapshot()
    for n, lock in enumerate(locks):
        own = [ns for waited in results for ns in waited[n]]
        totals = lock_totals(snapshot, lock)
        assert totals.contended_count == totals.timeouts == THREADS * ROUNDS
        assert THREADS * ROUNDS * TIMEOUT_S * 1e9 <= totals.wait_ns <= sum(own)
        assert TIMEOUT_S * 1e9 <= totals.max_wait_ns <= max(own)
        samples = [s for s in samples_of(snapshot, lock) if s.contended_count]
        assert all(s.timed_out for s in samples)
        assert sum(s.contended_count for s in samples) == THREADS * ROUNDS
        assert sum(s.acquire_wait_ns for s in samples) == totals.wait_ns
        assert {s.thread_name for s in samples} == {f"worker-{i}" for i in range(THREADS)}


@pytest.mark.parametrize("kind", KINDS)
def test_contended_acquires_and_holds_are_exact(make_collector, kind):
    """Threads take two shared locks in turn, each acquire first tried without blocking (a
    failure is the thread's own count of contention): every hold is counted once, its time
    within the thread's own bounds, and the profile counts a wait only where the thread's try
    found the lock busy."""
    collector = exact_collector(make_collector)
    first = getattr(threading, kind)()
    second = getattr(threading, kind)()  # a line of its own: samples are found by site
    locks = [first, second]
    shared = [0, 0]

    def work(i):
        busy, waited, inner, outer = [0, 0], [0, 0], [0, 0], [0, 0]
        for _ in range(ROUNDS):
            for n, lock in enumerate(locks):
                start = time.monotonic_ns()
                if not lock.acquire(False):
                    busy[n] += 1
                    before_wait = time.monotonic_ns()
                    assert lock.acquire()
                    waited[n] += time.monotonic_ns() - before_wait
                held = time.monotonic_ns()
                for _ in range(20):  # the critical section: a read-modify-write the lock guards
                    shared[n] += 1
                released = time.monotonic_ns()
                lock.release()
                inner[n] += released - held
                outer[n] += time.monotonic_ns() - start
        return busy, waited, inner, outer

    results = run_at_once(work)
    snapshot = collector.snapshot()
    assert shared == [THREADS * ROUNDS * 20] * 2
    for n, lock in enumerate(locks):
        busy = sum(r[0][n] for r in results)
        samples = samples_of(snapshot, lock)
        assert sum(s.acquire_count for s in samples) == THREADS * ROUNDS
        assert sum(s.release_count for s in samples) == THREADS * ROUNDS
        hold_ns = sum(s.release_hold_ns for s in samples)
        assert sum(r[2][n] for r in results) <= hold_ns <= sum(r[3][n] for r in results)
        contended = [t for t in snapshot.lock_totals if t.lock_info is lock.lock_info]
        if not contended:
            continue  # the threads never met on this lock (possible with the GIL)
        (totals,) = contended
        assert totals.contended_count <= busy and totals.timeouts == 0
        assert totals.wait_ns <= sum(r[1][n] for r in results)
        assert sum(s.contended_count for s in samples) == totals.contended_count
        assert sum(s.acquire_wait_ns for s in samples) == totals.wait_ns
        assert not any(s.timed_out for s in samples)


@pytest.mark.skipif(not FREE_THREADED, reason="only a free-threaded build runs without the GIL")
def test_the_gil_stays_off(tmp_path):
    """Importing lockprof and profiling threads leaves the GIL off (the modules declare they
    need none: Py_mod_gil), with no warning that it was enabled."""
    script = tmp_path / "ft.py"
    script.write_text(textwrap.dedent("""
        import sys, threading
        import lockprof
        from lockprof import LockCollector
        import lockprof._lock, lockprof._primitives, lockprof._recorder, lockprof._sampler
        print(sys._is_gil_enabled())
        collector = LockCollector(capture_pct=100)
        collector.start()
        lock, semaphore = threading.Lock(), threading.Semaphore(2)
        def work():
            for _ in range(1000):
                with lock, semaphore:
                    pass
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        collector.snapshot()
        collector.stop()
        print(sys._is_gil_enabled())
    """))
    env = {key: value for key, value in os.environ.items() if key != "PYTHON_GIL"}
    result = subprocess.run([sys.executable, str(script)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
    assert "GIL" not in result.stderr
