"""`lockprof run`: the program runs as python would run it (argv, __main__, sys.path, exit
status, tracebacks, signals), profiled from its first import, with options that mirror the
DD_PROFILING_* variables, child processes with --subprocesses, and a summary at exit."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from lockprof import pprof
from lockprof.config import settings
from lockprof.report import build_report
from sample_profiles import subprocess_env

POSIX = os.name == "posix"
# Through `python -m lockprof`, and through main() the way the `lockprof` console script calls it.
ENTRY_POINTS = {
    "python -m lockprof": [sys.executable, "-m", "lockprof"],
    "console script": [sys.executable, "-c", "import sys; from lockprof.cli import main; sys.exit(main())"],
}

# Creates a lock at import time, in a module the program imports: profiling must already run.
HELPER = """\
import threading

IMPORT_TIME_LOCK = threading.Lock()


def use_it(times):
    for _ in range(times):
        with IMPORT_TIME_LOCK:
            pass
"""

PROGRAM = """\
import json, os, sys
import helper

helper.use_it(50)
print(json.dumps({"argv": sys.argv, "name": __name__, "file": __file__,
                  "path0": sys.path[0], "main_file": sys.modules["__main__"].__file__}))
what = sys.argv[1] if len(sys.argv) > 1 else ""
if what == "exit":
    sys.exit(int(sys.argv[2]))
if what == "exit-message":
    sys.exit("goodbye from the program")
if what == "raise":
    def inner():
        raise ValueError("the program failed")
    inner()
if what == "signal":
    import signal, time
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))
    time.sleep(30)
"""


def project(tmp_path):
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "helper.py").write_text(HELPER)
    (app / "prog.py").write_text(PROGRAM)
    return app


def run(argv, tmp_path, entry="python -m lockprof", env=None, timeout=300, **kwargs):
    """`lockprof run ...` to its end; one that hangs fails the test with every thread's stack
    (faulthandler, on SIGABRT) instead of only a timeout."""
    env = dict(env or subprocess_env(), PYTHONFAULTHANDLER="1")
    process = subprocess.Popen(ENTRY_POINTS[entry] + argv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env, **kwargs)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(getattr(signal, "SIGABRT", signal.SIGTERM))
        stdout, stderr = process.communicate(timeout=60)
        pytest.fail(f"lockprof run {argv} hung for {timeout} s; stdout:\n{stdout}\nstderr:\n{stderr}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def native(argv, tmp_path, **kwargs):
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=subprocess_env(), **kwargs)


def default_signals():
    """In the child: the signals this test session may have ignored (nohup) back to default."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def split_summary(stderr):
    """(the program's own stderr, lockprof's summary lines)."""
    lines = stderr.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("lockprof: ")), len(lines))
    return "".join(lines[:start]), "".join(lines[start:])


def profiles_of(prefix):
    directory, base = os.path.split(str(prefix))
    return sorted(os.path.join(directory, n) for n in os.listdir(directory)
                  if n.startswith(base + ".") and n.endswith(".pprof"))


def lock_names(paths):
    return {row.name for row in build_report([pprof.read_profile(p) for p in paths]).rows}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_script_runs_as_python_runs_it_and_is_profiled_from_its_first_import(tmp_path, entry):
    app = project(tmp_path)
    out = tmp_path / "prof"
    result = run(["run", "--capture-pct", "100", "--output", str(out), "app/prog.py", "a", "--b"],
                 tmp_path, entry)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == json.loads(native(["app/prog.py", "a", "--b"], tmp_path).stdout)
    assert seen["argv"] == ["app/prog.py", "a", "--b"]
    assert seen["name"] == "__main__"
    assert seen["file"] == seen["main_file"] == str(app / "prog.py")
    assert seen["path0"] == str(app)
    (path,) = profiles_of(out)
    rows = {row.name: row for row in build_report([pprof.read_profile(path)]).rows}
    # The stack starts at the program: lockprof's and runpy's frames under it are left out.
    stack = [(f.name, os.path.basename(f.filename)) for f in rows["helper.py:3:IMPORT_TIME_LOCK"].top_stack]
    assert stack == [("use_it", "helper.py"), ("<module>", "prog.py")]
    own, summary = split_summary(result.stderr)
    assert own == ""
    assert summary.startswith("lockprof: top locks of this run\n")
    assert "helper.py:3:IMPORT_TIME_LOCK" in summary
    assert f"lockprof: profile written to {path}\n" in summary


def test_a_module_runs_as_python_dash_m_runs_it(tmp_path):
    project(tmp_path)
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tool.py").write_text(textwrap.dedent("""\
        import json, sys
        import helper
        helper.use_it(10)
        print(json.dumps({"argv": sys.argv, "name": __name__, "path0": sys.path[0]}))
        sys.exit(3)
    """))
    (package / "helper.py").write_text(HELPER)
    (tmp_path / "helper.py").write_text(HELPER)  # `import helper` finds it through sys.path[0]
    out = tmp_path / "prof"
    result = run(["run", "--output", str(out), "--capture-pct", "100", "-m", "pkg.tool", "x", "-m"],
                 tmp_path)
    expected = native(["-m", "pkg.tool", "x", "-m"], tmp_path)
    assert result.returncode == expected.returncode == 3
    assert json.loads(result.stdout) == json.loads(expected.stdout)
    assert json.loads(result.stdout)["argv"] == [str(package / "tool.py"), "x", "-m"]
    rows = {row.name: row for row in build_report([pprof.read_profile(p) for p in profiles_of(out)]).rows}
    stack = [(f.name, os.path.basename(f.filename)) for f in rows["helper.py:3:IMPORT_TIME_LOCK"].top_stack]
    assert stack == [("use_it", "helper.py"), ("<module>", "tool.py")]


@pytest.mark.parametrize("argv", [["exit", "7"], ["exit", "0"], ["exit-message"], ["raise"]])
def test_exit_status_and_stderr_are_the_native_ones(tmp_path, argv):
    project(tmp_path)
    result = run(["run", "--output", str(tmp_path / "prof"), "app/prog.py", *argv], tmp_path)
    expected = native(["app/prog.py", *argv], tmp_path)
    assert result.returncode == expected.returncode
    assert result.stdout == expected.stdout
    own, summary = split_summary(result.stderr)
    assert own == expected.stderr  # the traceback starts at the program: no lockprof frame
    assert "profile written to" in summary
    if argv == ["raise"]:
        assert own.startswith("Traceback (most recent call last):\n")
        assert "lockprof" not in own and "runpy" not in own
        assert own.endswith("ValueError: the program failed\n")


def test_a_syntax_error_is_shown_without_any_frame_of_lockprof(tmp_path):
    (tmp_path / "bad.py").write_text("print(1)\nx = = 1\n")
    result = run(["run", "--output", str(tmp_path / "prof"), "bad.py"], tmp_path)
    expected = native(["bad.py"], tmp_path)
    assert result.returncode == expected.returncode == 1
    assert split_summary(result.stderr)[0] == expected.stderr


def test_a_missing_script_or_module(tmp_path):
    result = run(["run", "nothing.py"], tmp_path)
    assert result.returncode == 2
    assert result.stderr == (f"lockprof run: can't open file {str(tmp_path / 'nothing.py')!r}: "
                             "[Errno 2] No such file or directory\n")
    result = run(["run", "--output", str(tmp_path / "prof"), "-m", "no_such_module"], tmp_path)
    assert result.returncode == 1
    own, summary = split_summary(result.stderr)
    assert own == "lockprof run: No module named no_such_module\n"
    assert "profile written to" in summary


@pytest.mark.parametrize("argv,message", [
    ([], "the script (or -m module) to run is missing"),
    (["-m"], "argument -m: expected a module name"),
    (["--capture-pct", "200", "x.py"], "argument --capture-pct: must be a number between 0 and 100, got '200'"),
    (["--wait-sample-interval", "5 parsecs", "x.py"], "argument --wait-sample-interval: must be a duration"),
    (["--exclude-modules", "ok,not ok", "x.py"], "got invalid module name(s) 'not ok'"),
])
def test_bad_run_arguments_are_usage_errors(tmp_path, argv, message):
    result = run(["run", *argv], tmp_path)
    assert result.returncode == 2
    assert "usage: lockprof run" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr


def test_every_setting_has_an_option(tmp_path):
    result = run(["run", "--help"], tmp_path)
    for setting in settings():
        assert f"${setting.env_var}" in result.stdout
    assert "--interval" in result.stdout and "--subprocesses" in result.stdout


def test_options_reach_the_profiler_and_variables_fill_in_the_rest(tmp_path):
    (tmp_path / "excluded.py").write_text(HELPER)
    (tmp_path / "deep.py").write_text(textwrap.dedent("""\
        import json, os, threading, time
        import excluded
        lock = threading.Lock()
        def level(n):
            if n:
                return level(n - 1)
            with lock:
                pass
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            level(10)
            excluded.use_it(1)
            time.sleep(0.01)
        # What child processes would be given (--subprocesses).
        print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("DD_PROFILING_")}))
    """))
    out = tmp_path / "sub" / "prof"
    env = subprocess_env(DD_PROFILING_OUTPUT_PPROF=str(out), DD_PROFILING_CAPTURE_PCT="100")
    result = run(["run", "--max-frames", "3", "--interval", "0.4", "--wait-sample-interval", "250us",
                  "--exclude-modules", "excluded", "--no-summary", "--subprocesses", "deep.py"],
                 tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DD_PROFILING_LOCK_ENABLED": "true", "DD_PROFILING_CAPTURE_PCT": "100.0",
        "DD_PROFILING_MAX_FRAMES": "3", "DD_PROFILING_LOCK_EXCLUDE_MODULES": "excluded",
        "DD_PROFILING_UPLOAD_INTERVAL": "0.4", "DD_PROFILING_OUTPUT_PPROF": str(out),
        "DD_PROFILING_LOCK_WAIT_SAMPLE_INTERVAL": "250000",
    }
    paths = profiles_of(out)
    assert len(paths) >= 2  # every 0.4 s (at least once in 1.5 s, even on a busy machine), and at exit
    assert "top locks" not in result.stderr and f"lockprof: {len(paths)} profiles written" in result.stderr
    assert lock_names(paths) == {"deep.py:3:lock"}  # not excluded.py's lock
    profiles = [pprof.read_profile(p) for p in paths]
    stacks = [s.frames for p in profiles for s in p.samples if s.lock_name == "deep.py:3:lock"]
    assert stacks
    for frames in stacks:  # 3 frames kept, then a marker for the rest
        assert len(frames) == 4 and frames[3].name.endswith("frames omitted>"), frames


@pytest.mark.skipif(not POSIX, reason="signals are POSIX")
@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_ends_the_program_as_natively_and_the_profile_is_written(tmp_path, name):
    project(tmp_path)
    out = tmp_path / "prof"
    result = run(["run", "--capture-pct", "100", "--output", str(out), "app/prog.py", "signal", name],
                 tmp_path, preexec_fn=default_signals)
    expected = native(["app/prog.py", "signal", name], tmp_path, preexec_fn=default_signals)
    assert result.returncode == expected.returncode == -getattr(signal, name)
    assert result.stdout == expected.stdout
    own, summary = split_summary(result.stderr)
    assert own == expected.stderr  # SIGINT: the KeyboardInterrupt traceback; the others: nothing
    (path,) = profiles_of(out)
    assert "helper.py:3:IMPORT_TIME_LOCK" in lock_names([path])
    assert f"profile written to {path}" in summary


@pytest.mark.skipif(not POSIX, reason="signals are POSIX")
def test_sigterm_from_outside_while_the_program_waits(tmp_path):
    (tmp_path / "wait.py").write_text(textwrap.dedent("""\
        import threading
        lock = threading.Lock()
        with lock:
            pass
        print("ready", flush=True)
        for _ in range(600):  # short waits: 3.13t loses a signal that comes just before a wait
            threading.Event().wait(0.1)
    """))
    out = tmp_path / "prof"
    process = subprocess.Popen(ENTRY_POINTS["python -m lockprof"] + ["run", "--capture-pct", "100", "--output",
                               str(out), "wait.py"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=tmp_path, env=subprocess_env(), preexec_fn=default_signals)
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM
    (path,) = profiles_of(out)
    assert "wait.py:2:lock" in lock_names([path]) and "profile written to" in stderr


@pytest.mark.skipif(not POSIX, reason="signals are POSIX")
def test_a_signal_during_the_final_flush_ends_the_process_once_the_flush_is_done(tmp_path):
    script = textwrap.dedent("""\
        import os, signal, sys
        from lockprof.profiler import Profiler
        from lockprof.runner import FinalFlush

        def then():  # runs while the final profile is being written: SIGTERM arrives meanwhile
            os.kill(os.getpid(), signal.SIGTERM)
            print("the flush went on", flush=True)

        profiler = Profiler(output=sys.argv[1])
        profiler.start()
        FinalFlush(profiler, then=then).install()
        print("exiting", flush=True)
    """)
    out = tmp_path / "prof"
    result = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, env=subprocess_env(), preexec_fn=default_signals)
    assert result.stdout == "exiting\nthe flush went on\n"
    assert result.returncode == -signal.SIGTERM  # ended by the signal, after the flush
    assert len(profiles_of(out)) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_writes_and_prints_nothing_of_its_own(tmp_path):
    (tmp_path / "forks.py").write_text(textwrap.dedent("""\
        import os, sys, threading
        lock = threading.Lock()
        with lock:
            pass
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # the child ends normally: the exit handlers it inherited run
        os.waitpid(pid, 0)
    """))
    out = tmp_path / "prof"
    result = run(["run", "--output", str(out), "forks.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(profiles_of(out)) == 1
    assert result.stderr.count("lockprof: top locks of this run") == 1


CHILDREN = """\
import multiprocessing, subprocess, sys, threading

def work(n):
    lock = threading.Lock()
    for _ in range(n):
        with lock:
            pass
    return n

if __name__ == "__main__":
    subprocess.run([sys.executable, "-c",
                    "import threading\\nchild_lock = threading.Lock()\\nfor _ in range(20):\\n"
                    "    child_lock.acquire(); child_lock.release()"], check=True)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        print(sum(pool.map(work, [30, 40, 50])))
"""


def test_subprocesses_profiles_children_too(tmp_path):
    (tmp_path / "parent.py").write_text(CHILDREN)
    out = tmp_path / "prof"
    result = run(["run", "--subprocesses", "--capture-pct", "100", "--output", str(out), "parent.py"],
                 tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "120\n"
    paths = profiles_of(out)
    pids = {os.path.basename(p).split(".")[1] for p in paths}
    assert len(pids) >= 4  # the program, the subprocess, two pool workers (and the tracker)
    names = lock_names(paths)
    assert "<string>:2:child_lock" in names  # the subprocess
    assert "parent.py:4:lock" in names  # the spawned pool workers
    assert "by child processes" in result.stderr


def test_without_subprocesses_only_the_program_is_profiled(tmp_path):
    (tmp_path / "parent.py").write_text(CHILDREN)
    out = tmp_path / "prof"
    result = run(["run", "--capture-pct", "100", "--output", str(out), "parent.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    (path,) = profiles_of(out)
    assert "parent.py:4:lock" not in lock_names([path])


def test_the_child_bootstrap_keeps_an_existing_sitecustomize(tmp_path):
    other = tmp_path / "site"
    other.mkdir()
    (other / "sitecustomize.py").write_text(
        "import os\nopen(os.environ['MARKER'], 'w').write('ran')\n")
    (tmp_path / "parent.py").write_text(
        "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'import sitecustomize, sys; "
        "print(sitecustomize.__file__); print(any(p.endswith(\"_bootstrap\") for p in sys.path))'])\n")
    env = subprocess_env(MARKER=str(tmp_path / "marker"))
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(other)])
    out = tmp_path / "prof"
    result = run(["run", "--subprocesses", "--output", str(out), "parent.py"], tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "marker").read_text() == "ran"
    assert result.stdout == f"{other / 'sitecustomize.py'}\nFalse\n"
    assert len({os.path.basename(p).split(".")[1] for p in profiles_of(out)}) == 2
