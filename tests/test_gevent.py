"""gevent and re-import: programs that monkey-patch with gevent before or after profiling starts
keep working (greenlets still exclude each other) and are profiled with greenlet names as task
labels; a threading module imported again is patched and unpatched like the first one.

Monkey-patching is for the whole process, so each case is a program of its own."""

from __future__ import annotations

from scripthelpers import run_script

UNPATCHED_AFTER_REIMPORT = """
    import sys, threading
    from lockprof import LockCollector

    native = (threading.Lock, threading.RLock)
    collector = LockCollector(capture_pct=100)
    collector.start()
    del sys.modules["threading"]
    import threading as second
    collector.stop()
    # Both modules make native locks again; the original keeps its own factories.
    assert (threading.Lock, threading.RLock) == native
    assert type(second.Lock()).__name__ == "lock" and "Profiled" not in type(second.RLock()).__name__
    print("ok")
"""


def test_stop_after_threading_is_imported_again_leaves_both_modules_native(tmp_path):
    result = run_script(UNPATCHED_AFTER_REIMPORT, str(tmp_path))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
