"""Read and write lock profiles in the pprof format (perftools.profiles.Profile, gzip-compressed).

The protobuf wire format is written and parsed by hand so that exporting a profile needs no
third-party package. Field numbers follow google/pprof proto/profile.proto.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import Container, Dict, Iterator, List, Optional, Sequence, Set, TextIO, Tuple, Union

from lockprof._term import Progress
from lockprof.profile import Frame, LockSample, LockTotals, Snapshot

__all__ = [
    "MAX_WAIT_LABEL",
    "OUTCOME_LABEL",
    "SAMPLE_TYPES",
    "TIMED_OUT",
    "TIMEOUTS_LABEL",
    "DecodedProfile",
    "DecodedSample",
    "ProfileFormatError",
    "ProfileReadError",
    "ValueType",
    "decode",
    "encode",
    "read_profile",
    "read_profiles",
    "write_atomic",
]

# (type, unit) of Sample.value[i], in the order encode() writes the values. Samples with a
# stack carry the estimates of the first seven; one stackless sample per lock (its only frame
# is the lock's creation site, named after the lock) carries the exact totals of the last two.
SAMPLE_TYPES = (
    ("lock-acquire", "count"),  # acquires, sampled at capture_pct
    ("lock-acquire-wait", "nanoseconds"),  # contended waits, sampled in proportion to length
    ("lock-contended-acquire", "count"),  # acquires that had to block, timeouts included
    ("lock-release", "count"),  # releases ending a hold sampled at capture_pct
    ("lock-release-hold", "nanoseconds"),
    ("lock-blocking-hold", "nanoseconds"),  # hold time while other threads were blocked
    ("lock-condition-wait", "nanoseconds"),  # Condition.wait() waiting for a notify
    ("lock-contended-total", "count"),  # exact, per lock
    ("lock-wait-total", "nanoseconds"),  # exact, per lock
)
_DEFAULT_SAMPLE_TYPE = "lock-acquire-wait"
# Labels of the per-lock totals samples, beside "lock name" and "lock kind".
MAX_WAIT_LABEL, TIMEOUTS_LABEL = "max wait", "timeouts"
# The label of a stack sample whose waits ended in a timeout.
OUTCOME_LABEL, TIMED_OUT = "acquire outcome", "timed out"

# Wire types.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

# Field numbers from profile.proto.
_PROFILE_SAMPLE_TYPE, _PROFILE_SAMPLE, _PROFILE_MAPPING, _PROFILE_LOCATION = 1, 2, 3, 4
_PROFILE_FUNCTION, _PROFILE_STRING_TABLE, _PROFILE_DROP_FRAMES, _PROFILE_KEEP_FRAMES = 5, 6, 7, 8
_PROFILE_TIME_NANOS, _PROFILE_DURATION_NANOS, _PROFILE_PERIOD_TYPE, _PROFILE_PERIOD = 9, 10, 11, 12
_PROFILE_COMMENT, _PROFILE_DEFAULT_SAMPLE_TYPE = 13, 14
_VALUE_TYPE_TYPE, _VALUE_TYPE_UNIT = 1, 2
_SAMPLE_LOCATION_ID, _SAMPLE_VALUE, _SAMPLE_LABEL = 1, 2, 3
_LABEL_KEY, _LABEL_STR, _LABEL_NUM, _LABEL_NUM_UNIT = 1, 2, 3, 4
_MAPPING_ID, _MAPPING_FILENAME, _MAPPING_BUILD_ID = 1, 5, 6
_MAPPING_HAS_FUNCTIONS, _MAPPING_HAS_FILENAMES, _MAPPING_HAS_LINE_NUMBERS = 7, 8, 9
_LOCATION_ID, _LOCATION_MAPPING_ID, _LOCATION_LINE = 1, 2, 4
_LINE_FUNCTION_ID, _LINE_LINE = 1, 2
_FUNCTION_ID, _FUNCTION_NAME, _FUNCTION_SYSTEM_NAME = 1, 2, 3
_FUNCTION_FILENAME, _FUNCTION_START_LINE = 4, 5

_MAPPING_ID_PYTHON = 1  # the only mapping encode() writes
_U64 = 1 << 64
_GZIP_MAGIC = b"\x1f\x8b"


class ProfileFormatError(ValueError):
    """The bytes given to decode() are not a well-formed pprof profile."""


class ProfileReadError(ValueError):
    """A profile file could not be read or is not a profile; the message is one line that
    names the file and the problem (what the commands print before exiting with status 2)."""


# ---------------------------------------------------------------------------------------------
# Encoding


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
    return n % _U64


def _int_field(number: int, n: int, *, always: bool = False) -> bytes:
    # proto3 omits default (zero) values; `always` keeps an explicit 0 where presence matters.
    if n == 0 and not always:
        return b""
    return _varint(number << 3 | _VARINT) + _varint(_to_u64(n))


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(payload)) + payload


def _packed_field(number: int, values: List[int]) -> bytes:
    if not values:
        return b""
    return _len_field(number, b"".join(_varint(_to_u64(v)) for v in values))


def _utf8(s: str) -> bytes:
    try:
        # Filenames may hold undecodable bytes as surrogate escapes (os.fsdecode): restore them.
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace")


class _ProfileBuilder:
    """Interns strings, functions and locations so each is written once and referenced by id."""

    def __init__(self) -> None:
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
        return _int_field(_VALUE_TYPE_TYPE, self.string(type_)) + _int_field(
            _VALUE_TYPE_UNIT, self.string(unit)
        )

    def label(self, key: str, value: Union[str, int], unit: str = "") -> bytes:
        if isinstance(value, str):
            # Written even for "" (index 0) so decode() can tell a string label from num=0.
            body = _int_field(_LABEL_STR, self.string(value), always=True)
        else:
            body = _int_field(_LABEL_NUM, value)
            if unit:
                body += _int_field(_LABEL_NUM_UNIT, self.string(unit))
        return _len_field(_SAMPLE_LABEL, _int_field(_LABEL_KEY, self.string(key)) + body)

    def sample(self, s: LockSample) -> bytes:
        labels: List[Tuple[str, Union[str, int]]] = [
            ("lock name", s.lock_name),
            ("lock kind", s.lock_kind),
            ("thread id", s.thread_id),
            ("thread native id", s.thread_native_id),
            ("thread name", s.thread_name),
        ]
        if s.task_id is not None:
            labels.append(("task id", s.task_id))
        if s.task_name is not None:
            labels.append(("task name", s.task_name))
        if s.timed_out:
            labels.append((OUTCOME_LABEL, TIMED_OUT))
        values = [s.acquire_count, s.acquire_wait_ns, s.contended_count, s.release_count,
                  s.release_hold_ns, s.blocking_hold_ns, s.condition_wait_ns, 0, 0]
        return (
            _packed_field(_SAMPLE_LOCATION_ID, [self.location(f) for f in s.frames])
            + _packed_field(_SAMPLE_VALUE, values)
            + b"".join(self.label(k, v) for k, v in labels)
        )

    def totals(self, t: LockTotals) -> bytes:
        values = [0, 0, 0, 0, 0, 0, 0, t.contended_count, t.wait_ns]
        return (
            _packed_field(_SAMPLE_LOCATION_ID, [self.location(t.site)])
            + _packed_field(_SAMPLE_VALUE, values)
            + self.label("lock name", t.lock_name)
            + self.label("lock kind", t.lock_kind)
            + self.label(MAX_WAIT_LABEL, t.max_wait_ns, "nanoseconds")
            + self.label(TIMEOUTS_LABEL, t.timeouts)
        )


def encode(snapshot: Snapshot) -> bytes:
    """Serialize a snapshot as a gzip-compressed pprof profile, one pprof sample per LockSample."""
    b = _ProfileBuilder()
    parts = [_len_field(_PROFILE_SAMPLE_TYPE, b.value_type(t, u)) for t, u in SAMPLE_TYPES]
    parts += [_len_field(_PROFILE_SAMPLE, b.sample(s)) for s in snapshot.samples]
    parts += [_len_field(_PROFILE_SAMPLE, b.totals(t)) for t in snapshot.lock_totals]
    # One mapping flagged as already symbolized, so pprof does not try to symbolize addresses.
    parts.append(
        _len_field(
            _PROFILE_MAPPING,
            _int_field(_MAPPING_ID, _MAPPING_ID_PYTHON)
            + _int_field(_MAPPING_HAS_FUNCTIONS, 1)
            + _int_field(_MAPPING_HAS_FILENAMES, 1)
            + _int_field(_MAPPING_HAS_LINE_NUMBERS, 1),
        )
    )
    for (function_id, line), location_id in b.locations.items():
        line_msg = _int_field(_LINE_FUNCTION_ID, function_id) + _int_field(_LINE_LINE, line)
        parts.append(
            _len_field(
                _PROFILE_LOCATION,
                _int_field(_LOCATION_ID, location_id)
                + _int_field(_LOCATION_MAPPING_ID, _MAPPING_ID_PYTHON)
                + _len_field(_LOCATION_LINE, line_msg),
            )
        )
    for (name, filename), function_id in b.functions.items():
        name_index = b.string(name)
        parts.append(
            _len_field(
                _PROFILE_FUNCTION,
                _int_field(_FUNCTION_ID, function_id)
                + _int_field(_FUNCTION_NAME, name_index)
                + _int_field(_FUNCTION_SYSTEM_NAME, name_index)
                + _int_field(_FUNCTION_FILENAME, b.string(filename)),
            )
        )
    comments = list(snapshot.comments)
    comments += [wait.describe() for wait in snapshot.long_waits]
    if snapshot.dropped_events > 0:
        comments.append(f"dropped events: {snapshot.dropped_events}")
    tail = [
        _int_field(_PROFILE_TIME_NANOS, snapshot.start_ns),
        _int_field(_PROFILE_DURATION_NANOS, snapshot.duration_ns),
        _len_field(_PROFILE_PERIOD_TYPE, b.value_type(*SAMPLE_TYPES[0])),
        _int_field(_PROFILE_PERIOD, 1),  # values are already upscaled by the sampling rate
        _packed_field(_PROFILE_COMMENT, [b.string(c) for c in comments]),
        _int_field(_PROFILE_DEFAULT_SAMPLE_TYPE, b.string(_DEFAULT_SAMPLE_TYPE)),
    ]
    # Written after everything else is built: building is what fills the string table.
    parts += [_len_field(_PROFILE_STRING_TABLE, _utf8(s)) for s in b.strings]
    return gzip.compress(b"".join(parts + tail), mtime=0)  # mtime=0: reproducible output


# ---------------------------------------------------------------------------------------------
# Decoding


@dataclass(frozen=True)
class ValueType:
    type: str
    unit: str


@dataclass
class DecodedSample:
    """One pprof Sample with its locations resolved to frames and its labels to plain values."""

    values: List[int]
    location_ids: List[int]  # leaf first
    frames: List[Frame]  # leaf first; a location with inlined lines gives several frames
    labels: Dict[str, Union[str, int]]


@dataclass
class DecodedProfile:
    """A parsed pprof Profile; ids are the profile's own Function and Location ids."""

    sample_types: List[ValueType]
    samples: List[DecodedSample]
    string_table: List[str]
    functions: Dict[int, Tuple[str, str]]  # function id -> (name, filename)
    locations: Dict[int, List[Tuple[int, int]]]  # location id -> [(function id, line)]
    time_nanos: int = 0
    duration_nanos: int = 0
    period_type: Optional[ValueType] = None
    period: int = 0
    comments: List[str] = field(default_factory=list)
    default_sample_type: Optional[str] = None  # None when the profile leaves it unset

    def value_index(self, type_: str) -> int:
        """The index in Sample.values of the sample type named type_ (ValueError if absent)."""
        for i, value_type in enumerate(self.sample_types):
            if value_type.type == type_:
                return i
        raise ValueError(f"the profile has no sample type {type_!r}")


def _read_varint(buf: bytes, pos: int, where: str) -> Tuple[int, int]:
    result = shift = 0
    for i in range(pos, min(pos + 10, len(buf))):
        byte = buf[i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if result >= _U64:
                raise ProfileFormatError(f"varint overflows 64 bits in {where}")
            return result, i + 1
        shift += 7
    if pos + 10 <= len(buf):
        raise ProfileFormatError(f"varint longer than 10 bytes in {where}")
    raise ProfileFormatError(f"truncated varint in {where}")


def _iter_fields(buf: bytes, where: str) -> Iterator[Tuple[int, int, Union[int, bytes]]]:
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos, where)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProfileFormatError(f"field number 0 in {where}")
        value: Union[int, bytes]
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos, where)
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos, where)
            if size > end - pos:
                raise ProfileFormatError(f"field {number} runs past the end of {where}")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if size > end - pos:
                raise ProfileFormatError(f"field {number} runs past the end of {where}")
            value, pos = int.from_bytes(buf[pos : pos + size], "little"), pos + size
        else:
            raise ProfileFormatError(f"bad wire type {wire} for field {number} in {where}")
        yield number, wire, value


def _signed(n: int) -> int:
    return n - _U64 if n >= 1 << 63 else n


class _Message:
    """The fields of one protobuf message, with typed accessors that validate wire types."""

    def __init__(self, buf: bytes, where: str) -> None:
        self.where = where
        self.fields: Dict[int, List[Tuple[int, Union[int, bytes]]]] = {}
        for number, wire, value in _iter_fields(buf, where):
            self.fields.setdefault(number, []).append((wire, value))

    def has(self, number: int) -> bool:
        return number in self.fields

    def scalar(self, number: int, signed: bool = True) -> int:
        occurrences = self.fields.get(number)
        if not occurrences:
            return 0
        wire, value = occurrences[-1]  # protobuf: the last occurrence of a scalar wins
        if wire != _VARINT:
            raise ProfileFormatError(
                f"field {number} of {self.where} has wire type {wire}, expected a varint"
            )
        return _signed(value) if signed else value  # type: ignore[arg-type]

    def repeated(self, number: int, signed: bool = True) -> List[int]:
        """A repeated integer field, accepting both packed and unpacked encodings."""
        out: List[int] = []
        for wire, value in self.fields.get(number, ()):
            if wire == _VARINT:
                out.append(value)  # type: ignore[arg-type]
            elif isinstance(value, bytes):  # wire type _LEN: a packed run of varints
                pos, where = 0, f"packed field {number} of {self.where}"
                while pos < len(value):
                    n, pos = _read_varint(value, pos, where)
                    out.append(n)
            else:
                raise ProfileFormatError(
                    f"field {number} of {self.where} has wire type {wire}, expected an integer"
                )
        return [_signed(n) for n in out] if signed else out

    def blobs(self, number: int) -> List[bytes]:
        out = []
        for wire, value in self.fields.get(number, ()):
            if wire != _LEN:
                raise ProfileFormatError(
                    f"field {number} of {self.where} has wire type {wire}, "
                    "expected length-delimited"
                )
            out.append(value)
        return out  # type: ignore[return-value]

    def messages(self, number: int, what: str) -> List[_Message]:
        return [_Message(blob, what) for blob in self.blobs(number)]


def _ungzip(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except EOFError:
        raise ProfileFormatError("truncated gzip data (the compressed stream ends early)") from None
    except (OSError, zlib.error) as e:  # BadGzipFile is an OSError
        raise ProfileFormatError(f"bad gzip data: {e}") from None


def decode(data: bytes) -> DecodedProfile:
    """Parse a pprof profile, gzip-compressed or raw; raise ProfileFormatError if malformed."""
    data = bytes(data)
    if data[:2] == _GZIP_MAGIC:  # never a valid protobuf start: wire type 7 is undefined
        data = _ungzip(data)
    if not data:
        raise ProfileFormatError("empty profile")
    profile = _Message(data, "Profile")

    # surrogateescape: keep non-UTF-8 bytes (e.g. filenames) instead of rejecting the profile.
    strings = [b.decode("utf-8", "surrogateescape") for b in profile.blobs(_PROFILE_STRING_TABLE)]
    if not strings or strings[0] != "":
        raise ProfileFormatError('string_table[0] must be ""')

    def string(index: int, what: str) -> str:
        if not 0 <= index < len(strings):
            raise ProfileFormatError(
                f"{what}: string index {index} out of range (table has {len(strings)} entries)"
            )
        return strings[index]

    def value_type(m: _Message) -> ValueType:
        return ValueType(
            string(m.scalar(_VALUE_TYPE_TYPE), "ValueType.type"),
            string(m.scalar(_VALUE_TYPE_UNIT), "ValueType.unit"),
        )

    def unique_id(m: _Message, number: int, seen: Container[int], what: str) -> int:
        id_ = m.scalar(number, signed=False)
        if id_ == 0 or id_ in seen:
            raise ProfileFormatError(f"{what} id {id_} is zero or duplicated")
        return id_

    mapping_ids: Set[int] = set()
    for m in profile.messages(_PROFILE_MAPPING, "Mapping"):
        mapping_ids.add(unique_id(m, _MAPPING_ID, mapping_ids, "mapping"))
        string(m.scalar(_MAPPING_FILENAME), "Mapping.filename")
        string(m.scalar(_MAPPING_BUILD_ID), "Mapping.build_id")

    functions: Dict[int, Tuple[str, str]] = {}
    for m in profile.messages(_PROFILE_FUNCTION, "Function"):
        id_ = unique_id(m, _FUNCTION_ID, functions, "function")
        string(m.scalar(_FUNCTION_SYSTEM_NAME), "Function.system_name")
        functions[id_] = (
            string(m.scalar(_FUNCTION_NAME), "Function.name"),
            string(m.scalar(_FUNCTION_FILENAME), "Function.filename"),
        )
        m.scalar(_FUNCTION_START_LINE)  # validates the wire type

    locations: Dict[int, List[Tuple[int, int]]] = {}
    for m in profile.messages(_PROFILE_LOCATION, "Location"):
        id_ = unique_id(m, _LOCATION_ID, locations, "location")
        mapping_id = m.scalar(_LOCATION_MAPPING_ID, signed=False)
        if mapping_id and mapping_id not in mapping_ids:
            raise ProfileFormatError(f"location {id_} refers to unknown mapping id {mapping_id}")
        lines = []
        for line in m.messages(_LOCATION_LINE, "Line"):
            function_id = line.scalar(_LINE_FUNCTION_ID, signed=False)
            if function_id not in functions:
                raise ProfileFormatError(
                    f"location {id_} refers to unknown function id {function_id}"
                )
            lines.append((function_id, line.scalar(_LINE_LINE)))
        locations[id_] = lines

    sample_types = [value_type(m) for m in profile.messages(_PROFILE_SAMPLE_TYPE, "ValueType")]
    samples = []
    for m in profile.messages(_PROFILE_SAMPLE, "Sample"):
        values = m.repeated(_SAMPLE_VALUE)
        if len(values) != len(sample_types):
            raise ProfileFormatError(
                f"sample has {len(values)} values "
                f"but the profile has {len(sample_types)} sample types"
            )
        location_ids = m.repeated(_SAMPLE_LOCATION_ID, signed=False)
        frames = []
        for location_id in location_ids:
            if location_id not in locations:
                raise ProfileFormatError(f"sample refers to unknown location id {location_id}")
            for function_id, line_no in locations[location_id]:
                name, filename = functions[function_id]
                frames.append(Frame(name, filename, line_no))
        labels: Dict[str, Union[str, int]] = {}
        for label in m.messages(_SAMPLE_LABEL, "Label"):
            key = string(label.scalar(_LABEL_KEY), "Label.key")
            string(label.scalar(_LABEL_NUM_UNIT), "Label.num_unit")
            # A present str field makes a string label even when it is "" (see encode).
            if label.has(_LABEL_STR):
                labels[key] = string(label.scalar(_LABEL_STR), "Label.str")
            else:
                labels[key] = label.scalar(_LABEL_NUM)
        samples.append(DecodedSample(values, location_ids, frames, labels))

    string(profile.scalar(_PROFILE_DROP_FRAMES), "Profile.drop_frames")
    string(profile.scalar(_PROFILE_KEEP_FRAMES), "Profile.keep_frames")
    period_types = profile.messages(_PROFILE_PERIOD_TYPE, "ValueType")
    default_index = profile.scalar(_PROFILE_DEFAULT_SAMPLE_TYPE)
    return DecodedProfile(
        sample_types=sample_types,
        samples=samples,
        string_table=strings,
        functions=functions,
        locations=locations,
        time_nanos=profile.scalar(_PROFILE_TIME_NANOS),
        duration_nanos=profile.scalar(_PROFILE_DURATION_NANOS),
        period_type=value_type(period_types[-1]) if period_types else None,
        period=profile.scalar(_PROFILE_PERIOD),
        comments=[string(i, "Profile.comment") for i in profile.repeated(_PROFILE_COMMENT)],
        default_sample_type=string(default_index, "Profile.default_sample_type") or None,
    )


def read_profile(path: str) -> DecodedProfile:
    """Read and decode the profile file at path (gzip-compressed or not, from lockprof or any
    other pprof writer); any problem raises ProfileReadError naming the file."""
    if os.path.isdir(path):
        raise ProfileReadError(f"{path}: is a directory, not a profile file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ProfileReadError(f"{path}: no such file") from None
    except OSError as e:
        raise ProfileReadError(f"{path}: cannot read it: {e.strerror or e}") from None
    if not data:
        raise ProfileReadError(f"{path}: empty file, not a profile")
    try:
        return decode(data)
    except ProfileFormatError as e:
        raise ProfileReadError(f"{path}: not a pprof profile: {e}") from None


def read_profiles(paths: Sequence[str], progress_to: Optional[TextIO] = None) -> List[DecodedProfile]:
    """read_profile() of each path, counting progress on progress_to when it is a terminal."""
    profiles = []
    with Progress(progress_to, "reading profiles", len(paths)) as progress:
        for done, path in enumerate(paths):
            progress.update(done)
            profiles.append(read_profile(path))
    return profiles


# ---------------------------------------------------------------------------------------------
# Writing


def write_atomic(path: str, data: bytes) -> None:
    """Write data to path so readers see either the old file or the complete new one."""
    directory = os.path.dirname(os.path.abspath(path))
    # Same directory as path, so os.replace is a rename within one filesystem.
    fd, tmp_path = tempfile.mkstemp(
        prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
