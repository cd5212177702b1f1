"""The `lockprof` command (also `python -m lockprof`).

    lockprof run [options] script.py [args]    profile a program, unchanged
    lockprof run [options] -m module [args]
    lockprof report PROFILE...                 the top locks, as text, JSON or CSV
    lockprof flamegraph PROFILE... -o FILE     HTML, SVG, speedscope or folded stacks

A profile that cannot be read is reported on one line naming the file, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, List, Optional

from lockprof import flamegraph, pprof, report
from lockprof._term import COLOR_MODES, color_enabled, width
from lockprof.profile import Snapshot
from lockprof.renderers import RENDERERS, FlameGraphRenderer, ReportRenderer, flame_graph_format_of, formats
from lockprof.renderers.base import encode_text
from lockprof._lock import CORE_MODE
from lockprof._version import __version__
from lockprof.config import parse_setting, settings
from lockprof.runner import run_program

# Option names of the settings where the setting's own name is not the natural one.
_OPTION_NAMES = {"upload_interval": ["--interval", "--upload-interval"]}
_BAD_INPUT = 2  # exit status for a profile that cannot be read, as for a usage error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockprof",
        description="lockprof, a lock-contention profiler for Python. Profile a program with "
        "`lockprof run app.py`, read the profiles with `lockprof report` and "
        "`lockprof flamegraph`. In a program: `from lockprof import Profiler; "
        "Profiler().start()`; see the README.",
    )
    parser.add_argument("--version", action="version", version=f"lockprof {__version__} ({CORE_MODE} core)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(commands)
    _add_report(commands)
    _add_flamegraph(commands)
    return parser


def _command(commands: Any, name: str, handler: Callable[..., int], summary: str,
             description: str, **more: Any) -> argparse.ArgumentParser:
    """A subcommand whose arguments main() hands to handler, with the subcommand's parser
    (for its usage errors)."""
    parser = commands.add_parser(name, help=summary, description=description, **more)
    parser.set_defaults(handler=handler, command_parser=parser)
    return parser


def _add_profiles_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profiles", nargs="+", metavar="PROFILE", help="pprof files (gzip or not)")


def _add_run(commands: Any) -> None:
    run = _command(
        commands, "run", _run, "profile a Python program: lockprof run [options] script.py [args]",
        "Run a Python script (or, with -m, a module) with its locks profiled, from its first "
        "import to its exit; then print the top locks to stderr. Options not given come from "
        "the DD_PROFILING_* environment variables, then the defaults.",
        usage="lockprof run [options] (script.py | -m module) [args ...]",
    )
    for setting in settings():
        flags = _OPTION_NAMES.get(setting.name, ["--" + setting.name.replace("_", "-")])
        run.add_argument(
            *flags, dest=setting.name, metavar=setting.name.split("_")[-1].upper(),
            type=_setting_type(setting.name),
            help=f"{setting.allowed} (${setting.env_var}; default: {setting.default or 'none'})",
        )
    run.add_argument("--subprocesses", action="store_true",
                     help="profile the Python processes the program starts too (subprocess, "
                     "multiprocessing with the spawn method); each writes its own files")
    run.add_argument("--no-summary", dest="summary", action="store_false",
                     help="at exit, print only where the profiles are, not the top locks")
    # REMAINDER: everything after the script (or -m's module) belongs to the program.
    run.add_argument("-m", dest="module", nargs=argparse.REMAINDER, metavar="module [args]",
                     help="run a library module as a script, as python -m does")
    run.add_argument("program", nargs=argparse.REMAINDER, metavar="script.py [args]",
                     help="the script and its arguments")


def _setting_type(name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return parse_setting(name, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = name  # what argparse names in "invalid <name> value"
    return parse


def _add_report(commands: Any) -> None:
    cmd = _command(
        commands, "report", _report, "print the top locks of one or more profiles",
        "Print the locks that cost the most in one or more profiles (several files are "
        "merged): name and creation site, kind, contended acquires, total, average and maximum "
        "wait, hold and blocking hold, and the stack that waited the most.",
    )
    _add_profiles_argument(cmd)
    cmd.add_argument("--sort", choices=list(report.SORT_KEYS), default="wait",
                     help="the column that orders the rows (default: wait)")
    cmd.add_argument("--limit", type=_count, default=20,
                     help="rows to show, 0 for all (default: 20)")
    cmd.add_argument("--by", choices=report.GROUPINGS, default="lock",
                     help="one row per lock, thread, asyncio task or trace span (the spans that "
                          "waited most; default: lock)")
    cmd.add_argument("--format", choices=formats(ReportRenderer), default="text",
                     help="text for people, json or csv for programs (default: text)")
    cmd.add_argument("--color", choices=COLOR_MODES, default="auto",
                     help="colour the text: auto (on a terminal, unless NO_COLOR is set)")


def _add_flamegraph(commands: Any) -> None:
    cmd = _command(
        commands, "flamegraph", _flamegraph, "draw a flame graph of wait (hold, blocking hold) time",
        "Draw the stacks of one or more profiles as a flame graph: an interactive HTML page "
        "(works offline, switches between wait, hold, blocking hold and condition wait), a "
        "static SVG, a speedscope file, or folded stacks for other tools.",
    )
    _add_profiles_argument(cmd)
    cmd.add_argument("-o", "--output", default="-",
                     help="the file to write, - for stdout (default); its extension "
                     "(.html, .svg, .json, .folded) selects the format")
    cmd.add_argument("--format", choices=formats(FlameGraphRenderer),
                     help="html (default), svg, speedscope or folded")
    cmd.add_argument("--metric", default=None,
                     help="wait (default), hold, blocking-hold or condition-wait; for other "
                     "tools' profiles, any of their sample types")
    cmd.add_argument("--title", help="the title of the HTML page or SVG image")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more, got {text!r}")
    return value


# ---------------------------------------------------------------------------------------------
# Commands


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.module is not None:
        if not args.module:
            parser.error("argument -m: expected a module name")
        if args.program:  # e.g. `run -m` given after a script name: not what was meant
            parser.error("give either a script or -m module, not both")
        target, program_args, module = args.module[0], args.module[1:], True
    elif args.program:
        if args.program[0] == "--":  # `lockprof run -- script.py`
            args.program = args.program[1:]
        if not args.program:
            parser.error("the script to run is missing")
        target, program_args, module = args.program[0], args.program[1:], False
    else:
        parser.error("the script (or -m module) to run is missing")
    given = {s.name: getattr(args, s.name) for s in settings() if getattr(args, s.name) is not None}
    return run_program(target, program_args, module=module, settings=given,
                       subprocesses=args.subprocesses, summary=args.summary)


def _report(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    profiles = _read(args.profiles)
    for path, profile in zip(args.profiles, profiles):
        if not report.is_lock_profile(profile):
            types = ", ".join(f"{t.type}/{t.unit}" for t in profile.sample_types) or "none"
            print(f"lockprof: {path} is not a lock profile (its sample types: {types})",
                  file=sys.stderr)
    renderer = RENDERERS[args.format]
    assert issubclass(renderer, ReportRenderer)  # --format's choices
    text = renderer(by=args.by, sort=args.sort, limit=args.limit, files=args.profiles, width=width(sys.stdout),
                    color=color_enabled(sys.stdout, args.color)).render(profiles)
    # Characters stdout cannot encode (a file name's undecodable bytes) are escaped.
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    text = text.encode(encoding, "backslashreplace").decode(encoding)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _flamegraph(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    fmt = args.format or flame_graph_format_of(args.output) or "html"
    profiles = _read(args.profiles)
    try:
        metric = flamegraph.choose_metric(profiles, args.metric)
    except ValueError as error:
        parser.error(f"argument --metric: {error}")
    shown = args.profiles[0] if len(args.profiles) == 1 else f"{len(args.profiles)} profiles"
    title = args.title or f"lockprof: {shown}"
    renderer = RENDERERS[fmt]
    assert issubclass(renderer, FlameGraphRenderer)  # --format's choices, or an extension's
    data = encode_text(renderer(metric, title, progress_to=sys.stderr).render(profiles))
    if args.output == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    try:
        pprof.write_atomic(args.output, data)
    except OSError as error:
        print(f"lockprof flamegraph: cannot write {args.output}: {error.strerror or error}",
              file=sys.stderr)
        return 1
    print(f"lockprof: wrote {args.output} ({fmt}, {metric.title})", file=sys.stderr)
    return 0


def _read(paths: List[str]) -> List[Snapshot]:
    """The profiles at paths; one that cannot be read ends the command (status 2)."""
    try:
        profiles = pprof.read_profiles(paths, progress_to=sys.stderr)
    except pprof.ProfileReadError as error:
        print(f"lockprof: {error}", file=sys.stderr)
        raise SystemExit(_BAD_INPUT) from None
    return profiles


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handler: Callable[[argparse.ArgumentParser, argparse.Namespace], int] = args.handler
    return handler(args.command_parser, args)
