from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
from typing import List, Optional

import pytest

import lockprof
from lockprof.pprof import (
    LONG_WAIT_LABEL,
    MAX_WAIT_LABEL,
    METADATA_PREFIX,
    OUTCOME_LABEL,
    TIMED_OUT,
    TIMEOUTS_LABEL,
    ProfileFormatError,
    RawProfile,
    decode,
    parse,
    write_atomic,
)
from lockprof.profile import SAMPLE_TYPES, Frame, LockSample, LockTotals, LongWait, Snapshot, ValueType
from lockprof.renderers.pprof import PprofRenderer

encode = PprofRenderer().render

START_NS = 1_700_000_000_123_456_789
ACQUIRE = Frame("Lock.acquire", "/app/locks.py", 10)
WORKER_A = Frame("worker", "/app/work.py", 20)
WORKER_B = Frame("worker", "/app/work.py", 25)  # same function, another line
OTHER_WORKER = Frame("worker", "/app/other.py", 20)  # same name, another file
MAIN = Frame("main", "/app/main.py", 1)


def make_snapshot(**overrides) -> Snapshot:
    samples = [
        LockSample(
            "db_lock", "threading.Lock", (ACQUIRE, WORKER_A, MAIN), 1, 1001, "MainThread",
            acquire_count=3, acquire_wait_ns=4_000, release_count=3, release_hold_ns=9_000,
        ),
        LockSample(
            "db_lock", "threading.Lock", (ACQUIRE, WORKER_B, MAIN), 2, 1002, "worker-1",
            acquire_count=1, acquire_wait_ns=2**62, release_count=0, release_hold_ns=0,
        ),
        LockSample(
            "cache_lock", "asyncio.Lock", (OTHER_WORKER, MAIN), 1, 1001, "MainThread",
            task_id=7, task_name="fetch-7",
            acquire_count=5, acquire_wait_ns=0, release_count=5, release_hold_ns=123,
        ),
    ]
    fields = dict(
        samples=samples, start_ns=START_NS, end_ns=START_NS + 10**10, capture_pct=1.0,
        wait_sample_interval_ns=1_000_000, max_wait_sample_interval_ns=4_000_000, dropped_events=42,
        root_pid=4321,
    )
    fields.update(overrides)
    return Snapshot(**fields)


# --- a tiny independent protobuf writer, for hand-made (and malformed) inputs ----------------


def varint(n: int) -> bytes:
    n %= 1 << 64
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def vfield(number: int, n: int) -> bytes:
    return varint(number << 3) + varint(n)


def lfield(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def strings(*items: str) -> bytes:
    return b"".join(lfield(6, s.encode()) for s in ("",) + items)


# --- round trip --------------------------------------------------------------------------------


def test_round_trip_values_stacks_and_metadata():
    snap = make_snapshot()
    profile = parse(encode(snap))

    assert profile.sample_types == [ValueType(t.type, t.unit) for t in SAMPLE_TYPES]
    assert [t.type for t in profile.sample_types] == [
        "lock-acquire", "lock-acquire-wait", "lock-contended-acquire", "lock-release",
        "lock-release-hold", "lock-blocking-hold", "lock-condition-wait", "lock-contended-total",
        "lock-wait-total",
    ]
    assert profile.default_sample_type == "lock-acquire-wait"
    assert profile.period_type == ValueType("lock-acquire", "count")
    assert profile.period == 1
    assert profile.time_nanos == START_NS
    assert profile.duration_nanos == 10**10
    assert profile.comments[:3] == [f"lockprof {lockprof.__version__}",
                                    "wait sampling interval raised up to 4000000 ns by the capture budget",
                                    "dropped events: 42"]

    assert len(profile.samples) == len(snap.samples)
    for decoded, original in zip(profile.samples, snap.samples):
        assert decoded.values == [
            original.acquire_count, original.acquire_wait_ns, original.contended_count,
            original.release_count, original.release_hold_ns, original.blocking_hold_ns,
            original.condition_wait_ns, 0, 0,
        ]
        assert decoded.frames == list(original.frames)  # leaf first
    assert decode(encode(snap)) == snap  # the Snapshot it was written from, whole


def test_timed_out_waits_totals_and_long_waits_round_trip():
    timed_out = LockSample("db_lock", "lock", (MAIN,), 1, 1001, "MainThread",
                           contended_count=2, acquire_wait_ns=5_000_000, timed_out=True)
    site = Frame("db_lock", "/app/db.py", 12)
    totals = LockTotals("db_lock", "lock", site, contended_count=9, wait_ns=7_000_000,
                        max_wait_ns=3_000_000, timeouts=2)
    wait = LongWait("db_lock", 3_000_000, 1, "MainThread", 7, "fetch-7", (MAIN,), timed_out=True)
    snap = make_snapshot(samples=[timed_out], lock_totals=[totals], long_waits=[wait])
    profile = parse(encode(snap))
    stack_sample, totals_sample, wait_sample = profile.samples
    assert stack_sample.labels[OUTCOME_LABEL] == TIMED_OUT
    assert stack_sample.values[profile.value_index("lock-contended-acquire")] == 2
    assert stack_sample.values[profile.value_index("lock-contended-total")] == 0
    assert totals_sample.frames == [site]
    assert totals_sample.values == [0, 0, 0, 0, 0, 0, 0, 9, 7_000_000]
    assert totals_sample.labels == {"lock name": "db_lock", "lock kind": "lock",
                                    MAX_WAIT_LABEL: 3_000_000, TIMEOUTS_LABEL: 2}
    assert wait_sample.frames == [MAIN] and wait_sample.values == [0] * len(SAMPLE_TYPES)
    assert wait_sample.labels == {"lock name": "db_lock", LONG_WAIT_LABEL: 3_000_000, "thread id": 1,
                                  "thread name": "MainThread", "task id": 7, "task name": "fetch-7",
                                  OUTCOME_LABEL: TIMED_OUT}
    assert profile.comments[2] == (
        "long wait: 3.000 ms on db_lock, timed out; thread MainThread (1), task fetch-7 (7); "
        f"at main ({MAIN.filename}:{MAIN.line})")
    with pytest.raises(ValueError, match="no sample type 'cpu'"):
        profile.value_index("cpu")
    back = decode(encode(snap))
    assert (back.samples, back.lock_totals, back.long_waits) == ([timed_out], [totals], [wait])


def test_the_sampling_metadata_is_one_json_comment():
    (metadata,) = [c for c in parse(encode(make_snapshot())).comments if c.startswith(METADATA_PREFIX)]
    assert json.loads(metadata[len(METADATA_PREFIX):]) == {
        "capture_pct": 1.0, "wait_sample_interval_ns": 1_000_000,
        "max_wait_sample_interval_ns": 4_000_000, "dropped_events": 42, "root_pid": 4321}
    back = decode(encode(make_snapshot()))
    assert (back.capture_pct, back.wait_sample_interval_ns, back.max_wait_sample_interval_ns,
            back.dropped_events, back.root_pid) == (1.0, 1_000_000, 4_000_000, 42, 4321)


def test_a_lock_site_is_a_label_of_its_samples():
    sample = LockSample("db_lock", "lock", (MAIN,), 1, 1001, "MainThread", acquire_count=1,
                        site=Frame("db_lock", "/app/db.py", 12))
    (raw,) = parse(encode(make_snapshot(samples=[sample]))).samples
    assert raw.labels["lock site"] == "/app/db.py:12"
    assert decode(encode(make_snapshot(samples=[sample]))).samples == [sample]


def test_round_trip_deduplicates_strings_functions_and_locations():
    profile = parse(encode(make_snapshot()))

    assert profile.string_table[0] == ""
    assert len(profile.string_table) == len(set(profile.string_table))
    # worker in work.py and worker in other.py are distinct functions; two lines of one
    # function are one function but two locations.
    assert sorted(profile.functions.values()) == sorted({
        ("Lock.acquire", "/app/locks.py"), ("worker", "/app/work.py"),
        ("worker", "/app/other.py"), ("main", "/app/main.py"),
    })
    assert len(profile.locations) == 5  # ACQUIRE, WORKER_A, WORKER_B, OTHER_WORKER, MAIN
    assert all(len(lines) == 1 for lines in profile.locations.values())
    shared = profile.samples[0].location_ids
    assert profile.samples[1].location_ids[0] == shared[0]  # same ACQUIRE location
    assert profile.samples[1].location_ids[2] == shared[2]  # same MAIN location
    assert profile.samples[1].location_ids[1] != shared[1]  # WORKER_B: another line


def test_labels_with_and_without_task():
    without_task, with_task = parse(encode(make_snapshot())).samples[1:3]
    assert without_task.labels == {
        "lock name": "db_lock", "lock kind": "threading.Lock",
        "thread id": 2, "thread native id": 1002, "thread name": "worker-1",
    }
    assert with_task.labels == {
        "lock name": "cache_lock", "lock kind": "asyncio.Lock",
        "thread id": 1, "thread native id": 1001, "thread name": "MainThread",
        "task id": 7, "task name": "fetch-7",
    }


def test_empty_string_and_zero_labels_keep_their_type():
    sample = LockSample("", "threading.RLock", (), 0, 0, "", task_id=0, task_name="")
    (decoded,) = parse(encode(make_snapshot(samples=[sample]))).samples
    assert decoded.labels == {
        "lock name": "", "lock kind": "threading.RLock", "thread id": 0,
        "thread native id": 0, "thread name": "", "task id": 0, "task name": "",
    }
    assert decoded.frames == [] and decoded.values == [0] * len(SAMPLE_TYPES)


def test_no_dropped_events_comment_when_nothing_dropped():
    profile = parse(encode(make_snapshot(dropped_events=0)))
    assert not [c for c in profile.comments if c.startswith("dropped events")]


def test_empty_snapshot():
    profile = parse(encode(make_snapshot(samples=[])))
    assert profile.samples == [] and profile.functions == {} and profile.locations == {}
    assert len(profile.sample_types) == len(SAMPLE_TYPES)


def test_unicode_and_undecodable_filenames_round_trip():
    odd = Frame("función_λ", os.fsdecode(b"/tmp/caf\xe9.py"), 3)
    sample = LockSample("锁", "threading.Lock", (odd,), 1, 1, "线程")
    (decoded,) = decode(encode(make_snapshot(samples=[sample]))).samples
    assert decoded.frames == (odd,)
    assert decoded.lock_name == "锁"


def test_encode_is_deterministic_and_gzipped():
    data = encode(make_snapshot())
    assert data[:2] == b"\x1f\x8b"
    assert encode(make_snapshot()) == data


def test_decode_accepts_raw_protobuf():
    data = encode(make_snapshot())
    assert decode(gzip.decompress(data)) == decode(data)
    assert decode(bytearray(gzip.decompress(data))) == decode(data)


def test_encode_rejects_values_outside_int64():
    sample = LockSample("l", "k", (), 1, 1, "t", acquire_wait_ns=2**63)
    with pytest.raises(ValueError):
        encode(make_snapshot(samples=[sample]))


def test_decode_hand_made_profile_unpacked_inlined_and_num_labels():
    raw = (
        lfield(1, vfield(1, 1) + vfield(2, 2))  # sample type ("wait", "ns")
        + lfield(5, vfield(1, 9) + vfield(2, 3) + vfield(4, 4))  # function 9: inner, f.py
        + lfield(5, vfield(1, 8) + vfield(2, 5) + vfield(4, 4))  # function 8: outer, f.py
        # location 3: inner (line 7) inlined into outer (line 70)
        + lfield(4, vfield(1, 3) + lfield(4, vfield(1, 9) + vfield(2, 7))
                 + lfield(4, vfield(1, 8) + vfield(2, 70)))
        # sample with unpacked location id and value, and a numeric label with a unit
        + lfield(2, vfield(1, 3) + vfield(2, -12)
                 + lfield(3, vfield(1, 6) + vfield(3, 99) + vfield(4, 2)))
        + strings("wait", "ns", "inner", "f.py", "outer", "size")
    )
    profile = parse(raw)
    (sample,) = profile.samples
    assert sample.values == [-12]
    assert sample.frames == [Frame("inner", "f.py", 7), Frame("outer", "f.py", 70)]
    assert sample.labels == {"size": 99}
    assert profile.default_sample_type is None and profile.period_type is None
    assert profile.time_nanos == 0 and profile.comments == []
    (read,) = decode(raw).samples  # another tool's sample type, kept by its name
    assert (read.lock_name, read.other_values, read.value("wait")) == ("", {"wait": -12}, -12)


def test_decode_skips_unknown_fields():
    unknown = vfield(99, 5) + lfield(100, b"\xff\xff") + varint(101 << 3 | 1) + bytes(8)
    unknown += varint(102 << 3 | 5) + bytes(4)
    raw = gzip.decompress(encode(make_snapshot()))
    assert decode(raw + unknown) == decode(raw)


# --- malformed input ---------------------------------------------------------------------------

VALID_RAW = gzip.decompress(encode(make_snapshot()))
ONE_TYPE = lfield(1, vfield(1, 1) + vfield(2, 1)) + strings("x")

MALFORMED = [
    ("empty", b"", "empty profile"),
    ("truncated key varint", b"\x80", "truncated varint"),
    ("truncated value varint", b"\x48", "truncated varint"),
    ("varint too long", b"\x48" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
    ("varint overflow", b"\x48" + b"\xff" * 9 + b"\x7f", "overflows 64 bits"),
    ("length past end", b"\x32\x05ab", "runs past the end"),
    ("huge length", b"\x32" + varint(2**63), "runs past the end"),
    ("fixed64 past end", b"\x49\x00\x00", "runs past the end"),
    ("fixed32 past end", b"\x4d\x00", "runs past the end"),
    ("wire type 7", b"\x0f", "bad wire type 7"),
    ("group wire type", b"\x0b", "bad wire type 3"),
    ("field number 0", b"\x00\x00", "field number 0"),
    ("bad gzip", b"\x1f\x8bnot gzip at all", "bad gzip"),
    ("truncated gzip", encode(make_snapshot())[:-10], "truncated gzip data"),
    ("no string table", vfield(9, 1), "string_table"),
    ("string_table[0] not empty", lfield(6, b"x"), "string_table"),
    ("string table as varint", vfield(6, 0), "expected length-delimited"),
    ("integer field as bytes", strings() + lfield(9, b"\x01"), "expected a varint"),
    ("fixed64 as repeated integer", strings() + varint(13 << 3 | 1) + bytes(8),
     "expected an integer"),
    ("message as varint", strings() + vfield(2, 1), "expected length-delimited"),
    ("bad packed varint", ONE_TYPE + lfield(2, lfield(2, b"\x80")), "truncated varint"),
    ("nested message truncated", strings() + lfield(1, b"\x08"), "truncated varint in ValueType"),
    ("string index out of range", lfield(1, vfield(1, 5)) + strings(), "string index 5"),
    ("negative string index", lfield(1, vfield(1, -1)) + strings(), "string index -1"),
    ("comment index out of range", strings() + vfield(13, 3), "string index 3"),
    ("label key out of range", ONE_TYPE + lfield(2, vfield(2, 1) + lfield(3, vfield(1, 9))),
     "Label.key"),
    ("unknown location", ONE_TYPE + lfield(2, vfield(1, 4) + vfield(2, 1)),
     "unknown location id 4"),
    ("unknown function", strings() + lfield(4, vfield(1, 1) + lfield(4, vfield(1, 2))),
     "unknown function id 2"),
    ("unknown mapping", strings() + lfield(4, vfield(1, 1) + vfield(2, 3)), "unknown mapping id 3"),
    ("location id 0", strings() + lfield(4, b""), "location id 0"),
    ("duplicate function id", strings() + lfield(5, vfield(1, 1)) * 2, "function id 1"),
    ("value count mismatch", ONE_TYPE + lfield(2, vfield(2, 1) + vfield(2, 2)),
     "2 values but the profile has 1 sample types"),
    ("metadata not JSON", strings(METADATA_PREFIX + "{1") + vfield(13, 1), "metadata comment is not JSON"),
    ("metadata not an object", strings(METADATA_PREFIX + "[]") + vfield(13, 1), "not a JSON object"),
    ("metadata of the wrong type", strings(METADATA_PREFIX + '{"dropped_events": "3"}') + vfield(13, 1),
     "dropped_events is '3', not a number"),
    ("long wait as text", strings("long wait", "x") + lfield(2, lfield(3, vfield(1, 1) + vfield(2, 2))),
     "label 'long wait' has text 'x', expected a number"),
    ("lock site without a line", strings("lock site", "/a.py") + lfield(2, lfield(3, vfield(1, 1) + vfield(2, 2))),
     "label 'lock site' is not file:line"),
]


@pytest.mark.parametrize("data,message", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_input_raises_profile_format_error(data, message):
    with pytest.raises(ProfileFormatError, match=message) as info:
        decode(data)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def mutate(rng: random.Random, data: bytes) -> bytes:
    kind = rng.randrange(5)
    pos = rng.randrange(len(data) + 1)
    if kind == 0:  # truncate
        return data[:pos]
    if kind == 1:  # overwrite a few bytes
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if kind == 2:  # insert random bytes
        return data[:pos] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[pos:]
    if kind == 3:  # delete a slice
        return data[:pos] + data[pos + rng.randint(1, 16):]
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))  # pure noise


def test_mutated_profiles_raise_only_profile_format_error():
    rng = random.Random(20240611)
    gzipped = encode(make_snapshot())
    outcomes = {"decoded": 0, "rejected": 0}
    for i in range(500):
        data = mutate(rng, gzipped if i % 5 == 0 else VALID_RAW)
        try:
            result = decode(data)
        except ProfileFormatError as e:
            assert str(e) and "\n" not in str(e)
            outcomes["rejected"] += 1
        else:
            assert isinstance(result, Snapshot)
            outcomes["decoded"] += 1
    assert outcomes["rejected"] > 100  # the mutations did exercise the error paths


# --- write_atomic ------------------------------------------------------------------------------


def test_write_atomic_writes_and_replaces_without_leftovers(tmp_path):
    target = tmp_path / "lock.pprof"
    write_atomic(str(target), b"first")
    write_atomic(str(target), b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["lock.pprof"]


def test_write_atomic_removes_temp_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "lock.pprof"
    target.write_bytes(b"old")

    def failing_replace(src, dst):
        raise OSError("simulated replace failure")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated replace failure"):
        write_atomic(str(target), b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["lock.pprof"]


def test_write_atomic_removes_temp_file_when_write_fails(tmp_path, monkeypatch):
    def failing_fsync(fd):
        raise OSError("simulated fsync failure")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated fsync failure"):
        write_atomic(str(tmp_path / "lock.pprof"), b"new")
    assert os.listdir(tmp_path) == []


# --- Go's pprof reads what we write --------------------------------------------------------------


def find_go() -> Optional[str]:
    found = shutil.which("go")
    if found:
        return found
    fallback = "/usr/lib/go/bin/go"
    return fallback if os.access(fallback, os.X_OK) else None


def run_pprof(go: str, args: List[str], tmp_path) -> str:
    env = dict(
        os.environ,
        HOME=str(tmp_path),
        PPROF_TMPDIR=str(tmp_path / "pprof"),
        GOTOOLCHAIN="local",  # never download a toolchain
    )
    proc = subprocess.run(
        [go, "tool", "pprof"] + args, cwd=str(tmp_path), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300,
    )
    assert proc.returncode == 0, f"go tool pprof {args} failed:\n{proc.stderr}"
    return proc.stdout


def require_go() -> str:
    """The go command, else skip the test (fail it when LOCKPROF_REQUIRE_GO=1, as in CI)."""
    go = find_go()
    if go is None:
        reason = (
            "Go is not installed (no `go` on PATH nor /usr/lib/go/bin/go): "
            "apt-get install golang-go"
        )
        if os.environ.get("LOCKPROF_REQUIRE_GO") == "1":
            pytest.fail(f"LOCKPROF_REQUIRE_GO=1 but {reason}")
        pytest.skip(reason)
    return go


def test_go_pprof_reads_encoded_profile(tmp_path):
    go = require_go()
    path = tmp_path / "lock.pprof"
    totals = LockTotals("app/db.py:12:db_lock", "lock", Frame("app/db.py:12:db_lock", "/app/db.py", 12),
                        contended_count=9, wait_ns=7_000_000, max_wait_ns=3_000_000, timeouts=2)
    write_atomic(str(path), encode(make_snapshot(lock_totals=[totals])))
    function_names = ["Lock.acquire", "worker", "main"]

    raw = run_pprof(go, ["-raw", str(path)], tmp_path)
    for sample_type in SAMPLE_TYPES:
        assert f"{sample_type.type}/{sample_type.unit}" in raw
    assert "lock-acquire-wait/nanoseconds[dflt]" in raw
    for name in function_names:
        assert name in raw

    top = run_pprof(go, ["-top", "-sample_index=lock-acquire-wait", str(path)], tmp_path)
    assert "Type: lock-acquire-wait" in top
    for name in function_names:
        assert name in top

    # The exact per-lock totals: one sample per lock, at its creation site, named after it.
    top = run_pprof(go, ["-top", "-sample_index=lock-wait-total", str(path)], tmp_path)
    assert "Type: lock-wait-total" in top and "app/db.py:12:db_lock" in top and "7ms" in top
    tags = run_pprof(go, ["-tags", "-sample_index=lock-contended-total", str(path)], tmp_path)
    assert "max wait" in tags and "3ms" in tags
