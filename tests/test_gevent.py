"""gevent and re-import: programs that monkey-patch with gevent before or after profiling starts
keep working (greenlets still exclude each other) and are profiled with greenlet names as task
labels; a threading module imported again is patched and unpatched like the first one.

Monkey-patching is for the whole process, so each case is a program of its own."""

from __future__ import annotations

import pytest

from scripthelpers import profiles, read, run_script

GREENLETS = """
    import sys
    ORDER = sys.argv[2]
    if ORDER == "before":
        from gevent import monkey
        monkey.patch_all()
    import threading
    from lockprof import LockCollector, Profiler
    from lockprof.renderers.pprof import PprofRenderer

    if sys.argv[3] == "profiler":
        profiler = Profiler(capture_pct=100, output=sys.argv[1], upload_interval=3600)
    else:
        profiler = LockCollector(capture_pct=100)
    profiler.start()
    if ORDER == "after":
        from gevent import monkey
        monkey.patch_all()
    import gevent

    lock, rlock = threading.Lock(), threading.RLock()
    inside, overlaps = {id(lock): set(), id(rlock): set()}, []

    def work(name):
        for _ in range(5):
            for held in (lock, rlock):
                with held:  # greenlets must exclude each other, as without profiling
                    holders = inside[id(held)]
                    holders.add(name)
                    if len(holders) > 1:
                        overlaps.append(sorted(holders))
                    gevent.sleep(0.001)
                    holders.discard(name)

    greenlets = [gevent.Greenlet(work, f"worker-{i}") for i in range(4)]
    for i, greenlet in enumerate(greenlets):
        greenlet.name = f"worker-{i}"
        greenlet.start()
    gevent.joinall(greenlets, raise_error=True)
    assert not overlaps, f"greenlets inside a lock together: {overlaps[:3]}"
    if sys.argv[3] == "profiler":
        profiler.stop()
    else:
        with open(sys.argv[1] + ".0.0.pprof", "wb") as f:
            f.write(PprofRenderer().render(profiler.snapshot()))
        profiler.stop()
    print(threading.Lock)
"""


def greenlet_samples(prefix):
    """lock kind -> (acquires, task names) of the program's own locks (not those gevent's
    imports made, such as logging's), over the profiles written under prefix."""
    found = {}
    for path in profiles(prefix):
        for sample in read(path).samples:
            if not sample.lock_name.startswith("program.py:"):
                continue
            acquires, tasks = found.get(sample.lock_kind, (0, set()))
            task = sample.task_name
            found[sample.lock_kind] = (acquires + sample.acquire_count, tasks | ({task} if task else set()))
    return found


def run_greenlets(tmp_path, order, host):
    pytest.importorskip("gevent")
    prefix = str(tmp_path / "gevent")
    return prefix, run_script(GREENLETS, str(tmp_path), prefix, order, host)


@pytest.mark.parametrize("host", ["profiler", "collector"])
@pytest.mark.parametrize("order", ["before", "after"])
def test_gevent_monkey_patched_program_keeps_working(tmp_path, order, host):
    _, result = run_greenlets(tmp_path, order, host)
    assert result.returncode == 0, result.stderr
    assert "Exception ignored" not in result.stderr, result.stderr
    assert "gevent" in result.stdout, "stop() must leave gevent's patch in place"


@pytest.mark.parametrize("host", ["profiler", "collector"])
@pytest.mark.parametrize("order", ["before", "after"])
def test_gevent_locks_are_profiled_with_greenlet_names(tmp_path, order, host):
    prefix, result = run_greenlets(tmp_path, order, host)
    assert result.returncode == 0, result.stderr
    workers = {f"worker-{i}" for i in range(4)}
    found = greenlet_samples(prefix)
    assert found.get("lock") == (20, workers), found
    assert found.get("rlock") == (20, workers), found



REIMPORT = """
    import sys
    from lockprof import LockCollector
    from lockprof._lock import ProfiledLock, ProfiledRLock

    collector = LockCollector(capture_pct=100)
    collector.start()
    import threading as first
    del sys.modules["threading"]
    import threading as second
    assert second is not first
    kinds = [type(module.Lock()).__name__ + "/" + type(module.RLock()).__name__
             for module in (first, second)]
    collector.stop()
    kinds += [type(module.Lock()).__name__ + "/" + type(module.RLock()).__name__
              for module in (first, second)]
    print(" ".join(kinds))
"""


def test_threading_imported_again_is_patched_and_unpatched(tmp_path):
    result = run_script(REIMPORT, str(tmp_path))
    assert result.returncode == 0, result.stderr
    first, second, first_after, second_after = result.stdout.split()
    assert first == second == "ProfiledLock/ProfiledRLock"
    native = first_after
    assert native.endswith("RLock") and not native.startswith("Profiled")
    assert second_after == native


UNPATCHED_AFTER_REIMPORT = """
    import sys, threading
    from lockprof import LockCollector

    native = (threading.Lock, threading.RLock)
    collector = LockCollector(capture_pct=100)
    collector.start()
    del sys.modules["threading"]
    import threading as second
    collector.stop()
    # Both modules make native locks again; the original keeps its own factories.
    assert (threading.Lock, threading.RLock) == native
    assert type(second.Lock()).__name__ == "lock" and "Profiled" not in type(second.RLock()).__name__
    print("ok")
"""


def test_stop_after_threading_is_imported_again_leaves_both_modules_native(tmp_path):
    result = run_script(UNPATCHED_AFTER_REIMPORT, str(tmp_path))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


PRIMITIVES = """
    import sys
    from gevent import monkey
    if sys.argv[2] == "before":
        monkey.patch_all()
    import threading
    from lockprof import LockCollector
    from lockprof.renderers.pprof import PprofRenderer

    collector = LockCollector(capture_pct=100)
    collector.start()
    if sys.argv[2] == "after":
        monkey.patch_all()
    import gevent

    lock, rlock, semaphore, condition = (threading.Lock(), threading.RLock(),
                                         threading.Semaphore(2), threading.Condition())
    ready = []

    def hold_permit(seconds):
        with semaphore:
            gevent.sleep(seconds)

    def hold_lock(held, seconds):
        with held:
            gevent.sleep(seconds)

    def wait_for_notify():
        with condition:
            while not ready:
                condition.wait()

    def notify():
        gevent.sleep(0.02)
        with condition:
            ready.append(True)
            condition.notify_all()
            gevent.sleep(0.02)  # the waiters woken now wait to take the Condition's lock back

    # The first to take a permit gives it back first: holds pair by greenlet, not last-in
    # first-out per thread.
    spawned = {"early": (hold_permit, 0.01), "late": (hold_permit, 0.06),
               "lock-holder": (hold_lock, lock, 0.03), "lock-waiter": (hold_lock, lock, 0),
               "rlock-holder": (hold_lock, rlock, 0.03), "rlock-waiter": (hold_lock, rlock, 0),
               "waiter-0": (wait_for_notify,), "waiter-1": (wait_for_notify,),
               "notifier": (notify,)}
    greenlets = []
    for name, (function, *args) in spawned.items():
        greenlet = gevent.Greenlet(function, *args)
        greenlet.name = name
        greenlet.start()
        greenlets.append(greenlet)
    with gevent.Timeout(30):
        gevent.joinall(greenlets, raise_error=True)
    with open(sys.argv[1], "wb") as f:
        f.write(PprofRenderer().render(collector.snapshot()))
    collector.stop()
    print(type(threading.Lock()).__module__, type(threading.RLock()).__name__)
"""


def per_task(profile, sample_type):
    """(lock kind, task name) -> sum of sample_type over the program's own locks."""
    sums = {}
    for sample in profile.samples:
        if sample.lock_name.startswith("program.py:") and sample.value(sample_type):
            key = (sample.lock_kind, sample.task_name)
            sums[key] = sums.get(key, 0) + sample.value(sample_type)
    return sums


@pytest.mark.parametrize("order", ["before", "after"])
def test_gevent_primitives_hold_wait_and_notify_per_greenlet(tmp_path, order):
    """Holds pair with the greenlet that acquired, waits are timed on the waiting greenlet, a
    Condition's own lock switches greenlets (a C RLock would block the whole thread: a
    deadlock) and its waits for a notify are condition waits; stop() leaves gevent's locks."""
    pytest.importorskip("gevent")
    path = tmp_path / "gevent.pprof"
    result = run_script(PRIMITIVES, str(tmp_path), str(path), order)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["gevent.thread", "_RLock"]
    profile = read(str(path))
    ms = 1_000_000
    holds = per_task(profile, "lock-release-hold")
    assert holds[("semaphore", "early")] < 40 * ms, holds
    assert holds[("semaphore", "late")] >= 50 * ms, holds
    waits = per_task(profile, "lock-acquire-wait")
    for kind in ("lock", "rlock"):
        assert 20 * ms <= waits[(kind, f"{kind}-waiter")] < 1000 * ms, waits
        assert (kind, f"{kind}-holder") not in waits, waits
        assert per_task(profile, "lock-contended-acquire")[(kind, f"{kind}-waiter")] == 1
    condition_waits = per_task(profile, "lock-condition-wait")
    for waiter in ("waiter-0", "waiter-1"):
        assert 20 * ms <= condition_waits[("condition", waiter)] < 1000 * ms, condition_waits
    # The woken waiters re-acquire the Condition's lock while the notifier still holds it.
    for waiter in ("waiter-0", "waiter-1"):
        assert 10 * ms <= waits[("condition", waiter)] < 1000 * ms, waits
    blocking = per_task(profile, "lock-blocking-hold")
    assert 10 * ms <= blocking[("condition", "notifier")] < 1000 * ms, blocking


SUBCLASS_ATTRIBUTES = """
    from gevent import monkey
    monkey.patch_all()
    import threading
    import gevent
    from lockprof import LockCollector

    read = []

    class Traced(gevent.Greenlet):
        def __getattribute__(self, name):
            read.append(name)
            return super().__getattribute__(name)

    collector = LockCollector(capture_pct=100)
    collector.start()
    lock = threading.Lock()

    def work():
        for _ in range(3):
            with lock:
                gevent.sleep(0)

    greenlet = Traced(work)
    greenlet.name = "traced"
    greenlet.start()
    greenlet.join()
    tasks = {sample.task_name for sample in collector.snapshot().samples}
    collector.stop()
    print(" ".join(sorted(set(read))), "|", " ".join(sorted(t for t in tasks if t)))
"""


def test_a_greenlet_subclass_runs_no_code_for_the_profiler(tmp_path):
    """Labelling a sample with its greenlet reads greenlet's own C attribute and the instance's
    storage: a subclass's __getattribute__ never runs inside a lock operation."""
    pytest.importorskip("gevent")
    result = run_script(SUBCLASS_ATTRIBUTES, str(tmp_path))
    assert result.returncode == 0, result.stderr
    attributes, tasks = result.stdout.split("|")
    assert tasks.split() == ["traced"]
    assert "parent" not in attributes.split() and "name" not in attributes.split(), attributes
