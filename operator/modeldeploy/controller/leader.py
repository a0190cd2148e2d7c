"""Leader election on a `coordination.k8s.io/v1` Lease: what one replica does next. Pure.

The semantics are client-go's `tools/leaderelection` (leaderelection.go, `tryAcquireOrRenew`):
a Lease is free when it has no `holderIdentity` or its holder has not renewed within
`leaseDurationSeconds` (measured from `renewTime`); a replica takes a free Lease (new
`acquireTime`, `leaseTransitions` + 1 when the holder changes), renews the Lease it holds (new
`renewTime` only), and stands by while another holder's Lease is fresh. The shell
(`shell.leader`) reads the Lease, calls `decide`, and writes the result with the read
`resourceVersion` as a precondition, so two replicas racing for one free Lease cannot both win.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# metav1.MicroTime's wire format (k8s.io/apimachinery/pkg/apis/meta/v1/micro_time.go, RFC3339Micro).
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def micro_time(ts: float) -> str:
    """Epoch seconds as a Lease timestamp (`renewTime`, `acquireTime`: RFC 3339, UTC, µs)."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime(MICRO_TIME)


def parse_time(value: Any) -> float | None:
    """A Lease timestamp as epoch seconds; None when missing or unreadable (never raises)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class LeaseState:
    """The part of a Lease's spec election reads. Times are epoch seconds, None when unset."""

    holder: str | None
    duration: int | None  # leaseDurationSeconds, s
    renew_time: float | None
    acquire_time: float | None
    transitions: int

    @classmethod
    def from_object(cls, lease: Mapping[str, Any]) -> LeaseState:
        """From a Lease object (a dict as the API returns it); unreadable fields count as unset."""
        spec = lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return cls(
            holder=str(spec["holderIdentity"]) if spec.get("holderIdentity") else None,
            duration=duration if isinstance(duration, int) and duration > 0 else None,
            renew_time=parse_time(spec.get("renewTime")),
            acquire_time=parse_time(spec.get("acquireTime")),
            transitions=transitions if isinstance(transitions, int) and transitions >= 0 else 0,
        )

    def expired(self, now: float, default_duration: int) -> bool:
        """Free to take: nobody holds it, or its holder has not renewed within the duration.
        A renewTime in the future (clock skew) counts as fresh until now passes it."""
        if self.holder is None or self.renew_time is None:
            return True
        return now > self.renew_time + (self.duration or default_duration)


class Action(StrEnum):
    CREATE = "create"  # no Lease yet: create it, holding it
    RENEW = "renew"  # ours: new renewTime
    ACQUIRE = "acquire"  # free or expired: take it over
    STANDBY = "standby"  # another replica holds a fresh Lease


@dataclass(frozen=True)
class Election:
    """What to do, and the Lease spec to write (None for STANDBY)."""

    action: Action
    spec: dict[str, Any] | None

    @property
    def leading(self) -> bool:
        """Whether, once the write succeeds, this replica leads."""
        return self.action is not Action.STANDBY


def decide(lease: LeaseState | None, now: float, identity: str, duration: int) -> Election:
    """One round of election for the replica `identity` at `now` (epoch seconds).

    `lease` is None when no Lease exists. `duration` (s) is the leaseDurationSeconds this
    replica writes, and the one assumed for a Lease that does not say. The returned spec is the
    whole Lease spec to write (holderIdentity, leaseDurationSeconds, acquireTime, renewTime,
    leaseTransitions), as client-go writes it.
    """
    stamp = micro_time(now)
    if lease is None:
        return Election(Action.CREATE, _spec(identity, duration, stamp, stamp, 0))
    if lease.holder == identity:
        # Ours: renewing keeps the term, even after a lapse nobody used (the write's
        # resourceVersion precondition fails if somebody did).
        acquired = micro_time(lease.acquire_time) if lease.acquire_time is not None else stamp
        return Election(Action.RENEW,
                        _spec(identity, duration, acquired, stamp, lease.transitions))
    if not lease.expired(now, duration):
        return Election(Action.STANDBY, None)
    # A new holder: client-go counts every change of holderIdentity, a released Lease's too.
    return Election(Action.ACQUIRE,
                    _spec(identity, duration, stamp, stamp, lease.transitions + 1))


def _spec(identity: str, duration: int, acquired: str, renewed: str,
          transitions: int) -> dict[str, Any]:
    return {"holderIdentity": identity, "leaseDurationSeconds": duration,
            "acquireTime": acquired, "renewTime": renewed, "leaseTransitions": transitions}


def released(lease: LeaseState, identity: str, now: float) -> dict[str, Any] | None:
    """The spec that gives up a Lease we hold on a clean stop (client-go's ReleaseOnCancel:
    no holder, so the next replica takes it without waiting out the duration); None when the
    Lease is not ours to release."""
    if lease.holder != identity:
        return None
    return {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": micro_time(now),
            "acquireTime": None, "leaseTransitions": lease.transitions}
