"""Bad input, everywhere: every row of the tables in docs/configuration.md against the code, and
each setting given empty, blank, negative, huge, NaN and wrong-typed values, as an environment
variable (the application goes on, one warning) and as an argument (TypeError or ValueError
naming it); unknown module names; an output that cannot be written and a full disk (one warning,
the application goes on, the next export writes the profile)."""

from __future__ import annotations

import ast
import inspect
import math
import os
import re
import sys
import tempfile
import threading
import warnings

import pytest

from lockprof import LockCollector, LockprofExportWarning, Profiler, pprof
from lockprof.collector import DEFAULT_MAX_ENTRIES
from lockprof.config import _CONFIG_SETTINGS, Config, LockprofConfigWarning

from scripthelpers import profiles, run_script

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                   "configuration.md")
VARIABLES = {setting.name: setting.env_var for setting in _CONFIG_SETTINGS}


def doc_table(first_header: str):
    """The rows (lists of cells) of the table of docs/configuration.md whose header starts so."""
    with open(DOC, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def first_code(cell: str) -> str:
    return re.search(r"`([^`]*)`", cell).group(1)


def test_settings_table_has_every_setting_with_its_true_default():
    rows = doc_table("argument | environment variable")
    assert [first_code(row[0]) for row in rows] == [s.name for s in _CONFIG_SETTINGS]
    assert [first_code(row[1]) for row in rows] == [s.env_var for s in _CONFIG_SETTINGS]
    defaults = Config()
    for row in rows:
        name, default = first_code(row[0]), row[4]
        if name == "output":
            documented = first_code(default).replace("<tmp>", tempfile.gettempdir())
            assert documented == os.path.join(tempfile.gettempdir(), "lockprof", "lockprof")
            documented = documented.replace("/", os.sep)
        elif default == "none":
            documented = ()
        else:
            documented = ast.literal_eval(first_code(default))
        assert documented == getattr(defaults, name), name


def test_collector_table_has_the_arguments_it_adds():
    rows = doc_table("argument | type")
    shared = set(VARIABLES)
    own = [p for p in inspect.signature(LockCollector).parameters if p not in shared]
    assert [first_code(row[0]) for row in rows] == own == ["max_entries"]
    assert ast.literal_eval(first_code(rows[0][3])) == DEFAULT_MAX_ENTRIES


# -------------------------------------------------------------------- environment variables

HUGE = "9" * 5000  # more digits than int() converts by default on 3.11+
BLANK = ("", "  \t ")  # unset: no warning

# Per variable: values that must warn once and fall back to the default (negative, huge, NaN,
# wrong type of text), and values that are valid though odd (no warning).
ENV_BAD = {
    "lock_enabled": ["-1", HUGE, "nan", "maybe"],
    "capture_pct": ["-5", "1e400", HUGE, "nan", "ten"],
    "max_frames": ["-1", HUGE, "nan", "3.5"],
    "exclude_modules": ["-1", "lockprof-bad", "a b"],
    "upload_interval": ["-1", "1e400", HUGE, "nan", "soon"],
    "output": [],  # only NUL is bad, and no environment can hold it (tests/test_config.py)
    "wait_sample_interval": ["-1ms", "1e400s", HUGE, "nan", "1h"],
}
ENV_ODD_BUT_VALID = {
    # Unknown module names are names all the same: nothing is imported.
    "exclude_modules": ["no_such_module, missing.package.module", "nan", ",".join(["m"] * 100_000)],
    "output": ["-1", "nan"],  # relative prefixes, in the working directory
}
ENV_CASES = ([(name, value, 0) for name in VARIABLES for value in BLANK]
             + [(name, value, 1) for name, values in ENV_BAD.items() for value in values]
             + [(name, value, 0) for name, values in ENV_ODD_BUT_VALID.items() for value in values])


def case_id(value):
    return value if len(value) <= 20 else f"{value[:8]}..{len(value)}_chars"


@pytest.mark.parametrize("name, value, expected", ENV_CASES,
                         ids=[f"{n}={case_id(v)!r}" for n, v, _ in ENV_CASES])
def test_bad_environment_value_warns_once_and_profiling_goes_on(monkeypatch, tmp_path, name, value,
                                                                expected):
    for variable in VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(VARIABLES[name], value)
    monkeypatch.chdir(tmp_path)
    arguments = {} if name == "output" else {"output": str(tmp_path / "profile")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        profiler = Profiler(**arguments)
        profiler.start()
        with threading.Lock():
            pass
        path = profiler.stop()
    config_warnings = [w for w in caught if issubclass(w.category, LockprofConfigWarning)]
    assert len(config_warnings) == expected, [str(w.message)[:200] for w in config_warnings]
    if expected:
        assert str(config_warnings[0].message).startswith(VARIABLES[name] + "=")
    assert not [w for w in caught if w.category is not LockprofConfigWarning]
    assert path is not None
    try:
        with open(path, "rb") as f:
            pprof.decode(f.read())
    finally:
        if not os.path.abspath(path).startswith(str(tmp_path)):  # the default output
            os.remove(path)


# ----------------------------------------------------------------------------- arguments

NOT_A_VALUE = object()
# Per category, the argument value; per argument, the categories that are valid.
ARGUMENT_VALUES = {"empty": "", "blank": "  ", "negative": -1, "huge": 10 ** 400,
                   "nan": math.nan, "wrong type": NOT_A_VALUE}
VALID = {"exclude_modules": {"empty", "blank"}}
PROFILER_ARGUMENTS = list(VARIABLES)
COLLECTOR_ARGUMENTS = ["capture_pct", "max_frames", "exclude_modules", "wait_sample_interval",
                       "max_entries"]
ARGUMENT_CASES = ([("Profiler", a, c) for a in PROFILER_ARGUMENTS for c in ARGUMENT_VALUES]
                  + [("LockCollector", a, c) for a in COLLECTOR_ARGUMENTS for c in ARGUMENT_VALUES])


@pytest.mark.parametrize("maker, argument, category", ARGUMENT_CASES)
def test_bad_argument_raises_naming_it(monkeypatch, maker, argument, category):
    for variable in VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    make = Profiler if maker == "Profiler" else LockCollector
    value = ARGUMENT_VALUES[category]
    if category in VALID.get(argument, ()):
        make(**{argument: value})
        return
    with pytest.raises((TypeError, ValueError)) as info:
        make(**{argument: value})
    assert argument in str(info.value)
    if category == "wrong type" and argument != "max_entries":
        assert info.type is TypeError


def test_unknown_module_names_are_accepted_and_exclude_nothing_else(collector):
    excluding = LockCollector(capture_pct=100, exclude_modules=["no_such_module", "missing.pkg"])
    excluding.start()
    try:
        lock = threading.Lock()
    finally:
        excluding.stop()
    assert lock.lock_info is not None  # this module is not excluded


# ------------------------------------------------------------------------- failing writes

FAILING_WRITES = """
    import glob, os, resource, sys, threading, time
    from lockprof import Profiler

    prefix, failure = sys.argv[1], sys.argv[2]
    lock = threading.Lock()
    if failure == "disk full":
        # Writes past 16 bytes fail (EFBIG, like ENOSPC a write that the system refuses);
        # CPython ignores SIGXFSZ, so the failure is an OSError.
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16, hard))
    else:  # a regular file where the output directory should be
        with open(os.path.dirname(prefix), "w") as blocker:
            blocker.write("not a directory")
    profiler = Profiler(capture_pct=100, output=prefix, upload_interval=0.05)
    profiler.start()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # the application goes on while exports fail
        with lock:
            time.sleep(0.001)
    assert not glob.glob(prefix + ".*"), "nothing can have been written yet"
    if failure == "disk full":
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    else:
        os.remove(os.path.dirname(prefix))
    deadline = time.monotonic() + 60
    while not glob.glob(prefix + ".*.pprof") and time.monotonic() < deadline:
        with lock:
            time.sleep(0.01)
    profiler.stop()
    print(os.getpid())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE")
@pytest.mark.parametrize("failure", ["disk full", "unwritable directory"])
def test_failing_exports_warn_once_and_the_next_export_writes(tmp_path, failure):
    prefix = str(tmp_path / "out" / "profile")
    if failure == "disk full":
        os.mkdir(tmp_path / "out")
    result = run_script(FAILING_WRITES, str(tmp_path), prefix, failure)
    assert result.returncode == 0, result.stderr
    # Many exports failed, all with the same message: shown once by the default filter.
    assert result.stderr.count("LockprofExportWarning") == 1, result.stderr
    written = profiles(prefix, int(result.stdout))
    assert written and written[0].endswith(".0.pprof")  # failed exports use no sequence number
    for path in written:
        with open(path, "rb") as f:
            pprof.decode(f.read())
    assert not [name for name in os.listdir(tmp_path / "out") if name.endswith(".tmp")]
