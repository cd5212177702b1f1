"""The two cores (docs/design.md, "Two cores"): which one setup.py builds (LOCKPROF_CORE), the
one that runs (lockprof.CORE_MODE), and what the wrappers derive from the running interpreter
at import rather than from its version, each variant forced on the interpreters at hand."""

from __future__ import annotations

import _thread
import asyncio
import dis
import importlib.util
import os
import threading

import pytest

import lockprof
from lockhelpers import samples_of, totals_of
from lockprof import LockCollector
from lockprof import _lock, _recorder

SETUP_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


@pytest.fixture(scope="module")
def setup_module():
    spec = importlib.util.spec_from_file_location("lockprof_setup", SETUP_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines core_mode(); setup() runs only as __main__
    return module


# ------------------------------------------------------------------ setup.py's choice

@pytest.mark.parametrize("version", [(3, 9), (3, 10), (3, 11), (3, 12), (3, 13)])
def test_auto_is_the_internals_core_on_the_series_ci_runs(setup_module, version):
    assert setup_module.core_mode({}, version) == "internals"
    assert setup_module.core_mode({"LOCKPROF_CORE": "auto"}, version) == "internals"


@pytest.mark.parametrize("version", [(3, 14), (3, 15), (4, 0)])
def test_auto_is_the_portable_core_on_any_newer_cpython(setup_module, version):
    assert setup_module.core_mode({}, version) == "portable"


def test_either_core_can_be_asked_for(setup_module):
    assert setup_module.core_mode({"LOCKPROF_CORE": "portable"}, (3, 11)) == "portable"
    assert setup_module.core_mode({"LOCKPROF_CORE": " Internals "}, (3, 13)) == "internals"
    assert setup_module.core_mode({"LOCKPROF_CORE": "portable"}, (3, 15)) == "portable"


@pytest.mark.parametrize("value", ["fast", "internal", "1"])
def test_a_bad_value_is_an_error_naming_the_variable(setup_module, value):
    with pytest.raises(SystemExit) as error:
        setup_module.core_mode({"LOCKPROF_CORE": value}, (3, 11))
    assert "LOCKPROF_CORE" in str(error.value) and repr(value) in str(error.value)


def test_the_internals_core_is_refused_where_its_structures_are_unknown(setup_module):
    with pytest.raises(SystemExit) as error:
        setup_module.core_mode({"LOCKPROF_CORE": "internals"}, (3, 14))
    assert "LOCKPROF_CORE=portable" in str(error.value)


def test_core_mode_is_the_built_modules_own(setup_module):
    assert lockprof.CORE_MODE == _lock.CORE_MODE
    assert lockprof.CORE_MODE in ("internals", "portable")
    assert "CORE_MODE" in dir(lockprof)
    # CI builds each leg with LOCKPROF_CORE set, and runs the tests with it: the modules must
    # be the core it asked for.
    if "LOCKPROF_CORE" in os.environ:
        assert lockprof.CORE_MODE == setup_module.core_mode(os.environ)


# ------------------------------------------------------------------ __enter__ and __exit__

def native_enter_takes_arguments(make_native):
    lock = make_native()
    try:
        taken = lock.__enter__(False)
    except TypeError:
        return False
    if taken:
        lock.release()
    return True


def test_the_enter_convention_is_the_native_methods():
    derived = _lock.derived_protocol()["enter_takes_arguments"]
    assert derived == (native_enter_takes_arguments(_thread.allocate_lock), native_enter_takes_arguments(_thread.RLock))


@pytest.fixture
def enter_takes_no_arguments():
    """The convention of a CPython whose __enter__ takes no arguments (3.15), on this one."""
    previous = _lock.feed_derived_protocol((False, False))
    yield
    _lock.feed_derived_protocol(previous["enter_takes_arguments"])


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_enter_with_arguments_is_the_native_methods_where_it_takes_none(collector, enter_takes_no_arguments, kind):
    lock = getattr(threading, kind)()
    native = _lock.original_thread_attribute("allocate_lock" if kind == "Lock" else "RLock")()
    # The native __enter__ itself runs, with the caller's arguments: its own result or error,
    # and no profiled acquire (the collector captures every profiled one).
    assert lock.__enter__(False) == native.__enter__(False)
    lock.release()
    native.release()
    assert totals_of(collector.snapshot(), lock)[0] == 0
    with lock:  # no arguments: the profiled acquire
        pass
    assert totals_of(collector.snapshot(), lock)[:3:2] == (1, 1)


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
@pytest.mark.parametrize("args", [(), (None,), (None, None, None, None)])
def test_exit_with_other_than_three_arguments_is_the_native_methods(collector, kind, args):
    lock = getattr(threading, kind)()
    native = _lock.original_thread_attribute("allocate_lock" if kind == "Lock" else "RLock")()

    def outcome(target):
        target.acquire()
        try:
            return ("ok", target.__exit__(*args), target._is_owned() if kind == "RLock" else target.locked())
        except TypeError as error:  # a native __exit__ that takes exactly three (3.15)
            target.release()
            return (TypeError, str(error))

    assert outcome(lock) == outcome(native)
    # The captured hold ends with the release, whichever method made it.
    acquires, _, releases, _ = totals_of(collector.snapshot(), lock)
    assert (acquires, releases) == (1, 1)


# ------------------------------------------------------------------ naming: the opcode table

class Holder:
    def __init__(self):
        self.guard = threading.Lock()


def test_site_naming_reads_load_fast_borrow_as_a_plain_variable(collector):
    opmap = dict(dis.opmap)
    opmap["LOAD_FAST_BORROW"] = opmap.pop("LOAD_FAST")  # 3.14's name for this interpreter's opcode
    try:
        _recorder._classify_opcodes(opmap)
        holder = Holder()
        assert holder.guard.lock_info.name == "guard"
        del opmap["LOAD_FAST_BORROW"]  # and without it, `self` is no plain variable
        _recorder._classify_opcodes(opmap)
        code = compile("class Other:\n def __init__(self):\n  self.guard = threading.Lock()\n", "<core_mode>", "exec")
        namespace = {"threading": threading}
        exec(code, namespace)
        assert namespace["Other"]().guard.lock_info.name != "guard"
    finally:
        _recorder._classify_opcodes()


# ------------------------------------------------------------------ the running asyncio task

async def take(lock):
    with lock:
        pass


def names_of_tasks_taking_a_lock():
    """The task names a new collector records for a lock taken in a task named 'worker'."""
    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        lock = threading.Lock()

        async def main():
            await asyncio.get_running_loop().create_task(take(lock), name="worker")

        asyncio.run(main())
        return {s.task_name for s in samples_of(collector.snapshot(), lock)}
    finally:
        collector.stop()


@pytest.mark.skipif(type(asyncio.tasks.current_task) is not type(len), reason="asyncio's current_task is Python code here (3.9-3.11)")
def test_the_task_is_asyncios_c_accessors_not_the_dict(monkeypatch):
    # From 3.14 the running task lives on the thread state and asyncio.tasks._current_tasks
    # stays empty: where current_task is C, the dict is never read.
    monkeypatch.setattr(asyncio.tasks, "_current_tasks", {})
    assert names_of_tasks_taking_a_lock() == {"worker"}


def test_the_task_is_read_from_the_dict_where_current_task_is_python(monkeypatch):
    # asyncio without its C accessor: the dict its Python current_task reads, never a call of
    # that function (Python code, inside a lock operation).
    calls = []
    dict_of_tasks = asyncio.tasks._current_tasks

    def python_current_task(loop=None):
        calls.append(loop)
        return dict_of_tasks.get(loop)

    monkeypatch.setattr(asyncio.tasks, "current_task", python_current_task)
    assert names_of_tasks_taking_a_lock() == {"worker"}
    assert calls == []
