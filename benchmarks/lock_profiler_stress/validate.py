"""Checks of the profile a with-lockprof scenario run wrote, against what the run measured.

It looks only at the locks the scenario created (the lock name's creation site is in the
scenario file) and compares them with the scenario's waits on the primitives that were profiled
(scenario.py sorts its measured waits by whether the object was wrapped), so a kind of
primitive that lockprof starts to profile is checked as soon as it is profiled, with no change
here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List

from lockprof import pprof, report

# The profile's exact per-lock wait totals must lie within these bounds, give or take SLACK_NS:
# at most UPPER x everything the scenario measured (its timing encloses lockprof's), at least
# LOWER x the scenario's measured waits over 1 ms. Where threads really wait on the locks the two
# agree within a few percent, but the scenario's timing also catches waits for the GIL around
# the call, which with tens of CPU-bound threads (high_frequency) made its waits over 1 ms up to
# four times the lock waits: the lower bound only catches a profile that lost most of them.
EXACT_BOUNDS = (0.1, 1.05)
# Scenarios whose threads never wait on a lock with the GIL released but when the interpreter
# takes the GIL from a holder between two bytecodes (a few times a run, or never): their waits
# over 1 ms are nearly all GIL waits, and a profile with no lock wait at all is right. Only the
# upper bound applies to them.
GIL_BOUND_SCENARIOS = ("high_frequency",)
SLACK_NS = 1_000_000
# Fewer captures than this expected (profiled acquires x capture_pct / 100): events may
# legitimately be absent, and their checks say so instead of failing.
MIN_EXPECTED_CAPTURES = 5


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def site_prefixes(scenario_file: str) -> List[str]:
    """The ways a lock name can spell the scenario file: its path relative to any directory
    above it (lockprof names a lock after the sys.path entry its file lives under)."""
    parts = os.path.abspath(scenario_file).replace(os.sep, "/").split("/")
    return ["/".join(parts[i:]) + ":" for i in range(len(parts))]


def validate(result: Dict) -> List[Check]:
    """The checks of one with-lockprof run (result: scenario.py's JSON)."""
    files = result["profile_files"]
    profiles = []
    problems = []
    for path in files:
        try:
            profiles.append(pprof.read_profile(path))
        except pprof.ProfileReadError as error:
            problems.append(str(error))
    checks = [Check("profile files written", bool(files) and not problems,
                    f"{len(files)} file(s)" + (f"; unreadable: {'; '.join(problems)}" if problems else ""))]
    if not profiles:
        return checks

    prefixes = tuple(site_prefixes(result["scenario_file"]))
    scenario_file = os.path.abspath(result["scenario_file"])
    # The scenario's locks' samples with a stack.
    stack_samples = [sample for profile in profiles for sample in profile.samples
                     if sample.lock_name.startswith(prefixes)]

    measured = result["measured_waits"]["profiled"]
    capture_pct = float(result["profiler_settings"].get("capture_pct", 0.0))
    expected = measured["acquires"] * capture_pct / 100.0
    acquires = sum(s.acquire_count for s in stack_samples)
    releases = sum(s.release_count for s in stack_samples)
    enough = expected >= MIN_EXPECTED_CAPTURES
    # Too few captures expected: absent events are not a failure, and the checks say why.
    excused = "" if enough else (f"; none required: {measured['acquires']} profiled acquires at "
                                 f"capture_pct={capture_pct:g} make {expected:.1f} captures")
    checks.append(Check("acquire and release events", (acquires > 0 and releases > 0) or not enough,
                        f"{acquires} acquires, {releases} releases (estimated) on the scenario's locks{excused}"))

    in_scenario = [s for s in stack_samples if any(f.filename == scenario_file for f in s.frames)]
    checks.append(Check("stacks point into the scenario", bool(in_scenario) or not enough,
                        f"{len(in_scenario)} of {len(stack_samples)} stacks have a frame in "
                        f"{os.path.basename(scenario_file)}{excused}"))

    named = [s for s in stack_samples if s.thread_name]
    checks.append(Check("thread names present", (bool(stack_samples) and len(named) == len(stack_samples)) or not enough,
                        f"{len(named)} of {len(stack_samples)} stacks name their thread{excused}"))

    # lockprof's own report sums each lock's exact wait totals (a lock without totals in a
    # profile never waited).
    rows = [row for row in report.build_report(profiles, by="lock").rows if row.name.startswith(prefixes)]
    profiled_wait = sum(row.wait_ns for row in rows)
    detail = (f"measured {measured['wait_ns'] / 1e6:.1f} ms in {measured['acquires']} acquires, "
              f"{measured['wait_over_1ms_ns'] / 1e6:.1f} ms of it over 1 ms")
    low = EXACT_BOUNDS[0] * measured["wait_over_1ms_ns"] - SLACK_NS
    if result.get("scenario") in GIL_BOUND_SCENARIOS:
        low = 0
    high = EXACT_BOUNDS[1] * measured["wait_ns"] + SLACK_NS
    checks.append(Check("wait totals match the measured waits", low <= profiled_wait <= high,
                        f"profile {profiled_wait / 1e6:.1f} ms (exact per-lock totals); {detail}; "
                        f"allowed {max(0.0, low) / 1e6:.1f} to {high / 1e6:.1f} ms"))
    return checks
