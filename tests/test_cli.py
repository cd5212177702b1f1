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
    assert capsys.readouterr().out.strip() == f"lockprof {lockprof.__version__} ({lockprof.CORE_MODE} core)"


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
    assert result.stdout.strip() == f"lockprof {lockprof.__version__} ({lockprof.CORE_MODE} core)"


# --- report and flamegraph -----------------------------------------------------------------------

import gzip
import io
import json
import random
import re

from lockprof import _term, pprof
from lockprof.renderers.pprof import PprofRenderer
from sample_profiles import CACHE, DB, snapshot, subprocess_env, write


def run_main(capsys, *argv):
    """main(argv) -> (exit status, stdout, stderr), whether it returns or exits."""
    try:
        status = main(list(argv))
    except SystemExit as exit_info:
        status = exit_info.code
    out, err = capsys.readouterr()
    return status, out, err


def test_report_text(tmp_path, capsys):
    status, out, err = run_main(capsys, "report", write(tmp_path / "a.pprof"))
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("lock ") and lines[1].startswith(DB)
    assert "\x1b[" not in out  # piped (captured): plain text, full width
    assert max(len(line) for line in lines) > 100


def test_report_merges_files_and_chooses_sort_limit_and_grouping(tmp_path, capsys):
    paths = [write(tmp_path / f"{n}.pprof") for n in range(3)]
    status, out, _ = run_main(capsys, "report", *paths, "--format", "json", "--sort", "hold",
                              "--limit", "1", "--by", "lock")
    data = json.loads(out)
    assert status == 0 and data["files"] == paths
    (row,) = data["rows"]
    assert (row["name"], row["hold_ns"]) == (CACHE, 3 * 50_000_000)
    status, out, _ = run_main(capsys, "report", *paths, "--by", "thread", "--format", "csv")
    assert status == 0
    assert out.splitlines()[0].startswith("name,kind,site,acquires,contended_acquires")
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == ["worker-1 (2)", "MainThread (1)"]


def test_report_color_always(tmp_path, capsys):
    status, out, _ = run_main(capsys, "report", write(tmp_path / "a.pprof"), "--color", "always")
    assert status == 0 and "\x1b[1m" in out


def test_report_of_another_tools_profile_says_so(tmp_path, capsys):
    from test_pprof import lfield, strings, vfield

    path = tmp_path / "cpu.pprof"
    path.write_bytes(gzip.compress(strings("cpu", "nanoseconds") + lfield(1, vfield(1, 1) + vfield(2, 2))))
    status, out, err = run_main(capsys, "report", str(path))
    assert status == 0
    assert err == f"lockprof: {path} is not a lock profile (its sample types: cpu/nanoseconds)\n"
    assert out == "lockprof: no lock activity was captured\n"


@pytest.mark.parametrize("bad", ["--limit=-1", "--limit=x", "--sort=speed", "--by=process",
                                 "--format=xml", "--color=sometimes"])
def test_report_bad_options_are_usage_errors(tmp_path, capsys, bad):
    status, _, err = run_main(capsys, "report", write(tmp_path / "a.pprof"), bad)
    assert status == 2 and "usage: lockprof report" in err and "Traceback" not in err


@pytest.mark.parametrize("name,fmt", [("w.html", "html"), ("w.svg", "svg"), ("w.json", "speedscope"),
                                      ("w.folded", "folded"), ("w.out", "html")])
def test_flamegraph_format_from_the_extension(tmp_path, capsys, name, fmt):
    out_path = tmp_path / name
    status, _, err = run_main(capsys, "flamegraph", write(tmp_path / "a.pprof"), "-o", str(out_path))
    assert status == 0 and err == f"lockprof: wrote {out_path} ({fmt}, wait time)\n"
    text = out_path.read_text()
    starts = {"html": "<!DOCTYPE html>", "svg": "<?xml", "speedscope": '{"$schema"',
              "folded": "main (/app/main.py:3);"}
    assert text.startswith(starts[fmt])


def test_flamegraph_to_stdout_with_an_explicit_format_and_metric(tmp_path, capfdbinary):
    status = main(["flamegraph", write(tmp_path / "a.pprof"), "--format", "folded",
                   "--metric", "blocking-hold"])
    out = capfdbinary.readouterr().out.decode()
    assert status == 0
    assert [line.rsplit(" ", 1)[1] for line in out.splitlines()] == ["1000000", "3000000"]


def test_flamegraph_bad_metric_and_unwritable_output(tmp_path, capsys):
    profile = write(tmp_path / "a.pprof")
    status, _, err = run_main(capsys, "flamegraph", profile, "--metric", "cpu")
    assert status == 2 and "argument --metric: the profiles have no 'cpu' values" in err
    status, _, err = run_main(capsys, "flamegraph", profile, "-o", str(tmp_path / "no" / "w.svg"))
    assert status == 1
    assert err == f"lockprof flamegraph: cannot write {tmp_path / 'no' / 'w.svg'}: No such file or directory\n"


# --- bad profile files: one line naming the file, status 2 ---------------------------------------


def bad_files(tmp_path):
    good = PprofRenderer().render(snapshot())
    files = {
        "missing": (tmp_path / "missing.pprof", None, "no such file"),
        "directory": (tmp_path / "adir", "dir", "is a directory, not a profile file"),
        "empty": (tmp_path / "empty.pprof", b"", "empty file, not a profile"),
        "not a profile": (tmp_path / "notes.txt", b"hello, world\n", "not a pprof profile: "),
        "truncated": (tmp_path / "cut.pprof", good[: len(good) // 2],
                      "not a pprof profile: truncated gzip data"),
        "corrupt": (tmp_path / "corrupt.pprof", good[:20] + bytes(40) + good[60:],
                    "not a pprof profile: bad gzip data"),
        "truncated protobuf": (tmp_path / "raw.pprof", gzip.decompress(good)[:-7],
                               "not a pprof profile: "),
    }
    for path, content, _ in files.values():
        if content == "dir":
            path.mkdir()
        elif content is not None:
            path.write_bytes(content)
    return files


@pytest.mark.parametrize("command", [["report"], ["report", "--format", "json"],
                                     ["flamegraph", "-o", "-"]])
@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "not a profile", "truncated",
                                  "corrupt", "truncated protobuf"])
def test_bad_profile_file_is_one_line_and_status_2(tmp_path, capsys, command, kind):
    path, _, problem = bad_files(tmp_path)[kind]
    good = write(tmp_path / "good.pprof")
    status, out, err = run_main(capsys, *command, good, str(path))
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"lockprof: {path}: {problem}"), err


def test_bad_profile_file_in_a_real_process_has_no_traceback(tmp_path):
    path, _, problem = bad_files(tmp_path)["truncated"]
    result = subprocess.run([sys.executable, "-m", "lockprof", "report", str(path)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env=subprocess_env())
    assert result.returncode == 2
    assert result.stderr == f"lockprof: {path}: {problem} (the compressed stream ends early)\n"


# --- fuzz: random and mutated profiles never crash the commands -----------------------------------


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op, pos = rng.random(), rng.randrange(len(data) + 1)
        if op < 0.35 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op < 0.55:
            del data[pos:pos + rng.randint(1, 24)]
        elif op < 0.75:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))
        elif op < 0.85:
            data[pos:pos] = data[rng.randrange(len(data) + 1):][: rng.randint(1, 40)]
        else:
            data = data[:pos]
    return bytes(data)


def test_fuzz_random_and_mutated_profiles(tmp_path, capsys):
    seed = int(os.environ.get("LOCKPROF_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    print(f"fuzz seed: {seed} (LOCKPROF_FUZZ_SEED={seed} repeats this run)")
    rng = random.Random(seed)
    raw = gzip.decompress(PprofRenderer().render(snapshot()))
    path, out = tmp_path / "fuzz.pprof", tmp_path / "fuzz.out"
    commands = [["report", "--format", "json"], ["report", "--by", "task"], ["report", "--format", "csv"],
                ["flamegraph", "-o", str(out), "--format", "html"],
                ["flamegraph", "-o", str(out), "--format", "svg"],
                ["flamegraph", "-o", str(out), "--format", "speedscope"],
                ["flamegraph", "-o", str(out), "--format", "folded"]]
    outcomes = {0: 0, 2: 0}
    # Most mutations break a profile (its metadata and labels are checked as they are read):
    # 5,000 cases keep about 200 readable ones, 100 at least by a wide margin.
    for case in range(5000):
        if case % 10 == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        else:
            data = mutate(rng, raw)
            if rng.random() < 0.3:
                data = gzip.compress(data)
        path.write_bytes(data)
        command = commands[case % len(commands)]
        try:
            status, _, err = run_main(capsys, *command, str(path))
        except Exception as error:  # noqa: BLE001 - the point: nothing may escape
            pytest.fail(f"seed {seed}, case {case}, {command}: {error!r} on {data!r}")
        assert status in (0, 2), (seed, case, status, err)
        if status == 2:
            assert err.count("\n") == 1 and err.startswith(f"lockprof: {path}: "), (seed, case, err)
        outcomes[status] += 1
    # The mutations reach both outcomes: profiles still readable, and rejected ones.
    assert outcomes[0] > 100 and outcomes[2] > 100, outcomes


# --- progress on a terminal ------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_shown_on_a_terminal_and_erased(tmp_path, capsys, monkeypatch):
    clock = iter(range(0, 10**6))
    monkeypatch.setattr(_term.time, "monotonic", lambda: float(next(clock)))
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    paths = [write(tmp_path / f"{n}.pprof") for n in range(12)]
    assert main(["report", *paths]) == 0
    shown = terminal.getvalue()
    assert "\rreading profiles 5/12" in shown
    assert shown.endswith("\r" + " " * len("reading profiles 11/12") + "\r")
    terminal.seek(0)
    terminal.truncate()
    assert main(["flamegraph", *paths, "-o", str(tmp_path / "w.html")]) == 0
    assert "\rbuilding the flame graph: samples 3/" in terminal.getvalue()


def test_progress_is_silent_when_not_a_terminal(tmp_path, capsys, monkeypatch):
    clock = iter(range(0, 10**6))
    monkeypatch.setattr(_term.time, "monotonic", lambda: float(next(clock)))
    paths = [write(tmp_path / f"{n}.pprof") for n in range(12)]
    status, _, err = run_main(capsys, "report", *paths)
    assert status == 0 and err == ""


def test_progress_waits_before_showing_and_limits_its_rate(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(_term.time, "monotonic", lambda: now[0])
    terminal = FakeTerminal()
    with _term.Progress(terminal, "merging", 40, delay=0.3, rate=10) as progress:
        progress.update(1)  # before the delay: nothing
        now[0] = 0.35
        progress.update(2)
        now[0] = 0.36
        progress.update(3)  # within 0.1 s of the last line: skipped
        now[0] = 0.5
        progress.update(12)
    assert terminal.getvalue() == "\rmerging 2/40\rmerging 12/40\r" + " " * 13 + "\r"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal (POSIX)")
def test_report_on_a_real_terminal_is_coloured_and_fits_its_width(tmp_path):
    import fcntl
    import struct
    import termios

    profile = write(tmp_path / "a.pprof")
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 72, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "lockprof", "report", profile],
                               stdout=follower, stderr=subprocess.PIPE, cwd=tmp_path,
                               env=subprocess_env(TERM="xterm"))
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0, process.stderr.read()
    process.stderr.close()
    out = b"".join(chunks).decode()
    assert "\x1b[1m" in out
    visible = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in out.splitlines()]
    assert max(len(line) for line in visible) <= 72
    assert DB in out
