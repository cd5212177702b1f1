"""Collectors started again: the profiled classes they install are made once, not at every start.

On free-threaded CPython 3.13 a class made once a thread has started is immortal, so a class per
start was memory never given back (the soak's resident memory doubled, issue 18)."""

from __future__ import annotations

import asyncio
import random
import threading

from lockprof import LockCollector
from lockprof._kinds import FACTORY_KINDS, KINDS

ORIGINAL_SEMAPHORE = threading.Semaphore
CLASS_ATTRIBUTES = [(module, attribute) for module, attribute, kind, _ in KINDS if kind not in FACTORY_KINDS]
MODULES = {"threading": threading, "asyncio": asyncio}


def installed_classes():
    return [getattr(MODULES[module], attribute) for module, attribute in CLASS_ATTRIBUTES]


def below(cls):
    """The class at threading.Semaphore, what it replaced, and so on down to the original."""
    chain = [cls]
    while "_lp_replaced" in vars(chain[-1]):
        chain.append(vars(chain[-1])["_lp_replaced"])
        assert len(chain) < 1000, "the classes replace one another in a cycle"
    return chain


def test_a_collector_started_again_installs_the_classes_it_made_before():
    originals = installed_classes()
    collector = LockCollector(capture_pct=100)
    first = None
    made_before = None
    for _ in range(5):
        collector.start()
        try:
            if first is None:
                first = installed_classes()
                made_before = threading.Semaphore(2)
            assert installed_classes() == first
            semaphore = threading.Semaphore(2)
            for profiled in (semaphore, made_before):  # profiled again at every start
                with profiled:
                    pass
            assert sum(s.acquire_count for s in collector.snapshot().samples) == 2
        finally:
            collector.stop()
        assert installed_classes() == originals
    assert all(cls is not original for cls, original in zip(first, originals))


def test_collectors_stopped_out_of_order_make_a_class_only_while_theirs_are_all_below():
    # A collector stopped under another's class leaves its class below it until that one stops
    # too; started again meanwhile, it cannot install that class (it would replace itself), so
    # it makes another. A collector makes one more than it ever had below at once, no more.
    collectors = [LockCollector(capture_pct=100) for _ in range(3)]
    made = {id(c): [] for c in collectors}
    most_below = {id(c): 0 for c in collectors}
    rng = random.Random(18)
    try:
        for _ in range(600):
            collector = rng.choice(collectors)
            if collector.running:
                collector.stop()
            else:
                chain = below(threading.Semaphore)
                mine = made[id(collector)]
                most_below[id(collector)] = max(most_below[id(collector)],
                                                sum(any(cls is m for m in mine) for cls in chain))
                collector.start()
                if not any(threading.Semaphore is m for m in mine):
                    mine.append(threading.Semaphore)
            assert below(threading.Semaphore)[-1] is ORIGINAL_SEMAPHORE
    finally:
        for collector in collectors:
            collector.stop()
    assert threading.Semaphore is ORIGINAL_SEMAPHORE
    for collector in collectors:
        assert len(made[id(collector)]) == most_below[id(collector)] + 1
    assert max(most_below.values()) >= 1  # the sequence did stop collectors out of order
