"""Pods and nodes as the autoscaler and the rollout tracker see them. Pure.

- which pods serve HTTP (a Deployment's pods; a LeaderWorkerSet's leaders only: workers run Ray
  and expose no vLLM endpoint) and which of them are Ready with an IP to scrape;
- which revision a pod runs (its `modeldeploy.dev/pod-template-hash` annotation, copied from
  the pod template);
- the free GPUs of each node of a pool (allocatable − requested by the pods bound to it), the
  input of `decisions.capacity`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..render.context import HASH_ANNOTATION, LWS_WORKER_INDEX_LABEL
from .children import NAME_LABEL
from .pools.discovery import allocatable_gpus, node_matches
from .pools.status import FINISHED, requested_by_node
from .status import Workload


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def pod_name(pod: Mapping[str, Any]) -> str:
    return str(_meta(pod).get("name") or "")


def pod_hash(pod: Mapping[str, Any]) -> str | None:
    """The revision a pod runs: the pod-template hash its template stamped on it."""
    annotations = _meta(pod).get("annotations")
    if not isinstance(annotations, Mapping):
        return None
    value = annotations.get(HASH_ANNOTATION)
    return value if isinstance(value, str) else None


def alive(pod: Mapping[str, Any]) -> bool:
    """Not finished and not being deleted."""
    return not _meta(pod).get("deletionTimestamp") and _status(pod).get("phase") not in FINISHED


def ready(pod: Mapping[str, Any]) -> bool:
    """Running, alive, and its Ready condition is True."""
    if not alive(pod) or _status(pod).get("phase") != "Running":
        return False
    for cond in _status(pod).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def bound(pod: Mapping[str, Any]) -> bool:
    """Alive and scheduled to a node (it holds its GPUs)."""
    spec = pod.get("spec")
    return alive(pod) and isinstance(spec, Mapping) and bool(spec.get("nodeName"))


def serving(pods: Iterable[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    """The pods that serve the OpenAI API (and /metrics): every pod of a Deployment, the leader
    (worker index 0) of each LeaderWorkerSet group."""
    out = []
    for pod in pods:
        if kind == "LeaderWorkerSet":
            labels = _meta(pod).get("labels")
            if not isinstance(labels, Mapping) or labels.get(LWS_WORKER_INDEX_LABEL) != "0":
                continue
        out.append(pod)
    return out


def scrape_targets(pods: Iterable[Mapping[str, Any]], kind: str) -> list[tuple[str, str]]:
    """(pod name, pod IP) of every Ready serving pod, sorted by name: what the autoscaler reads.

    Pods still loading the model are not Ready and are not read: they count as zero load
    (`decisions.autoscale`)."""
    out = []
    for pod in serving(pods, kind):
        ip = _status(pod).get("podIP")
        if ready(pod) and isinstance(ip, str) and ip:
            out.append((pod_name(pod), ip))
    return sorted(out)


def of_revision(pods: Iterable[Mapping[str, Any]], revision: str) -> list[Mapping[str, Any]]:
    return [p for p in pods if alive(p) and pod_hash(p) == revision]


def bound_replicas(pods: Sequence[Mapping[str, Any]], pods_per_replica: int) -> int:
    """Replicas of this workload whose pods are bound to nodes (all revisions)."""
    return sum(1 for p in pods if bound(p)) // max(1, pods_per_replica)


def free_gpus_per_node(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]],
                       node_selector: Mapping[str, str]) -> list[int]:
    """allocatable − requested GPUs of every schedulable node the selector matches.

    Requested: GPU requests of the unfinished pods bound to the node, whoever owns them (a pod
    being deleted holds its GPUs until it is gone). A cordoned node takes no new pod."""
    requested = requested_by_node(pods)
    out = []
    for node in nodes:
        spec = node.get("spec")
        if isinstance(spec, Mapping) and spec.get("unschedulable"):
            continue
        if not node_matches(node, node_selector):
            continue
        name = str(_meta(node).get("name"))
        out.append(max(0, allocatable_gpus(node) - requested.get(name, 0)))
    return out


def group_size(workload_obj: Mapping[str, Any]) -> int:
    """Pods per replica: a LeaderWorkerSet's leaderWorkerTemplate.size, else 1."""
    spec = workload_obj.get("spec")
    template = spec.get("leaderWorkerTemplate") if isinstance(spec, Mapping) else None
    size = template.get("size") if isinstance(template, Mapping) else None
    return size if isinstance(size, int) and size >= 1 else 1


def recount(workload: Workload, pods: Sequence[Mapping[str, Any]], revision: str | None,
            size: int) -> Workload:
    """A workload whose controller does not say which generation its counts describe (a
    LeaderWorkerSet before v0.9 has no status.observedGeneration), counted from its pods:
    replicas that exist, run `revision`, and are Ready (every pod of the group).

    Source: LWS v0.9 added status.observedGeneration (kubernetes-sigs/lws, api/leaderworkerset
    /v1/leaderworkerset_types.go); older controllers leave it unset."""
    if not workload.generation_unknown:
        return workload
    live = [p for p in pods if alive(p)]
    own = [p for p in live if revision is not None and pod_hash(p) == revision]
    ready_pods = sum(1 for p in own if ready(p))
    size = max(1, size)
    return dataclasses.replace(
        workload, replicas=-(-len(live) // size), updated=len(own) // size,
        ready=ready_pods // size, available=ready_pods // size, current=True)


@dataclass(frozen=True)
class ClusterCapacity:
    """Nodes and the unfinished pods of the whole cluster, as the watches show them at once."""

    nodes: tuple[Mapping[str, Any], ...]
    pods: tuple[Mapping[str, Any], ...]

    def free_per_node(self, node_selector: Mapping[str, str]) -> list[int]:
        """Free GPUs of each node of a pool (allocatable − requested)."""
        return free_gpus_per_node(self.nodes, self.pods, node_selector)

    def pods_of(self, namespace: str, name: str) -> list[Mapping[str, Any]]:
        """The pods of one ModelDeployment (counted with the same free GPUs)."""
        return [p for p in self.pods if _meta(p).get("namespace") == namespace
                and (_meta(p).get("labels") or {}).get(NAME_LABEL) == name]
