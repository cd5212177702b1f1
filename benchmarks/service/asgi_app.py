"""The service benchmark's asyncio application: a plain ASGI application served by uvicorn
(run.py --apps asgi). Per request, what workload.py describes, with asyncio's primitives: the
cache behind an asyncio.Lock, the pool's tasks bounded by an asyncio.Semaphore and run in
threads (loop.run_in_executor() and asyncio.to_thread() in turn: a Future each), a per-request
asyncio.Lock, asyncio.Queue and asyncio.Event; the threading RLock of the metrics and the log
lines as in the threaded application.

GET /work      one request's work
GET /info      the process's pid, its profiler and the type of its locks (to check the setup)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any, Awaitable, Callable, Dict, Optional

NATIVE_ASYNCIO_LOCK = asyncio.Lock  # before the profiler starts: /info tells whether it replaced it

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workload  # noqa: E402  (first: starts the profiler before the locks below are made)
from workload import TASKS, TIMEOUT, cache, log, metrics  # noqa: E402

Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]


class Shared:
    """The application's asyncio primitives, made at lifespan startup in the server's loop (on
    3.9 an asyncio primitive binds to the loop current when it is made)."""

    cache_lock: Optional[asyncio.Lock] = None
    backend_slots: Optional[asyncio.Semaphore] = None


class RequestContext:
    """Per-request state with its own asyncio.Lock."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.hits = 0
        self.misses = 0

    async def count(self, hit: bool) -> None:
        async with self.lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1


async def backend_call(index: int, key: int, cancelled: asyncio.Event, audit: asyncio.Queue) -> str:
    """One pool task: skipped once the request is cancelled; leaves an audit record."""
    if cancelled.is_set():
        return ""
    async with Shared.backend_slots:
        if index % 2:
            value = await asyncio.to_thread(workload.compute, key)
        else:
            value = await asyncio.get_running_loop().run_in_executor(None, workload.compute, key)
    await audit.put((key, len(value)))
    return value


async def work() -> Dict[str, Any]:
    number = workload.numbers.next()
    log.info("request %d: start", number)
    context = RequestContext()
    for key in workload.keys(number):
        async with Shared.cache_lock:
            value = cache.get(key)
        await context.count(value is not None)
        if value is None:
            value = workload.compute(key)
            async with Shared.cache_lock:
                cache.put(key, value)
        metrics.observe("cache", len(value))
    log.info("request %d: cache %d hits, %d misses", number, context.hits, context.misses)

    cancelled = asyncio.Event()
    audit: asyncio.Queue = asyncio.Queue()
    calls = [backend_call(index, key, cancelled, audit) for index, key in enumerate(workload.task_keys(number))]
    log.info("request %d: %d backend calls", number, len(calls))
    results = await asyncio.wait_for(asyncio.gather(*calls), TIMEOUT)
    records = [await audit.get() for _ in range(TASKS)]  # every call has put its record: no wait
    cancelled.set()
    metrics.observe("backend", len(records))
    log.info("request %d: %d results, %d audit records", number, len(results), len(records))
    body = workload.response(number, context.hits, context.misses, results)
    log.info("request %d: done", number)
    return body


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            Shared.cache_lock = asyncio.Lock()
            Shared.backend_slots = asyncio.Semaphore(TASKS)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            workload.stop_profiler()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope {scope['type']!r}")
    if scope["path"] == "/work":
        status, body = 200, await work()
    elif scope["path"] == "/info":
        status, body = 200, workload.info(asyncio_profiled=type(asyncio.Lock()) is not NATIVE_ASYNCIO_LOCK)
    else:
        status, body = 404, {"error": "not found"}
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
