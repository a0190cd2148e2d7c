"""Rendering changes (an operator upgrade, a GPUPool edit) roll a few models at a time. Pure.

A new operator version may render a different pod template for an unchanged ModelDeployment
(a new probe, a preStop hook, fewer labels). Applying it everywhere at once restarts every model
of the cluster in the same minute: every replica reloads its weights, and clusters without
spare GPUs serve nothing while they do. The user's own spec edits roll at once, as asked.

Two annotations on the Deployment / LeaderWorkerSet tell the two apart, also across restarts:
- `modeldeploy.dev/rendered-generation`: the ModelDeployment generation the workload was last
  applied for. A new template at the same generation (or on a workload an older operator
  wrote, which lacks the annotation) is a rendering change.
- `modeldeploy.dev/rollout-cause`: `spec` or `operator`: why the live revision rolled out.
  Unfinished `operator` rollouts hold a slot of `UpgradeSlots`; a rendering change starts only
  when a slot is free (`--max-concurrent-upgrades`, chart value `maxConcurrentUpgrades`), and
  until then the live template stays as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .memory import annotations_of

RENDERED_GENERATION = "modeldeploy.dev/rendered-generation"
ROLLOUT_CAUSE = "modeldeploy.dev/rollout-cause"
CAUSE_SPEC, CAUSE_OPERATOR = "spec", "operator"


def rendered_generation(obj: Mapping[str, Any] | None) -> int | None:
    """The generation recorded on a workload, or None (absent or malformed)."""
    raw = annotations_of(obj).get(RENDERED_GENERATION)
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def rendering_change(live: Mapping[str, Any] | None, generation: int | None,
                     live_hash: str | None, rendered_hash: str) -> bool:
    """The rendered template differs from the live one while the spec did not change."""
    if live is None or not live_hash or live_hash == rendered_hash:
        return False
    recorded = rendered_generation(live)
    return recorded is None or recorded == generation


def rollout_cause(live: Mapping[str, Any] | None, live_hash: str | None, target_hash: str,
                  changed: bool) -> str:
    """The cause to record: the live one while its revision stays, else this change's."""
    if live_hash == target_hash:
        recorded = annotations_of(live).get(ROLLOUT_CAUSE)
        return recorded if recorded in (CAUSE_SPEC, CAUSE_OPERATOR) else CAUSE_SPEC
    return CAUSE_OPERATOR if changed else CAUSE_SPEC


@dataclass
class UpgradeSlots:
    """The operator-caused rollouts in flight, by ModelDeployment uid, with when each was last
    seen (epoch s). An entry not refreshed within `expiry` seconds (the model was deleted, or
    its rollout finished while another replica of the operator was active) frees its slot:
    every model in flight is reconciled at least once per resync interval."""

    limit: int
    expiry: float
    seen: dict[str, float] = field(default_factory=dict)

    def _expire(self, now: float) -> None:
        for uid in [u for u, t in self.seen.items() if now - t > self.expiry]:
            del self.seen[uid]

    def may_start(self, uid: str, now: float) -> bool:
        """May this model start (or continue) an operator-caused rollout?"""
        self._expire(now)
        return uid in self.seen or len(self.seen) < self.limit

    def acquire(self, uid: str, now: float) -> bool:
        """Take a slot for this model if one is free (or it holds one): check and take at
        once, so passes running concurrently cannot all take the last slot."""
        if not self.may_start(uid, now):
            return False
        self.seen[uid] = now
        return True

    def record(self, uid: str, upgrading: bool, now: float) -> None:
        """After a pass: hold the slot while the model's operator-caused rollout runs."""
        if upgrading:
            self.seen[uid] = now
        else:
            self.seen.pop(uid, None)
