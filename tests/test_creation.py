"""Making locks while profiling: the creation path (lockprof/_factory.pxi CreationSites, the
profiled classes' __new__), which answers a creation site seen before with one lookup. What
it answers must be what the first lock of the site got: the exclusion of the creating module,
the LockInfo the site's locks share, the native object where profiling does not apply."""

from __future__ import annotations

import _thread
import gc
import threading
import warnings
import weakref

import pytest

from lockprof import LockCollector
from lockprof._lock import LockFactory, ProfiledLock, ProfiledRLock
from scripthelpers import run_script

NATIVE_LOCK_TYPE = _thread.LockType
NATIVE_RLOCK_TYPE = _thread.RLock
ORIGINAL = {name: getattr(threading, name) for name in ("Semaphore", "BoundedSemaphore", "Condition")}
NATIVE = {"Lock": threading.Lock, "RLock": threading.RLock}
HOT_SITE_LOCKS = 64  # _recorder.pyx: a site sharing one LockInfo from its 64th lock
SITE_SLOTS = 256  # _sites.h: the sites one factory answers in one lookup


def _namespace(name):
    return {"__name__": name, "threading": threading}


MAKERS = compile(
    "def lock():\n    return threading.Lock()\n"
    "def rlock():\n    return threading.RLock()\n"
    "def semaphore(**kwargs):\n    return threading.Semaphore(**kwargs)\n"
    "def condition():\n    return threading.Condition()\n",
    "<makers>", "exec")


def _makers(module_name):
    """The functions of MAKERS run under a module of that name: one code object per maker,
    whichever module runs it."""
    namespace = _namespace(module_name)
    exec(MAKERS, namespace)
    return namespace


def test_one_site_run_by_an_excluded_and_a_profiled_module_keeps_each_decision(make_collector):
    make_collector(capture_pct=100, exclude_modules=["vendored"])
    excluded, profiled = _makers("vendored.pool"), _makers("app.pool")
    assert excluded["lock"].__code__ is profiled["lock"].__code__
    for _ in range(2 * HOT_SITE_LOCKS):  # past the point where the site's answer is stored
        assert type(excluded["lock"]()) is NATIVE_LOCK_TYPE
        assert type(profiled["lock"]()) is ProfiledLock
        assert type(excluded["rlock"]()) is NATIVE_RLOCK_TYPE
        assert type(profiled["rlock"]()) is ProfiledRLock
        assert type(excluded["condition"]()) is ORIGINAL["Condition"]
        assert type(profiled["condition"]()).__module__ == "threading"
        assert profiled["condition"]()._lp_info is not None


def test_a_site_shares_one_lockinfo_once_hot_and_keeps_it(collector):
    makers = _makers("app.hot")
    infos = [makers["lock"]().lock_info for _ in range(3 * HOT_SITE_LOCKS)]
    shared = infos[HOT_SITE_LOCKS - 1]
    assert len({id(info) for info in infos[:HOT_SITE_LOCKS - 1]}) == HOT_SITE_LOCKS - 1
    assert all(info is shared for info in infos[HOT_SITE_LOCKS - 1:])
    assert shared.module == "app.hot" and shared.kind == "lock"


def test_more_sites_than_slots_each_keep_their_own_lockinfo(collector):
    # Sites whose slots collide replace one another: each must still get its own LockInfo,
    # named after its own attribute, however often the others ran in between.
    count = SITE_SLOTS + 44
    source = "class Holder:\n    pass\ndef make(holder):\n" + "".join(
        f"    holder.lock_{i} = threading.Lock()\n" for i in range(count))
    namespace = _namespace("app.many")
    exec(compile(source, "<many>", "exec"), namespace)
    rounds = []
    for _ in range(3):
        holder = namespace["Holder"]()
        namespace["make"](holder)
        rounds.append([getattr(holder, f"lock_{i}").lock_info for i in range(count)])
    for i in range(count):
        infos = {id(round_[i]) for round_ in rounds}
        assert len(infos) == 1, i  # a site named by its attribute shares one from its first lock
        assert rounds[0][i].name == f"lock_{i}"
    assert len({id(info) for info in rounds[0]}) == count


def test_sites_of_a_module_excluded_stay_native_for_every_kind(make_collector):
    make_collector(capture_pct=100, exclude_modules=["vendored"])
    makers = _makers("vendored")
    for _ in range(HOT_SITE_LOCKS + 1):
        assert type(makers["lock"]()) is NATIVE_LOCK_TYPE
        assert type(makers["rlock"]()) is NATIVE_RLOCK_TYPE
        semaphore = makers["semaphore"](value=3)  # keyword arguments reach the original __init__
        assert type(semaphore) is ORIGINAL["Semaphore"] and semaphore._value == 3
        assert type(makers["condition"]()) is ORIGINAL["Condition"]


def _outcome(factory, args, kwargs):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.13: arguments to RLock
            factory(*args, **kwargs)
    except TypeError as error:
        return str(error)
    return None


def test_lock_factory_arguments_reach_the_original(collector):
    for name, args, kwargs in [("Lock", (1,), {}), ("Lock", (), {"blocking": True}), ("RLock", (1,), {}),
                               ("RLock", (), {"x": 1})]:
        assert _outcome(getattr(threading, name), args, kwargs) == _outcome(NATIVE[name], args, kwargs)


def test_lock_factory_called_through_its_call_method(collector):
    assert isinstance(threading.Lock, LockFactory) and callable(threading.Lock)
    assert type(threading.Lock.__call__()) is ProfiledLock
    assert type(LockFactory.__call__(threading.RLock)) is ProfiledRLock
    with pytest.raises(TypeError):
        threading.Lock.__call__(1)


def test_profiled_class_new_as_natively(collector):
    for name, original in ORIGINAL.items():
        cls = getattr(threading, name)
        with pytest.raises(TypeError) as ours:
            cls.__new__()
        with pytest.raises(TypeError) as native:
            original.__new__()
        assert str(ours.value) == str(native.value)
        blank = cls.__new__(cls)  # made, not initialised, as object.__new__ does
        assert isinstance(blank, original) and not hasattr(blank, "_value" if name != "Condition" else "_lock")


def test_subclass_new_calling_super(collector):
    class Pool(threading.BoundedSemaphore):
        def __new__(cls, *args, **kwargs):
            made = super().__new__(cls, *args, **kwargs)
            made.tag = "pool"
            return made

    pool = Pool(value=2)
    assert type(pool) is Pool and pool.tag == "pool" and pool._value == 2 and pool._lp_info is not None
    with pool:
        assert pool._value == 1


def test_condition_restore_is_native_until_its_first_wait(collector):
    # Most Conditions (one per Future, per Queue) are never waited on: their re-acquire is the
    # lock's own method, as natively, until a wait needs it timed.
    condition = threading.Condition()
    assert condition._acquire_restore == condition._lock._acquire_restore
    with condition:
        assert condition.wait(0.001) is False
    assert condition._acquire_restore != condition._lock._acquire_restore
    site = condition._lp_info.site
    assert [s for s in collector.snapshot().samples if s.lock_name.startswith(site) and s.condition_wait_ns]


SITE_NAMESPACE_LIFETIME = """
    import gc, threading, weakref
    from lockprof import LockCollector

    HOT_SITE_LOCKS = %d

    class Namespace(dict):
        pass

    namespace = Namespace(__name__="app.temporary", threading=threading)
    exec(compile("def make():\\n    return threading.Lock()\\n", "<temporary>", "exec"), namespace)
    ref = weakref.ref(namespace)
    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        for _ in range(HOT_SITE_LOCKS):  # a hot site: its shared LockInfo is cached
            namespace["make"]()
        del namespace
        gc.collect()
        assert ref() is not None, "the site's cache keeps the namespace while profiling"
    finally:
        collector.stop()
    del collector
    gc.collect()
    assert ref() is None, "the namespace outlived its collector"
"""


def test_a_site_keeps_its_namespace_only_while_its_collector_lives(tmp_path):
    # In a process of its own: on free-threaded builds, threads other tests left running keep
    # objects with deferred reference counts alive through a collection.
    result = run_script(SITE_NAMESPACE_LIFETIME % HOT_SITE_LOCKS, str(tmp_path))
    assert result.returncode == 0, result.stderr
