"""Helpers for the tests that run a program of their own in a subprocess (fork, gevent, exit
paths, bad environments) and read the profiles it wrote."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
from collections import Counter
from typing import Dict, Iterable, List, Optional

import lockprof
from lockprof import pprof
from lockprof.profile import Snapshot

# The lockprof under test (the checkout, when built in place): the subprocesses import it too.
LOCKPROF_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(lockprof.__file__)))
# Long enough for a loaded 2-core machine; a deadlocked program is killed at this limit.
SCRIPT_TIMEOUT = 180


def script_env(**variables: str) -> Dict[str, str]:
    """The environment of a test program: lockprof importable, no DD_PROFILING_* variable but
    those given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_PROFILING_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (LOCKPROF_ROOT, env.get("PYTHONPATH")) if p)
    env.update(variables)
    return env


def run_script(source: str, cwd: str, *args: str, env: Optional[Dict[str, str]] = None,
               timeout: float = SCRIPT_TIMEOUT) -> subprocess.CompletedProcess:
    """Run source (dedented) as a program in cwd; its output is captured as text."""
    path = os.path.join(cwd, "program.py")
    with open(path, "w") as f:
        f.write(textwrap.dedent(source))
    return subprocess.run([sys.executable, path, *args], cwd=cwd,
                          env=env if env is not None else script_env(),
                          capture_output=True, text=True, timeout=timeout)


def profiles(prefix: str, pid: Optional[int] = None) -> List[str]:
    """The profiles written under an output prefix, by one process or all, oldest first."""
    paths = glob.glob(f"{prefix}.{pid if pid is not None else '*'}.*.pprof")
    return sorted(paths, key=lambda p: (p.rsplit(".", 3)[1], int(p.rsplit(".", 2)[1])))


def read(path: str) -> Snapshot:
    with open(path, "rb") as f:
        return pprof.decode(f.read())


def values_by_variable(paths: Iterable[str], sample_type: str = "lock-acquire") -> Dict[str, int]:
    """sample_type summed per lock over the stack samples of profiles, the lock known by its
    variable name (the last part of its name)."""
    totals: Counter = Counter()
    for path in paths:
        for sample in read(path).samples:
            totals[sample.lock_name.rsplit(":", 1)[-1]] += sample.value(sample_type)
    return dict(totals)


def values_by_line(paths: Iterable[str], sample_type: str = "lock-acquire") -> Dict[int, int]:
    """sample_type summed per line of the test program that created the lock: exact even for a
    lock left unnamed (a lock its creation site does not name is named at its first captured
    release, which a signal handler or a finaliser running inside it can make miss)."""
    totals: Counter = Counter()
    for path in paths:
        for sample in read(path).samples:
            name = sample.lock_name
            if name.startswith("program.py:"):
                totals[int(name.split(":")[1])] += sample.value(sample_type)
    return dict(totals)


def line_of(source: str, text: str) -> int:
    """The line of run_script's program made from source on which text is."""
    return next(number for number, line in enumerate(textwrap.dedent(source).splitlines(), 1)
                if text in line)


def negative_values(paths: Iterable[str]) -> List[str]:
    """Every negative value in the profiles, described (there must be none)."""
    found = []
    for path in paths:
        profile = read(path)
        for record in (*profile.samples, *profile.lock_totals):
            for value_type in profile.sample_types:
                value = record.value(value_type.type)
                if value < 0:
                    found.append(f"{path}: {record.lock_name} {value_type.type}={value}")
    return found
