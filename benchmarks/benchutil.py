"""Small helpers the benchmark scripts share: the machine's description, JSON output, and the
rotation that keeps any one variant from always running first."""

from __future__ import annotations

import json
import os
import platform
import sys
import sysconfig
from typing import Any, List, Sequence, TypeVar

T = TypeVar("T")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def gil_state() -> str:
    """"off" or "on" on a free-threaded build (a module that needs the GIL turns it on at its
    import), "n/a" on a build with the GIL."""
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "n/a"
    return "on" if sys._is_gil_enabled() else "off"


def last_cpu() -> int:
    """The highest-numbered CPU this process may run on (-1 where affinity is unsupported)."""
    if not hasattr(os, "sched_getaffinity"):
        return -1
    return max(os.sched_getaffinity(0))


def check_cpu(cpu: int) -> None:
    """ValueError unless `cpu` is -1 (not pinned) or a CPU this process may run on."""
    if cpu == -1:
        return
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if cpu not in allowed:
        raise ValueError(f"CPU {cpu} is not one this process may use ({sorted(allowed) or 'no affinity support'}); "
                         "-1 runs unpinned")


def pinned_to(cpu: int):
    """A subprocess preexec_fn that runs the child on CPU `cpu` only (None: not pinned).
    Threads of one process on one CPU hand the GIL over without cross-core wake-ups, which
    otherwise made the same run vary by a factor of two to four from one try to the next."""
    if cpu < 0:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def rotated(items: Sequence[T], turn: int) -> List[T]:
    """items started at position turn (modulo their number): round r runs them in this order."""
    shift = turn % len(items)
    return list(items[shift:]) + list(items[:shift])


def write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
