"""What the commands know about the terminal: colour, width, and progress lines.

Everything here is inert when the stream is not a terminal: piped output stays plain text and
progress lines never end up in a file or a log.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Optional, TextIO

COLOR_MODES = ("auto", "always", "never")


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def color_enabled(stream: TextIO, mode: str = "auto") -> bool:
    """Colour for `stream`: forced by mode, else on a terminal unless NO_COLOR or TERM=dumb."""
    if mode not in COLOR_MODES:
        raise ValueError(f"mode must be one of {', '.join(COLOR_MODES)}, got {mode!r}")
    if mode != "auto":
        return mode == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def width(stream: TextIO) -> Optional[int]:
    """The terminal's width in columns, or None (no limit) when the stream is not a terminal."""
    if not is_terminal(stream):
        return None
    return shutil.get_terminal_size().columns


class Style:
    """ANSI styles, or nothing at all when colour is off."""

    _CODES = {"bold": "1", "dim": "2", "underline": "4", "red": "31", "yellow": "33", "cyan": "36"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles or not text:
            return text
        codes = ";".join(self._CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


class Progress:
    """A one-line counter ("reading profiles 12/40") rewritten in place with \\r on a terminal.

    Nothing is shown for work that ends within `delay` seconds, and at most `rate` updates a
    second are written; the line is erased when the work is done.
    """

    def __init__(self, stream: Optional[TextIO], what: str, total: int, *, delay: float = 0.3,
                 rate: float = 10.0) -> None:
        # None when silent: no stream, or not a terminal.
        self.stream = stream if stream is not None and is_terminal(stream) else None
        self.what = what
        self.total = total
        self._interval = 1.0 / rate
        self._next_write = time.monotonic() + delay
        self._shown = 0  # characters of the line on screen

    def update(self, done: int) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if now < self._next_write:
            return
        self._next_write = now + self._interval
        line = f"{self.what} {done:,}/{self.total:,}"
        # Pad with spaces so a shorter line fully covers the previous one.
        self.stream.write("\r" + line.ljust(self._shown))
        self.stream.flush()
        self._shown = len(line)

    def done(self) -> None:
        if self._shown and self.stream is not None:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done()
