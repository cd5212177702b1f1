"""What the service benchmark's two applications share: the profiler, started before anything
makes a lock; the log; the cache's data; the metrics; which keys a request touches.

Importing this module starts the profiler named by BENCH_SERVICE_PROFILER (none, lockprof,
ddtrace, ddtrace-lockprof), which stop_profiler() stops, writing its profile under
BENCH_SERVICE_PROFILE_DIR. Each application imports it before it makes its own locks.

A request of either application (GET /work), as wsgi_app.py and asgi_app.py spell it with
threading's and asyncio's primitives:
- takes a request number under a shared Lock;
- looks up LOOKUPS keys in an LRU cache behind a shared lock, computing and storing the misses,
  and counts hits and misses on a per-request object with a lock of its own;
- records a metric behind a shared RLock, taken twice (observe() calls increment());
- hands TASKS pieces of work to a thread pool, each one checking a per-request cancellation
  Event, putting an audit record on a per-request queue and returning its result through a
  Future; the request collects the results, drains the queue and sets the Event;
- writes LOG_LINES log lines through `logging`, formatted and written to /dev/null.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import sys
import threading
from collections import OrderedDict
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import profilers  # noqa: E402  (benchmarks/profilers.py)

PROFILER = os.environ.get("BENCH_SERVICE_PROFILER", "none")
session = profilers.start(PROFILER, os.environ.get("BENCH_SERVICE_PROFILE_DIR"))
_stopped = threading.Event()


def stop_profiler() -> None:
    """Stop the profiler, writing its profile, once: at exit (gunicorn's worker), or at the
    application's shutdown (uvicorn, which re-raises SIGTERM once it has shut down, ending the
    process without running atexit)."""
    if not _stopped.is_set():
        _stopped.set()
        session.stop()


atexit.register(stop_profiler)

LOOKUPS = 16  # cache lookups per request
KEYS = 400  # distinct keys; the cache holds half of them
TASKS = 4  # thread-pool tasks per request
LOG_LINES = 5  # log lines per request (each application writes exactly this many)
TIMEOUT = 10.0  # seconds a request waits for its tasks at most: a stuck pool fails the run


def _make_log() -> logging.Logger:
    """A logger whose handler does a real handler's work: format every record (time, level,
    thread) and write it to a stream, here /dev/null, flushed per record."""
    log = logging.getLogger("service")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = logging.StreamHandler(open(os.devnull, "w", encoding="utf-8"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s"))
    log.addHandler(handler)
    return log


log = _make_log()


class LRU:
    """A bounded LRU map; its callers hold the cache's lock around every call."""

    def __init__(self, capacity: int) -> None:
        self._data: OrderedDict = OrderedDict()
        self._capacity = capacity

    def get(self, key: int) -> Optional[str]:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: int, value: str) -> None:
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


class Numbers:
    """Request numbers, one after the other, behind a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        with self._lock:
            self._last += 1
            return self._last


cache = LRU(capacity=KEYS // 2)
metrics = Metrics()
numbers = Numbers()


def keys(number: int) -> List[int]:
    """The keys request `number` looks up: about half of them in the cache at any time."""
    return [(number * 31 + i * 7) % KEYS for i in range(LOOKUPS)]


def task_keys(number: int) -> List[int]:
    return [(number * 17 + i * 101) % KEYS for i in range(TASKS)]


def compute(key: int) -> str:
    return hashlib.sha1(str(key).encode()).hexdigest()


def response(number: int, hits: int, misses: int, results: List[str]) -> Dict[str, Any]:
    digest = hashlib.sha1("".join(results).encode()).hexdigest()
    return {"request": number, "hits": hits, "misses": misses, "results": digest}


def info(asyncio_profiled: Optional[bool] = None) -> Dict[str, Any]:
    """What GET /info answers: the process and the types of the locks it makes, so that the
    harness can check the profiler in place (the application passes asyncio's answer)."""
    return {"pid": os.getpid(), "profiler": PROFILER, "lock_type": type(threading.Lock()).__name__,
            "rlock_type": type(threading.RLock()).__name__, "asyncio_profiled": asyncio_profiled}
