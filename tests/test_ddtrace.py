"""lockprof as ddtrace's lock collector (lockprof.integrations.ddtrace, docs/ddtrace.md): a
threaded program under ddtrace's profiler, the profiles ddtrace writes read back with lockprof's
reader and with go tool pprof. ddtrace is in the test extra; without it (or without zstd, which
ddtrace's files are compressed with) these tests skip, unless LOCKPROF_REQUIRE_DDTRACE=1 (CI)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import warnings

import pytest

from lockprof import pprof
from lockprof.config import LockprofConfigWarning, env_setting
from lockprof.integrations import ddtrace as integration

from scripthelpers import LOCKPROF_ROOT, SCRIPT_TIMEOUT, line_of, script_env
from test_pprof import require_go, run_pprof


# ddtrace ships no build for free-threaded CPython: there, and only there, its absence skips.
FREE_THREADED = sysconfig.get_config_var("Py_GIL_DISABLED") == 1


def require(what: str, found: bool, how: str) -> None:
    if found:
        return
    reason = f"{what} is not available ({how})"
    if FREE_THREADED and integration.ddtrace_version() is None:
        pytest.skip(f"{reason}: ddtrace has no free-threaded build")
    if os.environ.get("LOCKPROF_REQUIRE_DDTRACE") == "1":
        pytest.fail(f"LOCKPROF_REQUIRE_DDTRACE=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def ddtrace_profiling():
    require("ddtrace", integration.ddtrace_version() is not None, "pip install '.[test]'")
    from ddtrace.internal.datadog.profiling import ddup

    require("ddtrace's profiler", ddup.is_available, "not on this platform")
    require("zstd", shutil.which("zstd") is not None, "apt-get install zstd")


PROGRAM = """
    import asyncio, json, sys, threading, time

    if sys.argv[1] == "install":
        from lockprof.integrations import ddtrace as integration
        assert integration.install()
    import ddtrace
    from ddtrace.profiling import Profiler, bootstrap

    profiler = getattr(bootstrap, "profiler", None)  # started by ddtrace.auto / ddtrace-run
    if profiler is None:
        profiler = Profiler()
        profiler.start()

    shared_lock = threading.Lock()
    spans = {}

    def work(i):
        with ddtrace.tracer.trace("request") as root:
            with ddtrace.tracer.trace("query") as span:
                spans[span.span_id] = root.span_id
                for _ in range(30):
                    with shared_lock:
                        time.sleep(0.001)

    threads = [threading.Thread(target=work, args=(i,), name=f"worker-{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    from lockprof._primitives import ProfiledClass

    def wrapper(kind):  # the module of the class that profiles kind's objects
        made = type(kind())
        return "lockprof._primitives" if isinstance(made, ProfiledClass) else made.__module__

    kinds = {}

    async def tasks():
        # In a running loop: 3.9's asyncio primitives bind the current loop when made.
        kinds.update({f"asyncio.{name}": wrapper(getattr(asyncio, name))
                      for name in ("Lock", "Semaphore", "BoundedSemaphore", "Condition")})
        task_lock = asyncio.Lock()

        async def fetch():
            async with task_lock:
                await asyncio.sleep(0.005)

        await asyncio.gather(*(asyncio.create_task(fetch(), name=f"fetch-{i}") for i in range(4)))

    asyncio.run(tasks())
    kinds.update({f"threading.{name}": wrapper(getattr(threading, name))
                  for name in ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition")})
    collectors = [type(c).__module__ + "." + type(c).__name__ for c in profiler._profiler._collectors]
    profiler.stop()
    print(json.dumps({"kinds": kinds, "collectors": collectors, "spans": spans}))
"""


def run_under_ddtrace(tmp_path, mode: str, command=(sys.executable,), **variables: str):
    """Run PROGRAM (mode: install, or env for LOCKPROF_DDTRACE) with command; its result and
    the profiles ddtrace wrote."""
    path = tmp_path / "program.py"
    path.write_text(textwrap.dedent(PROGRAM))
    env = script_env(DD_PROFILING_OUTPUT_PPROF=str(tmp_path / "dd"), DD_TRACE_ENABLED="false",
                     DD_PROFILING_UPLOAD_INTERVAL="60", DD_INSTRUMENTATION_TELEMETRY_ENABLED="false",
                     **variables)
    proc = subprocess.run([*command, str(path), mode], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    files = sorted(glob.glob(str(tmp_path / "dd.*.pprof")))
    assert files, f"ddtrace wrote no profile:\n{proc.stderr}"
    return result, files


def decompressed(path: str) -> str:
    """ddtrace's profile file, zstd-compressed, as the plain protobuf lockprof and go read."""
    plain = path + ".pb"
    subprocess.run(["zstd", "-d", "-q", "-f", path, "-o", plain], check=True)
    return plain


def check_hosted(result, files, tmp_path) -> None:
    """lockprof's wrappers, no ddtrace lock collector, and lockprof's samples in ddtrace's file."""
    assert set(result["kinds"].values()) == {"lockprof._lock", "lockprof._primitives"}, result["kinds"]
    collectors = result["collectors"]
    assert "lockprof.integrations.ddtrace_collector.DdtraceLockCollector" in collectors
    assert not [c for c in collectors if c.startswith(("ddtrace.profiling.collector.threading",
                                                        "ddtrace.profiling.collector.asyncio"))]
    plain = [decompressed(path) for path in files]
    samples = [s for path in plain for s in pprof.read_profile(path).samples if s.lock_name]
    shared_line = line_of(PROGRAM, "shared_lock = threading.Lock()")
    shared = [s for s in samples if s.lock_name == f"program.py:{shared_line}:shared_lock"]
    assert sum(s.acquire_wait_ns for s in shared) > 0
    assert all(s.frames and s.frames[0].name == "work" for s in shared)
    assert {s.thread_name for s in shared if s.acquire_wait_ns} <= {f"worker-{i}" for i in range(4)}
    spans = {int(span): root for span, root in result["spans"].items()}
    labelled = [s for s in shared if s.span_id is not None]
    assert labelled and all(spans[s.span_id] == s.local_root_span_id for s in labelled)
    tasks = [s for s in samples if s.lock_name.endswith(":task_lock") and s.acquire_wait_ns]
    assert tasks and all(s.task_name.startswith("fetch-") for s in tasks)

    go_out = run_pprof(require_go(), ["-raw", plain[-1]], tmp_path)
    assert f"lock name:[program.py:{shared_line}:shared_lock]" in go_out
    assert "lock-acquire-wait/nanoseconds" in go_out


def test_install_makes_ddtrace_profile_with_lockprofs_collector(tmp_path, ddtrace_profiling):
    result, files = run_under_ddtrace(tmp_path, "install")
    check_hosted(result, files, tmp_path)


def test_lockprof_ddtrace_variable_needs_no_code_change(tmp_path, ddtrace_profiling):
    # ddtrace-run starts ddtrace's profiler before the program runs, then unloads threading and
    # _thread for the program to import afresh; lockprof's start-up hook (lockprof-ddtrace.pth
    # in site-packages) installs lockprof first. An editable install has no .pth: a site
    # directory holding the checkout's stands in for site-packages, and `import ddtrace.auto`
    # (what ddtrace-run's bootstrap runs) for ddtrace-run.
    variables = dict(LOCKPROF_DDTRACE="true", DD_PROFILING_ENABLED="true")
    if os.path.exists(os.path.join(sysconfig.get_paths()["purelib"], "lockprof-ddtrace.pth")):
        command = (shutil.which("ddtrace-run", path=os.path.dirname(sys.executable)), sys.executable)
    else:
        site_dir = tmp_path / "site"
        site_dir.mkdir()
        shutil.copy(os.path.join(LOCKPROF_ROOT, "lockprof-ddtrace.pth"), site_dir)
        command = (sys.executable, "-c", f"import site; site.addsitedir({str(site_dir)!r}); "
                   "import ddtrace.auto, runpy, sys; sys.argv = sys.argv[1:]; "
                   "runpy.run_path(sys.argv[0], run_name='__main__')")
    result, files = run_under_ddtrace(tmp_path, "env", command, **variables)
    check_hosted(result, files, tmp_path)


@pytest.mark.parametrize("version, inside", [
    ("4.16.0", True), ("4.16.3rc1", True), ("4.15.2", False), ("4.17.0", False), ("5.0.0", False),
    ("3.16.0", False), ("unknown", False),
])
def test_supported_versions(version, inside):
    assert integration.supported(version) is inside


def test_outside_the_range_one_warning_and_ddtrace_keeps_its_collector(monkeypatch):
    monkeypatch.setattr(integration, "ddtrace_version", lambda: "4.15.2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert integration.install() is False
    [warning] = caught
    assert warning.category is LockprofConfigWarning
    assert "ddtrace 4.15.2" in str(warning.message) and ">=4.16,<4.17" in str(warning.message)
    assert integration._overrides is None  # nothing of ddtrace's was touched


def test_bad_arguments_raise_naming_them(monkeypatch):
    monkeypatch.setattr(integration, "ddtrace_version", lambda: "4.16.0")
    with pytest.raises(ValueError, match="capture_pct"):
        integration.install(capture_pct=200)
    with pytest.raises(TypeError, match="max_frames"):
        integration.install(max_frames="many")


def test_bad_lockprof_ddtrace_value_warns_once_and_uses_false():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert env_setting("ddtrace", {"LOCKPROF_DDTRACE": "maybe"}) is False
    [warning] = caught
    assert "LOCKPROF_DDTRACE='maybe'" in str(warning.message) and "default False" in str(warning.message)
    assert env_setting("ddtrace", {"LOCKPROF_DDTRACE": " on "}) is True
    assert env_setting("ddtrace", {}) is False
