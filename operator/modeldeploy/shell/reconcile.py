"""One reconcile pass of one ModelDeployment.

resolve facts -> load pools -> plan -> observe children -> render with the rollout inputs ->
track the rollout (maybe roll back) -> apply what changed -> autoscale -> status.

Every decision is a pure function from `modeldeploy.controller`, `planner` or `render`; this
module sequences them and does I/O only through `Kube`. A pass never raises for a problem of
the ModelDeployment (that becomes a typed `Stalled` reason); it raises only when the API
cannot be read, and the caller retries.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..api import GPUPool, ModelDeployment, ModelDeploymentStatus, ObjectMeta
from ..api.deployment import AutoscalingMode
from ..api.status import AutoscalingStatus, RolloutStatus
from ..controller.children import (
    NAME_LABEL,
    ChildRef,
    Owner,
    candidate_children,
    diff_children,
    owned,
    ref_of,
)
from ..controller.events import events_for
from ..controller.pods import group_size, recount
from ..controller.rollouts import complete, downtime_of, failure_of, revision_of, status_of
from ..controller.status import (
    TRANSIENT,
    Failure,
    Observation,
    PendingGPU,
    Reason,
    capacity_overdue,
    compute_status,
    parse_status,
    pending_gpu,
    status_patch,
    workload_of,
)
from ..controller.upgrades import UpgradeSlots
from ..errors import InvalidSpec, ModeldeployError, describe_validation_error
from ..planner import Plan, plan_deployment
from ..render import (
    REPLICAS_FIELD_MANAGER,
    RenderOptions,
    child_names,
    progress_deadline,
    replicas_handover,
)
from .autoscaler import Autoscaler
from .kube import FIELD_MANAGER, Kube, KubeError
from .rollout import Prepared, prepare, replicas_capacity
from .sources import FactsSource
from .telemetry import Telemetry
from .view import MODEL_DEPLOYMENT, ClusterView

logger = logging.getLogger(__name__)

WORKLOAD_KINDS = ("Deployment", "LeaderWorkerSet")
MISSING_API = (Reason.MULTI_NODE_UNAVAILABLE, Reason.KEDA_UNAVAILABLE)
COMPONENT_LABEL = "app.kubernetes.io/component"


def utc_now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ReconcileContext:
    kube: Kube
    view: ClusterView
    facts: FactsSource
    render: RenderOptions
    emit_events: bool = True
    clock: Callable[[], str] = utc_now
    autoscaler: Autoscaler | None = None
    rediscover_after: float = 60.0  # s between discoveries asked for by a missing API
    telemetry: Telemetry | None = None
    wall: Callable[[], float] = time.time
    upgrades: UpgradeSlots | None = None  # None: rendering changes roll at once


@dataclass(frozen=True)
class Outcome:
    status: ModelDeploymentStatus
    writes: int
    transient: bool


def parse_model_deployment(body: Mapping[str, Any]) -> ModelDeployment:
    """The typed object, or InvalidSpec naming the offending field."""
    document = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
    try:
        return ModelDeployment.model_validate(document)
    except ValidationError as exc:
        raise InvalidSpec(describe_validation_error(exc)) from None


def _suggest(plan: Plan) -> str:
    if not plan.suggestions:
        return plan.reason
    return f"{plan.reason}; try: " + "; ".join(plan.suggestions)


async def _plan(ctx: ReconcileContext, md: ModelDeployment) -> tuple[Plan, GPUPool | Failure]:
    facts = await ctx.facts.resolve(md.spec.model)
    pools = ctx.view.pools()
    # Layouts across nodes only where LeaderWorkerSet is served: the planner then prefers a
    # single node, and says MultiNodeUnavailable only when nothing else fits.
    plan = plan_deployment(md, facts, pools,
                           multi_node_served=ctx.view.kinds.leader_worker_set)
    if not plan.feasible:
        reasons = {"PoolNotFound": Reason.POOL_NOT_FOUND,
                   "MultiNodeUnavailable": Reason.MULTI_NODE_UNAVAILABLE}
        return plan, Failure(reasons.get(plan.failure or "", Reason.NO_FEASIBLE_LAYOUT),
                             _suggest(plan))
    scaling = md.spec.autoscaling
    if scaling is not None and scaling.mode == AutoscalingMode.KEDA and \
            not ctx.view.kinds.scaled_object:
        return plan, Failure(Reason.KEDA_UNAVAILABLE, (
            "autoscaling.mode keda renders a KEDA ScaledObject, but the KEDA API "
            "(keda.sh/v1alpha1 scaledobjects) is not installed; install KEDA or use mode "
            "builtin"))
    return plan, next(p for p in pools if p.name == plan.pool)


def _planned_workload(plan: Plan, names: Any, namespace: str) -> ChildRef:
    if (plan.nodes_per_replica or 1) > 1:
        return ChildRef("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", namespace,
                        names.leader_worker_set)
    return ChildRef("apps/v1", "Deployment", namespace, names.deployment)


def _wrote(ctx: ReconcileContext, obj: Mapping[str, Any]) -> None:
    store = ctx.view.store_of(str(obj.get("apiVersion")), str(obj.get("kind")))
    if store is not None:
        store.wrote(obj)


async def _apply(ctx: ReconcileContext, desired: list[dict[str, Any]],
                 observed: dict[ChildRef, dict[str, Any] | None], owner: Owner,
                 md: ModelDeployment | None) -> tuple[int, Failure | None]:
    diff = diff_children(desired, observed, owner)
    if diff.conflicts:
        return 0, Failure(Reason.APPLY_FAILED, "; ".join(msg for _, msg in diff.conflicts))
    writes = 0
    try:
        for obj in diff.apply:
            ref = ref_of(obj)
            handover = replicas_handover(md, observed.get(ref), FIELD_MANAGER) \
                if md is not None and ref.kind in WORKLOAD_KINDS else None
            if handover is not None:
                # An autoscaler takes over spec.replicas: a second manager co-owns the live count
                # first, so dropping it from our apply does not reset it to 1.
                _wrote(ctx, await ctx.kube.apply(handover, field_manager=REPLICAS_FIELD_MANAGER))
                writes += 1
            # Unforced on create: a foreign object at this name (not in our label-filtered
            # stores) answers 409 instead of being taken over.
            live = observed[ref] = await ctx.kube.apply(obj, force=observed.get(ref) is not None)
            _wrote(ctx, live)
            writes += 1
        for ref, uid in diff.delete:
            await ctx.kube.delete(ref, uid)
            store = ctx.view.store_of(ref.api_version, ref.kind)
            if store is not None:
                store.removed(ref.namespace, ref.name)
            observed[ref] = None
            writes += 1
    except KubeError as exc:
        return writes, Failure(Reason.APPLY_FAILED, str(exc))
    if writes:
        logger.info("%s/%s: applied %d, deleted %d children", owner.namespace, owner.name,
                    len(diff.apply), len(diff.delete))
    return writes, None


def _endpoint(observed: Mapping[ChildRef, dict[str, Any] | None], name: str) -> str | None:
    for ref, obj in observed.items():
        if ref.kind == "Service" and ref.name == name and obj is not None:
            ports = (obj.get("spec") or {}).get("ports") or []
            if ports:
                return f"http://{ref.name}.{ref.namespace}.svc:{ports[0].get('port')}/v1"
    return None


def _workload(desired: list[dict[str, Any]],
              observed: Mapping[ChildRef, dict[str, Any] | None]) -> dict[str, Any] | None:
    wanted = [ref_of(o) for o in desired if o.get("kind") in WORKLOAD_KINDS]
    refs = wanted or sorted(r for r in observed if r.kind in WORKLOAD_KINDS)
    return next((observed[r] for r in refs if observed.get(r) is not None), None)


@dataclass
class _Pass:
    """What one pass computed on its way to the status."""

    md: ModelDeployment | None = None
    plan: Plan | None = None
    pool: GPUPool | None = None
    failure: Failure | None = None
    prepared: Prepared | None = None
    pods: Sequence[Mapping[str, Any]] | None = None


def _list_pods(ctx: ReconcileContext, namespace: str, name: str) -> list[dict[str, Any]]:
    return ctx.view.pods_of(namespace, name)


def _autoscaled(md: ModelDeployment | None) -> bool:
    scaling = md.spec.autoscaling if md is not None else None
    return scaling is not None and scaling.mode == AutoscalingMode.BUILTIN


async def _prepare(ctx: ReconcileContext, run: _Pass, owner: Owner,
                   observed: Mapping[ChildRef, dict[str, Any] | None],
                   generation: int | None) -> list[dict[str, Any]]:
    """The owned children to apply; fills run.prepared / run.pods / run.failure."""
    assert run.md is not None and run.plan is not None and run.pool is not None
    names = child_names(run.md)
    live = observed.get(_planned_workload(run.plan, names, owner.namespace))
    if live is not None and (_autoscaled(run.md) or not complete(workload_of(live))):
        run.pods = _list_pods(ctx, owner.namespace, owner.name)
    try:
        run.prepared = prepare(run.md, run.plan, run.pool, ctx.render, ctx.view.capacity(), live,
                               run.pods, generation, ctx.wall(), ctx.upgrades)
    except ModeldeployError as exc:  # InvalidSpec, PlanNotRenderable
        reasons = {r.value for r in Reason}
        run.failure = Failure(Reason(exc.reason) if exc.reason in reasons
                              else Reason.INVALID_SPEC, str(exc))
        return []
    return [owned(obj, owner) for obj in run.prepared.objects]


async def _autoscale(ctx: ReconcileContext, run: _Pass, owner: Owner,
                     workload_obj: Mapping[str, Any]) -> tuple[AutoscalingStatus, int, int]:
    """status.autoscaling, the writes made, and the replicas the workload has now."""
    assert run.md is not None and run.md.spec.autoscaling is not None and ctx.autoscaler
    assert run.plan is not None and run.pool is not None
    pods = run.pods
    if pods is None and _autoscaled(run.md):
        pods = run.pods = _list_pods(ctx, owner.namespace, owner.name)
    cluster = ctx.view.capacity() if _autoscaled(run.md) else None
    limit = replicas_capacity(run.md, run.plan, run.pool, cluster)
    scaled = await ctx.autoscaler.run(ctx.kube, owner.uid, run.md.spec.autoscaling,
                                      workload_obj, pods or [], limit)
    writes = 0
    if scaled.written_rv is not None:
        # The store holds the count we wrote; the watch's echo of it is skipped.
        meta = {**(workload_obj.get("metadata") or {}), "resourceVersion": scaled.written_rv}
        spec = {**(workload_obj.get("spec") or {}),
                "replicas": scaled.decision.desired_replicas}
        _wrote(ctx, {**workload_obj, "metadata": meta, "spec": spec})
        writes = 1
    return scaled.status, writes, scaled.decision.desired_replicas


async def reconcile(ctx: ReconcileContext, body: Mapping[str, Any]) -> Outcome:
    meta = body.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    owner = Owner(name, namespace, str(meta.get("uid")))
    generation = meta.get("generation")
    previous_raw = body.get("status") or {}
    previous = parse_status(previous_raw)

    run = _Pass()
    try:
        run.md = parse_model_deployment(body)
        run.plan, pool = await _plan(ctx, run.md)
        if isinstance(pool, Failure):
            run.failure = pool
        else:
            run.pool = pool
    except ModeldeployError as exc:  # InvalidSpec, ModelUnresolved
        reasons = {r.value for r in Reason}
        run.failure = Failure(Reason(exc.reason) if exc.reason in reasons
                              else Reason.INVALID_SPEC, str(exc))

    # Child names derive from the name alone: known even when the spec is invalid.
    unvalidated: Any = ModelDeployment
    names = child_names(unvalidated.model_construct(metadata=ObjectMeta(name=name)))
    observed = ctx.view.children(candidate_children(namespace, names, ctx.view.kinds))
    desired: list[dict[str, Any]] = []
    if run.failure is None:
        desired = await _prepare(ctx, run, owner, observed, generation)
    writes = 0
    if run.failure is None:
        writes, run.failure = await _apply(ctx, desired, observed, owner, run.md)
        if run.failure is None and run.prepared is not None and run.prepared.step.rolled_back:
            failed = run.prepared.step.failed
            logger.warning("%s/%s: rolled back to revision %s: %s", namespace, name,
                           failed.rolled_back_to if failed else "?",
                           failed.message if failed else "")
            if ctx.telemetry is not None and failed is not None:
                ctx.telemetry.rollbacks.labels(failed.reason).inc()

    workload_obj = _workload(desired, observed)
    workload = workload_of(workload_obj)
    autoscaling: AutoscalingStatus | None = None
    if run.failure is None and workload_obj is not None and ctx.autoscaler is not None and \
            run.md is not None and run.md.spec.autoscaling is not None:
        autoscaling, scale_writes, replicas = await _autoscale(ctx, run, owner, workload_obj)
        writes += scale_writes
        if workload is not None and replicas != workload.desired and scale_writes:
            workload = dataclasses.replace(workload, desired=replicas)

    if workload is not None and workload_obj is not None and workload.generation_unknown:
        if run.pods is None:
            run.pods = _list_pods(ctx, namespace, name)
        workload = recount(workload, run.pods, revision_of(workload_obj), group_size(workload_obj))

    selector = f"{NAME_LABEL}={name},{COMPONENT_LABEL}=server"
    pending: PendingGPU | None = None
    if workload is not None and workload.ready < workload.desired:
        if run.pods is None:
            run.pods = _list_pods(ctx, namespace, name)
        pending = pending_gpu(run.pods)
    overdue = pending is not None and run.md is not None and run.plan is not None and \
        run.plan.feasible and capacity_overdue(
            pending, progress_deadline(run.md, run.plan, ctx.render), ctx.wall())

    rollout: RolloutStatus | None = None
    rollout_failure = downtime = None
    if run.failure is None and run.prepared is not None and run.md is not None:
        prepared = run.prepared
        rollout = status_of(prepared.step, prepared.strategy, workload)
        rollout_failure = failure_of(prepared.step, run.md.spec.rollout.auto_rollback)
        downtime = downtime_of(prepared.step, prepared.strategy, workload)

    observation = Observation(generation=generation, plan=run.plan, failure=run.failure,
                              workload=workload,
                              pending_gpu_message=pending.message if pending else None,
                              pending_gpu_overdue=overdue,
                              selector=selector, endpoint=_endpoint(observed, names.service),
                              rollout_failure=rollout_failure, rollout_downtime=downtime,
                              rollout=rollout, autoscaling=autoscaling)
    status = compute_status(previous, observation, ctx.clock())
    patch = status_patch(previous_raw, status)
    written: Mapping[str, Any] | None = None
    if patch is not None:
        try:
            written = await ctx.kube.patch_status(*MODEL_DEPLOYMENT, namespace, name, patch)
            ctx.view.stores[MODEL_DEPLOYMENT].wrote(written)
        except KubeError as exc:
            if not exc.not_found:  # a deleted ModelDeployment needs no status
                raise
        writes += 1
        if written is not None and ctx.emit_events:
            for event in events_for(previous, status):
                await ctx.kube.emit(written, event)
    if run.failure is not None and run.failure.reason in MISSING_API:
        ctx.view.rediscover_soon(ctx.rediscover_after)  # installed since the last discovery?
    transient = run.failure is not None and run.failure.reason in TRANSIENT
    return Outcome(status=status, writes=writes, transient=transient)
