"""ci/tsan_reports.py, the judge of the ThreadSanitizer leg: which reports count against
lockprof. The reports below are shortened from real ones of the TSan build of CPython 3.13.5t
(ci/tsan.sh's self-check runs the whole chain, TSan included)."""

from __future__ import annotations

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("tsan_reports", os.path.join(ROOT, "ci", "tsan_reports.py"))
tsan_reports = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = tsan_reports  # its dataclasses look their module up
spec.loader.exec_module(tsan_reports)

OURS = """\
==================
WARNING: ThreadSanitizer: data race (pid=24109)
  Write of size 8 at 0x7bc000037ba8 by thread T5:
    #0 lp_table_upsert lockprof/_table.h:175 (_recorder.cpython-313t-x86_64-linux-gnu.so+0x10d89)
    #1 __pyx_f_8lockprof_9_recorder_8Recorder__entry lockprof/_recorder.c:26090 (_recorder.cpython-313t-x86_64-linux-gnu.so+0x10d89)
    #2 thread_run Modules/_threadmodule.c:343 (python+0x4de9e1)

  Previous read of size 8 at 0x7bc000037ba8 by thread T8:
    #0 __pyx_f_8lockprof_9_recorder_drain_events lockprof/_recorder.c:20601 (_recorder.cpython-313t-x86_64-linux-gnu.so+0x470ab)
    #1 _PyEval_EvalFrameDefault Python/generated_cases.c.h:813 (python+0x85ec4)

  Location is heap block of size 65536 at 0x7bc000030000 allocated by thread T2:
    #0 calloc ../../../../src/libsanitizer/tsan/tsan_interceptors_posix.cpp:667 (libtsan.so.2+0x3ee50)
    #1 lp_table_init lockprof/_table.h:74 (_recorder.cpython-313t-x86_64-linux-gnu.so+0x4b890)

  Thread T5 (tid=24200, running) created by main thread at:
    #0 pthread_create ../../../../src/libsanitizer/tsan/tsan_interceptors_posix.cpp:1022 (libtsan.so.2+0x5ad75)

SUMMARY: ThreadSanitizer: data race lockprof/_table.h:175 in lp_table_upsert
==================
"""

# CPython's own race on an object lockprof allocated: only the context has lockprof's frames.
THEIRS = """\
==================
WARNING: ThreadSanitizer: data race (pid=24109)
  Read of size 8 at 0x7b480002b980 by thread T3:
    #0 _Py_dict_lookup Objects/dictobject.c:1300 (python+0x1c5a2d)
    #1 thread_run Modules/_threadmodule.c:343 (python+0x4de9e1)

  Previous atomic write of size 8 at 0x7b480002b980 by thread T4:
    #0 insertdict Objects/dictobject.c:1800 (python+0x1c7c11)

  Location is heap block of size 328 at 0x7b480002b980 allocated by thread T10:
    #0 malloc ../../../../src/libsanitizer/tsan/tsan_interceptors_posix.cpp:666 (libtsan.so.2+0x3f1a5)
    #1 __pyx_tp_new_8lockprof_11_primitives_ObjectState lockprof/_primitives.c:20110 (_primitives.cpython-313t-x86_64-linux-gnu.so+0x2b4a1)

  Mutex M0 (0x7b0c00001000) created at:
    #0 pthread_mutex_init ../../../../src/libsanitizer/tsan/tsan_interceptors_posix.cpp:1316 (libtsan.so.2+0x4a1b2)
    #1 lp_module_init lockprof/_lockcore.h:40 (_lock.cpython-313t-x86_64-linux-gnu.so+0x1b2c)

SUMMARY: ThreadSanitizer: data race Objects/dictobject.c:1300 in _Py_dict_lookup
==================
"""

USE_AFTER_FREE = """\
WARNING: ThreadSanitizer: heap-use-after-free (pid=24109)
  Read of size 8 at 0x7b0800012340 by thread T6:
    #0 lp_entry_is_idle lockprof/_table.h:45 (_recorder.cpython-313t-x86_64-linux-gnu.so+0x1a2b3)

  Previous write of size 8 at 0x7b0800012340 by thread T8:
    #0 free ../../../../src/libsanitizer/tsan/tsan_interceptors_posix.cpp:725 (libtsan.so.2+0x3f3b8)
    #1 lp_entry_free lockprof/_table.h:60 (_recorder.cpython-313t-x86_64-linux-gnu.so+0x1a400)

SUMMARY: ThreadSanitizer: heap-use-after-free lockprof/_table.h:45 in lp_entry_is_idle
"""


def verdict(*logs: str):
    lines = []
    status = tsan_reports.judge(logs, out=lines.append)
    return status, "\n".join(lines)


def test_a_race_with_a_frame_of_lockprof_in_a_racing_stack_fails():
    report = tsan_reports.parse_report(tsan_reports.split_reports(OURS)[0])
    assert report.in_lockprof
    assert report.title == "data race"
    assert report.ours == ["lp_table_upsert", "_recorder.drain_events"]  # one per racing stack
    status, text = verdict(OURS)
    assert status == 1
    assert "1 reports in lockprof's code, 0 outside it" in text
    assert "data race: _recorder.drain_events / lp_table_upsert" in text
    assert "lockprof/_table.h:175 in lp_table_upsert" in text  # the report itself is printed


def test_a_race_inside_cpython_is_counted_not_failed_whoever_allocated_the_memory():
    report = tsan_reports.parse_report(tsan_reports.split_reports(THEIRS)[0])
    assert not report.in_lockprof
    status, text = verdict(THEIRS, THEIRS)
    assert status == 0
    assert "0 reports in lockprof's code, 2 outside it" in text
    assert "ignored x2: data race Objects/dictobject.c:1300 in _Py_dict_lookup" in text
    assert "WARNING" not in text  # CPython's reports are summarised, not printed


def test_every_stack_of_the_code_involved_counts_and_a_cut_report_too():
    cut = USE_AFTER_FREE.rsplit("SUMMARY", 1)[0]  # the process died while writing it
    for log in (USE_AFTER_FREE, cut):
        (text,) = tsan_reports.split_reports(log)
        report = tsan_reports.parse_report(text)
        assert report.title == "heap-use-after-free"
        assert report.ours == ["lp_entry_is_idle", "lp_entry_free"]


def test_tsan_failing_by_itself_fails_the_run():
    status, text = verdict("==123==ERROR: ThreadSanitizer: SEGV on unknown address 0x000000000010\n")
    assert status == 1
    assert "TSan failure: ==123==ERROR: ThreadSanitizer: SEGV" in text
    assert verdict("")[0] == 0


def test_cython_names_are_made_readable():
    demangle = tsan_reports.demangle
    assert demangle("__pyx_f_8lockprof_8_sampler_14CaptureSampler_should_capture") == \
        "_sampler.CaptureSampler.should_capture"
    assert demangle("__pyx_f_8lockprof_9_recorder_drain_events") == "_recorder.drain_events"
    assert demangle("__pyx_pf_8lockprof_9_recorder_8Recorder_6active_2__set__") == \
        "_recorder.Recorder.active.__set__"
    assert demangle("__pyx_pw_8lockprof_5_lock_12ProfiledLock_3acquire") == "_lock.ProfiledLock.acquire"
    assert demangle("lp_random") == "lp_random"
