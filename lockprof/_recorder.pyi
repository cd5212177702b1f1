from types import CodeType
from typing import Any, Dict, List, Optional, Tuple

from lockprof._sampler import CaptureSampler

# (lock_info, frames, omitted, thread_id, thread_native_id, task_id, task_name,
#  acquire_count, acquire_wait_ns, release_count, release_hold_ns)
Record = Tuple[Any, Tuple[Tuple[CodeType, int], ...], int, int, int, Optional[int], Optional[str], int, int, int, int]

class Recorder:
    """The per-collector state the compiled locks record into: sampler, flag, event table."""

    active: bool
    @property
    def sampler(self) -> CaptureSampler: ...
    @property
    def max_frames(self) -> int: ...
    @property
    def entry_count(self) -> int: ...
    @property
    def max_entries(self) -> int: ...
    def __init__(self, sampler: CaptureSampler, max_frames: int = 64, max_entries: int = 4096) -> None: ...
    def discard(self) -> None: ...
    def drain(self) -> Tuple[List[Record], int, Dict[int, str]]: ...
