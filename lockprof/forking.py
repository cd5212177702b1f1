"""What lockprof does around os.fork(): the child starts with profiler state of its own.

Objects registered with call_after_fork_in_child() (collectors, profilers, `lockprof run`'s
final flush) get their _after_fork_in_child() called in every fork child, before the child
runs any other code of the program's. Those hooks replace what the parent owned: a lock
another thread held at the fork, or an exporter thread the child does not have, is never
waited on.

The asynchronous signals are blocked from just before the fork until the hooks are done, in
both processes: a signal that reaches the child meanwhile stays pending (never lost) and is
delivered once the child's state is its own, with the dispositions the child then has (the
default action where lockprof's handler was the only one). No handler can thus run in the
middle of a hook and stop a profiler whose locks are still the parent's.
"""

from __future__ import annotations

import os
import signal
import sys
import weakref
from typing import Any, Dict

from lockprof._lock import original_thread_attribute

_get_ident = original_thread_attribute("get_ident")

# Started collectors and profilers, `lockprof run`'s FinalFlush (weakly held: a forgotten one
# is not kept alive for it).
_FORK_AWARE: "weakref.WeakSet[Any]" = weakref.WeakSet()

# Faults are delivered to the thread that causes them whatever the mask (blocked, they kill):
# only the asynchronous signals are held back.
_SYNCHRONOUS = {getattr(signal, name) for name in
                ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS", "SIGABRT")
                if hasattr(signal, name)}
_CAN_BLOCK = hasattr(signal, "pthread_sigmask") and hasattr(signal, "valid_signals")
_ASYNCHRONOUS = (set(signal.valid_signals()) - _SYNCHRONOUS) if _CAN_BLOCK else set()

# The signal mask each forking thread had before its fork, to restore after it.
_masks_before_fork: Dict[int, Any] = {}


def call_after_fork_in_child(obj: Any) -> None:
    """Have obj._after_fork_in_child() run in every fork child of this process."""
    _FORK_AWARE.add(obj)


def _before_fork() -> None:
    if _CAN_BLOCK and _FORK_AWARE:
        _masks_before_fork[_get_ident()] = signal.pthread_sigmask(signal.SIG_BLOCK, _ASYNCHRONOUS)


def _restore_mask() -> None:
    mask = _masks_before_fork.pop(_get_ident(), None)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _after_fork_in_child() -> None:
    # Only the forking thread lives on: other threads' saved masks are stale.
    mine = _masks_before_fork.get(_get_ident())
    _masks_before_fork.clear()
    try:
        for obj in list(_FORK_AWARE):
            try:
                obj._after_fork_in_child()
            except Exception as error:  # the child goes on, unprofiled by that object
                print(f"lockprof: could not reset {type(obj).__name__} in a forked child: {error!r}",
                      file=sys.stderr)
    finally:
        if mine is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mine)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_restore_mask,
                        after_in_child=_after_fork_in_child)
