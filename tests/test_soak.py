"""The short soak run of ci/soak.py: 100 threads on every primitive for 30 s at 100% capture,
collectors toggled all the while; the 10-minute run is documented in docs/robustness.md."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scripthelpers import script_env

SOAK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ci", "soak.py")


@pytest.mark.slow
def test_short_soak_passes_every_check(tmp_path):
    assert os.path.exists(SOAK), f"{SOAK} is missing"
    result = subprocess.run(
        [sys.executable, SOAK, "--seconds", "30", "--threads", "100", "--interval", "2",
         "--output", str(tmp_path / "soak")],
        env=script_env(), cwd=str(tmp_path), capture_output=True, text=True, timeout=900)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nok ") == 8, result.stdout
