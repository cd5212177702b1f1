"""Under gevent, a profiled lock behaves as the same program's lock without lockprof: one
program runs each probe twice, profiled and not (gevent patched both times), and the outcomes
must match. The profile of the same program is checked where the profiled run must count.

Monkey-patching is for the whole process, so the program runs in a subprocess of its own."""

from __future__ import annotations

import json

import pytest

from scripthelpers import run_script

PARITY = """
    import copy, json, pickle, sys
    from gevent import monkey
    monkey.patch_all()
    import threading
    import gevent
    from lockprof import LockCollector

    def outcome(probe):
        try:
            result = probe()
        except BaseException as error:
            return f"{type(error).__name__}: {error}"
        return repr(result)

    def with_value(lock):
        with lock as value:
            return value

    def attribute_set(lock):
        lock.note = "mine"
        note = lock.note
        del lock.note
        return note, hasattr(lock, "note")

    def type_call(lock):
        made = type(lock)()
        return type(made) is type(lock), made is not lock, with_value(made)

    PROBES = {
        "with value": with_value,
        "type call": type_call,
        "isinstance Lock": lambda lock: isinstance(lock, threading.Lock),
        "isinstance Lock or None": lambda lock: isinstance(lock, threading.Lock | None)
                                   if sys.version_info >= (3, 10) else None,
        "attribute set": attribute_set,
        "pickle": lambda lock: type(pickle.loads(pickle.dumps(lock))).__name__,
        "copy": lambda lock: type(copy.copy(lock)).__name__,
        "deepcopy": lambda lock: type(copy.deepcopy(lock)).__name__,
    }

    def run_probes():
        return {f"{kind} {name}": outcome(lambda: probe(factory()))
                for kind, factory in (("lock", threading.Lock), ("rlock", threading.RLock))
                for name, probe in PROBES.items()}

    plain = run_probes()
    collector = LockCollector(capture_pct=100)
    collector.start()
    profiled = run_probes()
    collector.stop()
    print(json.dumps({"plain": plain, "profiled": profiled}))
"""


def test_gevent_locks_behave_as_unprofiled(tmp_path):
    """with-statement values, isinstance against threading.Lock (gevent's class), attributes a
    program sets on a lock, pickling and copying, and type(lock)(): all as without profiling."""
    pytest.importorskip("gevent")
    result = run_script(PARITY, str(tmp_path))
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    plain, profiled = outcomes["plain"], outcomes["profiled"]
    assert plain["rlock isinstance Lock"] == "False"  # the probe itself is meaningful
    assert {k: v for k, v in profiled.items() if plain[k] != v} == {}, plain


TRY_ACQUIRES = """
    import sys
    from gevent import monkey
    monkey.patch_all()
    import threading
    from lockprof import LockCollector

    collector = LockCollector(capture_pct=100)
    collector.start()
    lock, rlock = threading.Lock(), threading.RLock()
    for held in (lock, rlock):
        assert held.acquire(False)
        held.release()
        assert held.acquire(timeout=0)
        held.release()
        assert held.acquire(blocking=False)
        held.release()
        assert held.acquire(True, 0)
        held.release()
    counts = {}
    for sample in collector.snapshot().samples:
        if sample.lock_name.startswith("program.py:"):
            counts[sample.lock_kind] = counts.get(sample.lock_kind, 0) + sample.acquire_count
    collector.stop()
    print(counts.get("lock", 0), counts.get("rlock", 0))
"""


def test_gevent_acquires_that_never_wait_are_counted(tmp_path):
    """acquire(False) and acquire(timeout=0) are acquires and holds too, as for the C locks."""
    pytest.importorskip("gevent")
    result = run_script(TRY_ACQUIRES, str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "4"]


GREENLET_NAMES = """
    from gevent import monkey
    monkey.patch_all()
    import threading
    import gevent
    from lockprof import LockCollector

    lock = threading.Lock()

    def work():
        with lock:
            gevent.sleep(0)

    finished = []  # kept alive: a new greenlet at a dead one's address has its task id

    def spawn_three():
        greenlets = [gevent.spawn(work) for _ in range(3)]
        gevent.joinall(greenlets)
        finished.extend(greenlets)
        return [repr(g).split(" at ")[0] for g in greenlets]

    plain = spawn_three()
    collector = LockCollector(capture_pct=100)
    collector.start()
    lock = threading.Lock()
    profiled = spawn_three()
    named = gevent.Greenlet(work)
    named.name = "given"
    named.start()
    named.join()
    names = {s.task_name for s in collector.snapshot().samples
             if s.lock_name.startswith("program.py:") and s.task_id is not None}
    collector.stop()
    print(plain == profiled, sorted(map(str, names)))
"""


def test_gevent_greenlet_names_are_never_generated_by_the_profiler(tmp_path):
    """gevent numbers a greenlet (`Greenlet-N`, shown in its repr) when its name is first asked
    for: lockprof asking inside a lock operation would change the program's reprs and numbers.
    Greenlets the program named are labelled with their names, the others by task id alone."""
    pytest.importorskip("gevent")
    result = run_script(GREENLET_NAMES, str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True ['None', 'given']"
