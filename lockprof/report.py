"""A plain-text summary of the locks that cost the most: what `examples/` and stop() print."""

from __future__ import annotations

from typing import Dict, List

from lockprof.profile import LockSample, Snapshot


def _ms(ns: int) -> str:
    return f"{ns / 1e6:,.1f}"


def top_locks(snapshot: Snapshot, limit: int = 10) -> str:
    """A table of the `limit` locks with the most total wait, with each one's hottest stack."""
    by_lock: Dict[str, List[LockSample]] = {}
    for sample in snapshot.samples:
        by_lock.setdefault(sample.lock_name, []).append(sample)
    totals = snapshot.totals_by_lock()
    ranked = sorted(totals, key=lambda name: (totals[name][1], totals[name][3]), reverse=True)[:limit]
    if not ranked:
        return "lockprof: no lock activity was captured"
    header = f"{'lock':<48} {'kind':<6} {'acquires':>10} {'wait ms':>10} {'hold ms':>10}"
    lines = [header, "-" * len(header)]
    for name in ranked:
        acquires, wait_ns, _, hold_ns = totals[name]
        kind = by_lock[name][0].lock_kind
        shown = name if len(name) <= 48 else "..." + name[-45:]
        lines.append(f"{shown:<48} {kind:<6} {acquires:>10,} {_ms(wait_ns):>10} {_ms(hold_ns):>10}")
        hottest = max(by_lock[name], key=lambda s: (s.acquire_wait_ns, s.release_hold_ns))
        for frame in hottest.frames[:3]:
            lines.append(f"    at {frame.name} ({frame.filename}:{frame.line})")
    if snapshot.dropped_events:
        lines.append(f"({snapshot.dropped_events} captured events did not fit the event table)")
    return "\n".join(lines)
