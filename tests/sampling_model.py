"""The sampling rules of lockprof/_sampler.pyx and lockprof/_recorder.pyx, in plain Python: a
test oracle (tests/test_sampling.py checks the compiled Recorder against it), not shipped.

Events come with explicit times (ns) and the random draws from a random.Random, so a run is
reproducible; the compiled Recorder draws from its own xorshift generator, so the two agree
exactly where a rule is deterministic (the capture_pct counter, waits of at least the
interval, the exact totals, the longest waits) and statistically elsewhere."""

from __future__ import annotations

import dataclasses
import math
import random

PCT_SCALE = 1_000_000  # the counter counts millionths of a percent (_sampler.pxd)
CAPTURE_BUDGET = 5000  # captures a second, at most (_recorder.pyx)
RATE_WINDOW_NS = 100_000_000
MAX_GROWTH = 4
MAX_INTERVAL_NS = 1_000_000_000
LONG_WAITS = 10  # LP_LONG_WAITS (_lockcore.h)


@dataclasses.dataclass
class Drained:
    """What a period gathered, summed over stacks: acquires, releases and holds raw (collector.py
    upscales them by 100 / capture_pct), the sampled durations already weighted."""
    acquires: int = 0
    releases: int = 0
    hold_ns: int = 0
    contended: float = 0.0
    wait_ns: int = 0
    blocking_hold_ns: int = 0
    condition_wait_ns: int = 0
    exact_contended: int = 0
    exact_wait_ns: int = 0
    exact_max_wait_ns: int = 0
    exact_timeouts: int = 0
    long_waits: list = dataclasses.field(default_factory=list)  # (wait_ns, timed_out), longest first
    max_interval: int = 0


class SamplingModel:
    """One lock's events through one Recorder, with the interface of compiled_recorder.CompiledRecorder."""

    def __init__(self, capture_pct, wait_sample_interval, seed, start_ns=0, capture_budget=CAPTURE_BUDGET):
        # Integer steps keep the counts exact where a float accumulator would drift.
        self._step = math.floor(capture_pct * PCT_SCALE + 0.5)
        self._counter = 0
        self.wait_sample_interval = self.interval_in_force = wait_sample_interval
        self.capture_budget = capture_budget
        self._window_start, self._window_captures = start_ns, 0
        self._random = random.Random(seed)
        self._holding = False
        self._long_waits = [(0, False)] * LONG_WAITS
        self._period = Drained(max_interval=wait_sample_interval)

    # ---------------------------------------------------------------- the events

    def acquire(self):
        """An acquire that found the lock free: True when the counter chooses it (its hold starts)."""
        captured = self._should_capture()
        if captured:
            self._period.acquires += 1
            self._holding = True
        return captured

    def release(self, hold_ns):
        if self._holding:  # only a captured acquire's hold is timed
            self._period.releases += 1
            self._period.hold_ns += hold_ns
            self._holding = False

    def lock_wait(self, start, end, acquired=True):
        """A Lock or RLock that waited from start to end: its threshold is drawn before it blocks,
        at the interval in force then (the stack is taken before the wait when likely)."""
        interval = self._interval_now(start)
        return self._wait(end - start, end, acquired, interval, self._threshold(interval))

    def wait(self, wait_ns, end, acquired=True):
        """Any other kind's wait: drawn when it ends."""
        interval = self._interval_now(end) if wait_ns > 0 else 0
        return self._wait(wait_ns, end, acquired, interval, self._threshold(interval) if interval else 0)

    def blocking_hold(self, blocked_ns, now):
        # The holder's share of the others' waits: sampled and weighted like a wait.
        self._period.blocking_hold_ns += self._sampled(blocked_ns, now)

    def condition_wait(self, wait_ns, now):
        self._period.condition_wait_ns += self._sampled(wait_ns, now)

    def drain(self):
        drained, self._period = self._period, Drained(max_interval=self.wait_sample_interval)
        # The longest waits are kept as they were, whatever the sampling decided.
        drained.long_waits = sorted((w for w in self._long_waits if w[0]), key=lambda w: w[0], reverse=True)
        self._long_waits = [(0, False)] * LONG_WAITS
        return drained

    # ---------------------------------------------------------------- the rules

    def _should_capture(self):
        # capture_pct percent of the checks, evenly spaced: 1.0 is every hundredth.
        self._counter += self._step
        if self._counter >= 100 * PCT_SCALE:
            self._counter -= 100 * PCT_SCALE
            return True
        return False

    def _wait(self, wait_ns, end, acquired, interval, threshold):
        period = self._period
        # Every contended acquire counts exactly on its lock, sampled or not.
        period.exact_contended += 1
        period.exact_wait_ns += wait_ns
        period.exact_max_wait_ns = max(period.exact_max_wait_ns, wait_ns)
        period.exact_timeouts += not acquired
        weight = self._chosen(wait_ns, interval, threshold, end) if interval else 0
        if weight:  # a captured short wait stands for interval / wait of them: unbiased totals
            period.contended += 1.0 if wait_ns >= weight else weight / wait_ns
            period.wait_ns += max(wait_ns, weight)
        # The ten longest waits replace the shortest kept (the first of equals), strictly longer.
        shortest = min(range(LONG_WAITS), key=lambda i: self._long_waits[i][0])
        if wait_ns > self._long_waits[shortest][0]:
            self._long_waits[shortest] = (wait_ns, not acquired)
        captured = acquired and self._should_capture()
        if captured:  # the sampler chose this acquire: counted, and its hold starts
            period.acquires += 1
            self._holding = True
        return captured

    def _sampled(self, duration_ns, now):
        """The duration's weighted contribution: itself when at least the interval, else the
        interval with probability duration / interval, else 0."""
        if duration_ns <= 0:
            return 0
        interval = self._interval_now(now)
        weight = self._chosen(duration_ns, interval, self._threshold(interval), now)
        return max(duration_ns, weight) if weight else 0

    def _threshold(self, interval):
        return self._random.randrange(interval)  # uniform in [0, interval)

    def _chosen(self, duration_ns, interval, threshold, now):
        # Captured when longer than its threshold: probability min(1, duration / interval).
        self._period.max_interval = max(self._period.max_interval, interval)
        if duration_ns <= threshold:
            return 0
        self._window_captures += 1
        self._rescale(now)
        return interval

    def _interval_now(self, now):
        # A raised interval is brought up to date first, so a wait after a quiet spell is judged
        # at the configured one.
        if self.interval_in_force != self.wait_sample_interval:
            self._rescale(now)
        return self.interval_in_force

    def _rescale(self, now):
        elapsed = now - self._window_start
        if elapsed < 0:  # a clock read from before the window began decides nothing
            return
        budget = self.capture_budget if self.capture_budget > 0 else 1
        # A window ends after RATE_WINDOW_NS, or sooner once its share of the budget is taken.
        if self._window_captures < budget * RATE_WINDOW_NS / 1e9 and elapsed < RATE_WINDOW_NS:
            return
        current = float(self.interval_in_force)
        # Scaled by the capture rate over the budget, at most MAX_GROWTH times up (a burst is not
        # a rate); after two windows with none filled, from the configured interval again.
        scaled = current * self._window_captures * 1e9 / (max(elapsed, 1) * budget)
        scaled = min(scaled, current * MAX_GROWTH)
        if elapsed >= 2 * RATE_WINDOW_NS:
            scaled = 0
        interval = self.wait_sample_interval  # never below it, nor above MAX_INTERVAL_NS
        if scaled > MAX_INTERVAL_NS:
            interval = max(MAX_INTERVAL_NS, interval)
        elif scaled > interval:
            interval = int(scaled)
        self.interval_in_force = interval
        self._window_start, self._window_captures = now, 0
