"""The pprof writer: a Snapshot as a gzip-compressed perftools.profiles.Profile.

The protobuf wire format is written by hand so that exporting a profile needs no third-party
package. What each part of a Snapshot becomes is described in lockprof.pprof, which reads it
back with the same field numbers, sample types and labels.
"""

from __future__ import annotations

import gzip
import json
from typing import Dict, List, Sequence, Tuple, Union

from lockprof._version import __version__
from lockprof.pprof import (
    CONTEXT_LABELS, FUNCTION_FILENAME, FUNCTION_ID, FUNCTION_NAME, FUNCTION_SYSTEM_NAME, LABEL_KEY,
    LABEL_NUM, LABEL_NUM_UNIT, LABEL_STR, LEN, LINE_FUNCTION_ID, LINE_LINE, LOCATION_ID,
    LOCATION_LINE, LOCATION_MAPPING_ID, LOCK_KIND_LABEL, LOCK_NAME_LABEL, LOCK_SITE_LABEL,
    LONG_WAIT_LABEL, MAPPING_HAS_FILENAMES, MAPPING_HAS_FUNCTIONS, MAPPING_HAS_LINE_NUMBERS,
    MAPPING_ID, MAPPING_ID_PYTHON, MAX_WAIT_LABEL, METADATA_FIELDS, METADATA_PREFIX,
    OUTCOME_LABEL, PROFILE_COMMENT, PROFILE_DEFAULT_SAMPLE_TYPE, PROFILE_DURATION_NANOS,
    PROFILE_FUNCTION, PROFILE_LOCATION, PROFILE_MAPPING, PROFILE_PERIOD, PROFILE_PERIOD_TYPE,
    PROFILE_SAMPLE, PROFILE_SAMPLE_TYPE, PROFILE_STRING_TABLE, PROFILE_TIME_NANOS, SAMPLE_LABEL,
    SAMPLE_LOCATION_ID, SAMPLE_VALUE, SPAN_WAIT_LABEL, TIMED_OUT, TIMEOUTS_LABEL, U64, VALUE_TYPE_TYPE,
    VALUE_TYPE_UNIT, VARINT,
)
from lockprof.profile import Frame, LockSample, LockTotals, LongWait, Snapshot, ValueType
from lockprof.renderers.base import encode_text

_DEFAULT_SAMPLE_TYPE = "lock-acquire-wait"
# A label: key, value, and the unit of a number.
_Label = Tuple[str, Union[str, int], str]


class PprofRenderer:
    """Writes a Snapshot as a pprof profile (lockprof's output files)."""

    def render(self, profile: Snapshot) -> bytes:
        """The profile's bytes, gzip-compressed: the same for the same Snapshot."""
        b = _ProfileBuilder(profile.sample_types)
        parts = [_len_field(PROFILE_SAMPLE_TYPE, b.value_type(t.type, t.unit)) for t in profile.sample_types]
        parts += [_len_field(PROFILE_SAMPLE, b.lock_sample(s)) for s in profile.samples]
        parts += [_len_field(PROFILE_SAMPLE, b.totals(t)) for t in profile.lock_totals]
        parts += [_len_field(PROFILE_SAMPLE, b.long_wait(w)) for w in profile.long_waits]
        # One mapping flagged as already symbolized, so pprof does not try to symbolize addresses.
        parts.append(_len_field(
            PROFILE_MAPPING,
            _int_field(MAPPING_ID, MAPPING_ID_PYTHON) + _int_field(MAPPING_HAS_FUNCTIONS, 1)
            + _int_field(MAPPING_HAS_FILENAMES, 1) + _int_field(MAPPING_HAS_LINE_NUMBERS, 1),
        ))
        for (function_id, line), location_id in b.locations.items():
            line_msg = _int_field(LINE_FUNCTION_ID, function_id) + _int_field(LINE_LINE, line)
            parts.append(_len_field(
                PROFILE_LOCATION,
                _int_field(LOCATION_ID, location_id) + _int_field(LOCATION_MAPPING_ID, MAPPING_ID_PYTHON)
                + _len_field(LOCATION_LINE, line_msg),
            ))
        for (name, filename), function_id in b.functions.items():
            name_index = b.string(name)
            parts.append(_len_field(
                PROFILE_FUNCTION,
                _int_field(FUNCTION_ID, function_id) + _int_field(FUNCTION_NAME, name_index)
                + _int_field(FUNCTION_SYSTEM_NAME, name_index)
                + _int_field(FUNCTION_FILENAME, b.string(filename)),
            ))
        tail = [
            _int_field(PROFILE_TIME_NANOS, profile.start_ns),
            _int_field(PROFILE_DURATION_NANOS, profile.duration_ns),
            _len_field(PROFILE_PERIOD_TYPE, b.value_type(profile.sample_types[0].type,
                                                         profile.sample_types[0].unit))
            if profile.sample_types else b"",
            _int_field(PROFILE_PERIOD, 1),  # values are already upscaled by the sampling rate
            _packed_field(PROFILE_COMMENT, [b.string(c) for c in comments(profile)]),
            _int_field(PROFILE_DEFAULT_SAMPLE_TYPE, b.string(_DEFAULT_SAMPLE_TYPE)),
        ]
        # Written after everything else is built: building is what fills the string table.
        parts += [_len_field(PROFILE_STRING_TABLE, encode_text(s)) for s in b.strings]
        return gzip.compress(b"".join(parts + tail), mtime=0)  # mtime=0: reproducible output


def comments(profile: Snapshot) -> List[str]:
    """The profile's comments: for people (go tool pprof shows them), then the metadata."""
    lines = [f"lockprof {__version__}"]
    if profile.max_wait_sample_interval_ns > profile.wait_sample_interval_ns:
        lines.append(f"wait sampling interval raised up to {profile.max_wait_sample_interval_ns} ns "
                     "by the capture budget")
    lines += ["long wait: " + wait.describe() for wait in profile.long_waits]
    if profile.dropped_events > 0:
        lines.append(f"dropped events: {profile.dropped_events}")
    metadata = {name: getattr(profile, name) for name in METADATA_FIELDS}
    return lines + [METADATA_PREFIX + json.dumps(metadata)]


class _ProfileBuilder:
    """Interns strings, functions and locations so each is written once and referenced by id."""

    def __init__(self, sample_types: Sequence[ValueType]) -> None:
        self.sample_types = [t.type for t in sample_types]
        self.strings: Dict[str, int] = {"": 0}
        self.functions: Dict[Tuple[str, str], int] = {}
        self.locations: Dict[Tuple[int, int], int] = {}

    def string(self, s: str) -> int:
        return self.strings.setdefault(s, len(self.strings))

    def function(self, name: str, filename: str) -> int:
        return self.functions.setdefault((name, filename), len(self.functions) + 1)

    def location(self, frame: Frame) -> int:
        key = (self.function(frame.name, frame.filename), frame.line)
        return self.locations.setdefault(key, len(self.locations) + 1)

    def value_type(self, type_: str, unit: str) -> bytes:
        return _int_field(VALUE_TYPE_TYPE, self.string(type_)) + _int_field(VALUE_TYPE_UNIT, self.string(unit))

    def sample(self, frames: Sequence[Frame], values: List[int], labels: List[_Label]) -> bytes:
        return (_packed_field(SAMPLE_LOCATION_ID, [self.location(f) for f in frames])
                + _packed_field(SAMPLE_VALUE, values)
                + b"".join(self.label(*label) for label in labels))

    def label(self, key: str, value: Union[str, int], unit: str) -> bytes:
        if isinstance(value, str):
            # Written even for "" (index 0) so the reader can tell a string label from num=0.
            body = _int_field(LABEL_STR, self.string(value), always=True)
        else:
            body = _int_field(LABEL_NUM, value)
            if unit:
                body += _int_field(LABEL_NUM_UNIT, self.string(unit))
        return _len_field(SAMPLE_LABEL, _int_field(LABEL_KEY, self.string(key)) + body)

    def lock_sample(self, s: LockSample) -> bytes:
        labels = [(LOCK_NAME_LABEL, s.lock_name, ""), (LOCK_KIND_LABEL, s.lock_kind, "")]
        if s.site is not None and s.site.filename:
            labels.append((LOCK_SITE_LABEL, f"{s.site.filename}:{s.site.line}", ""))
        labels += _context_labels(s)
        if s.span_wait_ns:
            labels.append((SPAN_WAIT_LABEL, s.span_wait_ns, "nanoseconds"))
        if s.timed_out:
            labels.append((OUTCOME_LABEL, TIMED_OUT, ""))
        return self.sample(s.frames, [s.value(t) for t in self.sample_types], labels)

    def totals(self, t: LockTotals) -> bytes:
        labels = [(LOCK_NAME_LABEL, t.lock_name, ""), (LOCK_KIND_LABEL, t.lock_kind, ""),
                  (MAX_WAIT_LABEL, t.max_wait_ns, "nanoseconds"), (TIMEOUTS_LABEL, t.timeouts, "")]
        return self.sample((t.site,), [t.value(type_) for type_ in self.sample_types], labels)

    def long_wait(self, w: LongWait) -> bytes:
        labels = [(LOCK_NAME_LABEL, w.lock_name, ""), (LONG_WAIT_LABEL, w.wait_ns, "nanoseconds")]
        labels += _context_labels(w)
        if w.timed_out:
            labels.append((OUTCOME_LABEL, TIMED_OUT, ""))
        return self.sample(w.frames, [0] * len(self.sample_types), labels)


def _context_labels(record: Union[LockSample, LongWait]) -> List[_Label]:
    labels: List[_Label] = []
    for key, attribute, kind in CONTEXT_LABELS:
        value = getattr(record, attribute, None)
        if value is not None:
            # An unsigned 64-bit id goes in the int64 label as its two's complement.
            labels.append((key, value - U64 if kind == "u64" and value >= 1 << 63 else value, ""))
    return labels


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _to_u64(n: int) -> int:
    """The varint form of an int64: negative values are written in two's complement."""
    if not -(1 << 63) <= n < 1 << 63:
        raise ValueError(f"{n} does not fit in a protobuf int64")
    return n % U64


def _int_field(number: int, n: int, *, always: bool = False) -> bytes:
    # proto3 omits default (zero) values; `always` keeps an explicit 0 where presence matters.
    if n == 0 and not always:
        return b""
    return _varint(number << 3 | VARINT) + _varint(_to_u64(n))


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | LEN) + _varint(len(payload)) + payload


def _packed_field(number: int, values: List[int]) -> bytes:
    if not values:
        return b""
    return _len_field(number, b"".join(_varint(_to_u64(v)) for v in values))
