"""lockprof.report: rows from decoded profiles (exact totals, estimates, merging, grouping),
sorting, and the text, JSON and CSV forms."""

import csv
import io
import json
import sys
import threading

import pytest

from lockprof import LockCollector, pprof
from lockprof.collector import UNTRACKED_LOCKS
from lockprof.profile import Frame, LockSample, LongWait, Snapshot
from lockprof.renderers.csv_rows import CsvRenderer
from lockprof.renderers.json_rows import JsonRenderer
from lockprof.renderers.pprof import PprofRenderer
from lockprof.renderers.text import TextRenderer, top_locks
from lockprof.report import (
    SORT_KEYS,
    build_report,
    format_duration,
    is_lock_profile,
    program_frames,
    short_path,
)
from sample_profiles import CACHE, DB, MS, STACK_A, STACK_B, STACK_C, snapshot
from test_pprof import lfield, require_go, run_pprof, strings, vfield


def decoded(snap=None):
    return pprof.decode(PprofRenderer().render(snap if snap is not None else snapshot()))


def format_text(profiles, **options):
    return TextRenderer(**options).render(profiles)


def by_name(report):
    return {row.name: row for row in report.rows}


def test_a_lock_with_exact_totals_uses_them_for_contention_and_the_estimates_for_the_rest():
    db = by_name(build_report([decoded()]))[DB]
    assert db.exact
    assert (db.contended, db.wait_ns, db.max_wait_ns, db.timeouts) == (13, 25 * MS, 9 * MS, 2)
    assert db.average_wait_ns == 25 * MS // 13
    # 30 sampled acquires that did not wait, and the 13 that did.
    assert (db.acquires, db.hold_ns, db.blocking_hold_ns) == (43, 10 * MS, 4 * MS)
    assert db.kind == "lock"
    assert db.site == Frame(DB, "/app/db.py", 12)
    # STACK_B waited 15 + 4 ms (the timed-out waits count as waits), STACK_A 5 ms.
    assert (db.top_stack, db.top_stack_metric) == (STACK_B, "wait")


def test_a_lock_without_totals_falls_back_to_the_estimated_columns():
    cache = by_name(build_report([decoded()]))[CACHE]
    assert not cache.exact
    assert (cache.contended, cache.wait_ns, cache.max_wait_ns) == (50, 1 * MS, None)
    assert cache.average_wait_ns == 20_000
    assert (cache.kind, cache.site, cache.top_stack) == ("rlock", None, STACK_C)


def test_with_totals_for_every_contended_lock_a_lock_without_them_had_no_contention():
    # No <other locks> sum: the core had room for the totals of every lock that had to wait,
    # so the cache lock's stack estimates give way to exact zeros.
    complete = snapshot()
    complete.lock_totals = complete.lock_totals[:1]
    cache = by_name(build_report([decoded(complete)]))[CACHE]
    assert cache.exact and (cache.contended, cache.wait_ns, cache.max_wait_ns) == (0, 0, 0)
    assert format_text([decoded(complete)]).count("~") == 0


def test_several_profiles_merge_sums_and_keeps_the_largest_maximum():
    other = snapshot()
    other.lock_totals[0].max_wait_ns = 11 * MS
    db = by_name(build_report([decoded(), decoded(other)]))[DB]
    assert (db.contended, db.wait_ns, db.max_wait_ns, db.timeouts) == (26, 50 * MS, 11 * MS, 4)
    assert (db.acquires, db.hold_ns) == (86, 20 * MS)


def test_a_lock_exact_in_one_profile_only_is_not_shown_as_exact():
    without_totals = snapshot()
    without_totals.lock_totals = without_totals.lock_totals[1:]  # db's went to <other locks>
    db = by_name(build_report([decoded(), decoded(without_totals)]))[DB]
    # 25 ms exact + 5 + 15 + 4 ms estimated; 13 + 4 + 6 + 2 contended.
    assert (db.wait_ns, db.contended, db.timeouts) == (49 * MS, 25, 4)
    assert not db.exact and db.max_wait_ns is None


def test_by_thread_and_by_task():
    threads = by_name(build_report([decoded()], by="thread"))
    main, worker = threads["MainThread (1)"], threads["worker-1 (2)"]
    assert (main.acquires, main.contended, main.wait_ns) == (164, 54, 6 * MS)
    assert (main.hold_ns, main.blocking_hold_ns, main.top_lock) == (52 * MS, 1 * MS, DB)
    assert (worker.contended, worker.wait_ns, worker.timeouts) == (8, 19 * MS, 2)
    assert not main.exact and main.max_wait_ns is None
    tasks = by_name(build_report([decoded()], by="task"))
    assert set(tasks) == {"fetch-7 (7)", "(no task)"}
    assert (tasks["fetch-7 (7)"].wait_ns, tasks["fetch-7 (7)"].top_lock) == (1 * MS, CACHE)
    assert tasks["(no task)"].wait_ns == 24 * MS


@pytest.mark.parametrize("sort,first", [
    ("wait", DB), ("avg-wait", DB), ("max-wait", DB), ("contended", CACHE), ("hold", CACHE),
    ("blocking-hold", DB), ("condition-wait", CACHE), ("acquires", CACHE), ("timeouts", DB),
    ("name", UNTRACKED_LOCKS),
])
def test_sort(sort, first):
    assert build_report([decoded()], sort=sort).rows[0].name == first


def test_every_sort_key_is_tested():
    assert set(SORT_KEYS) == {"wait", "avg-wait", "max-wait", "contended", "hold",
                              "blocking-hold", "condition-wait", "acquires", "timeouts", "name"}


def test_long_waits_and_dropped_events_survive_the_round_trip():
    report = build_report([decoded(), decoded()])
    assert report.dropped_events == 6
    assert report.long_waits[0].describe().startswith(f"9.000 ms on {DB}; thread worker-1 (2)")
    assert report.long_waits[-1].describe().startswith(f"7.000 ms on {DB}, timed out")
    assert len(report.long_waits) == 4
    assert decoded().long_waits == snapshot().long_waits


def test_long_waits_of_several_profiles_are_listed_longest_first():
    waits = [LongWait("a", ms * MS, 1, "T", None, None, ()) for ms in (3, 7, 5)]
    profiles = [decoded(Snapshot([], 0, 0, 1.0, long_waits=[wait])) for wait in waits]
    assert [w.wait_ns for w in build_report(profiles).long_waits] == [7 * MS, 5 * MS, 3 * MS]


def test_samples_of_other_tools_are_read_by_column_name():
    # A profile with only some of the columns, in another order, and a non-lock sample.
    def value_type(t, u):
        return lfield(1, vfield(1, t) + vfield(2, u))

    labels = lfield(3, vfield(1, 5) + vfield(2, 6))  # "lock name" = "L"
    data = (strings("lock-release-hold", "nanoseconds", "lock-acquire-wait", "cpu",
                    "lock name", "L")
            + value_type(1, 2) + value_type(3, 2) + value_type(4, 2)
            + lfield(2, lfield(2, bytes([7, 9, 11])) + labels)
            + lfield(2, lfield(2, bytes([0, 0, 99]))))
    profile = pprof.decode(data)
    assert is_lock_profile(profile)
    (row,) = build_report([profile]).rows
    assert (row.name, row.hold_ns, row.wait_ns, row.acquires, row.contended) == ("L", 7, 9, 0, 0)


def test_a_cpu_profile_is_not_a_lock_profile():
    data = strings("cpu", "nanoseconds") + lfield(1, vfield(1, 1) + vfield(2, 2))
    profile = pprof.decode(data)
    assert not is_lock_profile(profile)
    assert build_report([profile]).rows == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="by must be one of lock, thread, task"):
        build_report([], by="process")
    with pytest.raises(ValueError, match="sort must be one of wait"):
        build_report([], sort="speed")


@pytest.mark.parametrize("ns,text", [
    (None, "-"), (0, "0"), (999, "999 ns"), (1_500, "1.50 us"), (25 * MS, "25.0 ms"),
    (123_456_789, "123 ms"), (9_870_000_000, "9.87 s"), (1_234 * 10**9, "1,234 s"),
])
def test_format_duration(ns, text):
    assert format_duration(ns) == text


def test_text_table():
    text = format_text([decoded()])
    lines = text.splitlines()
    assert lines[0].split() == ["lock", "kind", "acquires", "contended", "total", "wait", "avg",
                                "wait", "max", "wait", "hold", "blocking", "hold", "condition", "wait"]
    assert lines[1].split() == [DB, "lock", "43", "13", "25.0", "ms", "1.92", "ms", "9.00", "ms",
                                "10.0", "ms", "4.00", "ms", "0"]
    assert lines[2] == "  waits at query (/app/db.py:40) < worker (/app/work.py:35) < main (/app/main.py:3)"
    assert lines[3] == "  2 acquires timed out"
    # The locks beyond the core's tracking limit, exact, summed: no kind, no stack.
    assert lines[4].split() == [UNTRACKED_LOCKS.split()[0], UNTRACKED_LOCKS.split()[1], "-", "48",
                                "48", "1.00", "ms", "20.8", "us", "100", "us", "0", "0", "0"]
    # One of them, from its stacks: estimated values are marked, and the mark explained.
    assert lines[5].split()[:6] == [CACHE, "rlock", "150", "~50", "~1.00", "ms"]
    assert lines[5].split()[-2:] == ["30.0", "ms"]  # its Condition's wait for a notify
    assert any(line.startswith("~ estimated") for line in lines)
    waits = lines.index("longest waits")
    assert lines[waits + 1] == (f"  9.000 ms on {DB}; thread worker-1 (2); at query (/app/db.py:40) "
                                "<- ...")
    assert lines[-1] == "(3 captured events did not fit the event table)"
    assert "\x1b[" not in text


def test_text_shows_the_creation_site_when_the_name_does_not():
    snap = snapshot()
    snap.lock_totals[0].site = Frame(DB, "/app/pool.py", 99)  # e.g. made by a factory
    lines = format_text([decoded(snap)]).splitlines()
    assert lines[2] == "  created at /app/pool.py:99"


def test_text_limit_color_and_width():
    profiles = [decoded()]
    assert len([l for l in format_text(profiles, limit=1).splitlines() if l.startswith("app/")]) == 1
    colored = format_text(profiles, color=True)
    assert "\x1b[1m" in colored and "\x1b[0m" in colored
    for columns in (100, 70, 50, 30):
        lines = format_text(profiles, width=columns).splitlines()
        assert max(len(line) for line in lines) <= columns, (columns, lines)
        assert "total wait" in lines[0]  # the column that is never dropped
    narrow = format_text(profiles, width=70).splitlines()
    assert DB in narrow[1]  # names are kept whole while secondary columns can go
    assert "acquires" not in narrow[0] and "kind" not in narrow[0]


def test_text_long_waits_limit():
    profiles = [decoded(), decoded()]
    assert sum(l.startswith(f"  9.000 ms on") for l in format_text(profiles).splitlines()) == 2
    lines = format_text(profiles, long_waits=1).splitlines()
    assert sum(l.startswith("  9.000 ms on") or l.startswith("  7.000 ms on") for l in lines) == 1
    assert "longest waits" not in format_text(profiles, long_waits=0)


def test_text_for_no_lock_activity():
    assert format_text([]) == "lockprof: no lock activity was captured"


def test_json():
    data = json.loads(JsonRenderer(files=["a.pprof"]).render([decoded()]))
    assert (data["by"], data["files"], data["dropped_events"]) == ("lock", ["a.pprof"], 3)
    db, other, cache = data["rows"]
    assert other["name"] == UNTRACKED_LOCKS and other["site"] is None and other["exact"]
    assert db == {
        "name": DB, "kind": "lock", "site": {"function": DB, "file": "/app/db.py", "line": 12},
        "acquires": 43, "contended_acquires": 13, "total_wait_ns": 25 * MS,
        "average_wait_ns": 25 * MS // 13, "max_wait_ns": 9 * MS, "hold_ns": 10 * MS,
        "blocking_hold_ns": 4 * MS, "condition_wait_ns": 0, "timeouts": 2, "exact": True,
        "top_lock": None,
        "top_stack_metric": "wait",
        "top_stack": [{"function": f.name, "file": f.filename, "line": f.line} for f in STACK_B],
    }
    assert (cache["max_wait_ns"], cache["exact"], cache["site"]) == (None, False, None)
    assert len(data["long_waits"]) == 2
    assert data["long_waits"][0].startswith(f"9.000 ms on {DB}; thread worker-1 (2); at query (/app/db.py:40)")
    assert len(json.loads(JsonRenderer(limit=1).render([decoded()]))["rows"]) == 1


def test_csv():
    rows = list(csv.DictReader(io.StringIO(CsvRenderer().render([decoded()]))))
    assert [r["name"] for r in rows] == [DB, UNTRACKED_LOCKS, CACHE]
    assert rows[0]["site"] == "/app/db.py:12"
    assert rows[0]["total_wait_ns"] == str(25 * MS) and rows[0]["exact"] == "True"
    assert rows[0]["top_stack"] == ("query (/app/db.py:40) < worker (/app/work.py:35) "
                                    "< main (/app/main.py:3)")
    assert rows[2]["max_wait_ns"] == "" and rows[2]["site"] == ""


def test_top_locks_of_a_snapshot_is_the_report_text():
    snap = snapshot()
    assert top_locks(snap, limit=1) == format_text([decoded(snap)], limit=1)
    empty = Snapshot([], 0, 0, 1.0)
    assert top_locks(empty) == "lockprof: no lock activity was captured"


def test_a_sample_held_but_never_waited_shows_its_hold_stack():
    held = LockSample("L", "lock", STACK_A, 1, 1, "T", acquire_count=1, release_count=1,
                      release_hold_ns=5)
    (row,) = build_report([decoded(Snapshot([held], 0, 0, 1.0))]).rows
    assert (row.top_stack, row.top_stack_metric) == (STACK_A, "hold")
    assert "held at query (/app/db.py:40)" in format_text([decoded(Snapshot([held], 0, 0, 1.0))])


def test_a_profile_rewritten_by_go_pprof_reports_the_same(tmp_path):
    # Go's own encoder orders and packs fields its way, and gzips: another tool's pprof file.
    go = require_go()
    ours = tmp_path / "ours.pprof"
    snap = snapshot()
    snap.lock_totals = snap.lock_totals[:1]  # Go reads the <other locks> site, line 0, its own way
    pprof.write_atomic(str(ours), PprofRenderer().render(snap))
    rewritten = tmp_path / "go.pb.gz"
    run_pprof(go, ["-proto", "-output", str(rewritten), str(ours)], tmp_path)
    assert rewritten.read_bytes() != ours.read_bytes()
    mine, theirs = (build_report([pprof.read_profile(str(p))]) for p in (ours, rewritten))
    assert [r.as_dict() for r in theirs.rows] == [r.as_dict() for r in mine.rows]


def test_every_lock_with_samples_has_its_site_in_json_and_csv(tmp_path):
    # Issue 21: a lock that never waited has no exact totals; its site comes with its samples.
    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        line = sys._getframe().f_lineno + 1
        quiet_lock = threading.Lock()
        with quiet_lock:
            pass
    finally:
        collector.stop()
    path = tmp_path / "quiet.pprof"
    pprof.write_atomic(str(path), PprofRenderer().render(collector.snapshot()))
    profiles = [pprof.read_profile(str(path))]
    (row,) = [r for r in json.loads(JsonRenderer().render(profiles))["rows"] if r["name"].endswith(":quiet_lock")]
    assert (row["contended_acquires"], row["exact"]) == (0, True)
    assert row["site"] == {"function": row["name"], "file": __file__, "line": line}
    (csv_row,) = [r for r in csv.DictReader(io.StringIO(CsvRenderer().render(profiles)))
                  if r["name"].endswith(":quiet_lock")]
    assert csv_row["site"] == f"{__file__}:{line}"


def test_short_path(tmp_path, monkeypatch):
    import threading

    monkeypatch.chdir(tmp_path)
    assert short_path(str(tmp_path / "app" / "x.py")) == "app/x.py"
    assert short_path(threading.__file__) == "threading.py"  # under a sys.path entry
    assert short_path("/elsewhere/y.py") == "/elsewhere/y.py"
    assert short_path("<string>") == "<string>"


def test_program_frames_leave_out_what_lockprof_run_put_under_the_program():
    program = (Frame("use_it", "/app/helper.py", 8), Frame("<module>", "/app/prog.py", 4))
    launcher = (Frame("_run_code", "<frozen runpy>", 88), Frame("_run_module_code", "/py/runpy.py", 98),
                Frame("_execute", "/site/lockprof/runner.py", 93),
                Frame("run_program", "/site/lockprof/runner.py", 67), Frame("main", "/site/lockprof/cli.py", 234),
                Frame("<module>", "/venv/bin/lockprof", 8))
    assert program_frames(program + launcher) == program
    assert program_frames(program + launcher[2:]) == program  # a script: no runpy frames
    assert program_frames(program) == program
    assert program_frames(launcher[:2] + program) == launcher[:2] + program  # the program's runpy
