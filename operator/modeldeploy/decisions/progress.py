"""Progress marks: when did something last move? Pure; the shell keeps the marks in memory.

A start (a cache download, a loading vLLM replica) is judged by its progress, never by a fixed
budget: it fails only when its progress signature has not changed for `stall_seconds`. The
signature is any comparable value (bytes downloaded, the count of vLLM load lines seen). The
marks live in the operator's memory, not in status: after an operator restart every start gets
a fresh `stall_seconds`, which errs on the side of patience.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProgressMark:
    """The last progress signature seen and when it last changed (seconds, any monotonic clock)."""

    signature: Hashable
    since: float

    def advance(self, signature: Hashable, now: float) -> ProgressMark:
        """The mark after observing `signature` at `now`: `since` moves only when it changed."""
        return self if signature == self.signature else ProgressMark(signature, now)

    def idle_seconds(self, now: float) -> float:
        return max(0.0, now - self.since)

    def stalled(self, now: float, stall_seconds: float) -> bool:
        """True when nothing moved for longer than `stall_seconds`."""
        return self.idle_seconds(now) > stall_seconds


def observe(mark: ProgressMark | None, signature: Hashable, now: float) -> ProgressMark:
    """`mark.advance(signature, now)`, or a fresh mark for a start seen for the first time."""
    return ProgressMark(signature, now) if mark is None else mark.advance(signature, now)
