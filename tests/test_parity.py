"""Parity: a profiled Lock/RLock behaves exactly like the native one.

Most tests run once per flavour ('native', 'profiled-100', 'profiled-0': see conftest.make_lock)
and assert the same literal expectations, so the native run documents the expected behaviour
and the profiled runs must match it. Error tests run native and profiled side by side and
compare exception type and message.
"""

from __future__ import annotations

import _thread
import copy
import gc
import os
import pickle
import signal
import sys
import threading
import typing
import time
import weakref
from contextlib import contextmanager

import pytest

from lockprof import LockCollector
from lockprof._lock import ProfiledLock, ProfiledRLock

# The native factories and lock types (no collector runs while tests are collected).
ORIGINAL_LOCK = threading.Lock
ORIGINAL_RLOCK = threading.RLock
NATIVE_LOCK_TYPE = _thread.LockType
NATIVE_RLOCK_TYPE = _thread.RLock
LOCK_IS_TYPE = isinstance(ORIGINAL_LOCK, type)  # 3.13+: threading.Lock is the lock class


KINDS = ["Lock", "RLock"]
JOIN = 10  # seconds: a generous bound that only matters when something deadlocks


def is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


@contextmanager
def held_elsewhere(lock, release_after=None):
    """Hold `lock` in another thread for the duration of the block (or, with release_after,
    release it that many seconds after it was taken)."""
    taken = threading.Event()
    done = threading.Event()

    def holder():
        lock.acquire()
        taken.set()
        done.wait(release_after if release_after is not None else JOIN)
        lock.release()

    t = threading.Thread(target=holder, daemon=True)
    t.start()
    assert taken.wait(JOIN)
    try:
        yield
    finally:
        done.set()
        t.join(JOIN)
        assert not t.is_alive()


def run_in_thread(fn):
    """fn() in another thread; returns ('ok', value) or (exception type, message)."""
    out = []

    def body():
        out.append(outcome(fn))

    t = threading.Thread(target=body)
    t.start()
    t.join(JOIN)
    assert not t.is_alive()
    return out[0]


def outcome(fn):
    try:
        return ("ok", fn())
    except BaseException as e:  # noqa: B902 - we compare whatever is raised
        return (type(e), str(e))


def free_from_other_thread(lock) -> bool:
    """True when another thread can take (and then gives back) the lock right now."""

    def probe():
        if lock.acquire(False):
            lock.release()
            return True
        return False

    result = run_in_thread(probe)
    assert result[0] == "ok", result
    return result[1]


@pytest.fixture
def profiled_pair():
    """pair(kind, capture_pct) -> (native, profiled) of the same kind; the collector that
    made the profiled one keeps running until the test ends."""
    running = []

    def pair(kind, capture_pct):
        c = LockCollector(capture_pct=capture_pct)
        c.start()
        running.append(c)
        profiled = getattr(threading, kind)()
        native = (ORIGINAL_LOCK if kind == "Lock" else ORIGINAL_RLOCK)()
        assert type(profiled) is (ProfiledLock if kind == "Lock" else ProfiledRLock)
        assert type(native) is (NATIVE_LOCK_TYPE if kind == "Lock" else NATIVE_RLOCK_TYPE)
        return native, profiled

    yield pair
    for c in running:
        c.stop()


# ------------------------------------------------------------------ acquire return values

ACQUIRE_CALLS = {
    "acquire()": lambda l: l.acquire(),
    "acquire(True)": lambda l: l.acquire(True),
    "acquire(False)": lambda l: l.acquire(False),
    "acquire(blocking=False)": lambda l: l.acquire(blocking=False),
    "acquire(timeout=0.01)": lambda l: l.acquire(timeout=0.01),
    "acquire(True, 0.01)": lambda l: l.acquire(True, 0.01),
    "acquire(blocking=True, timeout=0.01)": lambda l: l.acquire(blocking=True, timeout=0.01),
}
NON_BLOCKING_OR_TIMED = [k for k in ACQUIRE_CALLS if k not in ("acquire()", "acquire(True)")]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("call", list(ACQUIRE_CALLS))
def test_acquire_free_returns_true(make_lock, kind, call):
    lock = make_lock(kind)
    result = ACQUIRE_CALLS[call](lock)
    assert result is True
    assert not free_from_other_thread(lock)  # really acquired
    lock.release()
    assert free_from_other_thread(lock)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("call", NON_BLOCKING_OR_TIMED)
def test_acquire_held_by_other_thread_returns_false(make_lock, kind, call):
    lock = make_lock(kind)
    with held_elsewhere(lock):
        assert ACQUIRE_CALLS[call](lock) is False
    # Not acquired by the failed call: free once the other thread let go.
    assert free_from_other_thread(lock)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("call", ["acquire()", "acquire(True)"])
def test_blocking_acquire_waits_for_other_thread(make_lock, kind, call):
    lock = make_lock(kind)
    with held_elsewhere(lock, release_after=0.1):
        start = time.monotonic()
        assert ACQUIRE_CALLS[call](lock) is True
        waited = time.monotonic() - start
    assert waited >= 0.05  # very loose: it did block until the holder let go
    lock.release()


@pytest.mark.parametrize("kind", KINDS)
def test_timed_acquire_succeeds_when_released_in_time(make_lock, kind):
    lock = make_lock(kind)
    with held_elsewhere(lock, release_after=0.05):
        assert lock.acquire(timeout=JOIN) is True
    lock.release()


# ------------------------------------------------------------------ errors: native vs profiled

ERROR_CALLS = {
    "timeout=-2": lambda l: l.acquire(timeout=-2),
    "False, 1": lambda l: l.acquire(False, 1),
    "timeout='x'": lambda l: l.acquire(timeout="x"),
    "blocking=False, timeout=1": lambda l: l.acquire(blocking=False, timeout=1),
    "1, 2, 3": lambda l: l.acquire(1, 2, 3),
    "foo=1": lambda l: l.acquire(foo=1),
    "True, 'x'": lambda l: l.acquire(True, "x"),
    "timeout=huge": lambda l: l.acquire(timeout=1e300),
    "blocking=[]": lambda l: l.acquire([], timeout=0.01, foo=2),
}


@pytest.mark.parametrize("capture_pct", [100, 0])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("call", list(ERROR_CALLS))
def test_bad_acquire_same_error_and_not_acquired(profiled_pair, kind, capture_pct, call):
    native, profiled = profiled_pair(kind, capture_pct)
    expected = outcome(lambda: ERROR_CALLS[call](native))
    got = outcome(lambda: ERROR_CALLS[call](profiled))
    assert expected[0] not in ("ok",) and issubclass(expected[0], Exception), expected
    assert got == expected
    # A rejected acquire must not have taken either lock.
    assert free_from_other_thread(native)
    assert free_from_other_thread(profiled)


@pytest.mark.parametrize("capture_pct", [100, 0])
@pytest.mark.parametrize("kind", KINDS)
def test_release_unheld_same_error(profiled_pair, kind, capture_pct):
    native, profiled = profiled_pair(kind, capture_pct)
    expected = outcome(native.release)
    assert expected[0] is RuntimeError
    assert outcome(profiled.release) == expected
    # still usable afterwards
    assert profiled.acquire(False) is True
    profiled.release()


@pytest.mark.parametrize("capture_pct", [100, 0])
def test_rlock_release_from_non_owner_same_error(profiled_pair, capture_pct):
    native, profiled = profiled_pair("RLock", capture_pct)
    for lock in (native, profiled):
        lock.acquire()
    try:
        expected = run_in_thread(native.release)
        assert expected[0] is RuntimeError
        assert run_in_thread(profiled.release) == expected
        # the owner still holds it
        assert profiled._is_owned() and not free_from_other_thread(profiled)
    finally:
        native.release()
        profiled.release()
    assert free_from_other_thread(profiled)


@pytest.mark.parametrize("capture_pct", [100, 0])
def test_rlock_nested_levels_match_native(profiled_pair, capture_pct):
    """Nested levels, which the wrapper counts in place where it knows the native layout, agree
    with the native RLock's after every step, however they are taken and given back."""
    native, profiled = profiled_pair("RLock", capture_pct)
    steps = [
        lambda lock: lock.acquire(),
        lambda lock: lock.acquire(),
        lambda lock: lock.acquire(False),
        lambda lock: lock.acquire(timeout=0.01),
        lambda lock: lock.__enter__(),
        lambda lock: run_in_thread(lock.release),  # not the owner: RuntimeError, nothing changes
        lambda lock: lock.acquire(blocking=True, timeout=-1),
        lambda lock: lock.release(),
        lambda lock: lock.__exit__(None, None, None),
        lambda lock: lock.release(),
        lambda lock: lock.release(),
        lambda lock: lock.release(),
        lambda lock: lock.release(),  # the outermost level: free again
        lambda lock: lock.release(),  # one too many: RuntimeError
        lambda lock: lock.acquire(),
        lambda lock: lock.acquire(),
        lambda lock: lock.release(),
        lambda lock: lock.release(),
    ]
    for number, step in enumerate(steps):
        assert outcome(lambda: step(profiled)) == outcome(lambda: step(native)), number
        assert profiled._is_owned() == native._is_owned(), number
        if hasattr(native, "_recursion_count"):
            assert profiled._recursion_count() == native._recursion_count(), number
        assert free_from_other_thread(profiled) == free_from_other_thread(native), number


@pytest.mark.parametrize("capture_pct", [100, 0])
@pytest.mark.parametrize("kind", KINDS)
def test_exit_unheld_same_error(profiled_pair, kind, capture_pct):
    native, profiled = profiled_pair(kind, capture_pct)
    expected = outcome(lambda: native.__exit__(None, None, None))
    assert expected[0] is RuntimeError
    assert outcome(lambda: profiled.__exit__(None, None, None)) == expected


# ------------------------------------------------------------------ the method set and helpers


@pytest.mark.parametrize("capture_pct", [100, 0])
@pytest.mark.parametrize("kind", KINDS)
def test_method_sets_equal(profiled_pair, kind, capture_pct):
    native, profiled = profiled_pair(kind, capture_pct)
    native_names = {n for n in dir(native) if not is_dunder(n)}
    profiled_names = {n for n in dir(profiled) if not is_dunder(n)}
    native_methods = {n for n in native_names if callable(getattr(native, n))}
    profiled_methods = {n for n in profiled_names if callable(getattr(profiled, n))}
    assert profiled_methods == native_methods
    # The one documented non-method addition is the lock_info property.
    assert profiled_names - native_names == {"lock_info"}
    assert native_names - profiled_names == set()
    # The context-manager protocol too.
    for name in ("__enter__", "__exit__"):
        assert callable(getattr(profiled, name))


@pytest.mark.parametrize("capture_pct", [100, 0])
@pytest.mark.parametrize("kind", KINDS)
def test_docstrings_equal(profiled_pair, kind, capture_pct):
    native, profiled = profiled_pair(kind, capture_pct)
    assert profiled.acquire.__doc__ == native.acquire.__doc__
    assert profiled.release.__doc__ == native.release.__doc__
    assert native.acquire.__doc__  # the comparison is not None == None
    for name in ("locked", "_at_fork_reinit", "_is_owned", "_release_save", "_acquire_restore",
                 "_recursion_count"):
        if hasattr(native, name):
            assert getattr(profiled, name).__doc__ == getattr(native, name).__doc__, name


@pytest.mark.parametrize("capture_pct", [100, 0])
@pytest.mark.parametrize("kind", KINDS)
def test_every_method_docstring_equal(profiled_pair, kind, capture_pct):
    native, profiled = profiled_pair(kind, capture_pct)
    for name in dir(native):
        if (not is_dunder(name) or name in ("__enter__", "__exit__")) and callable(getattr(native, name)):
            assert getattr(profiled, name).__doc__ == getattr(native, name).__doc__, name


@pytest.mark.skipif(not hasattr(NATIVE_LOCK_TYPE, "locked"), reason="no Lock.locked")
def test_lock_locked(make_lock):
    lock = make_lock("Lock")
    assert lock.locked() is False
    lock.acquire()
    assert lock.locked() is True
    lock.release()
    assert lock.locked() is False
    with held_elsewhere(lock):
        assert lock.locked() is True


@pytest.mark.skipif(not hasattr(NATIVE_RLOCK_TYPE, "locked"), reason="no RLock.locked here")
def test_rlock_locked(make_lock):
    lock = make_lock("RLock")
    assert lock.locked() is False
    with lock:
        assert lock.locked() is True
    assert lock.locked() is False


@pytest.mark.parametrize("kind", KINDS)
def test_at_fork_reinit(make_lock, kind):
    lock = make_lock(kind)
    if not hasattr(lock, "_at_fork_reinit"):
        pytest.skip("no _at_fork_reinit on this Python")
    lock.acquire()
    assert lock._at_fork_reinit() is None
    assert free_from_other_thread(lock)  # a fresh, unlocked lock
    assert lock.acquire(False) is True
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def test_lock_legacy_aliases(make_lock):
    lock = make_lock("Lock")
    native = ORIGINAL_LOCK()
    for name in ("acquire_lock", "release_lock", "locked_lock"):
        assert hasattr(lock, name) == hasattr(native, name), name
    if not hasattr(native, "acquire_lock"):
        pytest.skip("no legacy aliases on this Python")
    assert lock.acquire_lock() is True
    assert lock.locked_lock() is True
    assert lock.acquire_lock(False) is False
    assert lock.acquire_lock(timeout=0.01) is False
    assert lock.release_lock() is None
    assert lock.locked_lock() is False
    assert lock.acquire_lock(blocking=False) is True
    lock.release_lock()
    assert outcome(lock.release_lock) == outcome(native.release_lock)
    assert outcome(lambda: lock.acquire_lock(False, 1)) == outcome(lambda: native.acquire_lock(False, 1))


def test_rlock_private_helpers(make_lock):
    lock = make_lock("RLock")
    native = ORIGINAL_RLOCK()
    for name in ("_is_owned", "_release_save", "_acquire_restore", "_recursion_count"):
        assert hasattr(lock, name) == hasattr(native, name), name
    assert lock._is_owned() is False
    lock.acquire()
    lock.acquire()
    assert lock._is_owned() is True
    if hasattr(native, "_recursion_count"):
        assert lock._recursion_count() == 2
    assert run_in_thread(lock._is_owned) == ("ok", False)
    state = lock._release_save()
    assert lock._is_owned() is False
    assert free_from_other_thread(lock)
    if hasattr(native, "_recursion_count"):
        assert lock._recursion_count() == 0
    # _release_save of an unowned RLock: the same error as native
    assert outcome(lock._release_save) == outcome(native._release_save)
    assert lock._acquire_restore(state) is None
    assert lock._is_owned() is True
    if hasattr(native, "_recursion_count"):
        assert lock._recursion_count() == 2
    lock.release()
    assert not free_from_other_thread(lock)
    lock.release()
    assert free_from_other_thread(lock)
    # bad _acquire_restore arguments: same error as native
    for bad in ((), (1,), ((1,),), ((1, 2, 3),)):
        assert outcome(lambda: lock._acquire_restore(*bad)) == outcome(
            lambda: native._acquire_restore(*bad)), bad


# ------------------------------------------------------------------ context manager


@pytest.mark.parametrize("kind", KINDS)
def test_with_as_target_is_true(make_lock, kind):
    lock = make_lock(kind)
    with lock as entered:
        assert entered is True
        assert not free_from_other_thread(lock)
    assert free_from_other_thread(lock)


@pytest.mark.parametrize("kind", KINDS)
def test_exit_return_value_and_exception_propagates(make_lock, kind):
    lock = make_lock(kind)
    native = (ORIGINAL_LOCK if kind == "Lock" else ORIGINAL_RLOCK)()
    native.acquire()
    expected = native.__exit__(None, None, None)
    assert lock.__enter__() is True
    assert lock.__exit__(None, None, None) is expected
    assert lock.__enter__() is True
    assert lock.__exit__(ValueError, ValueError("x"), None) is expected  # falsy: not swallowed
    with pytest.raises(KeyError):
        with lock:
            raise KeyError("boom")
    assert free_from_other_thread(lock)  # released by the exception path


# ------------------------------------------------------------------ object protocol


@pytest.mark.parametrize("kind", KINDS)
def test_weakref(make_lock, kind):
    lock = make_lock(kind)
    ref = weakref.ref(lock)
    assert ref() is lock
    called = []
    ref2 = weakref.ref(lock, called.append)
    del lock
    gc.collect()
    assert ref() is None
    assert called == [ref2]


def _wrapped_of(lock):
    """The native lock inside a profiled one (found through the GC's referents)."""
    native_type = NATIVE_LOCK_TYPE if isinstance(lock, ProfiledLock) else NATIVE_RLOCK_TYPE
    inner = [o for o in gc.get_referents(lock) if type(o) is native_type]
    assert len(inner) == 1
    return inner[0]


@pytest.mark.parametrize("capture_pct", [100, 0])
@pytest.mark.parametrize("kind", KINDS)
def test_hash_and_equality(profiled_pair, kind, capture_pct):
    native, a = profiled_pair(kind, capture_pct)
    b = getattr(threading, kind)()
    wrapped = _wrapped_of(a)
    assert hash(a) == hash(wrapped)
    assert hash(a) != hash(b)
    assert a == a and not (a != a)
    assert a != b and not (a == b)
    assert a != native and not (a == native)
    assert {a, b, a} == {a, b} and len({a, b}) == 2
    assert {a: 1}[a] == 1
    # Native semantics: identity.
    n2 = (ORIGINAL_LOCK if kind == "Lock" else ORIGINAL_RLOCK)()
    assert native == native and native != n2 and hash(native) != hash(n2)


@pytest.mark.parametrize("capture_pct", [100, 0])
@pytest.mark.parametrize("kind", KINDS)
def test_pickle_and_copy_fail_like_native(profiled_pair, kind, capture_pct):
    native, profiled = profiled_pair(kind, capture_pct)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        expected = outcome(lambda: pickle.dumps(native, protocol))
        # protocols 0 and 1 fail with a PicklingError natively, 2+ with a TypeError
        assert expected[0] is TypeError or issubclass(expected[0], pickle.PicklingError), expected
        assert outcome(lambda: pickle.dumps(profiled, protocol)) == expected
    assert outcome(lambda: pickle.dumps(native))[0] is TypeError
    for fn in (copy.copy, copy.deepcopy):
        expected = outcome(lambda: fn(native))
        assert expected[0] is TypeError, expected
        assert outcome(lambda: fn(profiled)) == expected
    # deepcopy of a container holding the lock fails the same way too
    assert outcome(lambda: copy.deepcopy({"l": profiled})) == outcome(lambda: copy.deepcopy({"l": native}))


# ------------------------------------------------------------------ threading.Condition


@pytest.mark.parametrize("kind", KINDS)
def test_condition_wait_timeout(make_lock, kind):
    cond = threading.Condition(make_lock(kind))
    with cond:
        assert cond.wait(0.01) is False
        assert cond.wait_for(lambda: False, timeout=0.01) is False
        assert cond.wait_for(lambda: "ready", timeout=0.01) == "ready"
    # released after the block
    assert free_from_other_thread(cond._lock)


@pytest.mark.parametrize("kind", KINDS)
def test_condition_notify(make_lock, kind):
    lock = make_lock(kind)
    cond = threading.Condition(lock)
    state = {"ready": False, "woken": None}
    waiting = threading.Event()

    def waiter():
        with cond:
            waiting.set()
            state["woken"] = cond.wait_for(lambda: state["ready"], timeout=JOIN)

    t = threading.Thread(target=waiter)
    t.start()
    assert waiting.wait(JOIN)
    with cond:  # only possible because wait() released the lock
        state["ready"] = True
        cond.notify()
    t.join(JOIN)
    assert not t.is_alive()
    assert state["woken"] is True
    assert free_from_other_thread(lock)


@pytest.mark.parametrize("kind", KINDS)
def test_condition_notify_all_plain_wait(make_lock, kind):
    cond = threading.Condition(make_lock(kind))
    results = []

    def waiter():
        with cond:
            results.append(cond.wait(JOIN))

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    # wait until all three are inside wait()
    deadline = time.monotonic() + JOIN
    while time.monotonic() < deadline:
        with cond:
            if len(cond._waiters) == 3:
                cond.notify_all()
                break
        time.sleep(0.001)
    for t in threads:
        t.join(JOIN)
        assert not t.is_alive()
    assert results == [True, True, True]


def test_condition_nested_rlock_wait_releases_fully_and_restores(make_lock):
    lock = make_lock("RLock")
    cond = threading.Condition(lock)
    state = {"ready": False, "other_got_lock": None}

    def other():
        # Can only succeed while the main thread is inside wait(): it holds the RLock twice.
        state["other_got_lock"] = lock.acquire(timeout=JOIN)
        if state["other_got_lock"]:
            state["ready"] = True
            cond.notify()
            lock.release()

    with cond:
        with cond:
            if hasattr(lock, "_recursion_count"):
                assert lock._recursion_count() == 2
            t = threading.Thread(target=other)
            t.start()
            assert cond.wait_for(lambda: state["ready"], timeout=JOIN) is True
            assert lock._is_owned()
            if hasattr(lock, "_recursion_count"):
                assert lock._recursion_count() == 2
            t.join(JOIN)
            assert state["other_got_lock"] is True
        # one level released: still owned
        assert lock._is_owned()
        assert not free_from_other_thread(lock)
    assert not lock._is_owned()
    assert free_from_other_thread(lock)
    with pytest.raises(RuntimeError):
        lock.release()


def test_condition_nested_rlock_wait_timeout_restores(make_lock):
    lock = make_lock("RLock")
    cond = threading.Condition(lock)
    lock.acquire()
    lock.acquire()
    lock.acquire()
    try:
        assert cond.wait(0.01) is False
        assert lock._is_owned()
        if hasattr(lock, "_recursion_count"):
            assert lock._recursion_count() == 3
    finally:
        lock.release()
        lock.release()
        lock.release()
    assert free_from_other_thread(lock)


# ------------------------------------------------------------------ threading.Lock as a type


def test_isinstance_and_union_like_native(collector):
    native = ORIGINAL_LOCK()
    profiled = threading.Lock()
    assert type(profiled) is ProfiledLock
    if LOCK_IS_TYPE:  # 3.13+: threading.Lock is the lock class
        assert isinstance(native, threading.Lock)
        assert isinstance(profiled, threading.Lock)
        assert not isinstance(threading.RLock(), threading.Lock)
        assert not isinstance(object(), threading.Lock)
        assert issubclass(ProfiledLock, threading.Lock)
        # The union spells the native class and also admits the profiled one.
        assert set(typing.get_args(threading.Lock | None)) == {ORIGINAL_LOCK, ProfiledLock, type(None)}
        assert set(typing.get_args(None | threading.Lock)) == {ORIGINAL_LOCK, ProfiledLock, type(None)}
        assert isinstance(native, threading.Lock | None)
        assert isinstance(profiled, None | threading.Lock)
        assert isinstance(None, threading.Lock | None)
    else:
        expected = outcome(lambda: isinstance(native, ORIGINAL_LOCK))
        assert expected[0] is TypeError
        assert outcome(lambda: isinstance(native, threading.Lock)) == expected
        assert outcome(lambda: isinstance(profiled, threading.Lock)) == expected
        expected = outcome(lambda: ORIGINAL_LOCK | None)
        assert expected[0] is TypeError
        assert outcome(lambda: threading.Lock | None) == expected
        expected = outcome(lambda: None | ORIGINAL_LOCK)
        assert outcome(lambda: None | threading.Lock) == expected
    # RLock stays a factory function on every supported version: isinstance raises as natively.
    expected = outcome(lambda: isinstance(native, ORIGINAL_RLOCK))
    assert outcome(lambda: isinstance(native, threading.RLock)) == expected


@pytest.mark.skipif(not LOCK_IS_TYPE, reason="threading.Lock is a class only on 3.13+")
def test_isinstance_union_includes_profiled(collector):
    profiled = threading.Lock()
    assert isinstance(profiled, threading.Lock)
    assert isinstance(profiled, threading.Lock | None)
    assert isinstance(profiled, None | threading.Lock)


def test_lock_class_attribute(collector):
    class Holder:
        lock_class = threading.Lock
        rlock_class = threading.RLock

        def __init__(self):
            self.lock = self.lock_class()
            self.rlock = self.rlock_class()

    h = Holder()
    assert type(h.lock) is ProfiledLock
    assert type(h.rlock) is ProfiledRLock
    with h.lock:
        assert h.lock.acquire(False) is False
    with h.rlock:
        with h.rlock:
            pass
    # also through the class itself
    assert type(Holder.lock_class()) is ProfiledLock


# ------------------------------------------------------------------ signals


class Interrupted(Exception):
    pass


@pytest.mark.skipif(os.name != "posix" or not hasattr(signal, "setitimer"), reason="POSIX only")
@pytest.mark.parametrize("kind", KINDS)
def test_signal_interrupts_blocking_acquire(make_lock, kind):
    assert threading.current_thread() is threading.main_thread()
    lock = make_lock(kind)
    fired = []

    def handler(signum, frame):
        fired.append(signum)
        raise Interrupted("alarm")

    old = signal.signal(signal.SIGALRM, handler)
    try:
        with held_elsewhere(lock):
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            try:
                with pytest.raises(Interrupted):
                    lock.acquire()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            assert fired == [signal.SIGALRM]
            # the interrupted acquire did not take the lock
            if kind == "RLock":
                assert not lock._is_owned()
        assert free_from_other_thread(lock)
    finally:
        signal.signal(signal.SIGALRM, old)


def _slow_to_name_class():
    # An owner with many unset __slots__: naming a lock released in one of its methods walks
    # them all (each unset slot raising AttributeError), which takes a long time.
    return type("ManySlots", (), {
        "__slots__": tuple(f"s{i}" for i in range(200_000)),
        "use": lambda self, box: (box[0].acquire(), box[0].release()),
    })


@pytest.mark.skipif(os.name != "posix" or not hasattr(signal, "setitimer"), reason="POSIX only")
def test_signal_during_release_is_not_swallowed(collector):
    owner = _slow_to_name_class()()
    # How long naming takes here: long enough for the alarm to fire inside it?
    box = [threading.Lock()]
    start = time.perf_counter()
    owner.use(box)
    naming = time.perf_counter() - start
    if naming < 0.05:
        pytest.skip(f"naming took only {naming:.3f}s: the alarm would not land inside it")

    fired = []

    def handler(signum, frame):
        fired.append(signum)
        raise Interrupted("alarm")

    box = [threading.Lock()]  # a fresh lock: not yet named
    old = signal.signal(signal.SIGALRM, handler)
    raised = False
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.005)
            owner.use(box)  # acquire + release (+ naming, >= 50 ms)
            time.sleep(0.3)  # natively, the handler's exception surfaces here at the latest
        except Interrupted:
            raised = True
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert fired == [signal.SIGALRM]
    assert raised, "the signal handler ran but its exception never reached the program"
    assert free_from_other_thread(box[0])


@pytest.mark.parametrize("capture_pct", [0, 100])
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_enter_takes_acquire_arguments_like_native(kind, capture_pct):
    # Natively __enter__ is acquire() itself, arguments included.
    native_factory = {"Lock": _thread.allocate_lock, "RLock": _thread.RLock}[kind]
    collector = LockCollector(capture_pct=capture_pct)
    collector.start()
    try:
        profiled = getattr(threading, kind)()
    finally:
        collector.stop()
    for lock in (native_factory(), profiled):
        with held_elsewhere(lock):
            assert lock.__enter__(False) is False
            assert lock.__enter__(blocking=False) is False
            assert lock.__enter__(True, 0.01) is False
        assert lock.__enter__() is True
        lock.__exit__(None, None, None)
