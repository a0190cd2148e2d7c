"""The workload a pass applies: rendered with the capacity observed, tracked, maybe rolled back.
Pure: capacity comes in as a snapshot (`pods.ClusterCapacity`), the clock as a number.

1. Render with the rollout inputs recorded on the live workload (between rollouts the strategy
   stays what it was, so free GPUs changing never rewrites the workload).
2. `revisions.step`: record a revision that became Ready, classify a stuck rollout,
   decide a rollback (or keep holding one).
3. When a revision is about to go live (a new template, a rollback, a first create), render
   again with the target pool's free GPUs: that is the strategy of this rollout, kept until it
   is done.
4. Stamp the revision and the rollout memory on the workload (`workload_to_apply`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...api import GPUPool, ModelDeployment
from ...decisions.capacity import capacity_replicas, replicas_that_fit
from ...decisions.rollout import RolloutStrategy
from ...decisions.startup import StartVerdict
from ...planner import Plan
from ...render import (
    RenderOptions,
    RolloutInputs,
    progress_deadline,
    rollout_strategy,
)
from ..pods import ClusterCapacity, bound_replicas
from ..status import workload_of
from ..target import Target, render_target
from .revisions import (
    RolloutStep,
    RolloutView,
    parse_inputs,
    pool_of,
    step,
    workload_to_apply,
)

WORKLOAD_KINDS = ("Deployment", "LeaderWorkerSet")

Obj = dict[str, Any]


@dataclass(frozen=True)
class LiveWorkload:
    """What the cluster shows of the workload a pass prepares."""

    live: Mapping[str, Any] | None  # the Deployment / LeaderWorkerSet, None: not created yet
    pods: Sequence[Mapping[str, Any]] | None  # its pods (None: not needed this pass)
    capacity: ClusterCapacity | None  # None: unknown (namespaced install)
    generation: int | None  # the ModelDeployment's metadata.generation
    now: float  # epoch s
    upgrade_slot: bool = True  # an operator-caused rollout may start (`UpgradeSlots`)
    starts: Sequence[StartVerdict] = ()  # the startup watchdog's verdicts (controller.starts)


@dataclass(frozen=True)
class Prepared:
    objects: list[Obj]  # the children to apply (not yet owned), the workload stamped
    step: RolloutStep
    strategy: RolloutStrategy  # of the live (or starting) rollout, for status


def _workload_in(objects: Sequence[Obj]) -> Obj:
    return next(o for o in objects if o.get("kind") in WORKLOAD_KINDS)


def cache_access_mode(objects: Sequence[Mapping[str, Any]], options: RenderOptions) -> str:
    """The access mode the renderer chose (it decides whether the workload may surge)."""
    for obj in objects:
        if obj.get("kind") == "PersistentVolumeClaim":
            modes = (obj.get("spec") or {}).get("accessModes") or []
            if modes:
                return str(modes[0])
    return options.cache_access_mode if options.cache_access_mode != "auto" else "ReadWriteMany"


def pods_per_replica(plan: Plan) -> int:
    return max(1, plan.nodes_per_replica or 1)


def observed_inputs(md: ModelDeployment, plan: Plan, pool: GPUPool,
                    capacity: ClusterCapacity | None,
                    live: Mapping[str, Any] | None) -> RolloutInputs:
    """The renderer's rollout input from what the cluster shows now.

    Free GPUs and this workload's bound pods come from the same snapshot, so a pod bound since
    is never counted both as ours and as free."""
    summary = workload_of(live)
    live_replicas = summary.desired if summary is not None else None
    pool_changed = live is not None and pool_of(live) not in (None, plan.pool)
    replicas = live_replicas if md.spec.autoscaling is not None else None
    if capacity is None:
        return RolloutInputs(pool_changed=pool_changed, replicas=replicas)
    free = capacity.free_per_node(pool.spec.node_selector)
    surge = 0
    if live_replicas is not None:
        ours = capacity.pods_of(str(md.metadata.namespace), md.metadata.name)
        surge = max(0, bound_replicas(ours, pods_per_replica(plan)) - live_replicas)
    return RolloutInputs(
        free_gpus=sum(free),
        spare_replicas=replicas_that_fit(free, int(plan.gpus_per_pod or 1), pods_per_replica(plan)),
        scheduled_surge_replicas=surge, pool_changed=pool_changed, replicas=replicas)


def replicas_capacity(md: ModelDeployment, plan: Plan, pool: GPUPool,
                      capacity: ClusterCapacity | None) -> int | None:
    """Most replicas the pool can run for this workload (None: capacity unknown): its replicas
    bound to nodes plus those the free GPUs fit, both from one snapshot."""
    if capacity is None:
        return None
    ppr = pods_per_replica(plan)
    ours = capacity.pods_of(str(md.metadata.namespace), md.metadata.name)
    return capacity_replicas(bound_replicas(ours, ppr), capacity.free_per_node(
        pool.spec.node_selector), int(plan.gpus_per_pod or 1), ppr)


def prepare(target: Target, options: RenderOptions, seen: LiveWorkload) -> Prepared:
    """Render, track and stamp the workload (raises what `render_objects` raises).

    A rendering change (operator upgrade) starts only with `seen.upgrade_slot` (the shell's
    `UpgradeSlots` said one is free); `Prepared.step.upgrading` says whether it holds one."""
    md, plan, pool, live = target.md, target.plan, target.pool, seen.live
    recorded = parse_inputs(live) if live is not None else None
    # Nothing recorded (a first create): the inputs observed now, as a new revision gets.
    inputs = recorded or observed_inputs(md, plan, pool, seen.capacity, live)
    objects = render_target(target, options, inputs)
    decided = step(RolloutView(
        desired=_workload_in(objects), live=live, pods=seen.pods, generation=seen.generation,
        auto_rollback=md.spec.rollout.auto_rollback,
        deadline_seconds=progress_deadline(md, plan, options), now=seen.now,
        upgrade_slot=seen.upgrade_slot, starts=seen.starts))
    if decided.fresh_capacity or recorded is None:
        # A rollout's strategy is chosen once, from the watch-fed capacity, and then kept.
        fresh = observed_inputs(md, plan, pool, seen.capacity, live)
        if fresh != inputs:
            inputs = fresh
            objects = render_target(target, options, inputs)
    rendered = _workload_in(objects)
    workload = workload_to_apply(rendered, decided, inputs, seen.generation)
    objects = [workload if o is rendered else o for o in objects]
    strategy = rollout_strategy(md, plan, inputs,
                                cache_access_mode=cache_access_mode(objects, options))
    return Prepared(objects, decided, strategy)
