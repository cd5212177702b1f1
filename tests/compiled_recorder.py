"""The compiled Recorder behind the interface of tests/sampling_model.py: the same events in,
the same Drained out. Its cdef entry points are reached through tests/recorder_driver.pyx,
compiled here on first use against the source tree's declarations (needs Cython and a C
compiler, both in the test extras: skipped where Cython is missing, as in ci/dist.sh's wheel test)."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import sysconfig
from pathlib import Path

import pytest

from sampling_model import Drained

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DRIVER = TESTS / "recorder_driver.pyx"


@functools.lru_cache(maxsize=None)
def _driver_module():
    """recorder_driver, built once per source state and Python into build/recorder-driver/."""
    cython_build = pytest.importorskip("Cython.Build", reason="building the Recorder driver needs Cython")
    from setuptools import Distribution, Extension

    # The driver reaches into the Recorder's C layout: rebuilt whenever a declaration changes.
    sources = [DRIVER, *sorted((ROOT / "lockprof").glob("*.pxd")), *sorted((ROOT / "lockprof").glob("*.h"))]
    # The core's mode too: .ci/run tests an interpreter's two cores at once, each its own driver.
    salt = (sys.version + os.environ.get("LOCKPROF_CORE", "")).encode()
    key = hashlib.sha256(salt + b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    out = ROOT / "build" / "recorder-driver" / key
    built = out / f"recorder_driver{sysconfig.get_config_var('EXT_SUFFIX')}"
    if not built.exists():
        extension = Extension("recorder_driver", [str(DRIVER)], include_dirs=[str(ROOT / "lockprof")])
        modules = cython_build.cythonize([extension], build_dir=str(out / "c"), include_path=[str(ROOT)],
                                         quiet=True,
                                         compiler_directives={"language_level": "3", "freethreading_compatible": True})
        command = Distribution({"ext_modules": modules}).get_command_obj("build_ext")
        command.build_lib, command.build_temp = str(out), str(out / "temp")
        command.ensure_finalized()
        command.run()
    spec = importlib.util.spec_from_file_location("recorder_driver", built)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CompiledRecorder:
    """lockprof._recorder.Recorder, fed as the model is: explicit times from start_ns, a seed."""

    def __init__(self, capture_pct, wait_sample_interval, seed, start_ns=0, capture_budget=None):
        from lockprof._recorder import LockInfo, Recorder
        from lockprof._sampler import CaptureSampler

        recorder = Recorder(CaptureSampler(capture_pct), wait_sample_interval=wait_sample_interval)
        if capture_budget is not None:
            recorder.capture_budget = capture_budget
        info = LockInfo("lock", sys._getframe().f_code, 0, __name__)  # made here
        self._driver = _driver_module().RecorderDriver(recorder, info, seed, start_ns)
        self.acquire = self._driver.acquire
        self.release = self._driver.release
        self.lock_wait = self._driver.lock_wait
        self.wait = self._driver.wait
        self.blocking_hold = self._driver.blocking_hold
        self.condition_wait = self._driver.condition_wait

    @property
    def interval_in_force(self):
        return self._driver.recorder.interval_in_force

    def drain(self) -> Drained:
        """Recorder.drain(), summed over its event table keys (one stack here; two with timeouts)."""
        drained = self._driver.recorder.drain()
        events = drained.events
        (exact,) = drained.lock_totals or [None]
        return Drained(
            acquires=sum(e.acquire_count for e in events),
            releases=sum(e.release_count for e in events),
            hold_ns=sum(e.release_hold_ns for e in events),
            contended=sum(e.contended_count for e in events),
            wait_ns=sum(e.acquire_wait_ns for e in events),
            blocking_hold_ns=sum(e.blocking_hold_ns for e in events),
            condition_wait_ns=sum(e.condition_wait_ns for e in events),
            exact_contended=exact.contended if exact else 0,
            exact_wait_ns=exact.wait_ns if exact else 0,
            exact_max_wait_ns=exact.max_wait_ns if exact else 0,
            exact_timeouts=exact.timeouts if exact else 0,
            long_waits=[(w.wait_ns, w.timed_out) for w in drained.long_waits],
            max_interval=drained.max_interval,
        )
