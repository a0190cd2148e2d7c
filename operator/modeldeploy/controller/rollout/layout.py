"""A layout change between a Deployment and a LeaderWorkerSet (e.g. a new pool needs two nodes
per replica). Pure.

The new workload has another kind, so it is a new object beside the old one, not a rollout of
it. When the target pool has the GPUs for the new group (its own bound replicas plus what its
free GPUs fit, from the same capacity snapshot), the old workload keeps serving until the new
one is Ready and only then is deleted: a surge, no downtime (the Service selects the serving
pods of both). Otherwise, or when capacity is unknown (namespaced install), the old workload is
deleted at once, so its GPUs can go to the new one: a step down, said in status as
`LayoutChangeWithoutSpareCapacity` (Reconciling, not a failure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...decisions.capacity import replicas_that_fit
from ..children import ChildRef
from ..pods import ClusterCapacity, bound_replicas, pod_hash
from ..status import Failure, Reason, workload_of
from ..target import Target
from .revisions import complete, revision_of
from .workload import WORKLOAD_KINDS, pods_per_replica

Obj = dict[str, Any]


def new_group_fits(target: Target, capacity: ClusterCapacity | None,
                   new_live: Mapping[str, Any] | None) -> bool:
    """Whether the pool runs every replica of the new workload beside the old one: the new
    revision's replicas already bound plus those the free GPUs fit (a surge that started stays
    one: its bound pods count as its own, not as used GPUs)."""
    if capacity is None:
        return False
    md, plan, pool = target.md, target.plan, target.pool
    revision = revision_of(new_live) if new_live is not None else None
    ours = [p for p in capacity.pods_of(str(md.metadata.namespace), md.metadata.name)
            if revision is not None and pod_hash(p) == revision]
    per_replica = pods_per_replica(plan)
    fits = replicas_that_fit(capacity.free_per_node(pool.spec.node_selector),
                             int(plan.gpus_per_pod or 1), per_replica)
    return bound_replicas(ours, per_replica) + fits >= max(1, md.spec.replicas)


def layout_change(target: Target, wanted: ChildRef, world: tuple[
                      ClusterCapacity | None, Mapping[ChildRef, Obj | None]],
                  deletes: Sequence[tuple[ChildRef, str]]
                  ) -> tuple[tuple[tuple[ChildRef, str], ...], Failure | None]:
    """The deletions to make now, and the step-down reason when the old group goes first.

    world: the capacity snapshot and the children at their names."""
    capacity, children = world
    old = [d for d in deletes if d[0].kind in WORKLOAD_KINDS and d[0].kind != wanted.kind]
    if not old:
        return tuple(deletes), None
    new_live = children.get(wanted)
    if new_live is not None and complete(workload_of(new_live)):
        return tuple(deletes), None  # the new group serves: the old one goes
    if new_group_fits(target, capacity, new_live):
        keep = {ref for ref, _ in old}
        return tuple(d for d in deletes if d[0] not in keep), None
    return tuple(deletes), Failure(Reason.LAYOUT_CHANGE_WITHOUT_SPARE_CAPACITY, (
        f"the layout moves from {old[0][0].kind} to {wanted.kind} and pool {target.pool.name} has no "
        f"GPUs for both: the old {old[0][0].kind} is removed first, the model serves nothing "
        "until the new one is Ready"))
