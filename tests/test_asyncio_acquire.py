"""What acquire() of a profiled asyncio Lock, Semaphore and BoundedSemaphore returns
(_asyncio_primitives.pxi _Acquire) against the standard coroutine: what asyncio and inspect
see, the warning when it is never awaited, reuse, sends and throws, tasks and cancellation.
It is not a types.CoroutineType (inspect.iscoroutine() is False, as it was for the Cython
coroutine before it); everything else here behaves as the native coroutine does."""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings

import pytest

from lockprof import LockCollector

KINDS = ("Lock", "Semaphore", "BoundedSemaphore")
ORIGINAL = {name: getattr(asyncio, name) for name in KINDS}


@pytest.fixture
def profiled():
    collector = LockCollector(capture_pct=100)
    collector.start()
    yield
    collector.stop()


def _both(kind, body):
    """body(primitive) for a native primitive, then for a profiled one: both results."""
    async def run(cls):
        return await body(cls())

    native = asyncio.run(run(ORIGINAL[kind]))
    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        ours = asyncio.run(run(getattr(asyncio, kind)))
    finally:
        collector.stop()
    return native, ours


def _warnings_of(make):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make()
        gc.collect()
    return [(w.category, str(w.message)) for w in caught]


@pytest.mark.parametrize("kind", KINDS)
def test_what_asyncio_and_inspect_see(kind):
    async def body(primitive):
        coro = primitive.acquire()
        seen = (asyncio.iscoroutine(coro), inspect.isawaitable(coro), coro.__qualname__, coro.__name__,
                coro.cr_running, coro.cr_await)
        assert await coro is True
        return seen

    native, ours = _both(kind, body)
    assert ours == native


@pytest.mark.parametrize("kind", KINDS)
def test_never_awaited_warns_as_natively(kind):
    async def body(primitive):
        found = _warnings_of(lambda: primitive.acquire())
        closed = primitive.acquire()
        closed.close()  # closed before it ran: no warning
        return found, _warnings_of(lambda: closed.close()), primitive.locked()

    native, ours = _both(kind, body)
    assert ours == native and native[0] and native[0][0][0] is RuntimeWarning


@pytest.mark.parametrize("kind", KINDS)
def test_reuse_and_sends_fail_as_natively(kind):
    async def body(primitive):
        coro = primitive.acquire()
        with pytest.raises(TypeError) as first:
            coro.send(1)
        coro.close()
        done = primitive.acquire()
        await done
        with pytest.raises(RuntimeError) as again:
            await done
        primitive.release()
        return str(first.value), str(again.value), primitive.locked()

    native, ours = _both(kind, body)
    assert ours == native


@pytest.mark.parametrize("kind", KINDS)
def test_stepped_by_hand(kind):
    async def body(primitive):
        coro = primitive.acquire()
        with pytest.raises(StopIteration) as stopped:
            coro.send(None)
        return stopped.value.value, primitive.locked()

    native, ours = _both(kind, body)
    assert ours == native == (True, True)


@pytest.mark.parametrize("kind", KINDS)
def test_a_task_of_acquire_and_its_cancellation(kind):
    async def body(primitive):
        first = await asyncio.create_task(primitive.acquire())
        cancelled = asyncio.create_task(primitive.acquire())
        cancelled.cancel()  # before its first step: thrown into an acquire that never ran
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        primitive.release()
        return first, primitive.locked()

    native, ours = _both(kind, body)
    assert ours == native == (True, False)


@pytest.mark.parametrize("kind", KINDS)
def test_a_waiting_acquire_times_out_and_hands_over_in_order(kind):
    async def body(primitive):
        if kind != "Lock":
            primitive = type(primitive)(1)
        await primitive.acquire()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(primitive.acquire(), 0.01)
        order = []

        async def waiter(i):
            await primitive.acquire()
            order.append(i)
            primitive.release()

        tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
        await asyncio.sleep(0)
        primitive.release()
        await asyncio.gather(*tasks)
        return order, primitive.locked(), len(primitive._waiters or ())

    native, ours = _both(kind, body)
    assert ours == native == ([0, 1, 2], False, 0)


def test_a_throw_into_a_waiting_acquire_reaches_it(profiled):
    async def body():
        lock = asyncio.Lock()
        await lock.acquire()
        coro = lock.acquire()
        future = coro.send(None)  # waits: yields the future it waits for
        assert isinstance(future, asyncio.Future) and lock._waiters
        with pytest.raises(asyncio.CancelledError):
            coro.throw(asyncio.CancelledError())
        assert not lock._waiters and lock.locked()
        lock.release()
        return True

    assert asyncio.run(body())
