"""Fork and processes: os.fork() while profiling (locks held by other threads, held across the
fork, the exporter busy), and multiprocessing with the fork, forkserver and spawn start methods.

Each case is a program of its own in a subprocess, so that forking never involves pytest."""

from __future__ import annotations

import multiprocessing
import pickle
import sys
import threading

import pytest

from scripthelpers import negative_values, profiles, run_script, values_by_variable

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.fork() is POSIX only")

CHILD_PROFILES_OWN_EVENTS = """
    import os, sys, threading
    from lockprof import Profiler

    profiler = Profiler(capture_pct=100, output=sys.argv[1], upload_interval=3600)
    profiler.start()
    before = threading.Lock()
    for _ in range(10):
        with before:
            pass
    pid = os.fork()
    if pid == 0:
        in_child = threading.Lock()
        for _ in range(5):
            with in_child:
                pass
        for _ in range(3):
            with before:
                pass
        if sys.argv[2] == "stop":
            profiler.stop()
            os._exit(0)
        sys.exit(0)  # the interpreter's exit writes the profile
    print(pid)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for _ in range(7):
        with before:
            pass
    profiler.stop()
"""


@pytest.mark.parametrize("ending", ["stop", "exit"])
def test_fork_child_profiles_into_its_own_file_without_the_parents_events(tmp_path, ending):
    prefix = str(tmp_path / "fork")
    result = run_script(CHILD_PROFILES_OWN_EVENTS, str(tmp_path), prefix, ending)
    assert result.returncode == 0, result.stderr
    child = int(result.stdout)
    parent_files = [p for p in profiles(prefix) if p not in profiles(prefix, child)]
    assert values_by_variable(profiles(prefix, child)) == {"in_child": 5, "before": 3}
    assert values_by_variable(parent_files) == {"before": 17}


CHILD_EXPORTS_PERIODICALLY = """
    import glob, os, sys, threading, time
    from lockprof import Profiler

    profiler = Profiler(capture_pct=100, output=sys.argv[1], upload_interval=0.2)
    profiler.start()
    pid = os.fork()
    if pid == 0:
        lock = threading.Lock()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                pass
            if glob.glob(f"{sys.argv[1]}.{os.getpid()}.*.pprof"):
                os._exit(0)  # a periodic export happened in the child
            time.sleep(0.05)
        os._exit(3)
    _, status = os.waitpid(pid, 0)
    profiler.stop()
    sys.exit(os.WEXITSTATUS(status))
"""


def test_fork_child_keeps_exporting_periodically(tmp_path):
    result = run_script(CHILD_EXPORTS_PERIODICALLY, str(tmp_path), str(tmp_path / "fork"))
    assert result.returncode == 0, "the child wrote no periodic profile in 60 s\n" + result.stderr


CHILD_THREADS_AT_FORK = """
    import os, sys, threading, time
    from lockprof import Profiler

    profiler = Profiler(output=sys.argv[1], upload_interval=float(sys.argv[2]))
    profiler.start()
    counts = []
    for _ in range(20):
        pid = os.fork()
        if pid == 0:
            # As CPython's test_clear_threads_states_after_fork checks: the forking thread only.
            os._exit(50 + len(sys._current_frames()))
        _, status = os.waitpid(pid, 0)
        counts.append(os.waitstatus_to_exitcode(status) - 50)
    profiler.stop()
    print(counts)
"""


@pytest.mark.parametrize("interval", ["3600", "0.5"])
def test_fork_child_has_only_the_forking_thread_running_python(tmp_path, interval):
    # The child's exporter thread is started at once (free-threaded builds run it at once too),
    # but waits in compiled code, with no Python frame, until its first export.
    result = run_script(CHILD_THREADS_AT_FORK, str(tmp_path), str(tmp_path / "threads"), interval)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str([1] * 20)


FORK_WHILE_EXPORTING = """
    import os, signal, sys, threading
    from lockprof import Profiler

    profiler = Profiler(capture_pct=100, output=sys.argv[1], upload_interval=0.001)
    profiler.start()
    locks = [threading.Lock() for _ in range(50)]
    # The child's own profiled lock, which no thread holds at fork: a churned lock may be held
    # by a thread that does not exist in the child, which deadlocks natively too.
    child_lock = threading.Lock()

    def churn():
        while True:
            for lock in locks:
                with lock:
                    pass

    for _ in range(2):
        threading.Thread(target=churn, daemon=True).start()
    hung = 0
    for _ in range(12):
        pid = os.fork()
        if pid == 0:
            signal.alarm(10)  # a deadlocked child dies of SIGALRM
            with child_lock:
                pass
            profiler.stop()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        hung += os.WIFSIGNALED(status)
    print(hung)
"""


def test_fork_while_the_exporter_runs_never_deadlocks_the_child(tmp_path):
    # The exporter writes a profile every millisecond, so forks land inside exports, where it
    # holds the profiler's own locks.
    result = run_script(FORK_WHILE_EXPORTING, str(tmp_path), str(tmp_path / "fork"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0", f"{result.stdout.strip()} of 12 children deadlocked"


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
    # Four acquires of each in the child; the holder's acquire before the fork is the parent's.
    counts = values_by_variable(child_profiles)
    assert (counts["held_lock"], counts["held_rlock"]) == (4, 4)
    assert not negative_values(profiles(prefix))


LOCK_HELD_ACROSS_FORK = """
    import os, sys, threading, time
    from lockprof import Profiler

    profiler = Profiler(capture_pct=100, output=sys.argv[1], upload_interval=3600)
    profiler.start()
    lock, rlock = threading.Lock(), threading.RLock()
    lock.acquire()
    rlock.acquire()
    rlock.acquire()
    time.sleep(0.01)
    pid = os.fork()
    if pid == 0:
        lock.release()  # held by this thread in the parent: released in the child
        rlock.release()
        rlock.release()
        assert not lock.locked() and not rlock._is_owned()
        with lock, rlock:
            pass
        profiler.stop()
        os._exit(0)
    lock.release()
    rlock.release()
    rlock.release()
    _, status = os.waitpid(pid, 0)
    print(pid, status)
    profiler.stop()
"""


def test_lock_held_across_fork_is_released_in_the_child(tmp_path):
    prefix = str(tmp_path / "fork")
    result = run_script(LOCK_HELD_ACROSS_FORK, str(tmp_path), prefix)
    assert result.returncode == 0, result.stderr
    child, status = map(int, result.stdout.split())
    assert status == 0
    # The acquires before the fork belong to the parent; the child made one of each.
    assert values_by_variable(profiles(prefix, child)) == {"lock": 1, "rlock": 1}
    parent_files = [p for p in profiles(prefix) if p not in profiles(prefix, child)]
    assert values_by_variable(parent_files) == {"lock": 1, "rlock": 1}
    assert values_by_variable(parent_files, "lock-release") == {"lock": 1, "rlock": 1}
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
        # A spawn or forkserver manager pickles its registry, which holds threading.Lock and
        # threading.RLock as multiprocessing.managers saw them at import: while profiling.
        with context.Manager() as manager:
            shared = manager.list()
            with context.Pool(2) as pool:
                pool.map(shared.append, range(10))
            assert sorted(shared) == list(range(10))
            with manager.Lock(), manager.RLock():
                pass
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


def test_profiled_factories_pickle_like_the_native_ones(collector):
    for name in ("Lock", "RLock"):
        factory = getattr(threading, name)
        restored = pickle.loads(pickle.dumps(factory))
        assert callable(restored)
        with restored():
            pass
