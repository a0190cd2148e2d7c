"""GPUPool status: nodes matched, allocatable, requested and free GPUs. Pure.

Requested GPUs are the sum of `nvidia.com/gpu` requests (limits when no request, as the API
defaults extended resources) of the pods bound to a matched node and not finished.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...api import Condition, GPUPool, GPUPoolStatus
from .discovery import GPU_RESOURCE, allocatable_gpus, node_matches

FINISHED = frozenset({"Succeeded", "Failed"})


def _gpus(resources: Mapping[str, Any] | None) -> int:
    try:
        return int(str((resources or {}).get(GPU_RESOURCE, 0)))
    except ValueError:
        return 0


def pod_gpus(pod: Mapping[str, Any]) -> int:
    """GPUs a pod holds: max(sum of app containers, largest init container), as the scheduler."""
    spec = pod.get("spec") or {}

    def container(c: Mapping[str, Any]) -> int:
        res = c.get("resources") or {}
        return _gpus(res.get("requests")) or _gpus(res.get("limits"))

    app = sum(container(c) for c in spec.get("containers") or [])
    init = max((container(c) for c in spec.get("initContainers") or []), default=0)
    return max(app, init)


def requested_by_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in FINISHED:
            continue
        out[node] = out.get(node, 0) + pod_gpus(pod)
    return out


def pool_status(pool: GPUPool, nodes: Sequence[Mapping[str, Any]],
                requested: Mapping[str, int], previous: GPUPoolStatus | None,
                generation: int | None, now: str) -> GPUPoolStatus:
    matched = [n for n in nodes if node_matches(n, pool.spec.node_selector)]
    allocatable = sum(allocatable_gpus(n) for n in matched)
    used = sum(requested.get(str((n.get("metadata") or {}).get("name")), 0) for n in matched)
    # A valid pool with no node yet is Ready: it is the normal state of a pool scaled to zero
    # (the cluster autoscaler / Karpenter adds nodes when a pod asks), and GitOps tools wait
    # on Ready (Argo CD sync waves, Flux health checks).
    status = "True"
    reason = "NodesFound" if matched else "NoMatchingNodes"
    message = (f"{len(matched)} nodes, {allocatable - used} of {allocatable} GPUs free"
               if matched else f"no node matches nodeSelector {dict(pool.spec.node_selector)} "
               "yet: pods wait for a node to be added")
    old = next((c for c in previous.conditions if c.type == "Ready"), None) if previous else None
    ready = Condition(
        type="Ready", status=status, reason=reason, message=message,
        observed_generation=generation,
        last_transition_time=old.last_transition_time if old and old.status == status else now,
    )
    return GPUPoolStatus(
        observed_generation=generation, nodes=len(matched), allocatable_gp_us=allocatable,
        requested_gp_us=used, free_gp_us=allocatable - used, conditions=[ready],
    )
