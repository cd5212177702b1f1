"""Trace correlation: the span active where a contended wait is captured labels its sample
(span id, local root span id, trace id), read from C without running tracer or user code, one
span per event table key (docs/usage.md#trace-correlation)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest

from lockprof import LockCollector, pprof
from lockprof.cli import main as cli_main
from lockprof.profile import Frame, LockSample, LongWait
from lockprof.renderers.pprof import PprofRenderer
from lockprof.report import build_report

from test_pprof import make_snapshot, require_go, run_pprof

trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")

@pytest.fixture(scope="module")
def tracer():
    """An OpenTelemetry tracer of the tests' own (the global provider can be set once per
    process), gone after them (not kept for exit): a TracerProvider's fork handler makes locks
    in fork children, which the fork tests of other modules would find in their profiles."""
    provider = sdk_trace.TracerProvider(shutdown_on_exit=False)
    yield provider.get_tracer("lockprof-tests")
    del provider
    gc.collect()


@pytest.fixture
def collector():
    # Every wait captured, and no budget to raise the interval: the test decides what waits.
    c = LockCollector(wait_sample_interval=1)
    c._recorder.capture_budget = 10**9
    c.start()
    yield c
    c.stop()


def contend(lock, hold_s: float) -> None:
    """Hold lock for hold_s in another thread while this one waits for it."""
    held = threading.Event()

    def holder():
        with lock:
            held.set()
            time.sleep(hold_s)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    with lock:
        pass
    thread.join()


def otel_ids(span):
    context = span.get_span_context()
    return context.span_id, f"{context.trace_id:032x}"


def waits_of(snapshot, lock_name_end):
    return [s for s in snapshot.samples if s.lock_name.endswith(lock_name_end) and s.contended_count]


def test_an_opentelemetry_span_labels_the_waits_captured_under_it(collector, tracer):
    otel_lock = threading.Lock()
    with tracer.start_as_current_span("request") as span:
        contend(otel_lock, 0.02)
    snapshot = collector.snapshot()
    [sample] = waits_of(snapshot, ":otel_lock")
    span_id, trace_id = otel_ids(span)
    assert (sample.span_id, sample.trace_id, sample.local_root_span_id) == (span_id, trace_id, None)
    assert sample.span_wait_ns >= 10_000_000
    [wait] = [w for w in snapshot.long_waits if w.lock_name.endswith(":otel_lock")]
    assert (wait.span_id, wait.trace_id) == (span_id, trace_id)
    assert f"span {span_id}" in wait.describe()


def test_no_span_no_label(collector):
    bare_lock = threading.Lock()
    contend(bare_lock, 0.01)
    [sample] = waits_of(collector.snapshot(), ":bare_lock")
    assert (sample.span_id, sample.trace_id, sample.span_wait_ns) == (None, None, 0)


def test_a_ddtrace_span_labels_its_waits_with_its_local_root():
    ddtrace = pytest.importorskip("ddtrace")
    ddtrace.tracer.enabled = False  # spans still made and active, never sent to an agent
    collector = LockCollector(wait_sample_interval=1)
    collector.start()
    try:
        dd_lock = threading.Lock()
        with ddtrace.tracer.trace("request") as root:
            with ddtrace.tracer.trace("inner") as inner:
                contend(dd_lock, 0.02)
    finally:
        collector.stop()
    [sample] = waits_of(collector.snapshot(), ":dd_lock")
    assert sample.span_id == inner.span_id
    assert sample.local_root_span_id == root.span_id
    assert sample.trace_id == f"{inner.trace_id:032x}"


def test_each_task_carries_its_own_span(collector, tracer):
    async def main():
        task_lock = asyncio.Lock()
        spans = {}

        async def request(name):
            with tracer.start_as_current_span(name) as span:
                spans[name] = otel_ids(span)
                async with task_lock:
                    await asyncio.sleep(0.02)

        await asyncio.gather(*(asyncio.create_task(request(f"r{i}"), name=f"r{i}") for i in range(3)))
        return spans

    spans = asyncio.run(main())
    samples = waits_of(collector.snapshot(), ":task_lock")
    assert len(samples) == 2  # the first task took the lock at once
    for sample in samples:
        assert (sample.span_id, sample.trace_id) == spans[sample.task_name]


def test_one_key_keeps_the_span_of_its_longest_wait(collector, tracer):
    # Every request is a new span: spans are not part of the key, so the table holds one key
    # for all of them (memory stays bounded), labelled with the longest wait's span.
    one_lock = threading.Lock()
    spans = []

    def request(i):
        with tracer.start_as_current_span(f"r{i}") as span:
            spans.append(otel_ids(span))
            contend(one_lock, 0.05 if i == 7 else 0.002)

    for i in range(20):
        request(i)
    [sample] = waits_of(collector.snapshot(), ":one_lock")  # 20 spans, one key
    assert sample.contended_count >= 10  # a short hold may end before its waiter comes
    assert (sample.span_id, sample.trace_id) == spans[7]


def test_uncontended_acquires_carry_no_span(tracer):
    collector = LockCollector(capture_pct=100.0)
    collector.start()
    try:
        calm_lock = threading.Lock()
        with tracer.start_as_current_span("request"):
            for _ in range(10):
                with calm_lock:
                    pass
    finally:
        collector.stop()
    [sample] = [s for s in collector.snapshot().samples if s.lock_name.endswith(":calm_lock")]
    assert sample.acquire_count == 10
    assert sample.span_id is None


class WatchedSpan(trace.NonRecordingSpan):
    """A span that records any attribute read of it: the recorder must read none."""

    reads = []

    def __getattribute__(self, name):
        WatchedSpan.reads.append(name)
        return super().__getattribute__(name)


def test_the_span_is_read_without_running_its_code(collector):
    context = trace.SpanContext(trace_id=0xABC, span_id=0x123, is_remote=False)
    watched_lock = threading.Lock()
    token = __import__("opentelemetry.context", fromlist=["attach"]).attach(
        trace.set_span_in_context(WatchedSpan(context)))
    try:
        WatchedSpan.reads.clear()
        contend(watched_lock, 0.01)
        reads = list(WatchedSpan.reads)
    finally:
        __import__("opentelemetry.context", fromlist=["detach"]).detach(token)
    [sample] = waits_of(collector.snapshot(), ":watched_lock")
    assert reads == []
    assert (sample.span_id, sample.trace_id) == (0x123, f"{0xABC:032x}")


def span_sample(name, span_id, wait_ns, trace_id="0af7651916cd43dd8448eb211c80319c", root=None):
    return LockSample(name, "lock", (Frame("handle", "/app/web.py", 12),), 1, 2, "worker",
                      contended_count=3, acquire_wait_ns=wait_ns * 2, span_id=span_id,
                      local_root_span_id=root, trace_id=trace_id, span_wait_ns=wait_ns)


def test_span_labels_round_trip_through_pprof(tmp_path):
    big = (1 << 64) - 5  # a 64-bit id above int64: written as its two's complement
    sample = span_sample("app/db.py:3:db_lock", big, 7_000_000, root=(1 << 63) + 1)
    wait = LongWait("app/db.py:3:db_lock", 9_000_000, 1, "worker", None, None,
                    (Frame("handle", "/app/web.py", 12),), span_id=big, trace_id=sample.trace_id)
    data = PprofRenderer().render(make_snapshot(samples=[sample], long_waits=[wait]))
    decoded = pprof.decode(data)
    [back] = decoded.samples
    assert (back.span_id, back.local_root_span_id, back.trace_id, back.span_wait_ns) == (
        big, (1 << 63) + 1, sample.trace_id, 7_000_000)
    assert (decoded.long_waits[0].span_id, decoded.long_waits[0].trace_id) == (big, sample.trace_id)
    path = tmp_path / "spans.pprof"
    path.write_bytes(data)
    raw = run_pprof(require_go(), ["-raw", str(path)], tmp_path)
    assert "span id:[-5]" in raw and f"trace id:[{sample.trace_id}]" in raw


def test_report_by_span_lists_the_spans_that_waited_most(tmp_path, capsys):
    samples = [span_sample("a.py:1:x", 11, 5_000_000), span_sample("a.py:2:y", 22, 9_000_000),
               span_sample("a.py:3:z", 11, 1_000_000), span_sample("a.py:4:w", None, 0)]
    report = build_report([make_snapshot(samples=samples)], by="span")
    assert [(row.name.split()[0], row.wait_ns, row.contended) for row in report.rows] == [
        ("22", 9_000_000, 1), ("11", 6_000_000, 2)]
    assert report.rows[1].top_lock == "a.py:1:x"
    path = tmp_path / "spans.pprof"
    path.write_bytes(PprofRenderer().render(make_snapshot(samples=samples)))
    assert cli_main(["report", "--by", "span", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.index("22 (trace 0af7651916cd43dd8448eb211c80319c)") < out.index("11 (trace")
