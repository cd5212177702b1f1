from types import CodeType
from typing import Any, Dict, List, Mapping, Optional, Tuple

from lockprof._sampler import CaptureSampler

Frames = Tuple[Tuple[CodeType, int], ...]  # (code, instruction offset), leaf first

def _classify_opcodes(opmap: Optional[Mapping[str, int]] = ...) -> None: ...

class LockInfo:
    """What the profile says about one profiled lock (or about all the locks one site makes,
    see Recorder.lock_info_at): its kind, creation site and name."""

    name: Optional[str]
    name_attempts: int
    owner: Any
    local_named: bool
    @property
    def site_named(self) -> bool:
        """Named by its creation site (the attribute, variable or local it stores its locks under,
        or its line alone), and shared by the locks it makes up to a limit: never named at a
        release."""
    @property
    def kind(self) -> str: ...
    @property
    def created_code(self) -> Optional[CodeType]: ...
    @property
    def created_offset(self) -> int: ...
    @property
    def module(self) -> Optional[str]: ...
    @property
    def site(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    def __init__(self, kind: str, created_code: Optional[CodeType], created_offset: int, module: Optional[str]) -> None: ...

class Recorder:
    """The per-collector state the compiled locks record into: sampler, flag, event table."""

    active: bool
    capture_budget: int  # wait, blocking-hold and condition-wait captures per second, at most
    @property
    def sampler(self) -> CaptureSampler: ...
    @property
    def max_frames(self) -> int: ...
    @property
    def wait_sample_interval(self) -> int: ...
    @property
    def interval_in_force(self) -> int: ...
    @property
    def entry_count(self) -> int: ...
    @property
    def max_entries(self) -> int: ...
    def __init__(self, sampler: CaptureSampler, max_frames: int = 64, max_entries: int = 4096,
                 wait_sample_interval: int = 1000000) -> None: ...
    def discard(self) -> None: ...
    def drain(self) -> Drained:
        """Take what was gathered since the last drain and reset it."""

class Captured:
    """Who was captured where: a lock, a stack, a thread and task, and the outcome of the wait."""

    @property
    def lock_info(self) -> LockInfo: ...
    @property
    def frames(self) -> Frames: ...
    @property
    def thread_id(self) -> int: ...
    @property
    def task_id(self) -> Optional[int]: ...
    @property
    def task_name(self) -> Optional[str]: ...
    @property
    def timed_out(self) -> bool: ...
    @property
    def span_id(self) -> Optional[int]:
        """The trace span active where the wait was captured (for counts: their longest
        captured wait's), None when none was; local_root_span_id is ddtrace's only."""
    @property
    def local_root_span_id(self) -> Optional[int]: ...
    @property
    def trace_id(self) -> Optional[int]: ...

class EventCounts(Captured):
    """The counts of one event table key since the last drain. acquire_count, release_count and
    release_hold_ns are raw (sampled at capture_pct); the other counts are already weighted."""

    @property
    def omitted(self) -> int: ...
    @property
    def thread_native_id(self) -> int: ...
    @property
    def acquire_count(self) -> int: ...
    @property
    def release_count(self) -> int: ...
    @property
    def release_hold_ns(self) -> int: ...
    @property
    def contended_count(self) -> float: ...
    @property
    def acquire_wait_ns(self) -> int: ...
    @property
    def blocking_hold_ns(self) -> int: ...
    @property
    def condition_wait_ns(self) -> int: ...
    @property
    def span_wait_ns(self) -> int:
        """The wait span_id's span had (0: no span)."""

class LockContention:
    """The exact contention of one lock since the last drain; lock_info is None for the sum over
    the locks beyond the tracking limit."""

    @property
    def lock_info(self) -> Optional[LockInfo]: ...
    @property
    def contended(self) -> int: ...
    @property
    def wait_ns(self) -> int: ...
    @property
    def max_wait_ns(self) -> int: ...
    @property
    def timeouts(self) -> int: ...

class LongWaitRecord(Captured):
    """One of the longest waits since the last drain, as it happened (the waiter's innermost
    frames)."""

    @property
    def wait_ns(self) -> int: ...

class Drained:
    """Everything one drain() took."""

    @property
    def events(self) -> List[EventCounts]: ...
    @property
    def lock_totals(self) -> List[LockContention]: ...
    @property
    def long_waits(self) -> List[LongWaitRecord]: ...  # longest first
    @property
    def dropped(self) -> int: ...  # events the full table had no room for
    @property
    def thread_names(self) -> Dict[int, str]: ...
    @property
    def max_interval(self) -> int: ...  # the largest wait sampling interval in force (ns)
