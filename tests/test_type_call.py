"""type(lock)(): calling the type of a lock does what calling the native lock's type does, for
every profiled kind, while profiling runs and after stop(). Each outcome is compared with the
same call on the type of a native lock made in the same test: the same exception and message
(the message naming the type called, as CPython's does), or a new lock of the same type, which
is profiled exactly when profiling runs. Subclassing the type works as natively too."""

from __future__ import annotations

import asyncio
import threading

import pytest

from conftest import ORIGINAL_LOCK, ORIGINAL_RLOCK
from lockprof import LockCollector
from lockprof._lock import _LockWrapper

# The native makers, before any collector replaced threading's and asyncio's names.
NATIVE = {
    ("threading", "Lock"): ORIGINAL_LOCK,
    ("threading", "RLock"): ORIGINAL_RLOCK,
    **{("threading", name): getattr(threading, name) for name in ("Semaphore", "BoundedSemaphore", "Condition")},
    **{("asyncio", name): getattr(asyncio, name) for name in ("Lock", "Semaphore", "BoundedSemaphore", "Condition")},
}
KINDS = sorted(NATIVE)
# What the type is called with: nothing, and arguments each type takes or refuses its own way.
CALLS = [((), {}), ((1,), {}), ((), {"blocking": True}), ((2, 3), {})]
STATES = ["profiling", "stopped"]


def qualname(cls):
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def call(cls, args, kwargs):
    """('raises', type, message) or ('makes', the new object)."""
    try:
        return ("makes", cls(*args, **kwargs))
    except Exception as error:
        return ("raises", type(error), str(error))


def profile_info(obj):
    """The LockInfo the profile counts obj's operations under, None when it is not profiled."""
    if isinstance(obj, _LockWrapper):
        return obj.lock_info
    return getattr(obj, "_lp_info", None)


def use(obj):
    """Take and give back obj, as its kind is used (asyncio's inside the running loop)."""
    if isinstance(obj, threading.Condition):
        with obj:
            obj.notify()
        return
    obj.acquire()
    obj.release()


async def use_async(obj):
    async with obj:
        if isinstance(obj, asyncio.Condition):
            obj.notify()


def compare(kind, state, native_obj, profiled_obj, args, kwargs):
    """Check type(profiled_obj)(*args, **kwargs) against type(native_obj)(*args, **kwargs).
    Returns the object made, if any, for the caller to use."""
    native_type, profiled_type = type(native_obj), type(profiled_obj)
    expected = call(native_type, args, kwargs)
    got = call(profiled_type, args, kwargs)
    if expected[0] == "raises":
        message = expected[2].replace(qualname(native_type), qualname(profiled_type))
        assert got == ("raises", expected[1], message), (kind, state, args, kwargs, expected)
        return None
    assert got[0] == "makes", (kind, state, args, kwargs, got, expected)
    made = got[1]
    assert type(expected[1]) is native_type
    # The profiled type's instance (its metaclass admits the native class's objects too).
    assert isinstance(made, profiled_type), (kind, state, type(made))
    if isinstance(profiled_obj, _LockWrapper):
        assert type(made) is profiled_type
    assert (profile_info(made) is not None) == (state == "profiling"), (kind, state, made)
    return made


def acquires_counted(collector, made):
    """The acquires the profile counted at the creation sites of the objects `made`."""
    sites = {profile_info(obj).site for obj in made}
    return sum(s.acquire_count for s in collector.snapshot().samples
               if any(s.lock_name == site or s.lock_name.startswith(site + ":") for site in sites))


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("module, name", KINDS)
def test_type_call_as_natively(module, name, state):
    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        made_while = []

        def exercise():
            native_obj = NATIVE[(module, name)]()
            profiled_obj = getattr(__import__(module), name)()
            assert type(profiled_obj) is not type(native_obj)  # profiled: the test means something
            if state == "stopped":
                collector.stop()
            for args, kwargs in CALLS:
                made = compare((module, name), state, native_obj, profiled_obj, args, kwargs)
                if made is not None:
                    made_while.append(made)

        if module == "asyncio":
            async def main():  # before 3.10 asyncio's primitives bind to the loop when made
                exercise()
                for made in made_while:
                    await use_async(made)
            asyncio.run(main())
        else:
            exercise()
            for made in made_while:
                use(made)
        assert made_while or (module, name) == ("threading", "Lock"), "no call made a lock"
        if state == "profiling":  # each used once, where type(obj)() was called
            assert acquires_counted(collector, made_while) == len(made_while)
    finally:
        collector.stop()


def test_lock_type_call_is_native_on_this_python():
    """The two behaviours the issue names: the Lock type raises where the native one does
    (3.9-3.12) and makes a lock where it does (3.13+); the RLock type always makes one."""
    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        lock, rlock = threading.Lock(), threading.RLock()
        native = call(type(ORIGINAL_LOCK()), (), {})
        made = call(type(lock), (), {})
        assert made[0] == native[0]
        if native[0] == "raises":  # CPython's own check (test.support.check_disallow_instantiation)
            assert made == ("raises", TypeError, f"cannot create '{qualname(type(lock))}' instances")
        else:
            assert type(made[1]) is type(lock) and made[1].lock_info is not None
        new = type(rlock)()
        assert type(new) is type(rlock) and new.lock_info is not None and new is not rlock
        with new:
            assert new._is_owned() and not rlock._is_owned()
    finally:
        collector.stop()


def subclass(base):
    try:
        return type("Mine", (base,), {"extra": lambda self: "mine"})
    except Exception as error:
        return (type(error), str(error))


@pytest.mark.parametrize("name", ["Lock", "RLock"])
def test_subclassing_the_type_as_natively(name):
    native_type = type((ORIGINAL_LOCK if name == "Lock" else ORIGINAL_RLOCK)())
    native = subclass(native_type)
    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        profiled_type = type(getattr(threading, name)())
        profiled = subclass(profiled_type)
        if not isinstance(native, type):
            assert profiled == (native[0], native[1].replace(qualname(native_type), qualname(profiled_type)))
            return
        assert isinstance(profiled, type)
        mine = profiled()
        assert isinstance(mine, profiled_type) and mine.extra() == "mine"
        assert mine.lock_info is not None
        assert mine.acquire() and mine.acquire(False)  # reentrant, as the native subclass's
        assert mine._is_owned()
        mine.release()
        mine.release()
        assert not mine._is_owned()
        condition = threading.Condition(mine)  # the RLock protocol Condition uses
        with condition:
            assert condition.wait(0.01) is False
        assert acquires_counted(collector, [mine]) >= 1
        # A subclass's own __init__ takes its own arguments; without one, the native type's
        # constructor judges them (3.15's RLock refuses them).
        with_init = {"__init__": lambda self, size, **options: setattr(self, "size", size)}
        for namespace in (with_init, {}):
            native_sub = type("Sized", (native_type,), dict(namespace))
            profiled_sub = type("Sized", (profiled_type,), dict(namespace))
            for args, kwargs in CALLS:
                expected, got = call(native_sub, args, kwargs), call(profiled_sub, args, kwargs)
                if expected[0] == "raises":
                    assert got == expected, (namespace, args, kwargs)
                else:
                    assert got[0] == "makes" and type(got[1]) is profiled_sub, (namespace, args, got)
                    assert vars(got[1]) == vars(expected[1]) and got[1].lock_info is not None
        collector.stop()
        assert profiled().lock_info is None and native().acquire()
    finally:
        collector.stop()
