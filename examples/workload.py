"""A small threaded program with one contended lock, and no profiling code of its own.

    python examples/workload.py [WORKERS]
    lockprof run examples/workload.py [WORKERS]      (the same program, profiled)

Several workers share a cache guarded by one lock; the slow refresh inside the critical section
makes the others wait. examples/contention.py profiles it from inside, with the Profiler API.
"""

import sys
import threading
import time


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


def run(workers: int = 8) -> Cache:
    cache = Cache()
    threads = [threading.Thread(target=worker, args=(cache, n), name=f"worker-{n}")
               for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return cache


if __name__ == "__main__":
    cache = run(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
    print(f"{cache.hits} lookups done")
