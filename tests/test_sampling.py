"""The sampling rules, checked on synthetic events against both tests/sampling_model.py (the rules
in plain Python) and the compiled Recorder (through tests/compiled_recorder.py): the capture_pct
counter picks the same operations, durations of at least the interval are kept as they were,
shorter ones are estimated without bias, the capture budget raises the interval and the totals
stay unbiased, the ten longest waits are kept exactly. test_contention.py checks the same
properties with real threads and real waits. The seeds are fixed: every run draws the same."""

from __future__ import annotations

import random

import pytest

from compiled_recorder import CompiledRecorder
from lockhelpers import MS, SMALL_BUDGET
from sampling_model import PCT_SCALE, SamplingModel

IMPLEMENTATIONS = {"model": SamplingModel, "compiled": CompiledRecorder}
# What is sampled by duration: a Lock's wait (drawn before it blocks), another kind's wait
# (drawn when it ends), a blocking hold, a Condition wait; and the total each adds to.
SAMPLED = {"lock_wait": "wait_ns", "wait": "wait_ns", "blocking_hold": "blocking_hold_ns",
           "condition_wait": "condition_wait_ns"}
WAITS = ["lock_wait", "wait"]


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def make_recorder(request):
    """make_recorder(capture_pct=1.0, wait_sample_interval=1 ms, seed=1, **kwargs): the model or
    the compiled Recorder, at synthetic time 0."""
    implementation = IMPLEMENTATIONS[request.param]

    def make(capture_pct=1.0, wait_sample_interval=1 * MS, seed=1, **kwargs):
        return implementation(capture_pct, wait_sample_interval, seed, **kwargs)

    return make


def feed(recorder, how, duration, end, acquired=True):
    """One duration of kind `how` (a key of SAMPLED) ending at `end`."""
    if how == "lock_wait":
        recorder.lock_wait(end - duration, end, acquired)
    elif how == "wait":
        recorder.wait(duration, end, acquired)
    else:
        getattr(recorder, how)(duration, end)


def flood(recorder, how, waits, rng, start=0):
    """`waits` waits of 0.5 to 1.8 ms ending every 3 to 8 µs, as 200 tasks queued on one lock
    with short holds make them (test_contention.py's real flood): hundreds of seconds of waiting
    a second. Returns (their total, the time the last ended)."""
    total, now = 0, start
    for _ in range(waits):
        now += rng.randrange(3000, 8400)
        wait = rng.randrange(MS // 2, 18 * MS // 10)
        feed(recorder, how, wait, now)
        total += wait
    return total, now


# ------------------------------------------------------------------ the capture_pct counter


@pytest.mark.parametrize("pct", [0, 0.5, 1, 3.7, 50, 100])
def test_the_counter_picks_the_same_operations_in_both(pct):
    """Deterministic: every acquire that takes the lock, waited or not, is one check of the
    counter; a wait that timed out is none. Both pick exactly the same operations."""
    picked = {}
    for name, implementation in IMPLEMENTATIONS.items():
        recorder, chosen = implementation(pct, 1 * MS, seed=5), []
        for i in range(1000):
            now = (i + 1) * 10 * MS
            chosen.append(recorder.acquire())
            recorder.release(1)
            chosen.append(recorder.lock_wait(now - MS, now))
            recorder.release(1)
            chosen.append(recorder.wait(2 * MS, now + MS))
            recorder.release(1)
            assert recorder.lock_wait(now + 2 * MS, now + 3 * MS, acquired=False) is False
            assert recorder.wait(MS, now + 4 * MS, acquired=False) is False
        assert recorder.drain().acquires == sum(chosen)
        picked[name] = chosen
    assert picked["model"] == picked["compiled"]
    checks = 3 * 1000  # the acquires that took the lock
    assert sum(picked["model"]) == checks * round(pct * PCT_SCALE) // (100 * PCT_SCALE)


# ------------------------------------------------------------------ durations of at least the interval


@pytest.mark.parametrize("how", sorted(SAMPLED))
def test_every_duration_of_at_least_the_interval_is_kept_as_it_was(make_recorder, how):
    recorder, rng = make_recorder(), random.Random(3)
    durations = [1 * MS] + [rng.randrange(1 * MS, 20 * MS) for _ in range(1999)]
    for i, duration in enumerate(durations):
        feed(recorder, how, duration, (i + 1) * 50 * MS)  # far below the budget: 20 a second
    drained = recorder.drain()
    assert getattr(drained, SAMPLED[how]) == sum(durations)
    if how in WAITS:
        assert drained.contended == drained.exact_contended == len(durations)
    assert drained.max_interval == 1 * MS


def test_every_wait_is_captured_at_a_one_nanosecond_interval(make_recorder):
    recorder, rng = make_recorder(wait_sample_interval=1), random.Random(4)
    for i in range(3000):
        feed(recorder, WAITS[i % 2], rng.randrange(1, MS), (i + 1) * MS)
    drained = recorder.drain()
    assert drained.contended == drained.exact_contended == 3000
    assert drained.wait_ns == drained.exact_wait_ns


def test_both_agree_exactly_where_the_rules_are_deterministic():
    """With every duration at least the interval nothing is left to chance: the same events give
    the same Drained, counts, holds, exact totals, timeouts and longest waits included."""
    drained = []
    for implementation in IMPLEMENTATIONS.values():
        recorder, rng = implementation(3.7, 1 * MS, seed=6), random.Random(6)
        for i in range(3000):
            now = (i + 1) * 20 * MS
            if recorder.acquire():
                recorder.release(rng.randrange(1, MS))
            feed(recorder, WAITS[i % 2], rng.randrange(MS, 10 * MS), now, acquired=i % 5 != 0)
            recorder.release(rng.randrange(1, MS))
            feed(recorder, "blocking_hold", rng.randrange(MS, 10 * MS), now)
            feed(recorder, "condition_wait", rng.randrange(MS, 10 * MS), now)
        drained.append(recorder.drain())
    assert drained[0] == drained[1]


# ------------------------------------------------------------------ shorter durations: unbiased


@pytest.mark.parametrize("how", sorted(SAMPLED))
def test_short_durations_are_estimated_without_bias(make_recorder, how):
    """Durations mostly far below the 1 ms interval (exponential, mean 100 µs), so each is
    captured with probability duration / interval and weighted by interval / duration. 25,000
    of them total 2.5 s: the estimate's standard error is sqrt(interval / total) = 2%, and its
    bound is 10%, five standard errors (test_contention.py's bound for real threads). The exact
    per-lock totals are exact."""
    recorder, rng = make_recorder(), random.Random(7)
    durations = [1 + int(rng.expovariate(1 / (MS / 10))) for _ in range(25_000)]
    for i, duration in enumerate(durations):
        feed(recorder, how, duration, (i + 1) * MS)  # about 100 captures a second: no budget
    drained = recorder.drain()
    truth = sum(durations)
    estimated = getattr(drained, SAMPLED[how])
    assert abs(estimated - truth) <= 0.10 * truth, (estimated, truth)
    assert drained.max_interval == 1 * MS  # the sampled regime, at the configured interval
    if how in WAITS:
        assert (drained.exact_contended, drained.exact_wait_ns, drained.exact_max_wait_ns) == (
            len(durations), truth, max(durations))


# ------------------------------------------------------------------ the capture budget


@pytest.mark.parametrize("how", WAITS)
def test_a_flood_of_waits_raises_the_interval_and_the_totals_stay_unbiased(make_recorder, how):
    """60,000 waits in about 0.34 s, 68 s of waiting: at SMALL_BUDGET captures a second the
    interval rises to tens of milliseconds, and the estimate keeps test_contention.py's flood
    bounds (15% for the wait, five standard errors; 30% for the count)."""
    recorder = make_recorder(capture_budget=SMALL_BUDGET)
    truth, _ = flood(recorder, how, 60_000, random.Random(8))
    drained = recorder.drain()
    assert drained.exact_contended == 60_000 and drained.exact_wait_ns == truth
    assert drained.max_interval > 1 * MS
    assert abs(drained.wait_ns - truth) <= 0.15 * truth, (drained.wait_ns, truth)
    assert abs(drained.contended - 60_000) <= 0.30 * 60_000, drained.contended


def test_the_budget_moves_the_interval_the_same_way_in_both():
    """Waits of 1 to 2 s are captured at any interval (it stays at most 1 s), so the captures,
    and with them the interval in force, are deterministic: the same after every wait in both.
    A flood of them raises it (at most fourfold a window, up to 1 s); a quiet spell and a rate
    below the budget bring it back to the configured interval."""
    paths = []
    for implementation in IMPLEMENTATIONS.values():
        recorder, rng, path = implementation(1.0, 1 * MS, seed=11), random.Random(11), []
        ends = [i * 10_000 for i in range(1, 50_251)]  # 100,000 a second for 0.5 s
        ends += [ends[-1] + 250 * MS + i * MS for i in range(1000)]  # then 1,000 a second
        for end in ends:
            feed(recorder, WAITS[end % 2], rng.randrange(1000 * MS, 2000 * MS), end)
            path.append(recorder.interval_in_force)
        paths.append((path, recorder.drain()))
    assert paths[0] == paths[1]
    path = paths[0][0]
    assert max(path) == 1000 * MS and path[-1] == 1 * MS
    assert path[50_250] == 1 * MS  # two windows quiet (250 captures in): the configured interval
    assert all(b <= 4 * a for a, b in zip(path, path[1:]))


@pytest.mark.parametrize("how", WAITS)
def test_after_a_flood_a_long_wait_is_decided_at_the_configured_interval(make_recorder, how):
    recorder = make_recorder(wait_sample_interval=2 * MS, capture_budget=SMALL_BUDGET)
    _, end = flood(recorder, how, 10_000, random.Random(9))
    assert recorder.drain().max_interval > 2 * MS
    now = end + 300 * MS  # quiet: the window that saw the flood is over
    feed(recorder, how, 100 * MS, now + 100 * MS)
    drained = recorder.drain()
    # Brought down before deciding: captured as it was, nothing judged at a raised interval.
    assert drained.max_interval == 2 * MS
    assert (drained.contended, drained.wait_ns) == (1.0, 100 * MS)
    assert recorder.drain().max_interval == 2 * MS  # a quiet period


# ------------------------------------------------------------------ the longest waits


@pytest.mark.parametrize("how", WAITS)
def test_the_ten_longest_waits_are_kept_exactly(make_recorder, how):
    """Whatever the sampling decided (under a raised interval too), each period keeps exactly its
    ten longest waits, with their outcome."""
    recorder, rng = make_recorder(capture_budget=SMALL_BUDGET), random.Random(10)
    now = 10**9
    for _ in range(2):
        waits = [(length, rng.random() < 0.2) for length in rng.sample(range(1, 10**9), 20_000)]
        for length, timed_out in waits:
            now += rng.randrange(3000, 8400)
            feed(recorder, how, length, now, acquired=not timed_out)
        drained = recorder.drain()
        assert drained.long_waits == sorted(waits, reverse=True)[:10]
        assert drained.max_interval > 1 * MS


def test_a_wait_no_longer_than_the_shortest_kept_leaves_it(make_recorder):
    recorder = make_recorder()
    for i in range(1, 11):
        feed(recorder, "wait", 5 * MS, i * 10 * MS)
    feed(recorder, "wait", 5 * MS, 200 * MS, acquired=False)  # as long: the first ten stay
    assert recorder.drain().long_waits == [(5 * MS, False)] * 10
