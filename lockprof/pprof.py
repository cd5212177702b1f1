"""Read lock profiles in the pprof format (perftools.profiles.Profile, gzip-compressed or not),
and the parts of the format its writer (lockprof.renderers.pprof) shares: field numbers, labels.

The protobuf wire format is parsed by hand so that reading a profile needs no third-party
package. Field numbers follow google/pprof proto/profile.proto. parse() gives the messages as
they are; decode() reads them as the Snapshot they were written from. How a Snapshot maps onto
pprof:
- each LockSample is a sample: its stack, its values in the columns of SAMPLE_TYPES, its lock,
  thread, task and outcome as labels;
- each LockTotals is a sample whose only frame is the lock's creation site, with its values in
  the exact columns and the labels MAX_WAIT_LABEL and TIMEOUTS_LABEL;
- each LongWait is a sample with no values, the waiter's frames and the label LONG_WAIT_LABEL;
- the sampling settings and the dropped events are one comment, METADATA_PREFIX and JSON; the
  other comments are for people (go tool pprof shows them) and are not read back.
Any other pprof file reads too: its own sample types and the lockprof labels it has.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import Any, Container, Dict, Iterator, List, Optional, Sequence, Set, TextIO, Tuple, Union

from lockprof._term import Progress
from lockprof.profile import SAMPLE_TYPES, Frame, LockSample, LockTotals, LongWait, Snapshot, ValueType

__all__ = [
    "CONTEXT_LABELS",
    "LOCK_KIND_LABEL",
    "LOCK_NAME_LABEL",
    "LOCK_SITE_LABEL",
    "LONG_WAIT_LABEL",
    "MAX_WAIT_LABEL",
    "METADATA_PREFIX",
    "OUTCOME_LABEL",
    "SPAN_WAIT_LABEL",
    "TIMED_OUT",
    "TIMEOUTS_LABEL",
    "ProfileFormatError",
    "ProfileReadError",
    "RawProfile",
    "RawSample",
    "decode",
    "parse",
    "read_profile",
    "read_profiles",
    "write_atomic",
]

# The labels of a lock sample; a lock's creation site is "file:line".
LOCK_NAME_LABEL, LOCK_KIND_LABEL, LOCK_SITE_LABEL = "lock name", "lock kind", "lock site"
# Who waited or held, on lock samples and long waits: (label, attribute, type of its values).
CONTEXT_LABELS = (
    ("thread id", "thread_id", int),
    ("thread native id", "thread_native_id", int),
    ("thread name", "thread_name", str),
    ("task id", "task_id", int),
    ("task name", "task_name", str),
    # The trace span active in that thread or task (ddtrace's label names; ids unsigned 64-bit,
    # stored in int64 labels as their two's complement, as ddtrace does), and its trace.
    ("span id", "span_id", "u64"),
    ("local root span id", "local_root_span_id", "u64"),
    ("trace id", "trace_id", str),
)
# On a lock sample with a span: the captured wait its span label stands for.
SPAN_WAIT_LABEL = "span wait"
# The label of a sample whose waits ended in a timeout.
OUTCOME_LABEL, TIMED_OUT = "acquire outcome", "timed out"
# The labels that make a sample a lock's exact totals, beside its name and kind.
MAX_WAIT_LABEL, TIMEOUTS_LABEL = "max wait", "timeouts"
# The label that makes a sample a long wait: its length.
LONG_WAIT_LABEL = "long wait"
# The comment holding the Snapshot fields no sample holds, as a JSON object.
METADATA_PREFIX = "lockprof metadata: "
METADATA_FIELDS = ("capture_pct", "wait_sample_interval_ns", "max_wait_sample_interval_ns", "dropped_events",
                   "root_pid")

# Wire types.
VARINT, I64, LEN, I32 = 0, 1, 2, 5

# Field numbers from profile.proto.
PROFILE_SAMPLE_TYPE, PROFILE_SAMPLE, PROFILE_MAPPING, PROFILE_LOCATION = 1, 2, 3, 4
PROFILE_FUNCTION, PROFILE_STRING_TABLE, PROFILE_DROP_FRAMES, PROFILE_KEEP_FRAMES = 5, 6, 7, 8
PROFILE_TIME_NANOS, PROFILE_DURATION_NANOS, PROFILE_PERIOD_TYPE, PROFILE_PERIOD = 9, 10, 11, 12
PROFILE_COMMENT, PROFILE_DEFAULT_SAMPLE_TYPE = 13, 14
VALUE_TYPE_TYPE, VALUE_TYPE_UNIT = 1, 2
SAMPLE_LOCATION_ID, SAMPLE_VALUE, SAMPLE_LABEL = 1, 2, 3
LABEL_KEY, LABEL_STR, LABEL_NUM, LABEL_NUM_UNIT = 1, 2, 3, 4
MAPPING_ID, MAPPING_FILENAME, MAPPING_BUILD_ID = 1, 5, 6
MAPPING_HAS_FUNCTIONS, MAPPING_HAS_FILENAMES, MAPPING_HAS_LINE_NUMBERS = 7, 8, 9
LOCATION_ID, LOCATION_MAPPING_ID, LOCATION_LINE = 1, 2, 4
LINE_FUNCTION_ID, LINE_LINE = 1, 2
FUNCTION_ID, FUNCTION_NAME, FUNCTION_SYSTEM_NAME = 1, 2, 3
FUNCTION_FILENAME, FUNCTION_START_LINE = 4, 5

MAPPING_ID_PYTHON = 1  # the only mapping lockprof writes
U64 = 1 << 64
GZIP_MAGIC = b"\x1f\x8b"


class ProfileFormatError(ValueError):
    """The bytes given to decode() are not a well-formed pprof profile."""


class ProfileReadError(ValueError):
    """A profile file could not be read or is not a profile; the message is one line that
    names the file and the problem (what the commands print before exiting with status 2)."""


# ---------------------------------------------------------------------------------------------
# The messages


@dataclass
class RawSample:
    """One pprof Sample with its locations resolved to frames and its labels to plain values."""

    values: List[int]
    location_ids: List[int]  # leaf first
    frames: List[Frame]  # leaf first; a location with inlined lines gives several frames
    labels: Dict[str, Union[str, int]]


@dataclass
class RawProfile:
    """A parsed pprof Profile; ids are the profile's own Function and Location ids."""

    sample_types: List[ValueType]
    samples: List[RawSample]
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
            if result >= U64:
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
        if wire == VARINT:
            value, pos = _read_varint(buf, pos, where)
        elif wire == LEN:
            size, pos = _read_varint(buf, pos, where)
            if size > end - pos:
                raise ProfileFormatError(f"field {number} runs past the end of {where}")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (I64, I32):
            size = 8 if wire == I64 else 4
            if size > end - pos:
                raise ProfileFormatError(f"field {number} runs past the end of {where}")
            value, pos = int.from_bytes(buf[pos : pos + size], "little"), pos + size
        else:
            raise ProfileFormatError(f"bad wire type {wire} for field {number} in {where}")
        yield number, wire, value


def _signed(n: int) -> int:
    return n - U64 if n >= 1 << 63 else n


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
        if wire != VARINT:
            raise ProfileFormatError(
                f"field {number} of {self.where} has wire type {wire}, expected a varint"
            )
        return _signed(value) if signed else value  # type: ignore[arg-type]

    def repeated(self, number: int, signed: bool = True) -> List[int]:
        """A repeated integer field, accepting both packed and unpacked encodings."""
        out: List[int] = []
        for wire, value in self.fields.get(number, ()):
            if wire == VARINT:
                out.append(value)  # type: ignore[arg-type]
            elif isinstance(value, bytes):  # wire type LEN: a packed run of varints
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
            if wire != LEN:
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


def parse(data: bytes) -> RawProfile:
    """Parse a pprof profile, gzip-compressed or raw; raise ProfileFormatError if malformed."""
    data = bytes(data)
    if data[:2] == GZIP_MAGIC:  # never a valid protobuf start: wire type 7 is undefined
        data = _ungzip(data)
    if not data:
        raise ProfileFormatError("empty profile")
    profile = _Message(data, "Profile")

    # surrogateescape: keep non-UTF-8 bytes (e.g. filenames) instead of rejecting the profile.
    strings = [b.decode("utf-8", "surrogateescape") for b in profile.blobs(PROFILE_STRING_TABLE)]
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
            string(m.scalar(VALUE_TYPE_TYPE), "ValueType.type"),
            string(m.scalar(VALUE_TYPE_UNIT), "ValueType.unit"),
        )

    def unique_id(m: _Message, number: int, seen: Container[int], what: str) -> int:
        id_ = m.scalar(number, signed=False)
        if id_ == 0 or id_ in seen:
            raise ProfileFormatError(f"{what} id {id_} is zero or duplicated")
        return id_

    mapping_ids: Set[int] = set()
    for m in profile.messages(PROFILE_MAPPING, "Mapping"):
        mapping_ids.add(unique_id(m, MAPPING_ID, mapping_ids, "mapping"))
        string(m.scalar(MAPPING_FILENAME), "Mapping.filename")
        string(m.scalar(MAPPING_BUILD_ID), "Mapping.build_id")

    functions: Dict[int, Tuple[str, str]] = {}
    for m in profile.messages(PROFILE_FUNCTION, "Function"):
        id_ = unique_id(m, FUNCTION_ID, functions, "function")
        string(m.scalar(FUNCTION_SYSTEM_NAME), "Function.system_name")
        functions[id_] = (
            string(m.scalar(FUNCTION_NAME), "Function.name"),
            string(m.scalar(FUNCTION_FILENAME), "Function.filename"),
        )
        m.scalar(FUNCTION_START_LINE)  # validates the wire type

    locations: Dict[int, List[Tuple[int, int]]] = {}
    for m in profile.messages(PROFILE_LOCATION, "Location"):
        id_ = unique_id(m, LOCATION_ID, locations, "location")
        mapping_id = m.scalar(LOCATION_MAPPING_ID, signed=False)
        if mapping_id and mapping_id not in mapping_ids:
            raise ProfileFormatError(f"location {id_} refers to unknown mapping id {mapping_id}")
        lines = []
        for line in m.messages(LOCATION_LINE, "Line"):
            function_id = line.scalar(LINE_FUNCTION_ID, signed=False)
            if function_id not in functions:
                raise ProfileFormatError(
                    f"location {id_} refers to unknown function id {function_id}"
                )
            lines.append((function_id, line.scalar(LINE_LINE)))
        locations[id_] = lines

    sample_types = [value_type(m) for m in profile.messages(PROFILE_SAMPLE_TYPE, "ValueType")]
    samples = []
    for m in profile.messages(PROFILE_SAMPLE, "Sample"):
        values = m.repeated(SAMPLE_VALUE)
        if len(values) != len(sample_types):
            raise ProfileFormatError(
                f"sample has {len(values)} values "
                f"but the profile has {len(sample_types)} sample types"
            )
        location_ids = m.repeated(SAMPLE_LOCATION_ID, signed=False)
        frames = []
        for location_id in location_ids:
            if location_id not in locations:
                raise ProfileFormatError(f"sample refers to unknown location id {location_id}")
            for function_id, line_no in locations[location_id]:
                name, filename = functions[function_id]
                frames.append(Frame(name, filename, line_no))
        labels: Dict[str, Union[str, int]] = {}
        for label in m.messages(SAMPLE_LABEL, "Label"):
            key = string(label.scalar(LABEL_KEY), "Label.key")
            string(label.scalar(LABEL_NUM_UNIT), "Label.num_unit")
            # A present str field makes a string label even when it is "" (see encode).
            if label.has(LABEL_STR):
                labels[key] = string(label.scalar(LABEL_STR), "Label.str")
            else:
                labels[key] = label.scalar(LABEL_NUM)
        samples.append(RawSample(values, location_ids, frames, labels))

    string(profile.scalar(PROFILE_DROP_FRAMES), "Profile.drop_frames")
    string(profile.scalar(PROFILE_KEEP_FRAMES), "Profile.keep_frames")
    period_types = profile.messages(PROFILE_PERIOD_TYPE, "ValueType")
    default_index = profile.scalar(PROFILE_DEFAULT_SAMPLE_TYPE)
    return RawProfile(
        sample_types=sample_types,
        samples=samples,
        string_table=strings,
        functions=functions,
        locations=locations,
        time_nanos=profile.scalar(PROFILE_TIME_NANOS),
        duration_nanos=profile.scalar(PROFILE_DURATION_NANOS),
        period_type=value_type(period_types[-1]) if period_types else None,
        period=profile.scalar(PROFILE_PERIOD),
        comments=[string(i, "Profile.comment") for i in profile.repeated(PROFILE_COMMENT)],
        default_sample_type=string(default_index, "Profile.default_sample_type") or None,
    )


# ---------------------------------------------------------------------------------------------
# The Snapshot they were written from

_SAMPLE_TYPES = {t.type: t for t in SAMPLE_TYPES}


def decode(data: bytes) -> Snapshot:
    """Read a pprof profile, gzip-compressed or raw, as a Snapshot (see the module's docstring);
    raise ProfileFormatError if it is malformed."""
    raw = parse(data)
    metadata = _metadata(raw.comments)
    profile = Snapshot([], raw.time_nanos, raw.time_nanos + raw.duration_nanos,
                       sample_types=raw.sample_types, **metadata)
    for sample in raw.samples:
        labels = _Labels(sample.labels)
        lock_name, lock_kind = labels.text(LOCK_NAME_LABEL), labels.text(LOCK_KIND_LABEL)
        timed_out = labels.text(OUTCOME_LABEL) == TIMED_OUT
        if MAX_WAIT_LABEL in sample.labels:
            site = sample.frames[0] if sample.frames else Frame(lock_name, "", 0)
            totals = LockTotals(lock_name, lock_kind, site, max_wait_ns=labels.number(MAX_WAIT_LABEL),
                                timeouts=labels.number(TIMEOUTS_LABEL))
            for value_type, value in zip(raw.sample_types, sample.values):
                known = _SAMPLE_TYPES.get(value_type.type)
                if known is not None and known.exact:
                    setattr(totals, known.field, value)
            profile.lock_totals.append(totals)
        elif LONG_WAIT_LABEL in sample.labels:
            context = labels.context()
            context.pop("thread_native_id")  # a wait's thread is known by its id
            profile.long_waits.append(LongWait(lock_name, labels.number(LONG_WAIT_LABEL),
                                               frames=tuple(sample.frames), timed_out=timed_out,
                                               **context))
        else:
            lock_sample = LockSample(lock_name, lock_kind, tuple(sample.frames),
                                     site=labels.site(lock_name), timed_out=timed_out,
                                     span_wait_ns=labels.number(SPAN_WAIT_LABEL), **labels.context())
            for value_type, value in zip(raw.sample_types, sample.values):
                known = _SAMPLE_TYPES.get(value_type.type)
                if known is None:
                    lock_sample.other_values[value_type.type] = value
                elif not known.exact:
                    setattr(lock_sample, known.field, value)
            profile.samples.append(lock_sample)
    profile.long_waits.sort(key=lambda wait: wait.wait_ns, reverse=True)
    return profile


class _Labels:
    """A sample's labels read as the Snapshot fields they hold; a label of the wrong type (a
    number where a name was written, or the reverse) is a malformed profile."""

    def __init__(self, labels: Dict[str, Union[str, int]]) -> None:
        self.labels = labels

    def text(self, key: str) -> str:
        value = self.labels.get(key, "")
        return value if isinstance(value, str) else str(value)

    def number(self, key: str) -> int:
        value = self.labels.get(key, 0)
        if not isinstance(value, int):
            raise ProfileFormatError(f"label {key!r} has text {value!r}, expected a number")
        return value

    def context(self) -> Dict[str, Any]:
        """The thread and task fields, None where a label is missing (thread_name: "")."""
        context: Dict[str, Any] = {}
        for key, attribute, kind in CONTEXT_LABELS:
            present = key in self.labels
            if not present:
                context[attribute] = None
            elif kind is str:
                context[attribute] = self.text(key)
            else:
                context[attribute] = self.number(key) % U64 if kind == "u64" else self.number(key)
        context["thread_name"] = context["thread_name"] or ""
        return context

    def site(self, lock_name: str) -> Optional[Frame]:
        if LOCK_SITE_LABEL not in self.labels:
            return None
        filename, _, line = self.text(LOCK_SITE_LABEL).rpartition(":")
        try:
            return Frame(lock_name, filename, int(line))
        except ValueError:
            raise ProfileFormatError(f"label {LOCK_SITE_LABEL!r} is not file:line") from None


def _metadata(comments: List[str]) -> Dict[str, Any]:
    """The Snapshot fields of the metadata comment (the last, if several); none in a profile of
    another tool."""
    found = [c[len(METADATA_PREFIX):] for c in comments if c.startswith(METADATA_PREFIX)]
    if not found:
        return {"capture_pct": 0.0}
    try:
        metadata = json.loads(found[-1])
    except (ValueError, RecursionError) as error:
        raise ProfileFormatError(f"the metadata comment is not JSON: {error}") from None
    if not isinstance(metadata, dict):
        raise ProfileFormatError("the metadata comment is not a JSON object")
    fields = {name: metadata.get(name, 0) for name in METADATA_FIELDS}
    for name, value in fields.items():
        wanted = (int, float) if name == "capture_pct" else int
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise ProfileFormatError(f"the metadata comment's {name} is {value!r}, not a number")
    return fields


def read_profile(path: str) -> Snapshot:
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


def read_profiles(paths: Sequence[str], progress_to: Optional[TextIO] = None) -> List[Snapshot]:
    """read_profile() of each path, counting progress on progress_to when it is a terminal."""
    profiles = []
    with Progress(progress_to, "reading profiles", len(paths)) as progress:
        for done, path in enumerate(paths):
            progress.update(done)
            profiles.append(read_profile(path))
    return profiles


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
