"""Helpers shared by the test modules that look at what the core recorded."""

from __future__ import annotations

import sys
import threading
import time

MS = 1_000_000
JOIN = 10
# A capture budget a flood of 200 tasks exceeds many times over however slow the machine (it
# makes 150,000 to 200,000 acquires a second here; the default budget is 5,000). At 1,000 the
# flood test's estimate had a standard error of 4.6% and failed CI once at +15%; at 4,000 it is
# about 3% (100 runs each on 3.9, 3.11 and 3.13), so its 15% bound is five standard errors
# (test_contention.py's real flood, test_sampling.py's synthetic one).
SMALL_BUDGET = 4000


def _is_lock_name(lock, name):
    # A lock its creation site does not name is named at its first captured release, so a
    # snapshot taken before that shows it as 'path:line' and later ones as
    # 'path:line:variable'. Every test lock is created on a line of its own.
    site = lock.lock_info.site
    return name == site or name.startswith(site + ":")


def samples_of(snapshot, lock):
    """The snapshot's samples for `lock`."""
    return [s for s in snapshot.samples if _is_lock_name(lock, s.lock_name)]


def totals_of(snapshot, lock):
    """(acquires, wait ns, releases, hold ns) for `lock` over all its samples."""
    totals = [0, 0, 0, 0]
    for s in samples_of(snapshot, lock):
        for i, v in enumerate((s.acquire_count, s.acquire_wait_ns, s.release_count, s.release_hold_ns)):
            totals[i] += v
    return tuple(totals)


def lineno() -> int:
    """The caller's current line."""
    return sys._getframe(1).f_lineno


def hold_in_thread(lock, seconds=None, until=None):
    """Start a thread that holds `lock` for `seconds`, or until the event `until` is set;
    returns it once the lock is taken."""
    taken = threading.Event()

    def holder():
        with lock:
            taken.set()
            if until is not None:
                until.wait(JOIN)
            else:
                time.sleep(seconds)

    t = threading.Thread(target=holder)
    t.start()
    assert taken.wait(JOIN)
    return t
