"""Turns the core's raw references into what a profile shows: names, paths and line numbers.

The compiled core stores code objects and instruction offsets; resolving them costs far more
than capturing them, so it happens here, at export, never inside a lock operation. (Finding a
lock's variable name happens inside release() and so is compiled: see _lock.pyx.)
"""

from __future__ import annotations

import os
import sys
import types
from functools import lru_cache
from typing import Any, Dict, Iterable, Optional, Tuple

from lockprof.profile import Frame

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
    shown = os.path.relpath(filename, best) if best else filename
    return shown.replace(os.sep, "/")  # the same lock name on every platform


def site(code: Optional[types.CodeType], offset: int) -> str:
    """`path:line` of an instruction, or `<unknown>` without code."""
    if code is None:
        return "<unknown>"
    frame = frame_at(code, offset)
    return f"{display_path(frame.filename)}:{frame.line}"


def lock_display_name(info: Any) -> str:
    """The lock name profiles use: `path:line:variable`, or `path:line` while unnamed."""
    where = site(info.created_code, info.created_offset)
    return f"{where}:{info.name}" if info.name else where


# (id(code), offset) -> (code, Frame). Keyed by identity: code objects that differ only in
# their file name compare equal. Holding the code keeps its id from being reused.
_frames: Dict[Tuple[int, int], Tuple[types.CodeType, Frame]] = {}
_FRAMES_MAX = 65536


def frame_at(code: types.CodeType, offset: int) -> Frame:
    """The resolved Frame of one instruction; cached, since hot stacks repeat every export."""
    cached = _frames.get((id(code), offset))
    if cached is not None and cached[0] is code:
        return cached[1]
    frame = Frame(function_name(code), code.co_filename, line_of(code, offset))
    if len(_frames) >= _FRAMES_MAX:
        _frames.clear()
    _frames[(id(code), offset)] = (code, frame)
    return frame


def resolve_frames(frames: Iterable[Tuple[types.CodeType, int]], omitted: int) -> Tuple[Frame, ...]:
    """Frames for (code, offset) pairs, leaf first, plus one synthetic frame when cut."""
    resolved = [frame_at(code, offset) for code, offset in frames]
    if omitted > 0:
        resolved.append(Frame(f"<{omitted} frames omitted>", "", 0))
    return tuple(resolved)
