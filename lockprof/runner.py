"""`lockprof run`: profile a Python program, unchanged, from its first import to its exit.

The program runs in this process as `python script.py` or `python -m module` would run it
(a source file in a new __main__ module, a module, directory or zip file through runpy): its
own sys.argv, a __main__ module, the script's directory first on sys.path. Its exit is the
native one too: SystemExit's code, the traceback of an uncaught exception (from the program's
first frame, not lockprof's) and status 1, KeyboardInterrupt ending the process by SIGINT,
SIGTERM by SIGTERM. The profile is written on each of these ways out, and a summary of the top
locks is printed to stderr.
"""

from __future__ import annotations

import atexit
import builtins
import os
import re
import runpy
import signal
import sys
import types
import zipfile
from importlib.machinery import SourceFileLoader
from importlib.util import MAGIC_NUMBER
from typing import Any, Callable, Dict, List, Optional, Tuple

from lockprof import pprof
from lockprof._term import color_enabled, width
from lockprof.forking import call_after_fork_in_child
from lockprof.profile import Snapshot
from lockprof.profiler import Profiler
from lockprof.renderers.text import TextRenderer

# Set for the children of `lockprof run --subprocesses`, with _bootstrap/ on their PYTHONPATH:
# the run's root pid.
SUBPROCESSES_ENV = "LOCKPROF_SUBPROCESSES"
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")
SUMMARY_ROWS = 5
_LISTED = 6  # profile paths listed one by one at exit; more are summed up


def run_program(target: str, args: List[str], *, module: bool, settings: Dict[str, Any],
                subprocesses: bool = False, summary: bool = True) -> int:
    """Run the script (or, with module, the module) `target` with `args`, profiled.

    settings: Profiler keyword arguments given on the command line (the others come from the
    DD_PROFILING_* variables). Returns the exit status when the program ends normally; its
    exceptions, SystemExit included, propagate for the interpreter to handle natively.
    """
    if not module and not os.path.isdir(target):
        try:
            open(target, "rb").close()
        except OSError as error:  # what python itself says, with its status
            print(f"lockprof run: can't open file {os.path.abspath(target)!r}: "
                  f"[Errno {error.errno}] {error.strerror}", file=sys.stderr)
            return 2
    profiler = Profiler(**settings)
    if subprocesses:
        _profile_children(profiler)
    summary_printer = _Summary(profiler, show_table=summary)
    sys.excepthook = _ProgramTraceback(sys.excepthook)
    sys.argv[:] = [target, *args]
    if module:
        sys.path[0] = os.getcwd()  # as `python -m` does
    elif _is_path_entry(target):
        del sys.path[0]  # a directory or zip file: run_path puts it first itself
    else:
        sys.path[0] = os.path.dirname(os.path.realpath(target))  # as `python script.py` does
    profiler.start()
    FinalFlush(profiler, then=summary_printer).install()
    _execute(target, module)
    return 0


def _execute(target: str, module: bool) -> None:
    # _ProgramTraceback recognises this function's frame: keep the program's run inside it.
    if module:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
        return
    if _is_path_entry(target):
        runpy.run_path(target, run_name="__main__")  # runs the __main__.py inside
        return
    with open(target, "rb") as f:
        source = f.read()
    if source[:4] == MAGIC_NUMBER:
        runpy.run_path(target, run_name="__main__")  # a .pyc file
        return
    # A source file, run as python runs it: compiled under its absolute path (tracebacks,
    # __file__), in a new __main__ module that stays in sys.modules, sys.argv left as given.
    # (runpy.run_path would rewrite sys.argv[0] and uninstall its __main__ afterwards.)
    path = os.path.abspath(target)
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __cached__=None, __builtins__=builtins,
                         __loader__=SourceFileLoader("__main__", path))
    sys.modules["__main__"] = main
    code = compile(source, path, "exec", dont_inherit=True)  # not this module's __future__s
    exec(code, main.__dict__)


def _is_path_entry(target: str) -> bool:
    """A directory or zip file, run through the __main__.py it holds."""
    return os.path.isdir(target) or zipfile.is_zipfile(target)


def _profile_children(profiler: Profiler) -> None:
    """Make every Python process the program starts profile itself with the same settings."""
    os.environ.update(profiler.config.to_environ())
    os.environ[SUBPROCESSES_ENV] = str(profiler.root_pid)  # their profiles are this run's
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = BOOTSTRAP_DIR + (os.pathsep + path if path else "")


class _ProgramTraceback:
    """sys.excepthook while the program runs: the traceback of an uncaught exception starts at
    the program's first frame, as without lockprof. When runpy could not start the program (no
    such module, a syntax error), no lockprof or runpy frame is shown at all."""

    def __init__(self, hook: Callable[..., Any]) -> None:
        self.hook = hook

    def __call__(self, exc_type: type, exc: BaseException, tb: Optional[types.TracebackType]) -> None:
        run = tb
        while run is not None and run.tb_frame.f_code is not _execute.__code__:
            run = run.tb_next
        if run is None:  # not raised through the program's run: leave it whole
            self.hook(exc_type, exc, tb)
            return
        program = run.tb_next
        while program is not None and program.tb_frame.f_code in _RUNPY_CODE:
            program = program.tb_next
        if program is None and isinstance(exc, ImportError):  # runpy found no such module
            print(f"lockprof run: {exc}", file=sys.stderr)  # one line, as python says it
            return
        # The interpreter's own hook prints the exception's __traceback__, not its argument.
        self.hook(exc_type, exc.with_traceback(program), program)


# The code of runpy's functions: frames between _execute and the program's first frame.
_RUNPY_CODE = {f.__code__ for f in vars(runpy).values() if isinstance(f, types.FunctionType)}


class FinalFlush:
    """Stop the profiler (writing the final profile) once: at exit, or on SIGTERM or SIGHUP,
    which natively end a Python process with no cleanup at all, and which then end it the same
    way once the profile is written. A signal that arrives while the profile is being written
    at exit ends the process when it is written.

    All this belongs to the process `lockprof run` started: a fork child gets back the signal
    dispositions it would have unprofiled, and prints no summary (its profiler writes its own
    profiles)."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                    if hasattr(signal, name))  # Windows has no SIGHUP

    def __init__(self, profiler: Profiler, then: Optional[Callable[[], Any]] = None) -> None:
        self.profiler = profiler
        self.then = then  # what to do after the final profile is written (the summary)
        self.state = "running"  # then "flushing", then "done"
        self.pending_signal: Optional[int] = None
        self.handled: Tuple[int, ...] = ()  # the signals whose handler this installed

    def install(self) -> None:
        """Call after profiler.start(), before the program runs: this exit handler then runs
        after the program's own (atexit goes last in, first out), and before the profiler's,
        which the stop() here unregisters."""
        atexit.register(self.flush)
        # A signal already handled or ignored (a launcher's nohup) is left alone.
        self.handled = tuple(signum for signum in self.SIGNALS
                             if signal.getsignal(signum) == signal.SIG_DFL)
        for signum in self.handled:
            signal.signal(signum, self._on_signal)
        call_after_fork_in_child(self)

    def _after_fork_in_child(self) -> None:
        # Signals are blocked until this is done (lockprof.forking): none is lost meanwhile.
        for signum in self.handled:
            if signal.getsignal(signum) == self._on_signal:  # not replaced by the program
                signal.signal(signum, signal.SIG_DFL)
        self.handled = ()
        self.then = None

    def flush(self) -> None:
        if self.state != "running":
            return
        self.state = "flushing"
        try:
            self.profiler.stop()
            if self.then is not None:
                self.then()
        finally:
            self.state = "done"
        if self.pending_signal is not None:
            self._die_by(self.pending_signal)

    def _on_signal(self, signum: int, frame: Optional[types.FrameType]) -> None:
        if self.state == "flushing":  # this handler interrupted the flush: let it end first
            self.pending_signal = signum
            return
        self.flush()
        self._die_by(signum)

    @staticmethod
    def _die_by(signum: int) -> None:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


class _Summary:
    """Print the top locks of the profiles this run wrote, and their paths, to stderr."""

    def __init__(self, profiler: Profiler, show_table: bool) -> None:
        self.profiler = profiler
        self.show_table = show_table
        self.before = profile_files(profiler.config.output)  # files of earlier runs

    def __call__(self) -> None:
        try:
            sys.stdout.flush()  # the program's last output comes before the summary
        except (OSError, ValueError):
            pass
        print(self.text(), file=sys.stderr, flush=True)

    def written(self) -> Tuple[Dict[str, Tuple[int, int]], List[Snapshot], List[str]]:
        """The files this run wrote, its children's too (new or rewritten ones, in the order of
        (pid, sequence)), the profiles read from them and what could not be read of its own.
        Another process's file is this run's when its profile names this run's root pid."""
        written, profiles, unreadable = {}, [], []
        found = sorted(profile_files(self.profiler.config.output).items(), key=lambda item: item[1])
        for path, (pid, seq, mtime) in found:
            if self.before.get(path, (0, 0, -1))[2] == mtime:
                continue
            ours = pid == os.getpid()
            try:
                profile = pprof.read_profile(path)
            except pprof.ProfileReadError as error:
                if ours:
                    written[path] = (pid, seq)
                    unreadable.append(str(error))
                continue
            if ours or profile.root_pid == self.profiler.root_pid:
                written[path] = (pid, seq)
                profiles.append(profile)
        return written, profiles, unreadable

    def text(self) -> str:
        paths, profiles, unreadable = self.written()
        if not paths:
            return "lockprof: no profile was written"
        children = sum(pid != os.getpid() for pid, _ in paths.values())
        lines = []
        if self.show_table:
            lines.append("lockprof: top locks of this run")
            lines.append(TextRenderer(limit=SUMMARY_ROWS, long_waits=3, width=width(sys.stderr),
                                      color=color_enabled(sys.stderr)).render(profiles))
            lines += [f"lockprof: skipped {problem}" for problem in unreadable]
        output = self.profiler.config.output
        pids = {pid for pid, _ in paths.values()}
        if len(paths) == 1:
            shown = next(iter(paths))
            lines.append(f"lockprof: profile written to {shown}")
        else:
            from_children = f", {children} by child processes" if children else ""
            lines.append(f"lockprof: {len(paths)} profiles written{from_children}:")
            lines += [f"  {path}" for path in list(paths)[:_LISTED]]
            if len(paths) > _LISTED:
                lines.append(f"  ... and {len(paths) - _LISTED} more")
            shown = f"{output}.{pids.pop()}.*.pprof" if len(pids) == 1 else f"{output}.*.pprof"
        them = "it" if len(paths) == 1 else "them"
        lines.append(f"lockprof: see {them} with `lockprof report {shown}` or "
                     f"`lockprof flamegraph {shown} -o wait.html`")
        return "\n".join(lines)


def profile_files(output: str) -> Dict[str, Tuple[int, int, int]]:
    """The <output>.<pid>.<seq>.pprof files that exist: path -> (pid, seq, modification time)."""
    directory = os.path.dirname(output)
    pattern = re.compile(re.escape(os.path.basename(output)) + r"\.(\d+)\.(\d+)\.pprof")
    found = {}
    try:
        entries = list(os.scandir(directory or os.curdir))
    except OSError:
        return {}
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match:
            try:
                path = os.path.join(directory, entry.name)  # no "./" when output has no directory
                found[path] = (int(match.group(1)), int(match.group(2)), entry.stat().st_mtime_ns)
            except OSError:
                continue  # removed meanwhile
    return found
