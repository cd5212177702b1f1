"""Starts lockprof in every Python process that has this directory on PYTHONPATH.

tests/test_cpython_suites.py runs CPython's own regression tests (`python -m test ...`) with
this directory on PYTHONPATH and LOCKPROF_REGRTEST=1, so profiling runs at 100% capture before
the test package, or any lock of the tests, exists; the subprocesses the tests start (those not
run in isolated mode) inherit the environment and are profiled too. Where the profiles go and how
often they are written come from the DD_PROFILING_* variables the test sets.
"""

import os

# The process that started profiling, in the process environment: a subinterpreter of the same
# process (test_threading makes some) runs this file again, and lockprof's compiled modules
# load in one interpreter per process only.
_STARTED_IN = "LOCKPROF_REGRTEST_PID"

if os.environ.get("LOCKPROF_REGRTEST") == "1" and os.environ.get(_STARTED_IN) != str(os.getpid()):
    os.environ[_STARTED_IN] = str(os.getpid())
    from lockprof import Profiler

    Profiler(lock_enabled=True, capture_pct=100).start()
