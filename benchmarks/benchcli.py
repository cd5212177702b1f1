"""The command line the plain benchmark scripts share (--quick, --rounds, --json)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, Optional


def parse_args(doc: str, default_rounds: int, argv: Optional[List[str]] = None) -> argparse.Namespace:
    """--quick, --rounds (default_rounds, or 2 with --quick) and --json; the first paragraph of
    the script's docstring is its description."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: numbers not meaningful")
    parser.add_argument("--rounds", type=int,
                        help=f"interleaved rounds (default {default_rounds}; 2 with --quick)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else default_rounds
    return args


def write_json(path: Optional[str], results: Any) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"python": sys.version, "results": results}, f, indent=1)
