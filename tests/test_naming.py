"""Lock naming: the name a creation site stores a lock under, and the name found at a captured
release (lockprof/_naming.pxi, _naming.h, Recorder.lock_info_at)."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import threading

import pytest

from lockhelpers import lineno, totals_of

NAMES_MODULE = '''\
import threading

GLOBAL_LOCK = threading.Lock()


def use_global():
    with GLOBAL_LOCK:
        pass


def use_local():
    local_lock = threading.RLock()
    with local_lock:
        pass
    return local_lock


class WithAttr:
    def __init__(self):
        self._attr_lock = threading.Lock()

    def use(self):
        with self._attr_lock:
            pass


class WithSlots:
    __slots__ = ("_slot_lock", "other")

    def __init__(self):
        self._slot_lock = threading.Lock()

    def use(self):
        with self._slot_lock:
            pass


class WithPrivateSlot:
    __slots__ = ("__lock",)

    def __init__(self):
        self.__lock = threading.Lock()

    def get(self):
        return self.__lock

    def use(self):
        with self.__lock:
            pass


class WithProperty:
    """The lock is reachable only through a property (and __getattr__): naming must not run
    either, and so cannot find a name."""

    calls = 0

    def __init__(self):
        self._box = [threading.Lock()]

    @property
    def a_lock(self):
        WithProperty.calls += 1
        return self._box[0]

    @property
    def b_broken(self):
        WithProperty.calls += 1
        raise RuntimeError("property invoked")

    def __getattr__(self, name):
        WithProperty.calls += 1
        raise AttributeError(name)

    def use(self):
        self._box[0].acquire()
        self._box[0].release()


class SlotShadowedByProperty:
    __slots__ = ("a_shadow", "_box")

    def __init__(self):
        self._box = [threading.Lock()]

    def use(self):
        self._box[0].acquire()
        self._box[0].release()


def _shadow(self):
    SlotShadowedByProperty.calls += 1
    return self._box[0]


SlotShadowedByProperty.calls = 0
# The slot's member descriptor replaced by a property: __slots__ still names it.
SlotShadowedByProperty.a_shadow = property(_shadow)


def new_lock():
    return threading.Lock()


def new_local_lock():
    local = threading.Lock()  # a local: named where it is released, not here
    return local


MADE_LOCK = new_lock()


def use_made():
    with MADE_LOCK:
        pass


class WithMadeLocks:
    __slots__ = ("_made_first", "_made_second", "_made_slot")

    def __init__(self):
        self._made_first = new_local_lock()
        self._made_second = new_local_lock()
        self._made_slot = new_lock()

    def use(self):
        with self._made_first:
            pass
        with self._made_second:
            pass
        with self._made_slot:
            pass


class WithClassLock:
    class_lock = threading.Lock()


def set_global():
    global SET_GLOBAL_LOCK
    SET_GLOBAL_LOCK = threading.Lock()


HOLDER = WithClassLock()
HOLDER.held_lock = threading.Lock()


class PerRequest:
    def __init__(self, with_lock=True):
        # A conditional expression: a jump between the call and the store.
        self.lock = threading.Lock() if with_lock else None

    def handle(self):
        with self.lock:
            pass


class WithCondition:
    def __init__(self):
        self._cond = threading.Condition()


class Holder:
    def __init__(self, factory):
        self.made = factory()

    def use(self):
        with self.made:
            pass


def per_request_local():
    request_lock = threading.Lock()  # a local: the site names its locks once it keeps making them
    with request_lock:
        pass
    return request_lock


def per_request_cell():
    cell_lock = threading.RLock()  # a closure's cell

    def use():
        with cell_lock:
            pass

    use()
    return cell_lock


def per_request_one_line():
    made = []
    one_line_lock = threading.Lock(); made.append(1)  # 3.13: STORE_FAST_LOAD_FAST, two slots
    return one_line_lock


def per_request_pair():
    first, pair_lock = len(()), threading.Lock()  # 3.13: STORE_FAST_STORE_FAST
    return pair_lock


def per_request_nonlocal():
    free_lock = None

    def make():
        nonlocal free_lock
        free_lock = threading.Lock()  # a free variable's cell

    make()
    return free_lock


def per_request_condition():
    condition = threading.Condition()
    with condition:
        pass
    return condition


def per_request_unstored():
    return [threading.Lock(), threading.Condition()]  # stored nowhere by name


def guarded(lock):
    def decorate(function):
        def call():
            with lock:  # held under the decorator's own name for it
                return function()
        return call
    return decorate


def decorated_per_request():
    cache_lock = threading.Lock()

    @guarded(cache_lock)
    def cached():
        return 1

    return cached
'''


@pytest.fixture
def names_module(tmp_path, monkeypatch, collector):
    """A package module written to disk, imported from a sys.path entry while profiling."""
    package = f"lpnames_{os.getpid()}_{id(tmp_path)}"
    pkg_dir = tmp_path / package / "sub"
    pkg_dir.mkdir(parents=True)
    (tmp_path / package / "__init__.py").write_text("")
    (pkg_dir / "__init__.py").write_text("")
    (pkg_dir / "locks.py").write_text(NAMES_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(f"{package}.sub.locks")
    try:
        yield module, f"{package}/sub/locks.py"
    finally:
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]


def _line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


def test_name_module_global(names_module, collector):
    module, path = names_module
    module.use_global()
    line = _line_of(NAMES_MODULE, "GLOBAL_LOCK = threading.Lock()")
    assert module.GLOBAL_LOCK.lock_info.display_name == f"{path}:{line}:GLOBAL_LOCK"
    names = {s.lock_name for s in collector.snapshot().samples}
    assert f"{path}:{line}:GLOBAL_LOCK" in names


def test_name_local_variable(names_module, collector):
    module, path = names_module
    lock = module.use_local()
    line = _line_of(NAMES_MODULE, "local_lock = threading.RLock()")
    assert lock.lock_info.display_name == f"{path}:{line}:local_lock"
    assert lock.lock_info.kind == "rlock"


def test_name_self_attribute(names_module, collector):
    module, path = names_module
    obj = module.WithAttr()
    obj.use()
    line = _line_of(NAMES_MODULE, "self._attr_lock = threading.Lock()")
    assert obj._attr_lock.lock_info.display_name == f"{path}:{line}:_attr_lock"
    assert f"{path}:{line}:_attr_lock" in {s.lock_name for s in collector.snapshot().samples}


def test_name_slots_attribute(names_module, collector):
    module, path = names_module
    obj = module.WithSlots()
    obj.use()
    line = _line_of(NAMES_MODULE, "self._slot_lock = threading.Lock()")
    assert obj._slot_lock.lock_info.display_name == f"{path}:{line}:_slot_lock"


def test_name_private_slots_attribute(names_module, collector):
    module, path = names_module
    obj = module.WithPrivateSlot()
    obj.use()
    line = _line_of(NAMES_MODULE, "self.__lock = threading.Lock()")
    # Same convention as a private attribute kept in the instance dict: the mangled name.
    assert obj.get().lock_info.display_name == f"{path}:{line}:_WithPrivateSlot__lock"


def test_name_never_invokes_property(names_module, collector):
    module, path = names_module
    obj = module.WithProperty()
    for _ in range(5):  # more than the 3 naming attempts
        obj.use()
    assert module.WithProperty.calls == 0
    line = _line_of(NAMES_MODULE, "self._box = [threading.Lock()]")
    # Unnamed: only a property could reach it.
    assert obj._box[0].lock_info.display_name == f"{path}:{line}"
    snap = collector.snapshot()
    assert module.WithProperty.calls == 0
    assert totals_of(snap, obj._box[0])[0] == 5


def test_name_never_invokes_property_shadowing_a_slot(names_module, collector):
    module, path = names_module
    obj = module.SlotShadowedByProperty()
    for _ in range(5):
        obj.use()
    assert module.SlotShadowedByProperty.calls == 0
    assert obj._box[0].lock_info.name is None
    assert totals_of(collector.snapshot(), obj._box[0])[0] == 5


def test_display_path_is_relative_to_sys_path_entry(names_module):
    module, path = names_module
    site = module.GLOBAL_LOCK.lock_info.site
    assert site.startswith(path + ":")
    assert "/" in path and not os.path.isabs(site)


def test_lock_info_site_and_kind(collector):
    line = lineno() + 1
    lock = threading.Lock()
    info = lock.lock_info
    assert info.kind == "lock"
    assert info.site.endswith(f"{os.path.basename(__file__)}:{line}")
    assert info.module == __name__
    assert info.name == "lock" and info.local_named  # a local: named after it at creation
    assert info.display_name == f"{info.site}:lock"


def test_a_lock_stored_where_it_is_made_is_named_before_any_use(names_module, collector):
    module, path = names_module
    module.set_global()
    made = [
        (module.GLOBAL_LOCK.lock_info, "GLOBAL_LOCK = threading.Lock()", "GLOBAL_LOCK"),
        (module.WithClassLock.class_lock.lock_info, "class_lock = threading.Lock()", "class_lock"),
        (module.SET_GLOBAL_LOCK.lock_info, "SET_GLOBAL_LOCK = threading.Lock()", "SET_GLOBAL_LOCK"),
        (module.HOLDER.held_lock.lock_info, "HOLDER.held_lock = threading.Lock()", "held_lock"),
        (module.PerRequest().lock.lock_info, "self.lock = threading.Lock() if", "lock"),  # a jump
        (module.WithCondition()._cond._lp_info, "self._cond = threading.Condition()", "_cond"),
    ]
    for info, text, name in made:
        assert info.display_name == f"{path}:{_line_of(NAMES_MODULE, text)}:{name}"
    assert made[-1][0].owner is None  # named already: not looked for through the Condition


def test_asyncio_and_dataclass_locks_are_named_where_made(collector):
    import dataclasses

    @dataclasses.dataclass
    class Service:
        lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
        size: int = 0

    class Task:
        def __init__(self):
            self._alock = asyncio.Lock()

    async def make_task():  # 3.9's asyncio.Lock() wants an event loop
        return Task()

    assert Service().lock.lock_info.name == "lock"
    assert asyncio.run(make_task())._alock._lp_info.name == "_alock"
    assert Service().lock.lock_info is Service().lock.lock_info


def test_a_lock_a_factory_returns_is_named_where_it_is_first_released(names_module, collector):
    module, path = names_module
    info = module.MADE_LOCK.lock_info
    assert info.name is None
    module.use_made()
    line = _line_of(NAMES_MODULE, "return threading.Lock()")
    assert info.display_name == f"{path}:{line}:MADE_LOCK"
    assert module.new_lock().lock_info is not info  # each has its own


def test_a_factory_storing_its_lock_in_a_local_lets_each_be_named_where_it_is_held(names_module, collector):
    module, path = names_module
    obj = module.WithMadeLocks()
    first, second, slot = obj._made_first.lock_info, obj._made_second.lock_info, obj._made_slot.lock_info
    assert first is not second and first.name == "local"  # until held under another name
    obj.use()
    local_line = _line_of(NAMES_MODULE, "local = threading.Lock()")
    assert first.display_name == f"{path}:{local_line}:_made_first"
    assert second.display_name == f"{path}:{local_line}:_made_second"
    assert slot.display_name == f"{path}:{_line_of(NAMES_MODULE, 'return threading.Lock()')}:_made_slot"


def test_locks_made_per_request_share_their_name_and_table_key(names_module, collector):
    module, path = names_module
    requests = [module.PerRequest() for _ in range(2000)]
    for request in requests:
        request.handle()
    assert len({id(request.lock.lock_info) for request in requests}) == 1
    assert collector.table_size[0] < 10  # a key per lock would fill the 4096
    snap = collector.snapshot()
    assert snap.dropped_events == 0
    name = f"{path}:{_line_of(NAMES_MODULE, 'self.lock = threading.Lock() if')}:lock"
    assert sum(s.release_count for s in snap.samples if s.lock_name == name) == 2000
    # Still 2000 locks: one held does not hold the others.
    with requests[0].lock:
        assert not requests[0].lock.acquire(blocking=False)
        assert requests[1].lock.acquire(blocking=False)
        requests[1].lock.release()


HOT_SITE_LOCKS = 64  # _recorder.pyx


def test_a_site_that_keeps_making_locks_in_a_local_shares_one_lock_info(names_module, collector):
    module, path = names_module
    locks = [module.per_request_local() for _ in range(2000)]
    infos = [lock.lock_info for lock in locks]
    # The first locks are each their own, named after the local; then the site shares one.
    first = infos[:HOT_SITE_LOCKS - 1]
    assert len({id(info) for info in first}) == len(first)
    assert {(info.name, info.site_named) for info in first} == {("request_lock", False)}
    shared = infos[HOT_SITE_LOCKS - 1]
    assert all(info is shared for info in infos[HOT_SITE_LOCKS - 1:]) and shared.site_named
    line = _line_of(NAMES_MODULE, "request_lock = threading.Lock()")
    assert shared.display_name == f"{path}:{line}:request_lock"
    assert collector.table_size[0] < HOT_SITE_LOCKS + 10  # a key per lock would fill the 4096
    snap = collector.snapshot()
    assert snap.dropped_events == 0
    assert sum(s.release_count for s in snap.samples if s.lock_name == shared.display_name) == 2000
    # Still 2000 locks.
    with locks[-1]:
        assert locks[-2].acquire(blocking=False)
        locks[-2].release()


def test_a_lock_held_under_another_name_than_its_sites_is_one_row(names_module, collector):
    # The first locks of the site used to be named where held (`lock`) and the later ones
    # after the local (`cache_lock`): two rows for one lock, their counts varying by run.
    module, path = names_module
    for _ in range(2 * HOT_SITE_LOCKS):
        module.decorated_per_request()()
    names = {sample.lock_name for sample in collector.snapshot().samples}
    assert names == {f"{path}:{_line_of(NAMES_MODULE, 'cache_lock = threading.Lock()')}:cache_lock"}


def test_hot_sites_share_while_other_sites_make_locks_between(names_module, collector):
    module, path = names_module
    made = [(module.per_request_cell(), module.per_request_one_line(), module.per_request_pair(),
             module.per_request_nonlocal(), module.per_request_condition(), *module.per_request_unstored())
            for _ in range(HOT_SITE_LOCKS)]
    cell, one_line, pair, free, condition, unstored, unstored_condition = (objects[-1] for objects in zip(*made))
    pair_name = "pair_lock" if sys.version_info >= (3, 11) else None  # 3.9, 3.10: ROT_TWO first
    for lock, name in [(cell, "cell_lock"), (one_line, "one_line_lock"), (pair, pair_name), (free, "free_lock")]:
        assert (lock.lock_info.site_named, lock.lock_info.name) == (True, name)
    assert cell.lock_info is module.per_request_cell().lock_info
    assert condition._lp_info.site_named and condition._lp_info.name == "condition"
    assert condition._lp_info.owner is None  # named already: not looked for through the Condition
    # A site that stores its lock under no name shares a LockInfo named by its line alone, and
    # is never named after wherever one of its locks is held.
    info = unstored.lock_info
    assert info.site_named and info.name is None
    module.Holder(lambda: unstored).use()
    assert info.name is None
    assert info.display_name == f"{path}:{_line_of(NAMES_MODULE, 'return [threading.Lock(), threading.Condition()]')}"
    assert unstored_condition._lp_info.site_named and unstored_condition._lp_info.owner is None


def test_a_factory_that_keeps_making_locks_names_them_by_its_line(names_module, collector):
    module, path = names_module
    holders = [module.Holder(module.new_lock) for _ in range(HOT_SITE_LOCKS + 1)]
    for holder in holders:
        holder.use()
    assert holders[0].made.lock_info.name == "made"  # one of the first: named where it is held
    info = holders[-1].made.lock_info
    assert info is holders[-2].made.lock_info and info.name is None
    assert info.display_name == f"{path}:{_line_of(NAMES_MODULE, 'return threading.Lock()')}"


def test_one_site_making_two_kinds_profiles_each_as_its_own(names_module, collector):
    module, _ = names_module
    lock, rlock = module.Holder(threading.Lock).made, module.Holder(threading.RLock).made
    assert (lock.lock_info.kind, rlock.lock_info.kind) == ("lock", "rlock")
    assert lock.lock_info.name == rlock.lock_info.name == "made"
    assert module.Holder(threading.Lock).made.lock_info is lock.lock_info


def test_a_name_past_the_first_256_is_read_whole(collector):
    # Its index needs EXTENDED_ARG: 300 names before the lock's.
    source = ("import threading\n" + "".join(f"v{i} = {i}\n" for i in range(300))
              + "late_lock = threading.Lock()\n"
              "class Attribute:\n    def __init__(self):\n"
              + "".join(f"        self.a{i} = {i}\n" for i in range(300))
              + "        self.late_lock = threading.RLock()\n")
    namespace = {}
    exec(compile(source, "<many names>", "exec"), namespace)
    assert namespace["late_lock"].lock_info.name == "late_lock"
    assert namespace["Attribute"]().late_lock.lock_info.name == "late_lock"


def test_sites_beyond_the_limit_still_name_their_locks(collector):
    # The recorder keeps 16,384 sites; a lock named at a further site has a LockInfo of its own.
    code = [compile("import threading\nsite_lock = threading.Lock()\n", f"<site {i}>", "exec")
            for i in range(16384 + 2)]

    def made_at(site):
        namespace = {}
        exec(site, namespace)
        return namespace["site_lock"].lock_info

    first = made_at(code[0])
    assert made_at(code[0]) is first
    for site in code[1:-1]:
        made_at(site)
    beyond = [made_at(code[-1]), made_at(code[-1])]
    assert first.name == beyond[0].name == beyond[1].name == "site_lock"
    assert beyond[0] is not beyond[1]
    # A site storing its locks in a local: each its own, named after the local until held.
    namespace = {}
    exec("import threading\ndef make():\n    local_lock = threading.Lock()\n    return local_lock\n", namespace)
    infos = [namespace["make"]().lock_info for _ in range(HOT_SITE_LOCKS + 1)]
    assert len({id(info) for info in infos}) == len(infos)
    assert {(info.site_named, info.name) for info in infos} == {(False, "local_lock")}


def test_a_site_counts_again_once_4096_other_sites_were_counted(names_module, collector):
    module, _ = names_module
    infos = [module.per_request_local().lock_info for _ in range(HOT_SITE_LOCKS - 1)]
    assert not any(info.site_named for info in infos)
    namespace = {}
    source = "import threading\ndef make():\n" + "".join(f"    lock_{i} = threading.Lock()\n" for i in range(4096))
    exec(source, namespace)
    namespace["make"]()  # 4,096 sites, each counted once: the counts start again
    infos = [module.per_request_local().lock_info for _ in range(HOT_SITE_LOCKS)]
    assert not any(info.site_named for info in infos[:-1]) and infos[-1].site_named


@pytest.mark.skipif(sys.version_info < (3, 11), reason="inline attribute values exist from 3.11")
def test_naming_a_lock_leaves_its_owners_attribute_storage_alone(collector):
    # Asking an object for its __dict__ turns its inline attribute values into a dict for good
    # (3.11, 3.12), which slows every later attribute access; naming reads the values in place.
    import gc

    class Box:
        def __init__(self):
            # Made where its site does not name it, so that naming runs at its release.
            self._lock = [threading.Lock()][0]
            self.count = 0

        def bump(self):
            with self._lock:
                self.count += 1

    box = Box()
    before = any(type(r) is dict for r in gc.get_referents(box))
    for _ in range(5):
        box.bump()
    names = {s.lock_name for s in collector.snapshot().samples}
    assert any(name.endswith(":_lock") for name in names), names
    assert any(type(r) is dict for r in gc.get_referents(box)) == before


@pytest.mark.skipif(sys.version_info < (3, 11), reason="inline attribute values exist from 3.11")
def test_naming_a_thread_leaves_its_attribute_storage_alone(collector):
    # The thread's name is read in place too: a Thread whose __dict__ was asked for would read
    # every attribute through a dict from then on (logging reads current_thread().name).
    import gc

    lock = threading.Lock()
    seen = {}

    def work():
        me = threading.current_thread()
        # Inline values are referents one by one; a materialized dict is one referent.
        seen["before"] = [type(r) for r in gc.get_referents(me)]
        for _ in range(5):
            with lock:
                pass
        seen["after"] = [type(r) for r in gc.get_referents(me)]

    worker = threading.Thread(target=work, name="lockprof-storage-worker")
    worker.start()
    worker.join()
    names = {s.thread_name for s in collector.snapshot().samples}
    assert "lockprof-storage-worker" in names, names
    assert seen["after"] == seen["before"]
