"""render_objects: (ModelDeployment, Plan, GPUPool) -> the Kubernetes objects, in a stable order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import GPUPool, ModelDeployment
from ..planner import Plan
from .argv import PORT
from .autoscaling import autoscaler_object, autoscaling_target
from .cache_objects import cache_size, cache_storage_class, shared_cache_objects
from .context import (
    HASH_ANNOTATION,
    LWS_NAME_LABEL,
    LWS_WORKER_INDEX_LABEL,
    POOL_ANNOTATION,
    Context,
    Pod,
    build_context,
    pods,
    replica_bound,
)
from .engine import POD_TEMPLATE, render_fragment, render_object, render_workload
from .options import RenderOptions
from .output import short_digest
from .rollout import RolloutInputs
from .scaletozero import scale_to_zero_objects


def pod_template_hash(*templates: Mapping[str, Any]) -> str:
    """A short, stable digest of pod template(s): changes exactly when a rollout is needed.

    The hash annotation itself is left out, so hashing a template that already carries it gives
    the same digest.
    """
    cleaned = []
    for template in templates:
        meta = dict(template.get("metadata") or {})
        annotations = dict(meta.get("annotations") or {})
        annotations.pop(HASH_ANNOTATION, None)
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        cleaned.append({**template, "metadata": meta})
    return short_digest(cleaned)


def _pod_template(pod: Pod) -> dict[str, Any]:
    return render_fragment(POD_TEMPLATE, pod=pod)


def _stamp(template: dict[str, Any], digest: str) -> dict[str, Any]:
    template["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = digest
    return template


def _workload(ctx: Context) -> tuple[dict[str, Any], dict[str, str]]:
    """The Deployment or LeaderWorkerSet, and the selector of the pods the Service targets."""
    templates = [_pod_template(p) for p in pods(ctx)]
    digest = pod_template_hash(*templates)
    templates = [_stamp(t, digest) for t in templates]
    annotations = {HASH_ANNOTATION: digest, POOL_ANNOTATION: ctx.pool.name}
    strategy = ctx.strategy
    if not ctx.multi_node:
        obj = render_workload(
            "deployment.yaml.j2", meta=ctx.meta(ctx.names.deployment, annotations),
            replicas=ctx.replicas, selector=ctx.selector, max_surge=strategy.max_surge,
            max_unavailable=strategy.max_unavailable,
            progress_deadline_seconds=ctx.progress_deadline_seconds, embed={"template": templates[0]},
        )
        return obj, ctx.selector
    leader, worker = templates
    obj = render_workload(
        "leaderworkerset.yaml.j2", meta=ctx.meta(ctx.names.leader_worker_set, annotations),
        replicas=ctx.replicas, size=ctx.plan.nodes_per_replica, max_surge=strategy.max_surge,
        max_unavailable=strategy.max_unavailable,
        embed={"leader": leader, "worker": worker},
    )
    # LeaderWorkerSet labels the leader of each group with worker-index 0.
    return obj, {LWS_NAME_LABEL: ctx.names.leader_worker_set, LWS_WORKER_INDEX_LABEL: "0"}


def render_objects(
    md: ModelDeployment, plan: Plan, pool: GPUPool, options: RenderOptions | None = None,
    rollout: RolloutInputs | None = None,
) -> list[dict[str, Any]]:
    """Every object a ModelDeployment needs, in apply order.

    [PersistentVolumeClaim | shared PersistentVolumeClaim, download Job],
    Deployment | LeaderWorkerSet, Service, [PodDisruptionBudget], [ServiceMonitor],
    [wake Service, HTTPScaledObject], [HorizontalPodAutoscaler | ScaledObject].

    The shared claim and Job (spec.cache.mode shared) are the same for every ModelDeployment of
    the namespace serving the same model and revision; `render.cache.is_shared` tells them apart.

    `rollout` carries the capacity the shell observed; the workload's RollingUpdate parameters
    follow from it (`rollout_strategy`). Without it, spec.rollout is used as written. The
    workload omits `spec.replicas` whenever spec.autoscaling is set (see `replicas_owner`).

    Raises InvalidSpec for a spec the renderer refuses (extraArgs contradicting the plan, reserved
    env names, invalid labels) and PlanNotRenderable for an infeasible plan.
    """
    ctx = build_context(md, plan, pool, options or RenderOptions(), rollout)
    names = ctx.names
    out: list[dict[str, Any]] = shared_cache_objects(ctx)
    if ctx.md.spec.cache.mode == "pvc":  # set, or the default for a cache too big for a node
        out.append(render_object(
            "persistentvolumeclaim.yaml.j2", meta=ctx.meta(names.cache),
            access_mode=ctx.cache_access_mode, storage_class=cache_storage_class(ctx),
            size=cache_size(ctx),
        ))
    workload, serving = _workload(ctx)
    out.append(workload)
    out.append(render_object(
        "service.yaml.j2", meta=ctx.meta(names.service), selector=serving, port=PORT,
    ))
    if replica_bound(md, plan) > 1:
        out.append(render_object(
            "poddisruptionbudget.yaml.j2", meta=ctx.meta(names.pod_disruption_budget),
            max_unavailable=1, selector=ctx.selector,
        ))
    if ctx.options.service_monitor:
        out.append(render_object(
            "servicemonitor.yaml.j2",
            meta=ctx.meta(names.service_monitor, extra_labels=ctx.options.service_monitor_labels),
            selector=ctx.selector,
        ))
    # The HTTPScaledObject before the ScaledObject whose external-push trigger names it.
    out += scale_to_zero_objects(ctx, autoscaling_target(ctx))
    autoscaler = autoscaler_object(ctx)
    if autoscaler is not None:
        out.append(autoscaler)
    return out
