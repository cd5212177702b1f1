"""Turns the core's raw references into what a profile shows: names, paths and line numbers.

The compiled core stores code objects and instruction offsets; resolving them costs far more
than capturing them, so it happens here, at export or at a lock's first captured release (after
the native lock is released), never inside a lock operation.
"""

from __future__ import annotations

import os
import sys
import types
from functools import lru_cache
from typing import Any, Iterable, Optional, Tuple

from lockprof.profile import Frame

_SENTINEL = object()


@lru_cache(maxsize=65536)
def line_of(code: types.CodeType, offset: int) -> int:
    """The source line of the instruction at byte `offset` in `code` (0 when unknown)."""
    if hasattr(code, "co_lines"):  # 3.10+
        for start, end, line in code.co_lines():
            if start <= offset < end:
                return line if line is not None else 0
        return code.co_firstlineno
    import dis  # 3.9: the line table is only reachable through dis

    line = code.co_firstlineno
    for start, start_line in dis.findlinestarts(code):
        if start > offset:
            break
        line = start_line
    return line


def function_name(code: types.CodeType) -> str:
    """The qualified name where the interpreter records one (3.11+), else the plain name."""
    return getattr(code, "co_qualname", code.co_name)


@lru_cache(maxsize=8192)
def display_path(filename: str) -> str:
    """`filename` relative to the sys.path entry it lives under (`app/cache.py`), so that a
    lock's site names its module's path and not only a file basename."""
    if not os.path.isabs(filename):
        return filename
    best = ""
    for entry in sys.path:
        root = os.path.abspath(entry or os.curdir)
        if filename.startswith(root.rstrip(os.sep) + os.sep) and len(root) > len(best):
            best = root
    return os.path.relpath(filename, best) if best else filename


def site(code: Optional[types.CodeType], offset: int) -> str:
    """`path:line` of an instruction, or `<unknown>` without code."""
    if code is None:
        return "<unknown>"
    return f"{display_path(code.co_filename)}:{line_of(code, offset)}"


def lock_display_name(info: Any) -> str:
    """The lock name profiles use: `path:line:variable`, or `path:line` while unnamed."""
    where = site(info.created_code, info.created_offset)
    return f"{where}:{info.name}" if info.name else where


def resolve_frames(frames: Iterable[Tuple[types.CodeType, int]], omitted: int) -> Tuple[Frame, ...]:
    """Frames for (code, offset) pairs, leaf first, plus one synthetic frame when cut."""
    resolved = [
        Frame(function_name(code), code.co_filename, line_of(code, offset)) for code, offset in frames
    ]
    if omitted > 0:
        resolved.append(Frame(f"<{omitted} frames omitted>", "", 0))
    return tuple(resolved)


# --------------------------------------------------------------------------- lock names


def find_lock_name(lock: object, frame: Optional[types.FrameType]) -> Optional[str]:
    """The variable or attribute `lock` is bound to, seen from the frame that released it and
    its caller: a local, an attribute of the method's first argument (instance dict or
    __slots__), or a module global. Reads only plain storage: never runs a property, a custom
    descriptor or __getattr__."""
    for _ in range(2):
        if frame is None:
            return None
        name = _name_in_frame(lock, frame)
        if name is not None:
            return name
        frame = frame.f_back
    return None


def _name_in_frame(lock: object, frame: types.FrameType) -> Optional[str]:
    code = frame.f_code
    local_values = frame.f_locals
    for name, value in local_values.items():
        if value is lock:
            return name
    if code.co_argcount > 0:
        owner = local_values.get(code.co_varnames[0], _SENTINEL)
        if owner is not _SENTINEL:
            name = _attribute_holding(owner, lock)
            if name is not None:
                return name
    for name, value in frame.f_globals.items():
        if value is lock:
            return name
    return None


def _attribute_holding(owner: object, lock: object) -> Optional[str]:
    for klass in type(owner).__mro__:
        klass_dict = vars(klass)
        slots = klass_dict.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            member = klass_dict.get(slot)
            if type(member) is not types.MemberDescriptorType:
                continue  # only a C-level slot read, never a property or custom descriptor
            try:
                value = member.__get__(owner, klass)
            except AttributeError:  # an unset slot
                continue
            if value is lock:
                return slot
        dict_descriptor = klass_dict.get("__dict__")
        if type(dict_descriptor) is types.GetSetDescriptorType:
            for name, value in dict_descriptor.__get__(owner, klass).items():
                if value is lock:
                    return name
            break  # the instance dict is found once, on the first class that provides it
    return None

