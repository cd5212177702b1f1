"""Fork and processes: os.fork() while profiling (locks held by other threads, held across the
fork, the exporter busy), and multiprocessing with the fork, forkserver and spawn start methods.

Each case is a program of its own in a subprocess, so that forking never involves pytest."""

from __future__ import annotations

import multiprocessing
import sys

import pytest

from scripthelpers import negative_values, profiles, run_script, values_by_variable

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.fork() is POSIX only")

LOCKS_HELD_BY_OTHER_THREADS = """
    import logging, os, sys, threading
    from lockprof import Profiler

    profiler = Profiler(capture_pct=100, output=sys.argv[1], upload_interval=3600)
    profiler.start()
    held_lock, held_rlock = threading.Lock(), threading.RLock()
    in_emit, release = threading.Event(), threading.Event()

    class SlowHandler(logging.Handler):  # holds its own (profiled) lock while it waits
        def emit(self, record):
            if not in_emit.is_set():  # only the first record, in the parent
                in_emit.set()
                release.wait(60)

    logger = logging.getLogger("held")
    logger.addHandler(SlowHandler())
    logger.propagate = False
    holding = threading.Event()

    def hold():
        with held_lock, held_rlock:
            holding.set()
            release.wait(60)

    def wait_for_lock():  # blocked on the held lock at fork: a waiter the child never sees
        with held_lock:
            pass

    threads = [threading.Thread(target=hold), threading.Thread(target=logger.warning, args=("x",))]
    for thread in threads:
        thread.start()
    holding.wait(60)
    in_emit.wait(60)
    waiter = threading.Thread(target=wait_for_lock)
    waiter.start()
    pid = os.fork()
    if pid == 0:
        import signal
        signal.alarm(60)
        held_lock._at_fork_reinit()
        held_rlock._at_fork_reinit()
        for _ in range(4):
            with held_lock, held_rlock:
                pass
        logger.warning("the handler lock was reinitialised by logging in the child")
        assert not held_lock.locked()
        profiler.stop()
        os._exit(0)
    release.set()
    for thread in (*threads, waiter):
        thread.join(60)
    _, status = os.waitpid(pid, 0)
    print(pid, status)
    profiler.stop()
"""


def test_fork_with_locks_held_and_waited_for_by_other_threads(tmp_path):
    prefix = str(tmp_path / "fork")
    result = run_script(LOCKS_HELD_BY_OTHER_THREADS, str(tmp_path), prefix)
    assert result.returncode == 0, result.stderr
    child, status = map(int, result.stdout.split())
    assert status == 0, "the child died or deadlocked"
    child_profiles = profiles(prefix, child)
    assert child_profiles, "the child wrote no profile"
    counts = values_by_variable(child_profiles)
    assert counts["held_lock"] >= 4 and counts["held_rlock"] >= 4
    assert not negative_values(profiles(prefix))


MULTIPROCESSING = """
    import multiprocessing, os, queue, sys, threading
    from lockprof import Profiler

    counter_lock = None

    def work(n):
        # Locks made in the worker, and one inherited (fork) or made at import (spawn).
        lock, rlock, condition = threading.Lock(), threading.RLock(), threading.Condition()
        results = queue.Queue()
        def add():
            with lock, rlock, condition:
                results.put(n * n)
        threads = [threading.Thread(target=add) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with module_lock:
            return sum(results.get() for _ in range(4))

    module_lock = threading.Lock()

    if __name__ == "__main__":
        method = sys.argv[2]
        profiler = Profiler(capture_pct=100, output=sys.argv[1], upload_interval=0.05)
        profiler.start()
        module_lock = threading.Lock()
        context = multiprocessing.get_context(method)
        with context.Pool(2) as pool:
            assert pool.map(work, range(20)) == [4 * n * n for n in range(20)]
        process = context.Process(target=work, args=(3,))
        process.start()
        process.join(60)
        assert process.exitcode == 0, process.exitcode
        if method == "fork":
            with context.Manager() as manager:
                shared = manager.list()
                with context.Pool(2) as pool:
                    pool.map(shared.append, range(10))
                assert sorted(shared) == list(range(10))
        with module_lock:
            pass
        profiler.stop()
        print(os.getpid())
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_multiprocessing_start_methods_work_while_profiling(tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    prefix = str(tmp_path / "mp")
    result = run_script(MULTIPROCESSING, str(tmp_path), prefix, method)
    assert result.returncode == 0, result.stderr
    # The workers' profiles, if they write any, are theirs; the parent used its lock once.
    assert values_by_variable(profiles(prefix, int(result.stdout))).get("module_lock") == 1
    assert not negative_values(profiles(prefix))
