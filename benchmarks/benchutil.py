"""Small helpers the benchmark scripts share: the machine's description, JSON output, and the
rotation that keeps any one variant from always running first."""

from __future__ import annotations

import json
import os
import platform
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


def rotated(items: Sequence[T], turn: int) -> List[T]:
    """items started at position turn (modulo their number): round r runs them in this order."""
    shift = turn % len(items)
    return list(items[shift:]) + list(items[:shift])


def write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
