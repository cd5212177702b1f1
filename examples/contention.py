"""Profile examples/workload.py from inside the program, with the Profiler API.

    python examples/contention.py

The profile goes to ./lockprof-example.<pid>.0.pprof and the top locks are printed. (Without
changing a program, `lockprof run examples/workload.py` does the same: see docs/usage.md.)
"""

from lockprof import Profiler
from lockprof.renderers.text import top_locks
from workload import run


def main() -> None:
    # capture_pct=100 records every operation: right for a short example, heavier than the
    # 1% default that a long-running service would use.
    profiler = Profiler(lock_enabled=True, capture_pct=100, output="lockprof-example")
    profiler.start()
    run(workers=8)
    snapshot = profiler.snapshot()
    path = profiler.stop()
    print(top_locks(snapshot, limit=5))
    print(f"\nprofile written to {path}")
    print(f"see it with: lockprof report {path}")
    print(f"         or: lockprof flamegraph {path} -o wait.html")


if __name__ == "__main__":
    main()
