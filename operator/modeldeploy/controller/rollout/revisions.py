"""Rollout tracking and rollback, with the memory kept on the workload itself. Pure.

Status is never memory, and the operator's process memory is lost on restart, so what a
rollback needs lives in annotations of the Deployment / LeaderWorkerSet, written by the same
server-side apply as the rest of the workload:

- `modeldeploy.dev/ready-revisions`: JSON list, oldest first, at most `MAX_REVISIONS`, of
  `{"hash", "pool", "templates"}`: revisions all of whose replicas were Ready at some point,
  with the pod template(s) the operator rendered for them. A rollback re-applies those templates;
  the user's spec is never touched.
- `modeldeploy.dev/failed-revision`: `{"hash", "generation", "reason", "message",
  "rolledBackTo"}`: the revision that failed terminally and was rolled back. While the
  ModelDeployment's generation and the rendered revision are unchanged it is not re-applied.
- `modeldeploy.dev/rollout-started`: when the live revision was first applied (RFC 3339): the
  start of its progress deadline.
- `modeldeploy.dev/rollout-inputs`: the capacity observed when the live revision was first
  applied (`render.RolloutInputs`). Between rollouts the strategy is rendered from it, so free
  GPUs changing (other tenants, our own scale-ups) never rewrite the workload.
- `modeldeploy.dev/rendered-generation` and `modeldeploy.dev/rollout-cause`: see `upgrades`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...api.base import rfc3339
from ...api.status import RolloutStatus
from ...decisions.rollout import (
    RevisionRecord,
    RolloutStrategy,
    StuckKind,
    StuckReason,
    classify_stuck,
    rollback_target,
    rollout_status,
)
from ...decisions.startup import StartVerdict, overall
from ...render import POOL_ANNOTATION, RolloutInputs
from ...render.context import HASH_ANNOTATION
from ...render.output import canonical_json
from .. import pods as podlib
from ..status import Failure, Reason, Workload, settled, workload_of
from .memory import (
    ROLLOUT_INPUTS as ROLLOUT_INPUTS,
)
from .memory import (
    ROLLOUT_STARTED,
    annotations_of,
    encode_inputs,
    json_annotation,
    parse_started,
)
from .memory import (
    parse_inputs as parse_inputs,
)
from .upgrades import (
    CAUSE_OPERATOR,
    CAUSE_SPEC,
    RENDERED_GENERATION,
    ROLLOUT_CAUSE,
    rendering_change,
    rollout_cause,
)

READY_REVISIONS = "modeldeploy.dev/ready-revisions"
FAILED_REVISION = "modeldeploy.dev/failed-revision"
MAX_REVISIONS = 2

Obj = dict[str, Any]


@dataclass(frozen=True)
class Revision:
    """One pod-template revision: its hash, pool and the pod template(s) to re-apply."""

    hash: str
    pool: str | None
    templates: tuple[Obj, ...]


@dataclass(frozen=True)
class FailedRevision:
    hash: str
    generation: int | None
    reason: str  # a StuckKind value
    message: str
    rolled_back_to: str


# --- reading and writing the workload ----------------------------------------------------------


def _template_paths(obj: Mapping[str, Any]) -> list[tuple[str, ...]]:
    if obj.get("kind") == "LeaderWorkerSet":
        return [("spec", "leaderWorkerTemplate", "leaderTemplate"),
                ("spec", "leaderWorkerTemplate", "workerTemplate")]
    return [("spec", "template")]


def _get(obj: Mapping[str, Any], path: Sequence[str]) -> Any:
    cur: Any = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def pod_templates(obj: Mapping[str, Any]) -> list[Obj]:
    """The pod template(s) of a workload: [template] or [leader, worker]."""
    found = [_get(obj, path) for path in _template_paths(obj)]
    return [dict(t) for t in found if isinstance(t, Mapping)]


def with_pod_templates(obj: Mapping[str, Any], templates: Sequence[Mapping[str, Any]]) -> Obj:
    """A copy of the workload with its pod template(s) replaced."""
    out: Obj = copy.deepcopy(dict(obj))
    for path, template in zip(_template_paths(out), templates, strict=False):
        parent = out
        for key in path[:-1]:
            parent = parent.setdefault(key, {})
        parent[path[-1]] = copy.deepcopy(dict(template))
    return out


def revision_of(obj: Mapping[str, Any] | None) -> str | None:
    """The pod-template hash the workload's pods get (from the template, which pods copy)."""
    if obj is None:
        return None
    templates = pod_templates(obj)
    if templates:
        value = annotations_of(templates[0]).get(HASH_ANNOTATION)
        if isinstance(value, str):
            return value
    value = annotations_of(obj).get(HASH_ANNOTATION)
    return value if isinstance(value, str) else None


def pool_of(obj: Mapping[str, Any] | None) -> str | None:
    value = annotations_of(obj).get(POOL_ANNOTATION)
    return value if isinstance(value, str) else None


def parse_revisions(obj: Mapping[str, Any] | None) -> list[Revision]:
    data = json_annotation(obj, READY_REVISIONS)
    out: list[Revision] = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("hash"), str):
            continue
        templates = item.get("templates")
        if not isinstance(templates, list) or not all(isinstance(t, dict) for t in templates):
            continue
        pool = item.get("pool")
        out.append(Revision(item["hash"], pool if isinstance(pool, str) else None,
                            tuple(templates)))
    return out[-MAX_REVISIONS:]


def encode_revisions(history: Sequence[Revision]) -> str:
    return canonical_json([{"hash": r.hash, "pool": r.pool, "templates": list(r.templates)}
                  for r in history])


_STUCK_KINDS = frozenset(k.value for k in StuckKind)


def parse_failed(obj: Mapping[str, Any] | None) -> FailedRevision | None:
    data = json_annotation(obj, FAILED_REVISION)
    if not isinstance(data, Mapping):
        return None
    generation = data.get("generation")
    values = (data.get("hash"), data.get("reason"), data.get("message"), data.get("rolledBackTo"))
    if not all(isinstance(v, str) for v in values) or data.get("reason") not in _STUCK_KINDS or \
            not (generation is None or (isinstance(generation, int)
                                        and not isinstance(generation, bool))):
        return None
    return FailedRevision(data["hash"], generation, data["reason"], data["message"],
                          data["rolledBackTo"])


def encode_failed(failed: FailedRevision) -> str:
    return canonical_json({"hash": failed.hash, "generation": failed.generation, "reason": failed.reason,
                  "message": failed.message, "rolledBackTo": failed.rolled_back_to})


def complete(workload: Workload | None) -> bool:
    """Every desired replica runs the live template and is Ready; no old pod is left."""
    return workload is not None and workload.desired >= 1 and settled(workload)


# --- one pass ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutView:
    """What a pass knows: the workload rendered for the user's spec and what is live."""

    desired: Mapping[str, Any]
    live: Mapping[str, Any] | None
    pods: Sequence[Mapping[str, Any]] | None  # this ModelDeployment's pods, None: not listed
    generation: int | None
    auto_rollback: bool
    deadline_seconds: float
    now: float
    # May a rendering change (same generation, new template) start rolling now?
    upgrade_slot: bool = True
    starts: Sequence[StartVerdict] = ()  # the startup watchdog's verdicts (controller.starts)


@dataclass(frozen=True)
class RolloutStep:
    """What to apply and what to report."""

    target: Revision  # the revision to apply: the rendered one, or the one rolled back to
    history: tuple[Revision, ...]
    failed: FailedRevision | None  # set while holding on a rollback
    rolled_back: bool  # this pass starts the rollback
    started: float  # when the target revision was first applied
    fresh_capacity: bool  # the target is not live yet: its strategy needs capacity observed now
    stuck: StuckReason | None  # why the target revision's pods are not becoming Ready
    was_ready: bool  # the target revision was Ready before (no deadline, never rolled back)
    ready_pods: int | None  # Ready pods of the target revision (None: pods not listed)
    cause: str = CAUSE_SPEC  # why the target revision rolls out (upgrades.ROLLOUT_CAUSE)
    queued: bool = False  # a rendering change waits for an upgrade slot (live kept)
    settled: bool = False  # the target revision is live and complete
    # When the stuck classification would change on the same inputs (the progress deadline,
    # epoch s); None: time changes nothing.
    deadline_at: float | None = None

    @property
    def upgrading(self) -> bool:
        """An operator-caused rollout that has not finished: it holds an upgrade slot."""
        return self.cause == CAUSE_OPERATOR and not self.settled


def _verdicts_of(starts: Sequence[StartVerdict],
                 pods: Sequence[Mapping[str, Any]]) -> list[StartVerdict]:
    """The startup watchdog's verdicts on these pods."""
    names = {podlib.pod_name(p) for p in pods}
    return [v for v in starts if v.pod in names]


def step(view: RolloutView) -> RolloutStep:
    """Track the live revision, classify a stuck rollout and decide a rollback."""
    rendered = Revision(revision_of(view.desired) or "", pool_of(view.desired),
                        tuple(pod_templates(view.desired)))
    live = view.live
    live_hash = revision_of(live)
    summary = workload_of(live)
    if summary is not None and live is not None and view.pods is not None:
        summary = podlib.recount(summary, view.pods, live_hash, podlib.group_size(live))
    history = _ready_history(rendered, live, summary)
    ready_hashes = {r.hash for r in history}

    failed = parse_failed(live)
    if failed is not None and (failed.hash != rendered.hash or failed.generation != view.generation
                               or live_hash in (None, failed.hash)):
        failed = None  # the spec (or the rendering) changed, or the rollback never happened
    target = rendered
    changed = failed is None and rendering_change(live, view.generation, live_hash,
                                                  rendered.hash)
    queued = changed and not view.upgrade_slot
    if (failed is not None or queued) and live is not None and live_hash is not None:
        target = next((r for r in history if r.hash == live_hash), None) or \
            Revision(live_hash, pool_of(live), tuple(pod_templates(live)))

    started = parse_started(live) if live_hash == target.hash else None
    started = view.now if started is None else started
    own = podlib.of_revision(view.pods, target.hash) if view.pods is not None else []
    ready_pods = sum(1 for p in own if podlib.ready(p)) if view.pods is not None else None
    was_ready = target.hash in ready_hashes
    stuck = deadline_at = None
    # At zero replicas (scaled to zero) nothing is expected to become Ready.
    if live is not None and live_hash == target.hash and not complete(summary) and \
            view.pods is not None and summary is not None and summary.desired >= 1:
        waiting = [p for p in own if not podlib.ready(p)]
        # A revision that was Ready (scaling up, a pod restarted) has no deadline to miss.
        since = view.now if was_ready else started
        # The watchdog's stall or vLLM error counts; a deadline does not while a start moves.
        stuck = overall(_verdicts_of(view.starts, waiting),
                        classify_stuck(waiting, since, view.deadline_seconds, view.now))
        deadline_at = None if was_ready else started + view.deadline_seconds

    rolled_back = False
    if failed is None and stuck is not None and stuck.terminal and view.auto_rollback and \
            not was_ready and target.hash == rendered.hash:
        records = [RevisionRecord(r.hash, i, True) for i, r in enumerate(history)]
        back = rollback_target(records, target.hash)
        if back is not None:
            previous = history[back.number]
            failed = FailedRevision(target.hash, view.generation, stuck.reason, stuck.message,
                                    previous.hash)
            target, rolled_back, started = previous, True, view.now
            was_ready, stuck, ready_pods = True, None, (
                sum(1 for p in podlib.of_revision(view.pods or [], previous.hash)
                    if podlib.ready(p)) if view.pods is not None else None)
    return RolloutStep(
        target=target, history=tuple(history), failed=failed, rolled_back=rolled_back,
        started=started, fresh_capacity=live is None or live_hash != target.hash, stuck=stuck,
        was_ready=was_ready, ready_pods=ready_pods,
        cause=rollout_cause(live, live_hash, target.hash, changed), queued=queued,
        settled=live_hash == target.hash and complete(summary), deadline_at=deadline_at)


def _ready_history(rendered: Revision, live: Mapping[str, Any] | None,
                   summary: Workload | None) -> list[Revision]:
    """The revisions that were Ready, the live one added once it is complete."""
    history = parse_revisions(live)
    live_hash = revision_of(live)
    if live is not None and live_hash and complete(summary) and \
            all(r.hash != live_hash for r in history):
        kept = rendered if live_hash == rendered.hash else \
            Revision(live_hash, pool_of(live), tuple(pod_templates(live)))
        history = [*history, kept][-MAX_REVISIONS:]
    return history


def workload_to_apply(desired: Mapping[str, Any], decided: RolloutStep,
                      inputs: RolloutInputs, generation: int | None = None) -> Obj:
    """The rendered workload with the step's revision and the rollout memory annotations."""
    # The rendered objects are shared (the render memo): copy what changes, not the whole tree.
    obj = with_pod_templates(desired, decided.target.templates) \
        if decided.target.hash != revision_of(desired) else dict(desired)
    meta = obj["metadata"] = dict(obj.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    annotations[HASH_ANNOTATION] = decided.target.hash
    if decided.target.pool is not None:
        annotations[POOL_ANNOTATION] = decided.target.pool
    for key in (READY_REVISIONS, FAILED_REVISION):
        annotations.pop(key, None)
    if decided.history:
        annotations[READY_REVISIONS] = encode_revisions(decided.history)
    if decided.failed is not None:
        annotations[FAILED_REVISION] = encode_failed(decided.failed)
    annotations[ROLLOUT_STARTED] = rfc3339(decided.started)
    annotations[ROLLOUT_INPUTS] = encode_inputs(inputs)
    annotations[ROLLOUT_CAUSE] = decided.cause
    if generation is not None:
        annotations[RENDERED_GENERATION] = str(generation)
    meta["annotations"] = annotations
    return obj


# --- what status says --------------------------------------------------------------------------


def failure_of(decided: RolloutStep, auto_rollback: bool) -> Failure | None:
    """`Stalled`: a rollback held, or a terminal failure that no rollback could fix."""
    failed = decided.failed
    if failed is not None:
        return Failure(Reason(failed.reason), (
            f"rolled back to revision {failed.rolled_back_to}, the last one that was Ready: "
            f"revision {failed.hash} failed: {failed.message}; it is not retried until the spec "
            "changes"))
    stuck = decided.stuck
    if stuck is None or not stuck.terminal:
        return None
    if decided.was_ready:
        why = ""
    elif not auto_rollback:
        why = "; not rolled back: spec.rollout.autoRollback is false"
    else:
        why = "; no earlier revision was Ready to roll back to"
    where = f" (pod {stuck.pod})" if stuck.pod else ""
    return Failure(Reason(stuck.reason), f"revision {decided.target.hash}{where}: "
                                         f"{stuck.message}{why}")


def downtime_of(decided: RolloutStep, strategy: RolloutStrategy,
                workload: Workload | None) -> Failure | None:
    """`Reconciling` with RolloutWithoutSpareCapacity while the only replica is replaced."""
    replacing = bool(decided.history) and decided.history[-1].hash != decided.target.hash
    if strategy.downtime and replacing and not complete(workload):
        return Failure(Reason.ROLLOUT_WITHOUT_SPARE_CAPACITY, strategy.message)
    return None


def status_of(decided: RolloutStep, strategy: RolloutStrategy,
              workload: Workload | None) -> RolloutStatus:
    """`status.rollout`: current (last Ready) and updated revision, progress, strategy, reason."""
    desired = workload.desired if workload is not None else 0
    if decided.ready_pods is not None:
        progress = decided.ready_pods
    elif workload is not None and complete(workload):
        progress = workload.updated
    elif workload is not None and workload.current:
        progress = min(workload.updated, workload.ready)
    else:
        progress = 0  # the controller has not seen the new template yet: its counts are old
    stuck = decided.stuck
    if decided.failed is not None:
        failure = failure_of(decided, True)
        stuck = StuckReason(StuckKind(decided.failed.reason), None,
                            failure.message if failure else decided.failed.message, True)
    current = decided.history[-1].hash if decided.history else None
    return rollout_status(strategy, current, decided.target.hash, progress, desired, stuck)
