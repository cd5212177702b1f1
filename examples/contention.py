"""A small threaded program with one contended lock, profiled by lockprof.

    python examples/contention.py

Eight workers share a cache guarded by one lock; the slow refresh inside the critical section
makes the others wait. The profile goes to ./lockprof-example.<pid>.0.pprof and the top locks
are printed.
"""

import threading
import time

from lockprof import Profiler
from lockprof.report import top_locks


class Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats_lock = threading.RLock()
        self._data = {}
        self.hits = 0

    def get(self, key: int) -> int:
        with self._lock:
            if key not in self._data:
                time.sleep(0.002)  # a slow refresh while holding the lock
                self._data[key] = key * key
            value = self._data[key]
        with self._stats_lock:
            self.hits += 1
        return value


def worker(cache: Cache, worker_id: int) -> None:
    for i in range(300):
        cache.get((worker_id * 7 + i) % 50 if i % 10 else i)


def main() -> None:
    # capture_pct=100 records every operation: right for a short example, heavier than the
    # 1% default that a long-running service would use.
    profiler = Profiler(lock_enabled=True, capture_pct=100, output="lockprof-example")
    profiler.start()
    cache = Cache()
    threads = [threading.Thread(target=worker, args=(cache, n), name=f"worker-{n}") for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = profiler.snapshot()
    path = profiler.stop()
    print(top_locks(snapshot, limit=5))
    print(f"\nprofile written to {path}  (view it with: go tool pprof -top {path})")


if __name__ == "__main__":
    main()
