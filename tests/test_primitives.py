"""Semaphore, BoundedSemaphore and Condition of threading, and Lock, Semaphore, BoundedSemaphore
and Condition of asyncio: profiled as their own lock kinds, and behaving as natively."""

from __future__ import annotations

import asyncio
import copy
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest

import lockprof
from lockhelpers import JOIN, MS, hold_in_thread
from lockprof import LockCollector
from lockprof._lock import ProfiledLock, ProfiledRLock
from lockprof._primitives import profiled_class

ORIGINAL_LOCK = threading.Lock
ORIGINAL = {name: getattr(threading, name) for name in ("Semaphore", "BoundedSemaphore", "Condition")}
ORIGINAL_ASYNCIO = {name: getattr(asyncio, name) for name in ("Lock", "Semaphore", "BoundedSemaphore", "Condition")}
THREADING_KINDS = {"Semaphore": "semaphore", "BoundedSemaphore": "bounded-semaphore", "Condition": "condition"}
ASYNCIO_KINDS = {"Lock": "asyncio-lock", "Semaphore": "asyncio-semaphore",
                 "BoundedSemaphore": "asyncio-bounded-semaphore", "Condition": "asyncio-condition"}

try:
    import uvloop
except ImportError:  # not on Windows
    uvloop = None


@pytest.fixture(autouse=True)
def classes_restored():
    yield
    for name, original in ORIGINAL.items():
        assert getattr(threading, name) is original, f"threading.{name} left patched"
    for name, original in ORIGINAL_ASYNCIO.items():
        assert getattr(asyncio, name) is original, f"asyncio.{name} left patched"


def samples_named(snapshot, prefix):
    """Samples of the primitive whose name starts with `prefix` ('test_primitives.py:42')."""
    return [s for s in snapshot.samples if s.lock_name.startswith(prefix)]


def site_of(obj):
    return obj._lp_info.site


def totals_named(snapshot, prefix):
    found = [t for t in snapshot.lock_totals if t.lock_name.startswith(prefix)]
    assert len(found) <= 1
    return found[0] if found else None


# ------------------------------------------------------------------ threading


@pytest.mark.parametrize("name", sorted(THREADING_KINDS))
def test_threading_primitive_is_profiled_as_its_own_kind(collector, name):
    obj = getattr(threading, name)()
    assert type(obj) is not ORIGINAL[name] and isinstance(obj, ORIGINAL[name])
    assert type(obj).__name__ == name and type(obj).__module__ == "threading"
    for _ in range(3):
        with obj:
            pass
    samples = samples_named(collector.snapshot(), site_of(obj))
    assert samples and {s.lock_kind for s in samples} == {THREADING_KINDS[name]}
    assert sum(s.acquire_count for s in samples) == 3
    assert sum(s.release_count for s in samples) == 3
    # The leaf may be the standard class's own method (Condition.__enter__ in threading.py).
    assert all(__file__ in (f.filename for f in s.frames[:2]) for s in samples)


def test_internal_locks_are_not_counted_twice(collector):
    sem = threading.Semaphore()
    cond = threading.Condition()
    assert type(sem._cond) is ORIGINAL["Condition"]  # made inside threading: native
    assert type(cond._lock) is ProfiledRLock and cond._lock.lock_info is cond._lp_info
    with sem:
        pass
    with cond:
        pass
    snap = collector.snapshot()
    kinds = sorted(s.lock_kind for s in snap.samples)
    assert kinds == ["condition", "semaphore"], kinds


@pytest.mark.parametrize("name", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_return_values_and_errors_are_native(collector, name):
    for factory in (ORIGINAL[name], getattr(threading, name)):
        sem = factory(1)
        assert sem.acquire() is True
        assert sem.acquire(False) is False
        assert sem.acquire(blocking=False) is False
        assert sem.acquire(timeout=0.01) is False
        assert sem.acquire(True, 0.01) is False
        with pytest.raises(ValueError, match="can't specify timeout for non-blocking acquire"):
            sem.acquire(False, 1)
        sem.release()
        assert sem.acquire(timeout=1) is True
        sem.release(1)
    with pytest.raises(ValueError, match="semaphore initial value must be >= 0"):
        getattr(threading, name)(-1)


def test_bounded_semaphore_over_release_raises(collector):
    sem = threading.BoundedSemaphore(2)
    with sem:
        pass
    with pytest.raises(ValueError, match="Semaphore released too many times"):
        sem.release()
    assert sem.acquire(False) and sem.acquire(False) and not sem.acquire(False)


@pytest.mark.parametrize("name", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_counter_and_errors_match_the_standard_class(collector, name):
    native, profiled = ORIGINAL[name](3), getattr(threading, name)(3)

    def both(operation):
        outcomes = []
        for sem in (native, profiled):
            try:
                outcomes.append((operation(sem), sem._value))
            except Exception as e:
                outcomes.append((type(e), str(e), sem._value))
        assert outcomes[0] == outcomes[1]
        assert type(native._value) is type(profiled._value)

    for operation in (
        lambda s: s.acquire(), lambda s: s.acquire(timeout=1), lambda s: s.acquire(True, None),
        lambda s: s.acquire(timeout=0.01), lambda s: s.release(2),
        lambda s: s.release(n=1), lambda s: s.release(), lambda s: s.release(0),
        lambda s: s.release(-1), lambda s: s.release(1.5), lambda s: s.release(True),
        lambda s: s.acquire(), lambda s: s.__enter__(), lambda s: s.__exit__(None, None, None),
    ):
        both(operation)


def standard_methods_run(operation):
    """The names of threading.py's functions that operation() calls."""
    called = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename == threading.__file__:
            called.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        operation()
    finally:
        sys.setprofile(None)
    return called


@pytest.mark.parametrize("name", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_permits_are_taken_in_place_only_for_the_standard_class(collector, name):
    def acquire_release(sem):
        return lambda: (sem.acquire(), sem.release())

    assert standard_methods_run(acquire_release(getattr(threading, name)(1))) == []

    class Sub(getattr(threading, name)):
        pass

    class OtherCondition(ORIGINAL["Condition"]):
        pass

    other_lock = getattr(threading, name)(1)
    other_lock._cond = ORIGINAL["Condition"](threading.RLock())  # not the lock the standard uses
    other_condition = getattr(threading, name)(1)
    other_condition._cond = OtherCondition(ORIGINAL_LOCK())
    for sem in (Sub(1), other_lock, other_condition):
        called = standard_methods_run(acquire_release(sem))
        assert "acquire" in called and "release" in called


@pytest.mark.parametrize("name", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_replaced_by_another_library_keeps_its_methods(monkeypatch, name):
    """A Semaphore class whose methods are not threading's own is never handled in place."""
    calls = []

    class Instrumented(ORIGINAL[name]):
        def acquire(self, blocking=True, timeout=None):
            calls.append("acquire")
            return super().acquire(blocking, timeout)

        def release(self, n=1):
            calls.append("release")
            super().release(n)

    monkeypatch.setattr(threading, name, Instrumented)
    collector = LockCollector()
    collector.start()
    try:
        sem = getattr(threading, name)(1)
        assert sem._lp_info is not None
        with sem:
            pass
    finally:
        collector.stop()
    assert calls == ["acquire", "release"]


@pytest.mark.parametrize("name", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_waits_for_its_condition_lock_as_natively(collector, name):
    """The standard methods take the Condition's lock: while another thread holds it, an
    acquire or a release waits, even with a permit free."""
    sem = getattr(threading, name)(1)
    for operation in (sem.acquire, sem.release):
        done = threading.Event()
        release_cond = threading.Event()
        holder = hold_in_thread(sem._cond, until=release_cond)
        worker = threading.Thread(target=lambda: (operation(), done.set()))
        worker.start()
        assert not done.wait(0.1)
        release_cond.set()
        assert done.wait(JOIN)
        worker.join(JOIN)
        holder.join(JOIN)
    assert sem._value == 1


@pytest.mark.parametrize("name", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_release_wakes_a_waiter(collector, name):
    sem = getattr(threading, name)(1)
    assert sem.acquire()
    got = []
    waiter = threading.Thread(target=lambda: got.append(sem.acquire(timeout=JOIN)))
    waiter.start()
    while not sem._cond._waiters:  # the waiter is in the Condition's wait
        time.sleep(0.001)
    sem.release()
    waiter.join(JOIN)
    assert got == [True] and sem._value == 0


@pytest.mark.parametrize("name", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_made_while_profiling_works_after_stop(make_collector, name):
    collector = make_collector(capture_pct=100)
    sem = getattr(threading, name)(2)
    with sem:
        pass
    collector.stop()
    assert sem.acquire() and sem.acquire() and not sem.acquire(timeout=0.01)
    sem.release(2)
    assert sem._value == 2
    if name == "BoundedSemaphore":
        with pytest.raises(ValueError, match="Semaphore released too many times"):
            sem.release()


@pytest.mark.parametrize("name", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_counter_survives_threads_mixing_every_path(collector, name):
    """Permits taken in place, by the standard methods (while a thread holds the Condition's
    lock) and by waiters with timeouts, among four threads: none is lost or made up."""
    sem = getattr(threading, name)(2)
    stop = threading.Event()
    errors = []

    def user():
        try:
            for i in range(1000):
                if sem.acquire(timeout=JOIN):
                    if i % 7 == 0:
                        time.sleep(0)  # let another thread in while holding a permit
                    sem.release()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def condition_holder():
        while not stop.is_set():
            with sem._cond:
                time.sleep(0.0005)
            time.sleep(0.0005)

    holder = threading.Thread(target=condition_holder)
    holder.start()
    users = [threading.Thread(target=user) for _ in range(4)]
    for t in users:
        t.start()
    for t in users:
        t.join(JOIN * 3)
    stop.set()
    holder.join(JOIN)
    assert errors == [] and sem._value == 2 and not sem._cond._waiters


def semaphore_waiter(sem):
    start = time.perf_counter_ns()
    with sem:
        return time.perf_counter_ns() - start


def test_semaphore_wait_is_contention(make_collector):
    collector = make_collector()
    sem = threading.Semaphore(1)
    holder = hold_in_thread(sem, seconds=0.1)
    waited = semaphore_waiter(sem)
    holder.join(JOIN)
    snap = collector.snapshot()
    totals = totals_named(snap, site_of(sem))
    assert totals.lock_kind == "semaphore" and totals.contended_count == 1
    assert 0.8 * waited <= totals.wait_ns <= waited
    (wait,) = [s for s in samples_named(snap, site_of(sem)) if s.contended_count]
    assert wait.frames[0].name.endswith("semaphore_waiter")
    assert snap.long_waits[0].wait_ns == totals.wait_ns


def test_semaphore_timeout_is_a_timed_out_wait(make_collector):
    collector = make_collector()
    sem = threading.Semaphore(0)
    assert sem.acquire(timeout=0.02) is False
    assert sem.acquire(timeout=0) is False  # cannot wait: not a wait
    assert sem.acquire(False) is False
    totals = totals_named(collector.snapshot(), site_of(sem))
    assert totals.contended_count == 1 and totals.timeouts == 1 and totals.wait_ns >= 19 * MS


def test_semaphore_blocking_int_and_negative_timeout_read_as_the_standard_acquire_does(make_collector):
    # One decision for every wrapper (lp_acquire_kind): blocking=1 may wait, as blocking=True;
    # a timeout at or below zero never waits for a semaphore (unlike a native lock's -1).
    collector = make_collector()
    sem = threading.Semaphore(0)
    assert sem.acquire(1, 0.02) is False
    assert sem.acquire(True, -1) is False
    assert sem.acquire(timeout=-0.5) is False
    totals = totals_named(collector.snapshot(), site_of(sem))
    assert totals.contended_count == 1 and totals.timeouts == 1 and totals.wait_ns >= 19 * MS


@pytest.mark.parametrize("lock_kind", [None, "Lock", "RLock", "native Lock", "native RLock"])
def test_condition_protocol_with_any_lock(collector, lock_kind):
    if lock_kind is None:
        lock = None
    elif lock_kind.startswith("native"):
        lock = (threading._allocate_lock if lock_kind.endswith(" Lock") else threading._CRLock)()
    else:
        lock = getattr(threading, lock_kind)()
    cond = threading.Condition(lock)
    items = []

    def producer():
        for i in range(5):
            time.sleep(0.002)
            with cond:
                items.append(i)
                cond.notify()
        with cond:
            items.append(None)
            cond.notify_all()

    t = threading.Thread(target=producer)
    t.start()
    seen = []
    with cond:
        while True:
            assert cond.wait_for(lambda: items, timeout=JOIN)
            item = items.pop(0)
            if item is None:
                break
            seen.append(item)
    t.join(JOIN)
    assert seen == list(range(5))
    with cond:
        assert cond.wait(0.001) is False  # timed out
        cond.notify_all()  # no waiters: a no-op
    with pytest.raises(RuntimeError):
        cond.notify()  # not acquired
    with pytest.raises(RuntimeError):
        cond.wait(0.001)


def notified_waiter(cond):
    with cond:
        return cond.wait(JOIN)


def test_condition_wait_is_its_own_sample_type(make_collector):
    collector = make_collector()
    cond = threading.Condition()

    def notifier():
        time.sleep(0.3)
        with cond:
            cond.notify()

    t = threading.Thread(target=notifier)
    t.start()
    assert notified_waiter(cond) is True
    t.join(JOIN)
    snap = collector.snapshot()
    (wait,) = [s for s in samples_named(snap, site_of(cond)) if s.condition_wait_ns]
    assert 250 * MS <= wait.condition_wait_ns <= 10_000 * MS
    assert wait.frames[0].name.endswith("notified_waiter") and wait.lock_kind == "condition"
    totals = totals_named(snap, site_of(cond))
    # The 300 ms waiting for the notify are not contention (the re-acquire took next to none).
    assert totals is None or totals.wait_ns < 250 * MS


def test_condition_is_named_after_its_variable(collector):
    worker_cond = threading.Condition()
    for _ in range(3):
        with worker_cond:
            pass
    names = {s.lock_name for s in samples_named(collector.snapshot(), site_of(worker_cond))}
    assert names == {f"{site_of(worker_cond)}:worker_cond"}


def test_subclasses_work_and_are_profiled(collector):
    class Pool(threading.Semaphore):
        def __init__(self, size):
            super().__init__(size)
            self.size = size

    class Box(threading.Condition):
        pass

    pool = Pool(2)
    assert isinstance(pool, threading.Semaphore) and isinstance(pool, ORIGINAL["Semaphore"])
    with pool:
        with pool:
            assert pool.acquire(False) is False
    box = Box()
    with box:
        box.notify()
    kinds = {s.lock_kind for s in collector.snapshot().samples}
    assert {"semaphore", "condition"} <= kinds


def test_subclass_defined_before_profiling_stays_native():
    class Pool(threading.Semaphore):
        pass

    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        pool = Pool(1)
        with pool:
            pass
        assert collector.snapshot().samples == []
    finally:
        collector.stop()


def test_isinstance_union_and_class_attributes(collector):
    before = ORIGINAL["Semaphore"]()
    assert isinstance(before, threading.Semaphore)  # made before start(): still an instance
    assert issubclass(ORIGINAL["BoundedSemaphore"], threading.Semaphore)
    assert not isinstance(threading.Lock(), threading.Semaphore)
    if sys.version_info >= (3, 10):
        assert isinstance(before, threading.Semaphore | None)
        assert isinstance(threading.Condition(), threading.Condition | None)
        assert not isinstance(1, threading.Semaphore | None)

    class Holder:
        semaphore_class = threading.Semaphore
        condition_class = threading.Condition

        def make(self):
            return self.semaphore_class(3), self.condition_class()

    sem, cond = Holder().make()  # not turned into methods
    assert sem.acquire(False) and isinstance(cond, ORIGINAL["Condition"])


@pytest.mark.parametrize("name", sorted(THREADING_KINDS))
def test_pickling_fails_and_copying_works_as_natively(collector, name):
    # Threading primitives hold locks, which never pickle: natively a TypeError or, at
    # protocols 0 and 1, a PicklingError. While profiling the PicklingError can come first, from
    # the patched name of a standard class inside (a Semaphore's own Condition).
    profiled = getattr(threading, name)()
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises((TypeError, pickle.PicklingError)):
            pickle.dumps(profiled, protocol)
    with pytest.raises(TypeError):
        copy.deepcopy(profiled)
    shallow = copy.copy(profiled)  # shares the internal lock, as a native copy does
    assert {k for k in vars(shallow) if not k.startswith("_lp_")} == {
        k for k in vars(profiled) if not k.startswith("_lp_")}
    assert shallow._lp_info is None  # a copy is not profiled, and works
    with shallow:
        pass


def test_excluded_module_gets_the_original_class(make_collector):
    collector = make_collector(exclude_modules=["excluded_app"])
    module = types.ModuleType("excluded_app")
    exec("import threading\nSEM = threading.Semaphore(2)\nCOND = threading.Condition()\n", module.__dict__)
    assert type(module.SEM) is ORIGINAL["Semaphore"] and type(module.COND) is ORIGINAL["Condition"]
    with module.SEM:
        pass
    assert collector.snapshot().samples == []


def test_capture_pct_zero_keeps_contention_only(make_collector):
    collector = make_collector(capture_pct=0)
    sem = threading.Semaphore(1)
    for _ in range(10):
        with sem:
            pass
    holder = hold_in_thread(sem, seconds=0.1)
    semaphore_waiter(sem)
    holder.join(JOIN)
    snap = collector.snapshot()
    assert sum(s.acquire_count for s in samples_named(snap, site_of(sem))) == 0
    assert totals_named(snap, site_of(sem)).contended_count == 1


def test_after_stop_objects_keep_working_and_new_ones_are_native():
    collector = LockCollector(capture_pct=100)
    collector.start()
    sem, cond = threading.Semaphore(), threading.Condition()
    collector.stop()
    assert threading.Semaphore is ORIGINAL["Semaphore"]
    with sem:
        pass
    with cond:
        cond.notify_all()
    assert type(threading.Semaphore()) is ORIGINAL["Semaphore"]
    assert collector.snapshot().samples == []


def test_two_collectors_stopped_out_of_order_restore_the_originals():
    first, second = LockCollector(), LockCollector()
    first.start()
    second.start()
    first.stop()
    assert threading.Semaphore is not ORIGINAL["Semaphore"]  # the second one's, still running
    second.stop()
    assert threading.Semaphore is ORIGINAL["Semaphore"]


# ------------------------------------------------------------------ asyncio


def run(coroutine_function, loop_kind="asyncio"):
    if loop_kind == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed (no Windows or free-threaded build)")
        loop = uvloop.new_event_loop()
        try:
            return loop.run_until_complete(coroutine_function())
        finally:
            loop.close()
    return asyncio.run(coroutine_function())


LOOPS = ["asyncio", "uvloop"]


@pytest.mark.parametrize("name", sorted(ASYNCIO_KINDS))
def test_asyncio_primitive_is_profiled_as_its_own_kind(collector, name):
    async def main():
        obj = getattr(asyncio, name)()
        assert isinstance(obj, ORIGINAL_ASYNCIO[name]) and type(obj) is not ORIGINAL_ASYNCIO[name]
        for _ in range(3):
            async with obj:
                pass
        return obj

    obj = run(main)
    samples = samples_named(collector.snapshot(), site_of(obj))
    assert samples and {s.lock_kind for s in samples} == {ASYNCIO_KINDS[name]}
    assert sum(s.acquire_count for s in samples) == 3
    assert all(s.task_name for s in samples)


async def hold_for(lock, seconds, started):
    async with lock:
        started.set()
        await asyncio.sleep(seconds)


async def wait_for_lock(lock, started):
    await started.wait()
    start = time.monotonic_ns()
    async with lock:
        return time.monotonic_ns() - start


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_asyncio_waiter_and_holder_each_on_their_own_task(make_collector, loop_kind):
    collector = make_collector(capture_pct=100)  # every hold is timed

    async def main():
        lock = asyncio.Lock()
        started = asyncio.Event()
        holder = asyncio.ensure_future(hold_for(lock, 0.2, started))
        waiter = asyncio.ensure_future(wait_for_lock(lock, started))
        _, waited = await asyncio.gather(holder, waiter)
        return lock, waited

    lock, waited = run(main, loop_kind)
    snap = collector.snapshot()
    samples = samples_named(snap, site_of(lock))
    (wait,) = [s for s in samples if s.contended_count]
    (blocking,) = [s for s in samples if s.blocking_hold_ns]
    assert 180 * MS <= wait.acquire_wait_ns <= waited
    # The leaf is the `async with` itself: the profiled __aenter__ and __aexit__ have no frame.
    assert wait.frames[0].name.endswith("wait_for_lock")
    assert 180 * MS <= blocking.blocking_hold_ns <= 10_000 * MS
    assert blocking.frames[0].name.endswith("hold_for")
    assert wait.task_id is not None and blocking.task_id is not None and wait.task_id != blocking.task_id
    # The holder's own hold, about 200 ms, on the holder's task; the waiter's is short.
    holds = {s.task_id: s.release_hold_ns for s in samples if s.release_count}
    assert holds[blocking.task_id] >= 180 * MS and holds[wait.task_id] < holds[blocking.task_id]
    assert totals_named(snap, site_of(lock)).contended_count == 1


HELPERS = {  # ways to wait for an acquire run by a task of its own
    "wait_for": lambda acquire: asyncio.wait_for(acquire, 10),
    "gather": asyncio.gather,
    "ensure_future": asyncio.ensure_future,
    "shield": asyncio.shield,
}


@pytest.mark.parametrize("helper", HELPERS)
@pytest.mark.parametrize("name", ["Lock", "Semaphore"])
def test_asyncio_wait_in_a_helper_task_is_shown_in_the_coroutines_awaiting_it(make_collector, helper, name):
    collector = make_collector(capture_pct=100)

    async def user_waits_through_a_helper(lock):
        await HELPERS[helper](lock.acquire())
        lock.release()

    async def main():
        lock = getattr(asyncio, name)(1) if name == "Semaphore" else asyncio.Lock()
        started = asyncio.Event()
        holder = asyncio.ensure_future(hold_for(lock, 0.05, started))
        await started.wait()
        await user_waits_through_a_helper(lock)
        await holder
        return lock

    lock = run(main)
    snap = collector.snapshot()
    (wait,) = [s for s in samples_named(snap, site_of(lock)) if s.contended_count]
    (long_wait,) = snap.long_waits
    for frames in (wait.frames, long_wait.frames):
        names = [frame.name for frame in frames]
        # The awaiting coroutines come first, the event loop's frames (if any) after them.
        user = next(i for i, n in enumerate(names) if n.endswith("user_waits_through_a_helper"))
        assert not any("_run_once" in n for n in names[:user]), names


def test_asyncio_two_waiters_are_timed_separately(make_collector):
    collector = make_collector(capture_pct=100)

    async def timed_acquire(lock, hold_s):
        start = time.monotonic_ns()
        async with lock:
            waited = time.monotonic_ns() - start
            await asyncio.sleep(hold_s)
        return waited

    async def main():
        lock = asyncio.Lock()
        first = asyncio.create_task(timed_acquire(lock, 0.1), name="first")
        await asyncio.sleep(0)  # first holds the lock
        second = asyncio.create_task(timed_acquire(lock, 0.05), name="second")
        await asyncio.sleep(0.02)
        third = asyncio.create_task(timed_acquire(lock, 0.0), name="third")
        return lock, await asyncio.gather(first, second, third)

    lock, (_, second_waited, third_waited) = run(main)
    snap = collector.snapshot()
    waits = {s.task_name: s.acquire_wait_ns for s in samples_named(snap, site_of(lock)) if s.contended_count}
    holds = {s.task_name: s.release_hold_ns for s in samples_named(snap, site_of(lock)) if s.release_count}
    assert abs(waits["second"] - second_waited) < 5 * MS and second_waited >= 90 * MS
    # third waits at least for second's whole hold (when it starts depends on the timers)
    assert abs(waits["third"] - third_waited) < 5 * MS and third_waited >= 50 * MS
    # Each hold is its own task's: third's does not include its wait.
    assert holds["first"] >= 95 * MS and holds["second"] >= 45 * MS
    assert holds["third"] < third_waited


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_asyncio_semaphores_and_condition(make_collector, loop_kind):
    collector = make_collector(capture_pct=100)

    async def main():
        sem = asyncio.BoundedSemaphore(1)
        async with sem:
            assert sem.locked()
        with pytest.raises(ValueError):
            sem.release()
        cond = asyncio.Condition()

        async def notifier():
            await asyncio.sleep(0.05)
            async with cond:
                cond.notify_all()

        task = asyncio.ensure_future(notifier())
        async with cond:
            await cond.wait()
        await task
        async with cond:
            assert await cond.wait_for(lambda: True)
        return sem, cond

    sem, cond = run(main, loop_kind)
    snap = collector.snapshot()
    assert {s.lock_kind for s in samples_named(snap, site_of(sem))} == {"asyncio-bounded-semaphore"}
    waits = [s for s in samples_named(snap, site_of(cond)) if s.condition_wait_ns]
    assert len(waits) == 1 and 40 * MS <= waits[0].condition_wait_ns <= 10_000 * MS
    assert {s.lock_kind for s in samples_named(snap, site_of(cond))} == {"asyncio-condition"}
    assert totals_named(snap, site_of(cond)) is None  # waiting for the notify is not contention


def test_asyncio_subclass_overrides_are_called_as_natively(collector):
    """The profiled asyncio.Lock and Semaphore read the standard tests and release in place;
    a subclass's own locked(), _wake_up_first() or release() still runs where the standard
    acquire() and release() would call it."""
    called = []

    class TracedLock(asyncio.Lock):
        def _wake_up_first(self):
            called.append("_wake_up_first")
            super()._wake_up_first()

    class ReleasingLock(asyncio.Lock):
        def release(self):
            called.append("release")
            super().release()

    class FullSemaphore(asyncio.Semaphore):
        def locked(self):
            called.append("locked")
            return super().locked()

    async def main():
        traced, releasing, semaphore = TracedLock(), ReleasingLock(), FullSemaphore(1)
        assert all(hasattr(obj, "_lp_state") for obj in (traced, releasing, semaphore))  # profiled
        async with traced:
            waiter = asyncio.ensure_future(traced.acquire())
            await asyncio.sleep(0)  # queued: the release must wake it through the override
        assert await waiter is True and traced.locked()
        traced.release()
        async with releasing:
            pass
        async with semaphore:
            pass

    run(main)
    # 3.9's Semaphore.acquire() does not call locked() (it reads _value itself).
    locked = ["locked"] if sys.version_info >= (3, 10) else []
    assert called == ["_wake_up_first", "_wake_up_first", "release"] + locked


class SemaphoreOfTheFirstReleases(asyncio.Semaphore):
    """The standard acquire of 3.9 and 3.10 before bpo-45997: no _wakeup_scheduled."""

    async def acquire(self):
        while self._value <= 0:
            await asyncio.sleep(0.001)
        self._value -= 1
        return True

    def release(self):
        self._value += 1


class SemaphoreWithWakeupScheduled(SemaphoreOfTheFirstReleases):
    """3.9's standard acquire after bpo-45997: a task being woken goes first."""

    async def acquire(self):
        while self._wakeup_scheduled or self._value <= 0:
            await asyncio.sleep(0.001)
        self._value -= 1
        return True


@pytest.mark.parametrize("original", [SemaphoreOfTheFirstReleases, SemaphoreWithWakeupScheduled])
def test_asyncio_semaphore_decides_to_wait_as_its_standard_acquire_does(collector, original):
    """Which test the standard Semaphore.acquire() makes changed within patch releases; the
    profiled one makes the test of the acquire it profiles."""
    profiled = profiled_class(original, "asyncio-semaphore", collector._recorder, collector._filter.excludes)

    async def main():
        semaphore = profiled(1)
        assert hasattr(semaphore, "_lp_state")
        vars(semaphore).pop("_wakeup_scheduled", None)  # none in the first releases
        if original is SemaphoreWithWakeupScheduled:
            semaphore._wakeup_scheduled = False
        assert await semaphore.acquire() is True
        semaphore.release()
        if original is SemaphoreWithWakeupScheduled:
            semaphore._wakeup_scheduled = True  # another task is being woken: this one waits
            waiter = asyncio.ensure_future(semaphore.acquire())
            await asyncio.sleep(0.02)
            assert not waiter.done()
            semaphore._wakeup_scheduled = False
            assert await waiter is True
        return semaphore._value

    assert run(main) == (0 if original is SemaphoreWithWakeupScheduled else 1)


def test_asyncio_subclass_pickle_and_isinstance(collector):
    class MyLock(asyncio.Lock):
        pass

    async def main():
        lock = MyLock()
        async with lock:
            assert lock.locked()
        return lock

    lock = run(main)
    assert isinstance(lock, asyncio.Lock) and isinstance(lock, ORIGINAL_ASYNCIO["Lock"])

    async def make():  # inside a loop: 3.9's asyncio objects bind the running loop
        return ORIGINAL_ASYNCIO["Lock"](), asyncio.Lock(), asyncio.Semaphore(3)

    native_lock, profiled_lock, profiled_semaphore = run(make)
    assert isinstance(native_lock, asyncio.Lock)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        try:
            pickle.dumps(native_lock, protocol)
        except Exception as error:  # 3.9: the lock holds its event loop, which does not pickle
            with pytest.raises(type(error)):
                pickle.dumps(profiled_lock, protocol)
            continue
        data = pickle.dumps(profiled_lock, protocol)
        assert b"_lp_" not in data
        restored = pickle.loads(data)
        assert type(restored) is ORIGINAL_ASYNCIO["Lock"] and not restored.locked()
    sem = copy.copy(profiled_semaphore)
    assert type(sem) is ORIGINAL_ASYNCIO["Semaphore"] and sem._value == 3


def test_asyncio_imported_after_start_is_patched(tmp_path):
    script = textwrap.dedent("""
        import sys, threading
        assert "asyncio" not in sys.modules
        from lockprof import LockCollector
        collector = LockCollector(capture_pct=100)
        collector.start()
        import asyncio
        original = asyncio.locks.Lock
        assert asyncio.Lock is not original and issubclass(asyncio.Lock, original)
        async def main():
            lock = asyncio.Lock()
            async with lock:
                pass
        asyncio.run(main())
        kinds = {s.lock_kind for s in collector.snapshot().samples}
        collector.stop()
        assert asyncio.Lock is original, asyncio.Lock
        assert "asyncio-lock" in kinds, kinds
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(lockprof.__file__)))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=str(tmp_path), env=env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_asyncio_imported_by_another_thread_during_start_is_patched_when_done(tmp_path):
    """start() while another thread is in the middle of importing asyncio: too late for the
    import hook, too early to patch names not yet defined; patched as soon as the import ends."""
    script = textwrap.dedent("""
        import importlib.abc, sys, threading, time
        from lockprof import LockCollector

        halfway = threading.Event()

        class SlowLoader(importlib.abc.Loader):
            def __init__(self, loader):
                self.loader = loader
            def create_module(self, spec):
                return self.loader.create_module(spec)
            def exec_module(self, module):
                halfway.set()
                time.sleep(0.3)  # asyncio is in sys.modules, still initializing
                self.loader.exec_module(module)

        class SlowFinder(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name != "asyncio":
                    return None
                sys.meta_path.remove(self)
                spec = importlib.util.find_spec(name)
                spec.loader = SlowLoader(spec.loader)
                return spec

        import importlib.util
        sys.meta_path.insert(0, SlowFinder())
        importer = threading.Thread(target=__import__, args=("asyncio",))
        importer.start()
        halfway.wait()
        collector = LockCollector()
        collector.start()
        importer.join()
        asyncio = sys.modules["asyncio"]
        deadline = time.monotonic() + 10
        while not getattr(asyncio.Lock, "_lp_original", None) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert asyncio.Lock is not asyncio.locks.Lock, "not patched after the import ended"
        collector.stop()
        assert asyncio.Lock is asyncio.locks.Lock
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(lockprof.__file__)))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=str(tmp_path), env=env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


# ------------------------------------------------------------------ regressions (review)


def test_asyncio_semaphore_released_outside_the_loop(collector):
    async def main():
        sem = asyncio.Semaphore(1)
        await sem.acquire()  # captured at 100%
        return sem

    sem = run(main)
    sem.release()  # no running loop: as natively, no error
    assert sem._value == 1


def test_semaphore_permit_released_by_another_thread_ends_no_hold(make_collector):
    collector = make_collector(capture_pct=50)  # captures every second acquire
    sem = threading.Semaphore(1)
    sem.acquire()
    sem.release()
    sem.acquire()  # captured
    releaser = threading.Thread(target=sem.release)  # the permit goes back from elsewhere
    releaser.start()
    releaser.join(JOIN)
    time.sleep(0.1)
    sem.acquire()  # not captured
    sem.release()  # must not end the captured acquire's hold
    holds = [s.release_hold_ns for s in samples_named(collector.snapshot(), site_of(sem)) if s.release_count]
    assert holds == []


@pytest.mark.parametrize("lock_kind", ["default", "Lock"])
def test_condition_waits_ending_after_stop_are_not_recorded(lock_kind):
    collector = LockCollector(capture_pct=100)
    collector.start()
    cond = threading.Condition() if lock_kind == "default" else threading.Condition(threading.Lock())
    blocker = threading.Event()

    def notify_after_stop():
        blocker.wait(JOIN)
        with cond:
            cond.notify()
            time.sleep(0.02)  # the re-acquire waits, after stop()

    t = threading.Thread(target=notify_after_stop)
    t.start()
    with cond:
        collector.stop()
        blocker.set()
        assert cond.wait(JOIN)
    t.join(JOIN)
    snap = collector.snapshot()
    assert snap.lock_totals == [] and all(s.condition_wait_ns == 0 for s in snap.samples)


def test_reloaded_threading_stays_patched_and_is_restored(tmp_path):
    script = textwrap.dedent("""
        import importlib, threading, weakref, gc
        from lockprof import LockCollector
        from lockprof._lock import ProfiledLock
        collector = LockCollector()
        collector.start()
        importlib.reload(threading)
        assert type(threading.Lock()) is ProfiledLock, threading.Lock
        semaphore_after_reload = threading.Semaphore
        collector.stop()
        assert type(threading.Lock()) is not ProfiledLock
        assert threading.Semaphore is not semaphore_after_reload
        ref = weakref.ref(collector)
        del collector
        gc.collect()
        assert ref() is None, "the import hook keeps a stopped collector alive"
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(lockprof.__file__)))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=str(tmp_path), env=env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_a_patched_name_that_is_not_a_class_is_left_alone(monkeypatch):
    def semaphore_function(value=1):  # some library replaced it
        return ORIGINAL["Semaphore"](value)

    monkeypatch.setattr(threading, "Semaphore", semaphore_function)
    collector = LockCollector()
    collector.start()
    try:
        assert threading.Semaphore is semaphore_function
        assert type(threading.Condition()) is not ORIGINAL["Condition"]  # the rest is patched
    finally:
        collector.stop()
    assert threading.Semaphore is semaphore_function


def test_subclasses_keep_their_own_pickling_and_metaclass(collector):
    import abc

    class Abstract(threading.Semaphore, abc.ABC):  # natively fine: a common metaclass exists
        pass

    class Stateful(asyncio.Lock):
        def __reduce__(self):
            return (str, ("reduced",))

    assert isinstance(Abstract(), ORIGINAL["Semaphore"])

    async def make():
        return Stateful()

    assert pickle.loads(pickle.dumps(run(make))) == "reduced"

    class Plain(asyncio.Lock):
        pass

    async def make_plain():
        return Plain()

    assert type(copy.copy(run(make_plain))) is Plain  # a local class copies as itself, as natively


def test_rlock_acquire_restore_with_odd_states_is_native(collector):
    lock = threading.RLock()
    native = threading._CRLock()
    me = threading.get_ident()
    for state in ((1.5, me), (True, me)):
        outcomes = []
        for candidate in (native, lock):
            try:
                candidate._acquire_restore(state)
            except Exception as error:  # noqa: BLE001 - compared below
                outcomes.append((type(error), str(error)))
            else:
                outcomes.append(candidate._is_owned())
                candidate._release_save()
        assert outcomes[0] == outcomes[1], state
