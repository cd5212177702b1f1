"""The short soak run of ci/soak.py: 100 threads on every primitive for 30 s at 100% capture,
collectors toggled all the while; the 10-minute run is documented in docs/robustness.md."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

import pytest

from scripthelpers import script_env

SOAK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ci", "soak.py")


# A known defect, open with issue 18: on free-threaded 3.13t the soak's resident memory doubled
# after its warm-up (148.8 -> 308.1 MiB in 10 s); every other check passes there. Not yet told
# apart from the free-threaded allocator's deferred frees.
FREE_THREADED_MEMORY = pytest.mark.xfail(
    sysconfig.get_config_var("Py_GIL_DISABLED") == 1, strict=False,
    reason="free-threaded builds: RSS grows after the warm-up (issue 18, not yet diagnosed)")


@pytest.mark.slow
@FREE_THREADED_MEMORY
def test_short_soak_passes_every_check(tmp_path):
    assert os.path.exists(SOAK), f"{SOAK} is missing"
    result = subprocess.run(
        [sys.executable, SOAK, "--seconds", "30", "--threads", "100", "--interval", "2",
         "--output", str(tmp_path / "soak")],
        env=script_env(), cwd=str(tmp_path), capture_output=True, text=True, timeout=900)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nok ") == 8, result.stdout
