"""One reconcile decision for one ModelDeployment: `decide(snapshot, facts, options, now)`. Pure.

validate -> plan -> render once (with the rollout inputs) -> rollout step -> the children to
apply or delete -> autoscale decision -> status -> events. The shell observes (`Snapshot`,
from its watch-fed stores, the model facts, the autoscaler's scrapes and memory), calls this,
and executes the returned `Actions`; it never reads the API to decide.

A problem of the ModelDeployment never raises: it becomes a typed `Stalled` reason in the
status. The status is computed as the world will be once the actions are written: an applied
workload whose spec changes gets a generation its controller has not observed yet (so the
status says Reconciling until the controller reports), a deleted child is gone. When a write
fails, the shell decides again with `write_failure`: no write, the failure in the status.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api import GPUPool, ModelDeployment, ObjectMeta
from ..api.base import rfc3339
from ..api.deployment import AutoscalingMode
from ..api.status import AutoscalingStatus
from ..decisions.autoscale import Decision, ScalingObservation, to_status
from ..decisions.autoscale import decide as decide_scaling
from ..decisions.cache import CacheView
from ..decisions.startup import loading_replicas
from ..errors import ModeldeployError
from ..facts import ModelFacts
from ..planner import Plan
from ..planner.autoscaling_target import effective_autoscaling
from ..render import ChildNames, RenderOptions, child_names, progress_deadline, replicas_handover
from ..render.output import canonical_json
from ..validation import validate_model_deployment
from .cache_status import CacheInputs, cache_memory, cache_of
from .children import (
    NAME_LABEL,
    ChildRef,
    Owner,
    applied_view,
    diff_children,
    owned,
    ref_of,
)
from .events import events_for
from .memo import Memo
from .pods import group_size, recount
from .rollout.layout import layout_change
from .rollout.revisions import RolloutStep, complete, downtime_of, failure_of, revision_of, status_of
from .rollout.workload import WORKLOAD_KINDS, LiveWorkload, Prepared, prepare, replicas_capacity
from .snapshot import MISSING_API as MISSING_API
from .snapshot import Actions as Actions
from .snapshot import Scale as Scale
from .snapshot import Snapshot as Snapshot
from .starts import Starts, judge_starts, restarts
from .status import (
    Failure,
    Observation,
    Reason,
    capacity_overdue,
    compute_status,
    endpoint_of,
    parse_status,
    pending_gpu,
    status_patch,
    workload_of,
)
from .target import Target, plan_on_cluster

Obj = dict[str, Any]
COMPONENT_LABEL = "app.kubernetes.io/component"
FIELD_MANAGER = "modeldeploy"
_parsed: Memo[ModelDeployment] = Memo(4096)


def as_failure(exc: ModeldeployError) -> Failure:
    """A typed status reason for an error of the ModelDeployment (InvalidSpec else)."""
    reasons = {r.value for r in Reason}
    return Failure(Reason(exc.reason) if exc.reason in reasons else Reason.INVALID_SPEC,
                   str(exc))


def parse_model_deployment(body: Mapping[str, Any]) -> ModelDeployment:
    """The typed object, or InvalidSpec naming the offending field: the one validation path
    `plan` and `render` share (modeldeploy.validation). Valid bodies are remembered by their
    content (the schema check is ~1 ms; observe and decide both parse). Validation reads
    apiVersion, kind, metadata and spec: the key leaves out the status and the
    resourceVersion (set on the result), so our own status write does not validate again."""
    meta = body.get("metadata")
    version = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    if not isinstance(version, str):
        version = None  # absent or not a string: kept in the key, validation says why
    read = {k: v for k, v in body.items() if k != "status"}
    if version is not None:
        read["metadata"] = {k: v for k, v in read["metadata"].items() if k != "resourceVersion"}
    try:
        key = canonical_json(read)
    except (TypeError, ValueError):  # not JSON (a hand-built body): validation says why
        return validate_model_deployment(body)
    md = _parsed.get(key, lambda: validate_model_deployment(body))
    if version is None or md.metadata.resource_version == version:
        return md
    return md.model_copy(update={"metadata": md.metadata.model_copy(
        update={"resource_version": version})})


@functools.lru_cache(maxsize=4096)
def names_of(name: str) -> ChildNames:
    """The children's names: they derive from the name alone, so they are known (and an old
    child can be found) even when the spec is invalid."""
    unvalidated: Any = ModelDeployment
    return child_names(unvalidated.model_construct(metadata=ObjectMeta(name=name)))


def live_replicas(workload: Mapping[str, Any]) -> int:
    """The workload's `spec.replicas`; absent means the API default, 1."""
    value = (workload.get("spec") or {}).get("replicas")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 1


@dataclass
class _Pass:
    """What a decision derived on its way to the status (internal)."""
    options: RenderOptions
    now: float
    md: ModelDeployment | None = None
    plan: Plan | None = None
    pool: GPUPool | None = None
    failure: Failure | None = None
    prepared: Prepared | None = None
    step_down: Failure | None = None  # a layout change removes the old workload first
    starts: Starts = field(default_factory=Starts)

    def target(self) -> Target:
        assert self.md is not None and self.plan is not None and self.pool is not None
        return Target(self.md, self.plan, self.pool)


def _validate_and_plan(run: _Pass, snapshot: Snapshot,
                       facts: ModelFacts | Failure | None) -> _Pass:
    try:
        run.md = parse_model_deployment(snapshot.body)
    except ModeldeployError as exc:
        run.failure = as_failure(exc)
        return run
    if not isinstance(facts, ModelFacts):
        run.failure = facts or Failure(Reason.MODEL_UNRESOLVED, "model facts not resolved")
        return run
    run.plan, pool = plan_on_cluster(run.md, facts, snapshot.pools, snapshot.kinds,
                                     snapshot.namespaced)
    if isinstance(pool, Failure):
        run.failure = pool
    else:
        run.pool = pool
    return run


def _planned_workload(run: _Pass, namespace: str) -> ChildRef:
    assert run.md is not None and run.plan is not None
    names = child_names(run.md)
    if (run.plan.nodes_per_replica or 1) > 1:
        return ChildRef("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", namespace,
                        names.leader_worker_set)
    return ChildRef("apps/v1", "Deployment", namespace, names.deployment)


def _autoscaled(md: ModelDeployment | None) -> bool:
    scaling = md.spec.autoscaling if md is not None else None
    return scaling is not None and scaling.mode == AutoscalingMode.BUILTIN


def _desired(run: _Pass, snapshot: Snapshot, owner: Owner) -> list[Obj]:
    """Render once and step the rollout: the owned children (fills run.prepared / failure)."""
    live = snapshot.children.get(_planned_workload(run, owner.namespace))
    pods = snapshot.pods if live is not None and (
        _autoscaled(run.md) or not complete(workload_of(live))) else None
    seen = LiveWorkload(live=live, pods=pods, capacity=snapshot.capacity,
                        generation=(snapshot.body.get("metadata") or {}).get("generation"),
                        now=run.now, upgrade_slot=snapshot.upgrade_slot,
                        starts=run.starts.verdicts)
    try:
        run.prepared = prepare(run.target(), run.options, seen)
    except ModeldeployError as exc:  # InvalidSpec, PlanNotRenderable
        run.failure = as_failure(exc)
        return []
    return [owned(obj, owner) for obj in run.prepared.objects]


@dataclass(frozen=True)
class _Writes:
    handovers: tuple[Obj, ...] = ()
    applies: tuple[Obj, ...] = ()
    deletes: tuple[tuple[ChildRef, str], ...] = ()


def _writes(run: _Pass, snapshot: Snapshot, desired: list[Obj], owner: Owner) -> _Writes:
    children = snapshot.children
    diff = diff_children(desired, children, owner)
    if diff.conflicts:
        run.failure = Failure(Reason.APPLY_FAILED, "; ".join(msg for _, msg in diff.conflicts))
        return _Writes()
    deletes, run.step_down = layout_change(
        run.target(), _planned_workload(run, owner.namespace), (snapshot.capacity, children),
        diff.delete)
    handovers = []
    for obj in diff.apply:
        ref = ref_of(obj)
        if run.md is not None and ref.kind in WORKLOAD_KINDS:
            # An autoscaler takes over spec.replicas: a second manager co-owns the live count
            # first, so dropping it from our apply does not reset it to 1.
            handover = replicas_handover(run.md, children.get(ref), FIELD_MANAGER)
            if handover is not None:
                handovers.append(handover)
    return _Writes(tuple(handovers), tuple(diff.apply), deletes)


def _after(children: Mapping[ChildRef, Obj | None], writes: _Writes) -> dict[ChildRef, Obj | None]:
    out = dict(children)
    for obj in writes.applies:
        ref = ref_of(obj)
        out[ref] = applied_view(obj, children.get(ref))
    for ref, _ in writes.deletes:
        out[ref] = None
    return out


def _workload_after(desired: list[Obj], after: Mapping[ChildRef, Obj | None]) -> Obj | None:
    wanted = [ref_of(o) for o in desired if o.get("kind") in WORKLOAD_KINDS]
    refs = wanted or sorted(r for r in after if r.kind in WORKLOAD_KINDS)
    return next((after[r] for r in refs if after.get(r) is not None), None)


def _autoscale(run: _Pass, snapshot: Snapshot, workload_obj: Mapping[str, Any],
               now: float) -> tuple[AutoscalingStatus, Decision, Scale | None]:
    assert run.md is not None and run.md.spec.autoscaling is not None
    assert run.plan is not None and run.pool is not None
    # The plan's target: spec, else the predicted capacity at the workload, else the default.
    spec = effective_autoscaling(run.md, run.plan.autoscaling_target)
    assert spec is not None
    builtin = spec.mode == AutoscalingMode.BUILTIN
    limit = replicas_capacity(run.md, run.plan, run.pool, snapshot.capacity if builtin else None)
    current = live_replicas(workload_obj)
    decision = decide_scaling(spec, ScalingObservation(  # never remove a loading replica
        current, snapshot.scrapes if builtin else (),
        interceptor_in_flight=snapshot.interceptor_in_flight if builtin else None,
        loading_replicas=loading_replicas(snapshot.pods)), snapshot.history, now, limit)
    scale = None
    if decision.changed and builtin:
        version = (workload_obj.get("metadata") or {}).get("resourceVersion")
        scale = Scale(ref_of(workload_obj), decision.desired_replicas,
                      str(version) if version is not None else None)
    return to_status(spec, decision), decision, scale


def _rollout_fields(run: _Pass, workload: Any) -> dict[str, Any]:
    if run.failure is not None or run.prepared is None or run.md is None:
        return {}
    prepared = run.prepared
    return {"rollout": status_of(prepared.step, prepared.strategy, workload),
            "rollout_failure": failure_of(prepared.step, run.md.spec.rollout.auto_rollback),
            "rollout_downtime": run.step_down or downtime_of(prepared.step, prepared.strategy,
                                                             workload)}


def _observation(run: _Pass, snapshot: Snapshot, after: Mapping[ChildRef, Obj | None],
                 workload_obj: Mapping[str, Any] | None, scaled: Any
                 ) -> tuple[Observation, float | None]:
    """What the status says, from the world as it will be after this decision's writes; and
    when a pod waiting for GPUs becomes overdue (epoch s; None: none is waiting)."""
    meta = snapshot.body.get("metadata") or {}
    name = str(meta.get("name"))
    workload = workload_of(workload_obj)
    autoscaling, scale = scaled if scaled is not None else (None, None)
    if workload is not None and scale is not None:
        workload = dataclasses.replace(workload, desired=scale.replicas)
    if workload is not None and workload_obj is not None and workload.generation_unknown:
        workload = recount(workload, snapshot.pods, revision_of(workload_obj),
                           group_size(workload_obj))
    pending = pending_gpu(snapshot.pods) if workload is not None and \
        workload.ready < workload.desired else None
    overdue, overdue_at = False, None
    if pending is not None and run.md is not None and run.plan is not None and run.plan.feasible:
        deadline = progress_deadline(run.md, run.plan, run.options)
        overdue = capacity_overdue(pending, deadline, run.now)
        overdue_at = None if overdue or pending.since is None else pending.since + deadline
    names = names_of(name)
    return Observation(
        generation=meta.get("generation"), plan=run.plan, failure=run.failure,
        workload=workload, pending_gpu_message=pending.message if pending else None,
        pending_gpu_overdue=overdue,
        selector=f"{NAME_LABEL}={name},{COMPONENT_LABEL}=server",
        endpoint=endpoint_of(after, names.service), autoscaling=autoscaling,
        **_rollout_fields(run, workload)), overdue_at


def decide(snapshot: Snapshot, facts: ModelFacts | Failure | None, options: RenderOptions,
           now: float, write_failure: Failure | None = None) -> Actions:
    """The writes that converge one ModelDeployment and the status it will then have.

    facts: the model's facts, or why they could not be resolved (a `Failure`).
    now: epoch seconds (rollout deadlines, autoscaler windows, condition times).
    write_failure: a write of the previous decision on this snapshot failed: decide again
    without writes, with the failure in the status."""
    meta = snapshot.body.get("metadata") or {}
    owner = Owner(str(meta.get("name")), str(meta.get("namespace")), str(meta.get("uid")))
    run = _validate_and_plan(_Pass(options, now), snapshot, facts)
    if run.md is not None:
        run.starts = judge_starts(snapshot.pods, snapshot.starts, now,
                                  run.md.spec.rollout.stall_seconds, getattr(facts, "checkpoint_bytes", 0) or 0)
    desired = _desired(run, snapshot, owner) if run.failure is None else []
    writes = _writes(run, snapshot, desired, owner) if run.failure is None else _Writes()
    if write_failure is not None:
        run.failure, writes = write_failure, _Writes()
    after = _after(snapshot.children, writes)
    workload_obj = _workload_after(desired, after)
    scaled = decision = None
    if run.failure is None and workload_obj is not None and run.md is not None and \
            run.md.spec.autoscaling is not None:
        autoscaling, decision, scale = _autoscale(run, snapshot, workload_obj, now)
        scaled = (autoscaling, scale)
    observed, overdue_at = _observation(run, snapshot, after, workload_obj, scaled)
    cache = cache_of(run.md, run.plan, CacheInputs(owner.namespace, after, getattr(
        facts, "checkpoint_bytes", None), snapshot.downloads, now, snapshot.storage_classes))
    observation = dataclasses.replace(observed, cache=cache)
    previous_raw = snapshot.body.get("status") or {}
    previous = parse_status(previous_raw)
    status = compute_status(previous, observation, rfc3339(now))
    patch = status_patch(previous_raw, status)
    step = run.prepared.step if run.prepared is not None and run.failure is None else None
    return Actions(
        status=status, status_patch=patch,
        events=tuple(events_for(previous, status)) if patch is not None else (),
        handovers=writes.handovers, applies=writes.applies, deletes=writes.deletes,
        scale=scaled[1] if scaled is not None else None, scaling=decision,
        upgrading=bool(step is not None and step.upgrading),
        upgrade_queued=bool(step is not None and step.queued),
        rolled_back=step.failed if step is not None and step.rolled_back else None,
        failure=run.failure, expires=_expires(run, step, overdue_at, cache), starts=run.starts,
        cache_mark=cache_memory(run.md, run.plan, cache),
        restarts=restarts(run.starts, snapshot.pods, step is None or step.rolled_back)
        if write_failure is None else ())


def _expires(run: _Pass, step: RolloutStep | None, overdue_at: float | None,
             cache: CacheView | None) -> float | None:
    """Until when the same snapshot gives the same decision (epoch s; None: forever): the
    rollout's progress deadline, a GPU wait turning overdue; an autoscaler decides by the
    clock (its windows), and so does the startup watchdog while a pod starts or the cache
    downloads or waits for its claim (stallSeconds): at once."""
    if run.md is not None and run.md.spec.autoscaling is not None:
        return run.now
    if run.starts.verdicts or (cache is not None and not cache.ready and not cache.stalled):
        return run.now
    times = [t for t in (step.deadline_at if step is not None else None, overdue_at)
             if t is not None]
    return min(times) if times else None
