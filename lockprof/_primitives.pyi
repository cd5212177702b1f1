import abc
from typing import Any, Callable, Optional, TypeVar

from lockprof._recorder import LockInfo, Recorder

_T = TypeVar("_T", bound=type)

class ProfiledClass(abc.ABCMeta):
    """The metaclass of the profiled subclasses: an object of the original class (made before
    profiling, or where profiling does not apply) is still an instance of the patched name."""

    def __instancecheck__(cls, obj: Any) -> bool: ...
    def __subclasscheck__(cls, subclass: type) -> bool: ...

def original_class(cls: _T) -> _T:
    """The standard class behind a profiled one (looking through other collectors' classes)."""

def profiled_class(
    original: type,
    kind: str,
    recorder: Recorder,
    excludes: Callable[[Optional[str]], bool],
    lock_class: Optional[type] = ...,
) -> type:
    """The subclass of `original` (threading.Semaphore, asyncio.Lock, ...) that profiles its
    objects as `kind` for `recorder`; lock_class: for asyncio.Condition, the profiled
    asyncio.Lock class its own lock is made from."""

class _Profiled:
    """What every profiled class shares (pickling and copying as the original class)."""

    @property
    def _lp_info(self) -> Optional[LockInfo]:
        """The LockInfo the profile uses for this object, None where it is not profiled."""
