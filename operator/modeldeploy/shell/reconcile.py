"""One reconcile pass of one ModelDeployment: observe -> decide (pure) -> execute.

- observe: the watch-fed stores (its children, its pods, pools, capacity, installed APIs), the
  model's facts (catalog or hub, remembered), for the builtin autoscaler a reading of its
  pods' /metrics, and for the startup watchdog the log tails of its starting pods and of the
  namespace's running cache downloads (`shell.starts`, rate-limited). No other API read.
- decide: `controller.decide.decide`, a pure function of that snapshot.
- execute: the writes it returned, in order (replica handovers, applies, deletes, scale,
  restarts of stalled pods, status, events). Each response goes into its store, so the
  watch's echo of our own write triggers nothing. When a child write fails, the pass decides again with that failure (no
  write, the failure in the status). It raises only when the API refused a status or scale
  write; the controller retries.

A decision that wrote nothing is remembered with the versions of what it read (the
ModelDeployment's and each child's resourceVersion, the revisions of the pod, node and pool
stores, the installed APIs, the facts): a later pass on the same versions, before the
decision's `expires` (a rollout's progress deadline, say; at once while a pod starts or the
shared cache downloads: the startup watchdog judges by the clock), skips deciding — it would decide
the same and write nothing. A resync of an unchanged fleet costs a version comparison per
object (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api import ModelDeployment, ModelDeploymentStatus
from ..api.base import rfc3339
from ..api.deployment import AutoscalingMode
from ..controller.children import ChildRef, candidate_children, ref_of
from ..controller.decide import (
    FIELD_MANAGER,
    Actions,
    Snapshot,
    as_failure,
    decide,
    names_of,
    parse_model_deployment,
)
from ..controller.rollout.upgrades import UpgradeSlots
from ..controller.rollout.workload import WORKLOAD_KINDS
from ..controller.starts import StartsSeen
from ..controller.status import Failure, Reason
from ..decisions.autoscale import ScalingHistory
from ..errors import ModeldeployError
from ..facts import ModelFacts
from ..render import REPLICAS_FIELD_MANAGER, RenderOptions
from ..render.cache import is_shared
from .autoscaler import Autoscaler
from .interceptor import InterceptorReader
from .kube import Kube, KubeError
from .sources import FactsSource
from .starts import StartWatch
from .telemetry import Telemetry
from .view import MODEL_DEPLOYMENT, ClusterView

logger = logging.getLogger(__name__)

Obj = dict[str, Any]


def utc_now() -> str:
    return rfc3339(time.time())


@dataclass
class ReconcileContext:
    kube: Kube
    view: ClusterView
    facts: FactsSource
    render: RenderOptions
    emit_events: bool = True
    autoscaler: Autoscaler | None = None
    interceptor: InterceptorReader | None = None  # None: not read (namespaced install, tests)
    telemetry: Telemetry | None = None
    wall: Callable[[], float] = time.time
    upgrades: UpgradeSlots | None = None  # None: rendering changes roll at once
    # Leader election (`shell.leader`): False on a standby replica, which reconciles nothing.
    leading: Callable[[], bool] = lambda: True
    rediscover_after: float = 60.0  # s between discoveries asked for by a missing API
    # Decisions that wrote nothing, by ModelDeployment uid (see the module docstring).
    quiet: dict[str, Quiet] = field(default_factory=dict)
    starts: StartWatch | None = None  # the startup watchdog's log reads and memory


@dataclass(frozen=True)
class Outcome:
    status: ModelDeploymentStatus
    writes: int
    transient: bool


@dataclass(frozen=True)
class Quiet:
    """A decision that wrote nothing: the versions it read, until when it holds, its outcome."""

    inputs: tuple[Any, ...]
    expires: float | None
    outcome: Outcome
    facts: object  # held, so the identity in `inputs` stays theirs


# Snapshot fields stood for by versions: the ModelDeployment's and each child's
# resourceVersion, and the pod / node / pool stores' revisions (`ClusterView.cluster_revision`).
# Every other field is compared by value, so a field added to Snapshot is never overlooked;
# such a field must hold values that are not changed in place once observed (tuples, frozen
# dataclasses), or a remembered snapshot would compare equal to its own changed self.
_VERSIONED = frozenset({"body", "children", "pods", "pools", "capacity"})


def inputs_of(ctx: ReconcileContext, snapshot: Snapshot,
              facts: ModelFacts | Failure | None) -> tuple[Any, ...] | None:
    """What `decide` reads from this snapshot, by version where the stores keep one, else by
    value (None: something has no version, so nothing is skipped)."""
    version = (snapshot.body.get("metadata") or {}).get("resourceVersion")
    if not version:
        return None
    children = []
    for ref, obj in snapshot.children.items():
        child_version = (obj.get("metadata") or {}).get("resourceVersion") if obj else None
        if obj is not None and not child_version:
            return None
        children.append((ref, child_version))
    others = tuple((f.name, getattr(snapshot, f.name)) for f in dataclasses.fields(snapshot)
                   if f.name not in _VERSIONED)
    return (str(version), tuple(children), ctx.view.cluster_revision(), others,
            id(facts) if isinstance(facts, ModelFacts) else facts, id(ctx.render))


# --- observe ---------------------------------------------------------------------------------

async def _facts(ctx: ReconcileContext, md: ModelDeployment | None) -> ModelFacts | Failure | None:
    if md is None:
        return None  # decide reports the invalid spec
    try:
        return await ctx.facts.resolve(md.spec.model)
    except ModeldeployError as exc:  # ModelUnresolved (the hub unreachable, no such model)
        return as_failure(exc)


async def _scrapes(ctx: ReconcileContext, md: ModelDeployment | None,
                   children: Mapping[ChildRef, Obj | None], pods: list[Obj]) -> tuple[Any, ...]:
    scaling = md.spec.autoscaling if md is not None else None
    if ctx.autoscaler is None or scaling is None or scaling.mode != AutoscalingMode.BUILTIN:
        return ()
    kinds = [ref.kind for ref, obj in children.items()
             if obj is not None and ref.kind in WORKLOAD_KINDS]
    return await ctx.autoscaler.scrape(pods, kinds[0]) if kinds else ()


async def _interceptor(ctx: ReconcileContext, md: ModelDeployment | None) -> int | None:
    """Requests the KEDA HTTP add-on holds for a builtin model that may sleep at zero."""
    scaling = md.spec.autoscaling if md is not None else None
    if ctx.interceptor is None or md is None or scaling is None or not scaling.scale_to_zero \
            or scaling.mode != AutoscalingMode.BUILTIN:
        return None
    return await ctx.interceptor.in_flight(str(md.metadata.namespace),
                                           names_of(md.metadata.name).http_scaled_object)


async def observe(ctx: ReconcileContext, body: Mapping[str, Any], now: float
                  ) -> tuple[Snapshot, ModelFacts | Failure | None]:
    """The snapshot one decision reads, and the model's facts (or why they are missing)."""
    meta = body.get("metadata") or {}
    name, namespace, uid = str(meta.get("name")), str(meta.get("namespace")), str(meta.get("uid"))
    try:
        md: ModelDeployment | None = parse_model_deployment(body)
    except ModeldeployError:
        md = None
    children = ctx.view.children(candidate_children(namespace, names_of(name), ctx.view.kinds))
    children.update(ctx.view.shared_children(namespace))
    pods = ctx.view.pods_of(namespace, name)
    watch = ctx.starts
    starts = await watch.starts(uid, pods) if watch is not None else StartsSeen()
    downloads = await watch.downloads(namespace, children, ctx.view.pods_in(namespace)) \
        if watch is not None and any(ref.kind == "Job" for ref in children) else {}
    snapshot = Snapshot(
        body=body, children=children, pods=pods, pools=ctx.view.pools(),
        kinds=ctx.view.kinds, capacity=ctx.view.capacity(),
        scrapes=await _scrapes(ctx, md, children, pods),
        interceptor_in_flight=await _interceptor(ctx, md),
        history=ctx.autoscaler.history(uid) if ctx.autoscaler is not None else ScalingHistory(),
        upgrade_slot=ctx.upgrades is None,
        namespaced=not ctx.view.clusterwide, starts=starts, downloads=downloads,
        storage_classes=ctx.view.storage_classes())
    return snapshot, await _facts(ctx, md)


# --- execute ---------------------------------------------------------------------------------

def _wrote(ctx: ReconcileContext, obj: Mapping[str, Any]) -> None:
    store = ctx.view.store_of(str(obj.get("apiVersion")), str(obj.get("kind")))
    if store is not None:
        store.wrote(obj)


def _field_manager(obj: Mapping[str, Any], owner_uid: str) -> str:
    """The shared model cache is created under one manager and joined by each further owner
    under a manager of its own, which applies only its ownerReference: a re-apply never drops
    what another owner (or the creation) set (server-side apply removes only fields the same
    manager stops applying)."""
    if not is_shared(obj):
        return FIELD_MANAGER
    return f"{FIELD_MANAGER}-cache" if "spec" in obj else f"{FIELD_MANAGER}-{owner_uid}"


async def _write_children(ctx: ReconcileContext, snapshot: Snapshot, actions: Actions,
                          versions: dict[ChildRef, str]) -> int:
    """Handovers, applies, deletes; records the version each apply returned."""
    writes = 0
    for obj in actions.handovers:
        _wrote(ctx, await ctx.kube.apply(obj, field_manager=REPLICAS_FIELD_MANAGER))
        writes += 1
    for obj in actions.applies:
        ref = ref_of(obj)
        # Unforced on create: a foreign object at this name (not in our label-filtered
        # stores) answers 409 instead of being taken over.
        manager = _field_manager(obj, str((snapshot.body.get("metadata") or {}).get("uid")))
        live = await ctx.kube.apply(obj, manager, force=snapshot.children.get(ref) is not None)
        _wrote(ctx, live)
        versions[ref] = str((live.get("metadata") or {}).get("resourceVersion"))
        writes += 1
    for ref, uid in actions.deletes:
        await ctx.kube.delete(ref, uid)
        store = ctx.view.store_of(ref.api_version, ref.kind)
        if store is not None:
            store.removed(ref.namespace, ref.name)
        writes += 1
    return writes


async def _scale(ctx: ReconcileContext, snapshot: Snapshot, actions: Actions,
                 versions: Mapping[ChildRef, str]) -> int:
    scale, decision = actions.scale, actions.scaling
    uid = str((snapshot.body.get("metadata") or {}).get("uid"))
    if scale is None:
        if decision is not None and ctx.autoscaler is not None:
            ctx.autoscaler.remember(uid, decision, scaled=None)
        return 0
    assert decision is not None and ctx.autoscaler is not None
    try:
        # Preconditioned on the version the decision read (or our own apply's): a count
        # changed meanwhile (kubectl scale) answers 409 and the pass is retried.
        result = await ctx.kube.scale(scale.ref, scale.replicas, REPLICAS_FIELD_MANAGER,
                                      versions.get(scale.ref, scale.resource_version))
    except KubeError:
        ctx.autoscaler.remember(uid, decision, scaled=False)
        raise
    ctx.autoscaler.remember(uid, decision, scaled=True)
    logger.info("%s/%s: %s %d -> %d: %s", scale.ref.namespace, scale.ref.name, decision.reason,
                decision.current_replicas, scale.replicas, decision.message)
    live = snapshot.children.get(scale.ref)
    if live is not None:  # the store holds the count we wrote; the watch's echo is skipped
        meta = {**(live.get("metadata") or {}),
                "resourceVersion": (result.get("metadata") or {}).get("resourceVersion")}
        _wrote(ctx, {**live, "metadata": meta,
                     "spec": {**(live.get("spec") or {}), "replicas": scale.replicas}})
    return 1


async def _restart(ctx: ReconcileContext, actions: Actions) -> int:
    """Delete the pods whose start stalled: their controller starts fresh ones. A refused
    delete (an install without the permission) is logged; the status is still written."""
    stuck = {v.pod: v.stuck for v in actions.starts.verdicts if v.stuck is not None}
    deleted = 0
    for ref, uid in actions.restarts:
        reason = stuck[ref.name]
        logger.warning("%s/%s: deleting the pod, its start stalled (%s): %s", ref.namespace,
                       ref.name, reason.reason, reason.message)
        try:
            await ctx.kube.delete(ref, uid)
        except KubeError as exc:
            logger.warning("%s/%s: the stalled pod was not deleted: %s", ref.namespace,
                           ref.name, exc)
            continue
        deleted += 1
        if ctx.telemetry is not None:
            ctx.telemetry.restarts.labels(reason.reason).inc()
    return deleted


async def _write_status(ctx: ReconcileContext, snapshot: Snapshot, actions: Actions) -> int:
    if actions.status_patch is None:
        return 0
    meta = snapshot.body.get("metadata") or {}
    try:
        written = await ctx.kube.patch_status(*MODEL_DEPLOYMENT, str(meta.get("namespace")),
                                              str(meta.get("name")), actions.status_patch)
    except KubeError as exc:
        if exc.not_found:  # a deleted ModelDeployment needs no status
            return 1
        raise
    ctx.view.stores[MODEL_DEPLOYMENT].wrote(written)
    if ctx.emit_events:
        for event in actions.events:
            await ctx.kube.emit(written, event)
    return 1


def _log_rollback(ctx: ReconcileContext, snapshot: Snapshot, actions: Actions) -> None:
    failed = actions.rolled_back
    if failed is None:
        return
    meta = snapshot.body.get("metadata") or {}
    logger.warning("%s/%s: rolled back to revision %s: %s", meta.get("namespace"),
                   meta.get("name"), failed.rolled_back_to, failed.message)
    if ctx.telemetry is not None:
        ctx.telemetry.rollbacks.labels(failed.reason).inc()


async def execute(ctx: ReconcileContext, snapshot: Snapshot, actions: Actions,
                  facts: ModelFacts | Failure | None, now: float) -> Outcome:
    """Write what the decision says; nothing is read."""
    versions: dict[ChildRef, str] = {}
    try:
        writes = await _write_children(ctx, snapshot, actions, versions)
    except KubeError as exc:
        writes = len(versions)
        if exc.not_found:  # a kind discovery listed is gone (its CRD deleted): look again
            ctx.view.rediscover_soon(ctx.rediscover_after)
        actions = decide(snapshot, facts, ctx.render, now,
                         write_failure=Failure(Reason.APPLY_FAILED, str(exc)))
    else:
        if writes:
            meta = snapshot.body.get("metadata") or {}
            logger.info("%s/%s: applied %d, deleted %d children", meta.get("namespace"),
                        meta.get("name"), len(actions.applies), len(actions.deletes))
        _log_rollback(ctx, snapshot, actions)
        writes += await _scale(ctx, snapshot, actions, versions)
        writes += await _restart(ctx, actions)
    writes += await _write_status(ctx, snapshot, actions)
    meta = snapshot.body.get("metadata") or {}
    uid = str(meta.get("uid"))
    if ctx.starts is not None:
        ctx.starts.remember(uid, str(meta.get("namespace")), actions)
    if ctx.upgrades is not None:
        ctx.upgrades.record(uid, actions.upgrading, now)
    if actions.missing_api:
        ctx.view.rediscover_soon(ctx.rediscover_after)  # installed since the last discovery?
    return Outcome(status=actions.status, writes=writes, transient=actions.transient)


async def reconcile(ctx: ReconcileContext, body: Mapping[str, Any]) -> Outcome:
    """observe -> decide -> execute for one ModelDeployment (decide skipped on the inputs of
    a decision that wrote nothing and has not expired)."""
    now = ctx.wall()
    snapshot, facts = await observe(ctx, body, now)
    uid = str((body.get("metadata") or {}).get("uid"))
    inputs = inputs_of(ctx, snapshot, facts)
    last = ctx.quiet.get(uid)
    if inputs is not None and last is not None and last.inputs == inputs and \
            (last.expires is None or now < last.expires):
        return last.outcome
    actions = decide(snapshot, facts, ctx.render, now)
    # Taking the slot and deciding again happen with no await between: concurrent passes
    # cannot all see a free slot.
    if actions.upgrade_queued and ctx.upgrades is not None and ctx.upgrades.acquire(uid, now):
        snapshot = dataclasses.replace(snapshot, upgrade_slot=True)
        actions = decide(snapshot, facts, ctx.render, now)
    outcome = await execute(ctx, snapshot, actions, facts, now)
    if inputs is not None and outcome.writes == 0 and not actions.writes and \
            actions.failure is None and not actions.upgrading and not actions.upgrade_queued:
        ctx.quiet[uid] = Quiet(inputs, actions.expires, outcome, facts)
    else:
        ctx.quiet.pop(uid, None)
    return outcome
