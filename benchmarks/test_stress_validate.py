"""Tests of the stress benchmark's profile validation (lock_profiler_stress/validate.py), on
profiles written with lockprof's own encoder: the checks must fail when the profile is wrong.
They are ordinary tests (no timing): `pytest benchmarks/ --benchmark-disable` runs them.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import pytest

from lockprof import pprof
from lockprof.profile import Frame, LockSample, LockTotals, Snapshot
from lockprof.renderers.pprof import PprofRenderer

STRESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lock_profiler_stress")
sys.path.insert(0, STRESS)
from validate import validate  # noqa: E402

SCENARIO = os.path.join(STRESS, "scenario.py")
LOCK = "lock_profiler_stress/scenario.py:180:lock"


def stack_sample(thread_name: str = "worker-0", lock_name: str = LOCK, filename: str = SCENARIO) -> LockSample:
    return LockSample(lock_name=lock_name, lock_kind="lock",
                      frames=(Frame("worker", filename, 181), Frame("run", "threading.py", 975)),
                      thread_id=1, thread_native_id=2, thread_name=thread_name,
                      acquire_count=500, acquire_wait_ns=10_000_000, release_count=500, release_hold_ns=5_000_000)


def result_with(tmp_path, samples: List[LockSample], totals_wait_ns: Optional[int] = None,
                acquires: int = 50_000, wait_ns: int = 400_000_000, over_1ms_ns: int = 300_000_000,
                scenario: str = "high_contention") -> dict:
    totals = []
    if totals_wait_ns is not None:
        totals.append(LockTotals(LOCK, "lock", Frame(LOCK, SCENARIO, 180), contended_count=100,
                                 wait_ns=totals_wait_ns, max_wait_ns=totals_wait_ns // 10))
    path = str(tmp_path / "lockprof.1.0.pprof")
    pprof.write_atomic(path, PprofRenderer().render(Snapshot(samples, 0, 10**9, 1.0, lock_totals=totals)))
    return {"profile_files": [path], "scenario": scenario, "scenario_file": SCENARIO, "profiler_settings": {"capture_pct": 1.0},
            "measured_waits": {"profiled": {"acquires": acquires, "wait_ns": wait_ns, "wait_over_1ms_ns": over_1ms_ns}}}


def failed(checks) -> List[str]:
    return [check.name for check in checks if not check.ok]


def test_a_good_profile_passes(tmp_path):
    checks = validate(result_with(tmp_path, [stack_sample()], totals_wait_ns=350_000_000))
    assert failed(checks) == []
    assert "exact per-lock totals" in checks[-1].detail


@pytest.mark.parametrize("totals_wait_ns", [500_000_000, 20_000_000])
def test_exact_wait_totals_out_of_bounds_fail(tmp_path, totals_wait_ns):
    # Above everything the scenario measured, or far below the waits that surely blocked.
    checks = validate(result_with(tmp_path, [stack_sample()], totals_wait_ns=totals_wait_ns))
    assert failed(checks) == ["wait totals match the measured waits"]


def test_missing_events_stacks_and_thread_names_fail(tmp_path):
    elsewhere = stack_sample(thread_name="", filename="/elsewhere/app.py")
    assert failed(validate(result_with(tmp_path, [elsewhere], totals_wait_ns=350_000_000))) == [
        "stacks point into the scenario", "thread names present"]
    other_lock = stack_sample(lock_name="queue.py:35:mutex")
    assert failed(validate(result_with(tmp_path, [other_lock], totals_wait_ns=350_000_000))) == [
        "acquire and release events", "stacks point into the scenario", "thread names present"]


def test_a_lock_without_totals_never_waited(tmp_path):
    # No totals sample for the scenario's lock: the profile says it never waited, which fits a
    # run that measured no long wait and contradicts one that did.
    assert failed(validate(result_with(tmp_path, [stack_sample()], wait_ns=2_000_000, over_1ms_ns=0))) == []
    assert failed(validate(result_with(tmp_path, [stack_sample()]))) == ["wait totals match the measured waits"]


def test_cpu_bound_threads_may_never_wait_on_their_locks(tmp_path):
    # high_frequency's waits over 1 ms are the GIL's: no lock wait at all is right there, but
    # more than everything measured is still wrong.
    assert failed(validate(result_with(tmp_path, [stack_sample()], scenario="high_frequency"))) == []
    assert failed(validate(result_with(tmp_path, [stack_sample()], totals_wait_ns=500_000_000,
                                       scenario="high_frequency"))) == ["wait totals match the measured waits"]


def test_events_are_not_required_when_too_few_captures_are_expected(tmp_path):
    assert failed(validate(result_with(tmp_path, [], acquires=100, wait_ns=0, over_1ms_ns=0))) == []


def test_missing_or_corrupt_files_fail(tmp_path):
    result = result_with(tmp_path, [stack_sample()])
    with open(result["profile_files"][0], "wb") as f:
        f.write(b"not a profile")
    assert failed(validate(result)) == ["profile files written"]
    result["profile_files"] = []
    assert failed(validate(result)) == ["profile files written"]
