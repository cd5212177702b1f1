from types import CodeType
from typing import Any, Dict, List, Optional, Tuple

from lockprof._sampler import CaptureSampler

Frames = Tuple[Tuple[CodeType, int], ...]  # (code, instruction offset), leaf first

# (lock_info, frames, omitted, thread_id, thread_native_id, task_id, task_name, timed_out,
#  acquire_count, release_count, release_hold_ns, contended_count, acquire_wait_ns,
#  blocking_hold_ns, condition_wait_ns)
Record = Tuple[Any, Frames, int, int, int, Optional[int], Optional[str], bool,
               int, int, int, float, int, int, int]
# (lock_info or None for the locks beyond the tracking limit, contended, wait_ns, max_wait_ns, timeouts)
LockTotalsRecord = Tuple[Optional["LockInfo"], int, int, int, int]
# (wait_ns, lock_info, thread_id, task_id, task_name, timed_out, frames)
LongWaitRecord = Tuple[int, "LockInfo", int, Optional[int], Optional[str], bool, Frames]

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
    def drain(self) -> Tuple[List[Record], List[LockTotalsRecord], List[LongWaitRecord], int,
                             Dict[int, str], int]: ...
