"""The service benchmark's threaded application: Flask, served by gunicorn's threaded worker
(run.py --apps wsgi). Per request, what workload.py describes, with threading's primitives:
a Lock, an RLock, a per-request Lock, ThreadPoolExecutor tasks (a Future and its Condition
each), a queue.Queue and a threading.Event made per request, and log lines.

GET /work      one request's work
GET /info      the worker's pid, its profiler and the type of its locks (to check the setup)
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workload  # noqa: E402  (first: starts the profiler before the locks below are made)
from workload import TASKS, TIMEOUT, cache, log, metrics  # noqa: E402

from flask import Flask, jsonify  # noqa: E402

cache_lock = threading.Lock()
pool = ThreadPoolExecutor(max_workers=TASKS, thread_name_prefix="backend")
app = Flask(__name__)


class RequestContext:
    """Per-request state with its own lock, as request-scoped objects often have."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def count(self, hit: bool) -> None:
        with self.lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1


def backend_call(key: int, cancelled: threading.Event, audit: queue.Queue) -> str:
    """One pool task: skipped once the request is cancelled; leaves an audit record."""
    if cancelled.is_set():
        return ""
    value = workload.compute(key)
    audit.put((key, len(value)))
    return value


@app.route("/work")
def work() -> Any:
    number = workload.numbers.next()
    log.info("request %d: start", number)
    context = RequestContext()
    for key in workload.keys(number):
        with cache_lock:
            value = cache.get(key)
        context.count(value is not None)
        if value is None:
            value = workload.compute(key)
            with cache_lock:
                cache.put(key, value)
        metrics.observe("cache", len(value))
    log.info("request %d: cache %d hits, %d misses", number, context.hits, context.misses)

    cancelled = threading.Event()
    audit: queue.Queue = queue.Queue()
    futures = [pool.submit(backend_call, key, cancelled, audit) for key in workload.task_keys(number)]
    log.info("request %d: %d backend calls", number, len(futures))
    results = [future.result(TIMEOUT) for future in futures]
    records = [audit.get(timeout=TIMEOUT) for _ in futures]
    cancelled.set()  # nothing of this request runs after it answers
    metrics.observe("backend", len(records))
    log.info("request %d: %d results, %d audit records", number, len(results), len(records))
    body = workload.response(number, context.hits, context.misses, results)
    log.info("request %d: done", number)
    return jsonify(body)


@app.route("/info")
def info() -> Any:
    return jsonify(workload.info())
