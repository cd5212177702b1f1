"""A small threaded web service that does lock-heavy work per request: the service benchmark's
application (run.py serves it with gunicorn's threaded workers and loads it with wrk).

The profiler named by BENCH_SERVICE_PROFILER (none, lockprof, ddtrace, ddtrace-lockprof) starts
when a worker imports this module, before the application creates its locks, and stops at the
worker's exit, writing its profile under BENCH_SERVICE_PROFILE_DIR.

GET /work      about 670 acquire/release pairs (cache, metrics, rate limiter, a per-request lock)
GET /info      the worker's pid, its profiler and the type of its locks (to check the setup)
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
import threading
from collections import OrderedDict
from typing import Any, Dict, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import profilers  # noqa: E402  (benchmarks/profilers.py)

PROFILER = os.environ.get("BENCH_SERVICE_PROFILER", "none")
session = profilers.start(PROFILER, os.environ.get("BENCH_SERVICE_PROFILE_DIR"))
atexit.register(session.stop)

from flask import Flask, jsonify  # noqa: E402

ITEMS_PER_REQUEST = 120
KEYS = 400


class Cache:
    """A bounded LRU cache behind one lock, shared by every request thread."""

    def __init__(self, capacity: int) -> None:
        self._lock = threading.Lock()
        self._data: OrderedDict = OrderedDict()
        self._capacity = capacity

    def get(self, key: int) -> Optional[str]:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: int, value: str) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._capacity:
                self._data.popitem(last=False)


class Metrics:
    """Counters behind a reentrant lock: observe() takes it, then increment() takes it again."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._counts: Dict[str, int] = {}
        self._totals: Dict[str, int] = {}

    def increment(self, name: str) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    def observe(self, name: str, value: int) -> None:
        with self._lock:
            self.increment(name)
            self._totals[name] = self._totals.get(name, 0) + value


class RateLimiter:
    """A token bucket per client, refilled per request, behind one lock."""

    def __init__(self, tokens: int) -> None:
        self._lock = threading.Lock()
        self._tokens: Dict[int, int] = {}
        self._max = tokens

    def allow(self, client: int) -> bool:
        self._lock.acquire()
        try:
            left = self._tokens.get(client, self._max)
            if left <= 0:
                self._tokens[client] = self._max  # refill: the benchmark never rejects for long
                return False
            self._tokens[client] = left - 1
            return True
        finally:
            self._lock.release()


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


cache = Cache(capacity=KEYS // 2)
metrics = Metrics()
limiter = RateLimiter(tokens=50)
request_counter = [0]
counter_lock = threading.Lock()
app = Flask(__name__)


def compute(key: int) -> str:
    return hashlib.sha1(str(key).encode()).hexdigest()


@app.route("/work")
def work() -> Any:
    with counter_lock:
        request_counter[0] += 1
        number = request_counter[0]
    context = RequestContext()
    for i in range(ITEMS_PER_REQUEST):
        key = (number * 31 + i * 7) % KEYS
        value = cache.get(key)
        context.count(value is not None)
        if value is None:
            value = compute(key)
            cache.put(key, value)
        metrics.observe("cache", len(value))
        limiter.allow(key % 16)
    return jsonify(request=number, hits=context.hits, misses=context.misses)


@app.route("/info")
def info() -> Any:
    return jsonify(pid=os.getpid(), profiler=PROFILER, lock_type=type(cache._lock).__name__,
                   rlock_type=type(metrics._lock).__name__)
