"""Hand-made lock profiles that fill every column of the schema, for the report and flame graph
tests (real runs fill only some of them until the core records contention).

Two locks: `db` has exact per-lock totals (a LockTotals sample) and a timed-out wait; `cache`
has only estimated columns (the core ran out of room for its totals, which went to the
`<other locks>` sum), its samples come from an asyncio task, and it has a Condition wait.
"""

from __future__ import annotations

import os
from typing import Optional

import lockprof
from lockprof import pprof
from lockprof.collector import UNTRACKED_LOCKS
from lockprof.profile import Frame, LockSample, LockTotals, LongWait, Snapshot
from lockprof.renderers.pprof import PprofRenderer

DB = "app/db.py:12:_pool_lock"
CACHE = "app/cache.py:7:_lock"
MAIN = Frame("main", "/app/main.py", 3)
WORKER = Frame("worker", "/app/work.py", 35)
QUERY = Frame("query", "/app/db.py", 40)
GET = Frame("Cache.get", "/app/cache.py", 24)
# Leaf first, as profiles store them.
STACK_A = (QUERY, MAIN)
STACK_B = (QUERY, WORKER, MAIN)
STACK_C = (GET, WORKER, MAIN)

MS = 1_000_000


def snapshot() -> Snapshot:
    samples = [
        LockSample(DB, "lock", STACK_A, 1, 101, "MainThread", acquire_count=10,
                   acquire_wait_ns=5 * MS, contended_count=4, release_count=10,
                   release_hold_ns=2 * MS, blocking_hold_ns=1 * MS),
        LockSample(DB, "lock", STACK_B, 2, 102, "worker-1", acquire_count=20,
                   acquire_wait_ns=15 * MS, contended_count=6, release_count=20,
                   release_hold_ns=8 * MS, blocking_hold_ns=3 * MS),
        LockSample(DB, "lock", STACK_B, 2, 102, "worker-1", acquire_wait_ns=4 * MS,
                   contended_count=2, timed_out=True),
        LockSample(CACHE, "rlock", STACK_C, 1, 101, "MainThread", task_id=7, task_name="fetch-7",
                   acquire_count=100, acquire_wait_ns=1 * MS, contended_count=50,
                   release_count=100, release_hold_ns=50 * MS, condition_wait_ns=30 * MS),
    ]
    totals = [LockTotals(DB, "lock", Frame(DB, "/app/db.py", 12), contended_count=13,
                         wait_ns=25 * MS, max_wait_ns=9 * MS, timeouts=2),
              LockTotals(UNTRACKED_LOCKS, "", Frame(UNTRACKED_LOCKS, "", 0), contended_count=48,
                         wait_ns=MS, max_wait_ns=MS // 10)]
    long_waits = [
        LongWait(DB, 9 * MS, 2, "worker-1", None, None, STACK_B),
        LongWait(DB, 7 * MS, 1, "MainThread", None, None, STACK_A, timed_out=True),
    ]
    return Snapshot(samples, start_ns=1_700_000_000_000_000_000,
                    end_ns=1_700_000_010_000_000_000, capture_pct=100.0,
                    lock_totals=totals, long_waits=long_waits, dropped_events=3)


def write(path: str, snap: Optional[Snapshot] = None) -> str:
    """The snapshot's profile written to path; returns path."""
    pprof.write_atomic(str(path), PprofRenderer().render(snap if snap is not None else snapshot()))
    return str(path)


def subprocess_env(**extra: str) -> dict:
    """The environment for a child python that imports the lockprof these tests imported."""
    root = os.path.dirname(os.path.dirname(lockprof.__file__))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_PROFILING_")}
    env.update(PYTHONPATH=root, PYTHONDONTWRITEBYTECODE="1", **extra)
    env.pop("COLUMNS", None)
    env.pop("NO_COLOR", None)
    return env
