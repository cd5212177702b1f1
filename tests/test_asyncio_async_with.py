"""What acquire(), __aenter__() and __aexit__() of a profiled asyncio Lock, Semaphore and
BoundedSemaphore return (_asyncio_primitives.pxi _Step) against the standard coroutines: what
asyncio and inspect see, the warning when one is never awaited, reuse, sends and throws, tasks,
waiting, FIFO hand-over, cancellation and the errors of a release. It is not a
types.CoroutineType (inspect.iscoroutine() is False); everything else here behaves as the native
coroutine does."""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import types
import warnings
from unittest import mock

import pytest

from lockprof import LockCollector

KINDS = ("Lock", "Semaphore", "BoundedSemaphore")
WITH_KINDS = KINDS + ("Condition",)  # a Condition's async with steps its lock
ORIGINAL = {name: getattr(asyncio, name) for name in WITH_KINDS}


def _both(kind, body, *args):
    """body(primitive) for a native primitive, then for a profiled one: both results."""
    async def run(cls, profiled):
        primitive = cls(*args)  # made in the loop: 3.9's bind the running one
        assert hasattr(primitive, "_lp_state") == profiled
        return await body(primitive)

    native = asyncio.run(run(ORIGINAL[kind], False))
    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        ours = asyncio.run(run(getattr(asyncio, kind), True))
    finally:
        collector.stop()
    return native, ours


def _permits(kind):
    """The arguments that make kind's primitive hold two (a Lock holds one)."""
    return () if kind == "Lock" else (2,)


def _warnings_of(make):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make()
        gc.collect()
    return [(w.category, str(w.message)) for w in caught]


@pytest.mark.parametrize("kind", WITH_KINDS)
def test_what_asyncio_and_inspect_see(kind):
    async def body(primitive):
        seen = []
        for coro in (primitive.__aenter__(), primitive.__aexit__(None, None, None)):
            assert _is_step(primitive, coro)
            seen.append((asyncio.iscoroutine(coro), inspect.isawaitable(coro), coro.__qualname__, coro.__name__,
                         coro.cr_await))
            seen.append(await coro)
        return seen, primitive.locked()

    native, ours = _both(kind, body)
    assert ours == native


def _is_step(primitive, coro):
    """Whether coro is lockprof's step where primitive is profiled (the path these tests are
    for), and a native coroutine where it is not."""
    profiled = hasattr(primitive, "_lp_state")
    return (type(coro).__name__ == "_Step") == profiled and inspect.iscoroutine(coro) != profiled


@pytest.mark.parametrize("kind", KINDS)
def test_acquire_is_seen_stepped_and_awaited_as_natively(kind):
    async def body(primitive):
        coro = primitive.acquire()
        assert _is_step(primitive, coro)
        seen = [asyncio.iscoroutine(coro), inspect.isawaitable(coro), coro.__qualname__, coro.__name__, coro.cr_await]
        with pytest.raises(StopIteration) as stopped:
            coro.send(None)
        seen += [stopped.value.value, stopped.value.args, primitive.locked()]
        primitive.release()
        seen += [await primitive.acquire(), primitive.locked()]
        primitive.release()
        seen += [await asyncio.create_task(primitive.acquire()), await asyncio.wait_for(primitive.acquire(), 10)
                 if kind != "Lock" else None]
        return seen

    native, ours = _both(kind, body, *_permits(kind))
    assert ours == native and native[5] is True


def _stop_of_acquire(primitive):
    """The StopIteration an acquire that completes at once ends with, stepped as `await` does
    (through the iterator's slot: what 3.12+'s SEND calls)."""
    try:
        next(primitive.acquire().__await__())
    except StopIteration as stopped:
        return stopped
    finally:
        primitive.release()
    raise AssertionError("the acquire did not complete at once")


def _seen_in(stopped):
    depth, frame = 0, stopped.__traceback__
    while frame is not None:
        depth, frame = depth + 1, frame.tb_next
    return (stopped.value, stopped.args, vars(stopped), getattr(stopped, "__notes__", None), stopped.__context__,
            stopped.__cause__, stopped.__suppress_context__, depth)


def _set_cause(stopped):
    stopped.__cause__ = ValueError()
    stopped.__suppress_context__ = False  # which setting a cause sets


CHANGES = {
    "value": lambda stopped: setattr(stopped, "value", "changed"),
    "args": lambda stopped: setattr(stopped, "args", ("changed",)),
    "attribute": lambda stopped: setattr(stopped, "extra", 1),
    "note": lambda stopped: (stopped.add_note("changed") if hasattr(stopped, "add_note")
                             else setattr(stopped, "__notes__", ["changed"])),
    "context": lambda stopped: setattr(stopped, "__context__", ValueError()),
    "cause": _set_cause,
    "suppress_context": lambda stopped: setattr(stopped, "__suppress_context__", True),
    "traceback": lambda stopped: None,  # kept from its propagation
}


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("kind", KINDS)
def test_the_stop_iteration_of_an_acquire_is_the_programs_to_keep_or_change(kind, change):
    """An acquire's StopIteration(True) that reached the program (3.12+ raises one kept for reuse
    while nothing else holds it) stays as the program left it: kept, or changed and dropped,
    it is never raised again."""
    async def body(primitive):
        kept = _stop_of_acquire(primitive)
        changed = _stop_of_acquire(primitive)
        if change != "traceback":
            changed.__traceback__ = None
        CHANGES[change](changed)
        del changed  # dropped: another acquire may end with a new one, never with this
        seen = [_seen_in(kept), await primitive.acquire()]
        primitive.release()
        later = _stop_of_acquire(primitive)
        seen += [await primitive.acquire(), _seen_in(later), later is kept]
        primitive.release()
        return seen

    native, ours = _both(kind, body, *_permits(kind))
    assert ours == native
    assert native[1:] == [True, True, (True, (True,), {}, None, None, None, False, 1), False]


@pytest.mark.parametrize("kind", KINDS)
def test_the_stop_iteration_of_an_acquire_in_an_except_block_has_its_context(kind):
    """As natively: the exception handled (3.12, the first 3.13s) or none (later ones)."""
    async def body(primitive):
        try:
            raise KeyError("handled")
        except KeyError as handled:
            seen = [_stop_of_acquire(primitive).__context__ is handled, await primitive.acquire()]
            primitive.release()
            seen.append(_stop_of_acquire(primitive).__context__ is handled)
            with pytest.raises(StopIteration) as sent:
                primitive.acquire().send(None)
            primitive.release()
            seen.append(sent.value.__context__ is handled)
        return seen + [_stop_of_acquire(primitive).__context__]

    native, ours = _both(kind, body, *_permits(kind))
    assert ours == native and native[1] is True and native[4] is None
    assert native[0] == native[2] == native[3]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
@pytest.mark.parametrize("kind", KINDS)
def test_a_monitoring_tool_keeps_the_stop_iterations_it_sees(kind):
    """sys.monitoring sees the StopIteration an awaited acquire() ends with (a known
    difference); one a tool keeps is the tool's: the next acquire ends with another."""
    monitoring = sys.monitoring
    seen = []

    def raised(code, offset, exception):
        if isinstance(exception, StopIteration):
            seen.append(exception)

    async def body(primitive):
        results = []
        for _ in range(3):
            results.append(await primitive.acquire())
            primitive.release()
        return results

    tool = monitoring.PROFILER_ID
    monitoring.use_tool_id(tool, "lockprof-test")
    try:
        monitoring.register_callback(tool, monitoring.events.RAISE, raised)
        monitoring.set_events(tool, monitoring.events.RAISE)
        native, ours = _both(kind, body, *_permits(kind))
    finally:
        monitoring.set_events(tool, 0)
        monitoring.register_callback(tool, monitoring.events.RAISE, None)
        monitoring.free_tool_id(tool)
    assert native == ours == [True, True, True]
    assert len(seen) == 3 and len({id(stopped) for stopped in seen}) == 3
    assert all(stopped.value is True and stopped.args == (True,) for stopped in seen)


@pytest.mark.parametrize("kind", KINDS)
def test_acquire_is_introspected_as_the_coroutine_function(kind):
    async def body(primitive):
        method, function = primitive.acquire, type(primitive).acquire
        return (type(method).__name__, method.__self__ is primitive, str(inspect.signature(method)),
                str(inspect.signature(function)), asyncio.iscoroutinefunction(method),
                asyncio.iscoroutinefunction(function), method.__name__)

    native, ours = _both(kind, body)
    assert ours == native


@pytest.mark.parametrize("kind", WITH_KINDS)
def test_inspect_sees_acquire_and_wait_as_coroutine_functions(kind):
    """As functions too (3.9's inspect takes nothing else for a coroutine function)."""
    async def body(primitive):
        seen = []
        for name in ("acquire", "wait"):
            method, function = getattr(primitive, name, None), getattr(type(primitive), name, None)
            if method is not None:
                seen.append((name, inspect.iscoroutinefunction(method), inspect.iscoroutinefunction(function),
                             isinstance(function, types.FunctionType)))
        return seen

    native, ours = _both(kind, body)
    assert ours == native
    assert ("wait" if kind == "Condition" else "acquire", True, True, True) in native


@pytest.mark.parametrize("kind", KINDS)
def test_acquire_called_otherwise_is_the_coroutine_functions(kind):
    """Arguments acquire() does not take fail as a call of the coroutine function does; an object
    made without the profiled class's __new__ still gets a coroutine, which fails when run."""
    async def body(primitive):
        cls = type(primitive)
        with pytest.raises(TypeError):
            primitive.acquire(1)
        with pytest.raises(TypeError):
            cls.acquire()
        bare = object.__new__(cls)
        coro = cls.acquire(bare)
        with pytest.raises(AttributeError):
            await coro
        return True

    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        async def run():
            return await body(getattr(asyncio, kind)())
        assert asyncio.run(run())
    finally:
        collector.stop()


@pytest.mark.parametrize("kind", WITH_KINDS)
def test_never_awaited_warns_as_natively(kind):
    async def body(primitive):
        found = _warnings_of(lambda: primitive.__aenter__())
        found += _warnings_of(lambda: primitive.__aexit__(None, None, None))
        found += _warnings_of(lambda: primitive.acquire())
        closed = primitive.__aenter__()
        closed.close()  # closed before it ran: no warning, nothing taken
        return found, _warnings_of(lambda: closed.close()), primitive.locked()

    native, ours = _both(kind, body)
    assert ours == native and len(native[0]) == 3 and native[0][0][0] is RuntimeWarning


@pytest.mark.parametrize("kind", WITH_KINDS)
@pytest.mark.parametrize("method", ["acquire", "__aenter__"])
def test_a_throw_after_the_end_fails_as_natively(kind, method):
    async def body(primitive):
        errors = []
        for finish in ("await", "close"):
            coro = getattr(primitive, method)()
            if finish == "await":
                await coro
                primitive.release()
            else:
                coro.close()
            with pytest.raises(BaseException) as thrown:
                coro.throw(KeyError("x"))
            errors.append((type(thrown.value), str(thrown.value)))
        return errors, primitive.locked()

    native, ours = _both(kind, body)
    assert ours == native and native[0][0][0] is RuntimeError


@pytest.mark.parametrize("kind", WITH_KINDS)
def test_reuse_and_sends_fail_as_natively(kind):
    async def body(primitive):
        coro = primitive.__aenter__()
        with pytest.raises(TypeError) as first:
            coro.send(1)
        coro.close()
        done = primitive.__aenter__()
        await done
        with pytest.raises(RuntimeError) as again:
            await done
        await primitive.__aexit__(None, None, None)
        return str(first.value), str(again.value), primitive.locked()

    native, ours = _both(kind, body)
    assert ours == native


@pytest.mark.parametrize("kind", WITH_KINDS)
def test_stepped_by_hand(kind):
    async def body(primitive):
        results = []
        for coro in (primitive.__aenter__(), primitive.__aexit__(None, None, None)):
            with pytest.raises(StopIteration) as stopped:
                coro.send(None)
            results += [stopped.value.value, primitive.locked()]
        return results

    native, ours = _both(kind, body)
    assert ours == native == [None, True, None, False]


@pytest.mark.parametrize("kind", WITH_KINDS)
def test_a_task_of_aenter_and_its_cancellation(kind):
    async def body(primitive):
        first = await asyncio.create_task(primitive.__aenter__())
        cancelled = asyncio.create_task(primitive.__aenter__())
        cancelled.cancel()  # before its first step: thrown into an __aenter__ that never ran
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        thrown = primitive.__aexit__(None, None, None)
        with pytest.raises(KeyError):
            thrown.throw(KeyError("x"))  # thrown in before it ran: raised, nothing released
        held = primitive.locked()
        await primitive.__aexit__(None, None, None)
        return first, held, primitive.locked()

    native, ours = _both(kind, body)
    assert ours == native == (None, True, False)


@pytest.mark.parametrize("kind", WITH_KINDS)
def test_waiting_async_with_times_out_is_cancelled_and_hands_over_in_order(kind):
    async def body(primitive):
        await primitive.acquire()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(primitive.__aenter__(), 0.01)
        order = []

        async def waiter(i):
            async with primitive:
                order.append(i)
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(waiter(i)) for i in range(4)]
        await asyncio.sleep(0)
        tasks[1].cancel()  # a waiter cancelled while it waits: the others keep their order
        await asyncio.sleep(0)
        primitive.release()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return (order, [type(r).__name__ for r in results], primitive.locked(), len(primitive._waiters or ()),
                repr(primitive).split(" at ")[0])

    native, ours = _both(kind, body)
    assert ours == native
    assert sorted(native[0]) == [0, 2, 3]  # in that order but on 3.9, whose Semaphore may wake 3 first


@pytest.mark.parametrize("method", ["__aenter__", "acquire"])
def test_a_throw_into_a_waiting_aenter_reaches_the_acquire(method):
    async def body():
        lock = asyncio.Lock()
        await lock.acquire()
        coro = getattr(lock, method)()
        future = coro.send(None)  # waits: yields the future it waits for
        assert isinstance(future, asyncio.Future) and lock._waiters
        with pytest.raises(asyncio.CancelledError):
            coro.throw(asyncio.CancelledError())
        assert not lock._waiters and lock.locked()
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            coro.send(None)
        lock.release()
        return True

    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        assert asyncio.run(body())
    finally:
        collector.stop()


@pytest.mark.parametrize("kind, args", [("Lock", ()), ("BoundedSemaphore", (1,))])
def test_a_release_too_many_raises_as_natively(kind, args):
    async def body(primitive):
        exit_ = primitive.__aexit__(None, None, None)  # raises when run, not when made
        with pytest.raises((RuntimeError, ValueError)) as raised:
            await exit_
        with pytest.raises(type(raised.value)) as again:
            async with primitive:
                primitive.release()
        return type(raised.value), str(raised.value), str(again.value), primitive.locked()

    native, ours = _both(kind, body, *args)
    assert ours == native


def _counted(primitive, calls):
    """Stand-ins for primitive's acquire and release that note each call in calls, then call
    the methods it has now."""
    acquire, release = primitive.acquire, primitive.release

    async def counted_acquire():
        calls.append("acquire")
        return await acquire()

    def counted_release():
        calls.append("release")
        release()

    return counted_acquire, counted_release


@pytest.mark.parametrize("kind, given", [(kind, False) for kind in KINDS] + [("Condition", False), ("Condition", True)])
def test_async_with_calls_the_acquire_and_release_attributes(kind, given):
    """The standard __aenter__ and __aexit__ call the object's acquire and release attributes:
    rebound ones (a mock's) are still called; for a Condition, over its own lock or one made
    before profiling."""
    async def body(primitive):
        if given:  # made in the loop: 3.9's bind the running one
            primitive = type(primitive)(ORIGINAL["Lock"]())
        calls = []
        primitive.acquire, primitive.release = _counted(primitive, calls)
        async with primitive:
            held = primitive.locked()
        return calls, held, primitive.locked()

    native, ours = _both(kind, body)
    assert ours == native == (["acquire", "release"], True, False)


@pytest.mark.parametrize("kind", WITH_KINDS)
def test_async_with_follows_each_attribute_as_it_is_rebound_and_restored(kind):
    """Only release rebound, then acquire alone, then neither (the instance's own deleted):
    each async with calls what the attribute is at that moment."""
    async def body(primitive):
        calls = []
        acquire, release = primitive.acquire, primitive.release
        counted_acquire, counted_release = _counted(primitive, calls)
        seen = []
        for rebound in ({"release": counted_release}, {"acquire": counted_acquire}, {}):
            if kind == "Condition":  # its own are instance attributes, its lock's methods
                primitive.acquire, primitive.release = acquire, release
            else:  # back to the class's
                vars(primitive).pop("acquire", None)
                vars(primitive).pop("release", None)
            for name, function in rebound.items():
                setattr(primitive, name, function)
            async with primitive:
                held = primitive.locked()
            seen.append((list(calls), held, primitive.locked()))
            calls.clear()
        entering = primitive.__aenter__()
        seen.append(_is_step(primitive, entering))  # with nothing rebound, stepped again
        await entering
        primitive.release()
        return seen

    native, ours = _both(kind, body)
    assert ours == native == [(["release"], True, False), (["acquire"], True, False), ([], True, False), True]


@pytest.mark.parametrize("kind", KINDS)
def test_async_with_calls_an_acquire_patched_on_the_class(kind):
    async def body(primitive):
        cls, calls = type(primitive), []
        original = cls.acquire

        async def counted(self):
            calls.append("acquire")
            return await original(self)

        with mock.patch.object(cls, "acquire", counted):
            async with primitive:
                pass
        async with primitive:  # the class's own again
            pass
        return calls, primitive.locked()

    native, ours = _both(kind, body)
    assert ours == native == (["acquire"], False)


@pytest.mark.parametrize("kind", WITH_KINDS)
def test_aenter_and_aexit_are_introspected_as_the_standard_coroutine_functions(kind):
    async def body(primitive):
        seen = []
        for name in ("__aenter__", "__aexit__"):
            method, function = getattr(primitive, name), getattr(type(primitive), name)
            seen.append((type(method).__name__, method.__self__ is primitive, method.__qualname__,
                         str(inspect.signature(method)), str(inspect.signature(function)),
                         asyncio.iscoroutinefunction(method), asyncio.iscoroutinefunction(function),
                         inspect.iscoroutinefunction(method)))
        return seen

    native, ours = _both(kind, body)
    assert ours == native


def test_a_condition_over_a_profiled_lock_steps_it():
    """A Condition given a profiled Lock steps that lock, and waits on it as natively."""
    async def body(primitive):
        condition = type(primitive)(asyncio.Lock())
        enter = condition.__aenter__()
        assert _is_step(condition.acquire.__self__, enter)
        await enter
        waiter = asyncio.ensure_future(condition.acquire())
        await asyncio.sleep(0)
        await condition.__aexit__(None, None, None)
        acquired = await waiter
        condition.release()
        return acquired, condition.locked()

    native, ours = _both("Condition", body)
    assert ours == native == (True, False)
