"""A profiled program's forked children: they die of a signal as they would unprofiled, never
wait on anything their parent owned, and profile their own lock activity into their own files.

Each case runs a program of its own under `lockprof run` (or with a Profiler), so that forking
never involves pytest."""

from __future__ import annotations

import os
import signal
import sys
import textwrap

import pytest

from test_run import default_signals, lock_names, profiles_of, run

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def run_program(tmp_path, source, *args, timeout=120):
    (tmp_path / "program.py").write_text(textwrap.dedent(source))
    out = tmp_path / "prof"
    result = run(["run", "--capture-pct", "100", "--output", str(out), "program.py", *args], tmp_path,
                 timeout=timeout, preexec_fn=default_signals)
    return result, out


TERMINATED_RIGHT_AFTER_START = """\
    import multiprocessing, time

    def sleeper():
        time.sleep(60)

    if __name__ == "__main__":
        context = multiprocessing.get_context("fork")
        for _ in range(20):
            child = context.Process(target=sleeper)
            child.start()
            child.terminate()
            started = time.monotonic()
            child.join(1)
            if child.exitcode is None:
                child.kill()
                child.join()
                print("survived SIGTERM")
            else:
                print(child.exitcode, time.monotonic() - started < 1)
"""


def test_a_forked_child_dies_of_sigterm_at_once_however_early_it_comes(tmp_path):
    result, _ = run_program(tmp_path, TERMINATED_RIGHT_AFTER_START)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{-signal.SIGTERM} True"] * 20  # each within a second


POOL_TERMINATED = """\
    import multiprocessing, threading, time

    def busy(seconds):
        lock = threading.Lock()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with lock:
                pass
        return seconds

    if __name__ == "__main__":
        pool = multiprocessing.get_context("fork").Pool(4)
        assert pool.map(busy, [0, 0, 0, 0]) == [0, 0, 0, 0]  # every worker started
        pool.map_async(busy, [60, 60])  # two workers busy, two idle in SimpleQueue.get
        time.sleep(0.5)
        started = time.monotonic()
        pool.terminate()
        pool.join()
        print("terminated:", time.monotonic() - started < 5)  # it used to hang for good
"""


def test_pool_terminate_ends_busy_and_idle_workers(tmp_path):
    result, _ = run_program(tmp_path, POOL_TERMINATED)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "terminated: True\n"


# The test's own after-fork object signals the child while lockprof's hooks run; the child
# must end by that signal (its default action), not hang in a Profiler.stop() that waits on
# the parent's exporter, and not run on.
SIGNALLED_DURING_THE_AFTER_FORK_HOOKS = """\
    import os, signal, sys, time
    from lockprof import forking

    class SignalsItself:
        def _after_fork_in_child(self):
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))
            time.sleep(0.05)  # the signal arrives while the hooks still run

    itself = SignalsItself()
    forking.call_after_fork_in_child(itself)
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_during_the_after_fork_hooks_ends_the_child_by_its_default_action(tmp_path, name):
    result, _ = run_program(tmp_path, SIGNALLED_DURING_THE_AFTER_FORK_HOOKS, name)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{-getattr(signal, name)}\n"


PROGRAM_HANDLER = """\
    import os, signal, sys, threading, time

    def handler(signum, frame):
        sys.exit(7)  # the child's exit handlers run: its profiler's final flush among them

    signal.signal(signal.SIGTERM, handler)
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        lock = threading.Lock()
        while True:
            with lock:
                time.sleep(0.01)
            os.write(ready_write, b"x")  # once the child has lock activity to write
    os.read(ready_read, 1)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), signal.getsignal(signal.SIGTERM) is handler)
"""


def test_a_handler_the_program_installed_is_left_to_the_child(tmp_path):
    result, out = run_program(tmp_path, PROGRAM_HANDLER)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "7 True\n"
    assert "program.py:10:lock" in lock_names(profiles_of(out))  # written by the child at its exit


SIGNAL_MASKS = """\
    import os, signal
    from lockprof import Profiler

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    with Profiler():
        pid = os.fork()
        if pid == 0:
            same = signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before
            os._exit(0 if same and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before)
"""


def test_a_fork_leaves_the_signal_mask_as_it_was_in_both_processes(tmp_path):
    result, _ = run_program(tmp_path, SIGNAL_MASKS)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0 True\n"


CHILDREN_PROFILE_THEMSELVES = """\
    import multiprocessing, os, sys, threading

    def work(n):
        pool_lock = threading.Lock()
        for _ in range(n):
            with pool_lock:
                pass
        return n

    if __name__ == "__main__":
        pid = os.fork()
        if pid == 0:
            child_lock = threading.Lock()
            for _ in range(10):
                with child_lock:
                    pass
            sys.exit(0)  # the interpreter's exit writes the child's profile
        os.waitpid(pid, 0)
        idle = os.fork()
        if idle == 0:
            sys.exit(0)  # no lock activity: no profile
        os.waitpid(idle, 0)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            print(sum(pool.map(work, [30, 40])))
            pool.close()
            pool.join()  # the workers end normally: multiprocessing's exit writes theirs
        print(pid, idle, os.getpid())
"""


def test_forked_children_profile_their_own_locks_into_their_own_files(tmp_path):
    result, out = run_program(tmp_path, CHILDREN_PROFILE_THEMSELVES)
    assert result.returncode == 0, result.stderr
    total, pids = result.stdout.splitlines()
    assert total == "70"
    child, idle, parent = (int(pid) for pid in pids.split())
    by_pid = {}
    for path in profiles_of(out):
        by_pid.setdefault(int(os.path.basename(path).split(".")[1]), []).append(path)
    assert idle not in by_pid  # never an empty profile
    assert lock_names(by_pid.pop(child)) == {"program.py:13:child_lock"}
    assert {"program.py:13:child_lock", "program.py:4:pool_lock"}.isdisjoint(lock_names(by_pid.pop(parent)))
    # The pool's workers wrote theirs when they ended.
    assert by_pid and all(lock_names(paths) == {"program.py:4:pool_lock"} for paths in by_pid.values())
    summary = result.stderr[result.stderr.index("lockprof: "):]
    assert summary.count("lockprof: top locks of this run") == 1
    assert f"profiles written, {1 + len(by_pid)} by child processes" in summary
    assert "program.py:13:child_lock" in summary and "program.py:4:pool_lock" in summary


def test_another_runs_profiles_under_the_same_output_are_not_this_runs(tmp_path):
    (tmp_path / "program.py").write_text("import threading\nlock = threading.Lock()\nwith lock:\n    pass\n")
    out = tmp_path / "prof"
    first = run(["run", "--output", str(out), "program.py"], tmp_path)
    # A profile of another process written while the next run runs: not listed as its child's.
    (tmp_path / "other.py").write_text(textwrap.dedent(f"""\
        import subprocess, sys
        subprocess.run([sys.executable, "-m", "lockprof", "run", "--output", {str(out)!r},
                        "program.py"], check=True, capture_output=True)
        import threading
        lock = threading.Lock()
        with lock:
            pass
    """))
    second = run(["run", "--output", str(out), "other.py"], tmp_path)
    assert first.returncode == second.returncode == 0, second.stderr
    assert len(profiles_of(out)) == 3
    assert "lockprof: profile written to" in second.stderr and "by child processes" not in second.stderr
