"""ModelDeployment status as a pure function of (previous conditions, observations, now).

kstatus polarity: `Ready` is normal-true; `Reconciling` and `Stalled` are abnormal-true and
mutually exclusive. All three are set on every pass (first visit included), each with a
CamelCase reason, a message and the generation it was computed for. `lastTransitionTime`
changes only when a condition's status changes. Nothing is read back from the previous status
except those timestamps: the rest is recomputed from what the pass observed.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..api import Condition, ConditionType, ModelDeploymentStatus, PlanStatus
from ..api.status import AutoscalingStatus, RolloutStatus
from ..decisions.cache import CacheView
from ..planner import Plan

GPU_RESOURCE = "nvidia.com/gpu"
INSUFFICIENT_GPU = f"Insufficient {GPU_RESOURCE}"


class Reason(StrEnum):
    # Failures (Stalled=True).
    INVALID_SPEC = "InvalidSpec"
    MODEL_UNRESOLVED = "ModelUnresolved"
    NO_FEASIBLE_LAYOUT = "NoFeasibleLayout"
    POOL_NOT_FOUND = "PoolNotFound"
    NO_POOLS_VISIBLE = "NoPoolsVisible"  # no GPUPool, no discovered pool, no pools ConfigMap
    MULTI_NODE_UNAVAILABLE = "MultiNodeUnavailable"
    KEDA_UNAVAILABLE = "KEDAUnavailable"
    INSUFFICIENT_GPU = "InsufficientGPU"
    APPLY_FAILED = "ApplyFailed"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    # Rollout failures (decisions.rollout.StuckKind), recognised from the new revision's pods.
    KV_CACHE_TOO_SMALL = "KVCacheTooSmall"
    OOM_AT_LOAD = "OOMAtLoad"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    CONTAINER_CONFIG_ERROR = "ContainerConfigError"
    CRASH_LOOP = "CrashLoop"
    # The startup watchdog (controller.starts): no startup progress for rollout.stallSeconds.
    LOAD_STALLED = "LoadStalled"
    DOWNLOAD_STALLED = "DownloadStalled"
    # Progress and success.
    PROGRESSING = "Progressing"
    WAITING_FOR_PODS = "WaitingForPods"
    AVAILABLE = "Available"
    SCALED_TO_ZERO = "ScaledToZero"
    ROLLOUT_WITHOUT_SPARE_CAPACITY = "RolloutWithoutSpareCapacity"  # Reconciling, not a failure
    # Deployment <-> LeaderWorkerSet without GPUs for both: the old one goes first (Reconciling).
    LAYOUT_CHANGE_WITHOUT_SPARE_CAPACITY = "LayoutChangeWithoutSpareCapacity"
    # Pods wait for GPUs (a node being provisioned, an HPA step): Reconciling until the
    # progress deadline, then Stalled with INSUFFICIENT_GPU.
    WAITING_FOR_GPUS = "WaitingForGPUs"
    # An operator upgrade changed the rendered template: the rollout waits for a slot.
    UPGRADE_QUEUED = "UpgradeQueued"
    # spec.cache.mode shared: serving waits for the download (CacheReady has the typed reason).
    WAITING_FOR_CACHE = "WaitingForCache"
    CACHE_FAILED = "CacheFailed"  # the cache reason is one waiting cannot fix


# Failures that may clear without a spec change (the API, the hub or capacity recovering):
# the shell retries them with a backoff instead of waiting for the next resync.
TRANSIENT = frozenset({Reason.APPLY_FAILED, Reason.MODEL_UNRESOLVED})

# Status fields the operator writes (all of them, recomputed every pass).
OWNED_FIELDS = ("observedGeneration", "conditions", "plan", "replicas", "readyReplicas",
                "updatedReplicas", "selector", "endpoint", "rollout", "autoscaling", "cache")


@dataclass(frozen=True)
class Failure:
    reason: Reason
    message: str


@dataclass(frozen=True)
class Workload:
    """The observed Deployment or LeaderWorkerSet, summarised."""

    kind: str
    desired: int
    replicas: int
    ready: int
    updated: int
    available: int
    current: bool  # status.observedGeneration caught up with metadata.generation
    deadline_exceeded: bool = False
    # A LeaderWorkerSet older than v0.9 never reports status.observedGeneration: its counts
    # cannot be trusted to describe the live template, so they are recounted from the pods
    # (`controller.pods.recount`) and `current` stays False until they are.
    generation_unknown: bool = False


@dataclass(frozen=True)
class Observation:
    """Everything one reconcile pass learned, in the terms status needs."""

    generation: int | None
    plan: Plan | None
    failure: Failure | None
    workload: Workload | None
    pending_gpu_message: str | None = None
    # A pod has waited for GPUs longer than rollout.progressDeadlineSeconds: Stalled.
    pending_gpu_overdue: bool = False
    selector: str | None = None
    endpoint: str | None = None
    # A rollout that failed terminally (and was rolled back, or could not be): Stalled.
    rollout_failure: Failure | None = None
    # A rollout that takes the only replica down (RolloutWithoutSpareCapacity): Reconciling.
    rollout_downtime: Failure | None = None
    rollout: RolloutStatus | None = None
    autoscaling: AutoscalingStatus | None = None
    cache: CacheView | None = None  # spec.cache.mode shared: the claim and download Job


def workload_of(obj: Mapping[str, Any] | None) -> Workload | None:
    """Summarise an observed Deployment / LeaderWorkerSet (None when absent)."""
    if obj is None:
        return None
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    progressing = conditions.get("Progressing") or {}
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    current = generation is None or (observed is not None and int(observed) >= int(generation))
    unknown = obj.get("kind") == "LeaderWorkerSet" and observed is None and generation is not None
    ready = int(status.get("readyReplicas") or 0)
    # A LeaderWorkerSet reports no availableReplicas: ready groups are its available ones.
    available = int(status.get("availableReplicas", ready) or 0)
    return Workload(
        kind=str(obj.get("kind")),
        desired=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
        replicas=int(status.get("replicas") or 0),
        ready=ready,
        updated=int(status.get("updatedReplicas") or 0),
        available=available,
        current=current,
        deadline_exceeded=progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded",
        generation_unknown=unknown,
    )


def settled(workload: Workload) -> bool:
    """Every desired replica runs the live template and is Ready, and no old replica is left
    (a surge pod Ready beside an old one is not done: `status.rollout.progress` says so too)."""
    return workload.current and \
        min(workload.ready, workload.updated, workload.available) >= workload.desired and \
        workload.replicas <= workload.desired


@dataclass(frozen=True)
class PendingGPU:
    """A Pending pod the scheduler cannot give GPUs: its message and since when (epoch s)."""

    message: str
    since: float | None  # PodScheduled's lastTransitionTime (else the pod's creation)


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.UTC).timestamp()
    except ValueError:
        return None


# The scheduler's words for "no node of the pool can take it now": full GPU nodes, or a pool
# scaled to zero (no node matches its nodeSelector yet; the cluster autoscaler adds one).
# Source: kube-scheduler's NodeResourcesFit ("Insufficient %v") and NodeAffinity ("node(s)
# didn't match Pod's node affinity/selector") filter messages, and "no nodes available to
# schedule pods" (pkg/scheduler/schedule_one.go, ErrNoNodesAvailable).
CAPACITY_WAITS = (INSUFFICIENT_GPU, "didn't match Pod's node affinity/selector",
                  "no nodes available to schedule pods")


def pending_gpu(pods: Sequence[Mapping[str, Any]]) -> PendingGPU | None:
    """The longest-waiting Pending pod that no GPU node can take now, else None."""
    found: list[PendingGPU] = []
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") != "Pending":
            continue
        for cond in status.get("conditions") or []:
            message = str(cond.get("message") or "")
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                    and any(words in message for words in CAPACITY_WAITS):
                since = _epoch(cond.get("lastTransitionTime")) or \
                    _epoch((pod.get("metadata") or {}).get("creationTimestamp"))
                found.append(PendingGPU(message, since))
    return min(found, key=lambda p: p.since if p.since is not None else float("inf"),
               default=None)


def pending_gpu_message(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The scheduler's message when a Pending pod cannot get GPUs, else None."""
    found = pending_gpu(pods)
    return found.message if found is not None else None


def capacity_overdue(pending: PendingGPU | None, deadline_seconds: float, now: float) -> bool:
    """A pod has waited for GPUs longer than the progress deadline (a node that is being
    provisioned arrives well within it: Karpenter / the cluster autoscaler take minutes)."""
    return pending is not None and pending.since is not None and \
        now - pending.since > deadline_seconds


def endpoint_of(children: Mapping[Any, Mapping[str, Any] | None], name: str) -> str | None:
    """The in-cluster OpenAI-compatible URL of the Service `name` among `children`, else None."""
    for ref, obj in children.items():
        if ref.kind == "Service" and ref.name == name and obj is not None:
            ports = (obj.get("spec") or {}).get("ports") or []
            if ports:
                return f"http://{ref.name}.{ref.namespace}.svc:{ports[0].get('port')}/v1"
    return None


def plan_status(plan: Plan) -> PlanStatus:
    mem = plan.memory_per_gpu
    used = round(mem.weights_gib + mem.kv_cache_gib + mem.overhead_gib, 2) if mem else None
    return PlanStatus(
        pool=plan.pool, gpu_product=plan.gpu_product,
        tensor_parallel_size=plan.tensor_parallel_size,
        pipeline_parallel_size=plan.pipeline_parallel_size,
        gpus_per_replica=plan.gpus_per_replica, nodes_per_replica=plan.nodes_per_replica,
        memory_per_gpu_gi_b=used,
        weights_gi_b=round(mem.weights_gib, 2) if mem else None,
        kv_cache_gi_b=round(mem.kv_cache_gib, 2) if mem else None,
        kv_cache_tokens=plan.kv_cache_tokens, max_model_len=plan.max_model_len,
        cost_per_hour=plan.cost_per_hour, reason=plan.reason[:4096],
        performance=plan.performance, replicas_for_workload=plan.replicas_for_workload,
        autoscaling_target=plan.autoscaling_target,
    )


def _triple(obs: Observation) -> tuple[tuple[str, Reason, str], ...]:
    """(type, status, reason, message) of Ready, Reconciling, Stalled for this observation."""
    failure = obs.failure or obs.rollout_failure
    wl = obs.workload
    if failure is None and obs.pending_gpu_message and obs.pending_gpu_overdue:
        failure = Failure(Reason.INSUFFICIENT_GPU, "pods waited for GPUs past "
                          f"rollout.progressDeadlineSeconds: {obs.pending_gpu_message}")
    if failure is None and wl is not None and wl.deadline_exceeded:
        failure = Failure(Reason.PROGRESS_DEADLINE_EXCEEDED,
                          f"the {wl.kind} made no progress within its progress deadline")
    cache = obs.cache
    if failure is None and cache is not None and cache.stalled:
        failure = Failure(Reason.CACHE_FAILED, f"{cache.reason}: {cache.status.message}")
    if failure is not None:
        return (("False", failure.reason, failure.message),
                ("False", failure.reason, "reconciliation stopped: " + failure.message),
                ("True", failure.reason, failure.message))
    if cache is not None and not cache.ready:
        message = f"waiting for the model cache ({cache.reason}): {cache.status.message}"
        return (("False", Reason.WAITING_FOR_CACHE, message),
                ("True", Reason.WAITING_FOR_CACHE, message),
                ("False", Reason.WAITING_FOR_CACHE, "no failure"))
    if wl is None:
        message = "applying the workload"
        return (("False", Reason.PROGRESSING, message), ("True", Reason.PROGRESSING, message),
                ("False", Reason.PROGRESSING, "no failure"))
    progress = f"{wl.ready}/{wl.desired} replicas ready, {wl.updated}/{wl.desired} updated"
    if settled(wl):
        reason = Reason.SCALED_TO_ZERO if wl.desired == 0 else Reason.AVAILABLE
        return (("True", reason, progress), ("False", reason, "reconciled"),
                ("False", reason, "no failure"))
    if obs.rollout_downtime is not None:
        reason, message = obs.rollout_downtime.reason, f"{progress}: {obs.rollout_downtime.message}"
        return (("False", reason, message), ("True", reason, message),
                ("False", reason, "no failure"))
    reason = Reason.WAITING_FOR_PODS if wl.current else Reason.PROGRESSING
    if obs.pending_gpu_message:
        reason, progress = Reason.WAITING_FOR_GPUS, \
            f"{progress}; pods wait for GPUs: {obs.pending_gpu_message}"
    return (("False", reason, progress), ("True", reason, progress),
            ("False", reason, "no failure"))


def _conditions(previous: Sequence[Condition], obs: Observation, now: str) -> list[Condition]:
    before = {c.type: c for c in previous}
    out = []
    types = [ConditionType.READY, ConditionType.RECONCILING, ConditionType.STALLED]
    triples: list[tuple[str, str, str]] = [(s, str(r), m) for s, r, m in _triple(obs)]
    if obs.cache is not None:
        types.append(ConditionType.CACHE_READY)
        triples.append(("True" if obs.cache.ready else "False", obs.cache.reason,
                        obs.cache.status.message or ""))
    for ctype, (status, reason, message) in zip(types, triples, strict=True):
        old = before.get(ctype)
        changed = old is None or old.status != status
        out.append(Condition(
            type=ctype, status=status, reason=str(reason), message=message[:32768],
            observed_generation=obs.generation,
            last_transition_time=now if changed or old is None else old.last_transition_time,
        ))
    return out


def compute_status(previous: ModelDeploymentStatus | None, obs: Observation,
                   now: str) -> ModelDeploymentStatus:
    """The status this pass should write. `now` is RFC 3339 (the caller's clock)."""
    previous_conditions = previous.conditions if previous is not None else []
    wl = obs.workload
    return ModelDeploymentStatus(
        observed_generation=obs.generation,
        conditions=_conditions(previous_conditions, obs, now),
        plan=plan_status(obs.plan) if obs.plan is not None else None,
        replicas=wl.replicas if wl else None,
        ready_replicas=wl.ready if wl else None,
        updated_replicas=wl.updated if wl else None,
        selector=obs.selector,
        endpoint=obs.endpoint,
        rollout=obs.rollout,
        autoscaling=obs.autoscaling,
        cache=obs.cache.status if obs.cache is not None else None,
    )


def parse_status(raw: Mapping[str, Any] | None) -> ModelDeploymentStatus | None:
    """The previous status, or None when absent or unreadable (then treated as a first visit)."""
    if not raw:
        return None
    try:
        return ModelDeploymentStatus.model_validate(dict(raw))
    except ValueError:
        owned = {k: raw[k] for k in ("conditions",) if k in raw}
        try:
            return ModelDeploymentStatus.model_validate(owned)
        except ValueError:
            return None


def status_patch(observed: Mapping[str, Any] | None,
                 status: ModelDeploymentStatus) -> dict[str, Any] | None:
    """A merge patch of the owned status fields that differ, or None when nothing does."""
    current = dict(observed or {})
    wanted = status.wire()
    patch: dict[str, Any] = {}
    for key in OWNED_FIELDS:
        if key in wanted:
            if current.get(key) != wanted[key]:
                patch[key] = wanted[key]
        elif key in current:
            patch[key] = None
    return patch or None


def condition(status: ModelDeploymentStatus | None, ctype: str) -> Condition | None:
    if status is None:
        return None
    return next((c for c in status.conditions if c.type == ctype), None)
