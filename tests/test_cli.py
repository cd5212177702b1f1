"""The lockprof command: version, help, and a clean error for an unknown option."""

import os
import subprocess
import sys

import pytest

import lockprof
from lockprof.cli import main


def test_version_option_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lockprof {lockprof.__version__}"


def test_no_arguments_prints_help(capsys):
    assert main([]) == 0
    assert "usage: lockprof" in capsys.readouterr().out


def test_unknown_option_is_one_usage_error_not_a_traceback(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-such-option"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --no-such-option" in err
    assert "Traceback" not in err


def test_python_dash_m_lockprof_version(tmp_path):
    # The lockprof these tests imported (installed, or built in place), from a scratch directory:
    # -m puts the working directory first on sys.path, and an unbuilt source tree would shadow it.
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(lockprof.__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "lockprof", "--version"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"lockprof {lockprof.__version__}"
