"""The `lockprof` command (also `python -m lockprof`)."""

from __future__ import annotations

import argparse
from typing import List, Optional

from lockprof._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockprof",
        description="lockprof, a lock-contention profiler for Python. In a program: "
        "`from lockprof import Profiler; Profiler().start()`; see the README.",
    )
    parser.add_argument("--version", action="version", version=f"lockprof {__version__}")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
