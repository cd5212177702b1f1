"""Profiles a child process of `lockprof run --subprocesses`.

`lockprof run` puts this directory first on PYTHONPATH and sets LOCKPROF_SUBPROCESSES (to its
own pid, which the profiles written here carry) and the DD_PROFILING_* variables of its settings, so every Python process the program starts imports
this module at startup (the `site` module imports `sitecustomize`) and profiles itself,
writing <output>.<its pid>.<seq>.pprof. The sitecustomize this one shadows still runs.
"""

import os
import sys


def _run_the_shadowed_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    # Out of sys.path for good: the program should not see it (children still get PYTHONPATH).
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    this_module = sys.modules.pop("sitecustomize")
    try:
        import sitecustomize  # noqa: F401  (the next one on sys.path, if any)
    except ImportError as error:
        # The import system expects to find this module in sys.modules when it ends.
        sys.modules["sitecustomize"] = this_module
        if error.name != "sitecustomize":
            raise


def _start_profiling(root_pid: int) -> None:
    try:
        from lockprof.profiler import Profiler
        from lockprof.runner import FinalFlush
    except ImportError as error:  # another Python, or one without lockprof: run unprofiled
        sys.stderr.write(f"lockprof: not profiling process {os.getpid()} ({sys.executable}): {error}\n")
        return
    profiler = Profiler()  # settings from the DD_PROFILING_* variables
    profiler.root_pid = root_pid
    profiler.start()
    # The final profile is written at exit, and on SIGTERM too: multiprocessing's
    # Pool.terminate() and process managers end children with it.
    FinalFlush(profiler).install()


_root_pid = os.environ.get("LOCKPROF_SUBPROCESSES", "")
if _root_pid.isdigit():
    _start_profiling(int(_root_pid))
_run_the_shadowed_sitecustomize()
