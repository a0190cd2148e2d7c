"""GPU pools discovered from Node labels, for clusters without GPUPool objects. Pure.

Sources, in order of precedence on one node (SIZING-FACTS.md, "Node labels"):

- NVIDIA GPU Feature Discovery: `nvidia.com/gpu.product`, `nvidia.com/gpu.memory` (MiB),
  `nvidia.com/gpu.count`;
- EKS / Karpenter: `karpenter.k8s.aws/instance-gpu-name`, `-gpu-count`, `-gpu-memory` (MiB);
- GKE: `cloud.google.com/gke-accelerator`; GKE labels carry no memory, so it comes from a
  table of the accelerators GKE offers, and the count from `status.allocatable`.

Nodes with the same shape (product, memory, GPUs per node) form one pool. Its nodeSelector is
the product label, plus the count label (or instance type) when another shape shares the
product. Prices are unknown from labels: `pricePerGPUHour` stays unset.

The pool carries what scheduling on its nodes needs and what the planner's GPU rules read:

- a toleration for every taint of its nodes (GPU node groups are commonly tainted, e.g.
  `nvidia.com/gpu=present:NoSchedule` on EKS and AKS, `nvidia.com/gpu:NoSchedule` on GKE),
  except the node lifecycle taints Kubernetes and autoscalers set for a while (not-ready,
  unschedulable, being deleted): tolerating those would keep pods on failing nodes;
- the compute capability GFD labels (`nvidia.com/gpu.compute.major` / `.minor`, NVIDIA GPU
  Feature Discovery README) as `spec.gpu.computeCapability`, which overrides the GPU catalog.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ...api import GPU, GPUPool, GPUPoolSpec, ObjectMeta, Toleration

GFD_PRODUCT = "nvidia.com/gpu.product"
GFD_MEMORY = "nvidia.com/gpu.memory"
GFD_COUNT = "nvidia.com/gpu.count"
GFD_COMPUTE_MAJOR = "nvidia.com/gpu.compute.major"
GFD_COMPUTE_MINOR = "nvidia.com/gpu.compute.minor"
# Taints that come and go with a node's lifecycle (kubernetes.io/docs well-known taints, cluster
# autoscaler, Karpenter disruption): a pool never tolerates them.
TRANSIENT_TAINT_PREFIXES = ("node.kubernetes.io/", "node.cloudprovider.kubernetes.io/",
                            "node-role.kubernetes.io/control-plane", "karpenter.sh/disruption")
TRANSIENT_TAINTS = ("ToBeDeletedByClusterAutoscaler", "DeletionCandidateOfClusterAutoscaler")
GKE_ACCELERATOR = "cloud.google.com/gke-accelerator"
KARPENTER_NAME = "karpenter.k8s.aws/instance-gpu-name"
KARPENTER_COUNT = "karpenter.k8s.aws/instance-gpu-count"
KARPENTER_MEMORY = "karpenter.k8s.aws/instance-gpu-memory"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
GPU_RESOURCE = "nvidia.com/gpu"

MIB_PER_GIB = 1024

# GKE accelerator label value -> memory the device reports, GiB (SIZING-FACTS.md, "GPUs").
GKE_MEMORY_GIB: dict[str, float] = {
    "nvidia-tesla-t4": 14.75,
    "nvidia-l4": 22.49,
    "nvidia-tesla-a100": 38.61,
    "nvidia-a100-80gb": 79.2,
    "nvidia-h100-80gb": 79.11,
    "nvidia-h100-mega-80gb": 79.11,
    "nvidia-h200-141gb": 140.0,
}

# HBM bandwidth by product substring, GB/s (SIZING-FACTS.md); first match wins.
_BANDWIDTH: tuple[tuple[str, float], ...] = (
    ("H200", 4800), ("H100-NVL", 3900), ("H100 NVL", 3900), ("H100", 3350), ("B200", 8000),
    ("A100-80", 2000), ("A100-SXM4-80", 2000), ("A100", 1555), ("L40S", 864), ("A10G", 600),
    ("L4", 300), ("T4", 320), ("4090", 1000), ("MI300X", 5300),
)
# Products whose multi-GPU nodes are NVLink/NVSwitch connected (SXM boards, HGX).
_NVLINK_MARKERS = ("SXM", "HBM3", "H200", "B200", "GB200", "MEGA")


@dataclass(frozen=True)
class NodeShape:
    """What one node offers, and the labels that identify its product and count."""

    product: str
    memory_gib: float
    gpus: int
    product_label: tuple[str, str]
    count_label: tuple[str, str] | None
    instance_type: str | None
    compute_capability: str | None = None  # "8.9", from GFD labels
    taints: tuple[tuple[str, str | None, str], ...] = ()  # (key, value, effect)


def _labels(node: Mapping[str, Any]) -> Mapping[str, str]:
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    return labels if isinstance(labels, Mapping) else {}


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def allocatable_gpus(node: Mapping[str, Any]) -> int:
    """`status.allocatable["nvidia.com/gpu"]` of a node (0 when absent or malformed)."""
    status = node.get("status") or {}
    return _int((status.get("allocatable") or {}).get(GPU_RESOURCE)) or 0


def _gfd(labels: Mapping[str, str], node: Mapping[str, Any]) -> NodeShape | None:
    product, memory = labels.get(GFD_PRODUCT), _int(labels.get(GFD_MEMORY))
    if not product or memory is None:
        return None
    count = _int(labels.get(GFD_COUNT)) or allocatable_gpus(node)
    if not count:
        return None
    count_label = (GFD_COUNT, labels[GFD_COUNT]) if GFD_COUNT in labels else None
    return NodeShape(product, round(memory / MIB_PER_GIB, 2), count, (GFD_PRODUCT, product),
                     count_label, labels.get(INSTANCE_TYPE))


def _karpenter(labels: Mapping[str, str], node: Mapping[str, Any]) -> NodeShape | None:
    name, memory = labels.get(KARPENTER_NAME), _int(labels.get(KARPENTER_MEMORY))
    count = _int(labels.get(KARPENTER_COUNT)) or allocatable_gpus(node)
    if not name or memory is None or not count:
        return None
    count_label = (KARPENTER_COUNT, labels[KARPENTER_COUNT]) if KARPENTER_COUNT in labels else None
    return NodeShape(f"NVIDIA-{name.upper()}", round(memory / MIB_PER_GIB, 2), count,
                     (KARPENTER_NAME, name), count_label, labels.get(INSTANCE_TYPE))


def _gke(labels: Mapping[str, str], node: Mapping[str, Any]) -> NodeShape | None:
    accelerator = labels.get(GKE_ACCELERATOR)
    if not accelerator or accelerator not in GKE_MEMORY_GIB:
        return None
    count = allocatable_gpus(node)
    if not count:
        return None
    return NodeShape(accelerator.upper(), GKE_MEMORY_GIB[accelerator], count,
                     (GKE_ACCELERATOR, accelerator), None, labels.get(INSTANCE_TYPE))


def _compute_capability(labels: Mapping[str, str]) -> str | None:
    major, minor = labels.get(GFD_COMPUTE_MAJOR, ""), labels.get(GFD_COMPUTE_MINOR, "")
    if major.isdigit() and minor.isdigit() and len(major) <= 2 and len(minor) <= 2:
        return f"{int(major)}.{int(minor)}"
    return None


def node_taints(node: Mapping[str, Any]) -> tuple[tuple[str, str | None, str], ...]:
    """(key, value, effect) of each taint a pool must tolerate to schedule on `node`."""
    out = []
    for taint in (node.get("spec") or {}).get("taints") or []:
        key, effect = taint.get("key"), taint.get("effect")
        if not isinstance(key, str) or not key or not isinstance(effect, str):
            continue
        if key.startswith(TRANSIENT_TAINT_PREFIXES) or key in TRANSIENT_TAINTS:
            continue
        value = taint.get("value")
        out.append((key, value if isinstance(value, str) and value else None, effect))
    return tuple(sorted(set(out), key=lambda t: (t[0], t[1] or "", t[2])))


def node_shape(node: Mapping[str, Any]) -> NodeShape | None:
    """The GPU shape a node's labels describe, or None for nodes without (known) GPUs."""
    labels = _labels(node)
    for source in (_gfd, _karpenter, _gke):
        shape = source(labels, node)
        if shape is not None:
            return replace(shape, compute_capability=_compute_capability(labels),
                           taints=node_taints(node))
    return None


def _tolerations(group: list[NodeShape]) -> list[Toleration]:
    """One toleration per distinct taint of the pool's nodes (their union: a node the
    scheduler picks may carry any of them)."""
    taints = sorted({t for shape in group for t in shape.taints}, key=lambda t: (t[0], t[1] or "", t[2]))
    return [Toleration(key=key, operator="Equal" if value else "Exists", value=value, effect=effect)
            for key, value, effect in taints][:32]


def _pool_name(shape: NodeShape) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", shape.product.lower()).strip("-") or "gpu"
    return f"discovered-{base[:200]}-x{shape.gpus}"


def _bandwidth(product: str) -> float | None:
    upper = product.upper()
    return next((bw for marker, bw in _BANDWIDTH if marker in upper), None)


def _nvlink(shape: NodeShape) -> bool:
    upper = shape.product.upper()
    if shape.gpus < 2:
        return False
    if any(marker in upper for marker in _NVLINK_MARKERS):
        return True
    # Karpenter names the GPU only ("h100", "a100"): p4d/p4de/p5 carry SXM boards.
    return shape.product_label[0] == KARPENTER_NAME and shape.gpus >= 8 and \
        any(m in upper for m in ("A100", "H100", "H200"))


def _selector(shape: NodeShape, group: list[NodeShape], others: list[NodeShape]) -> dict[str, str]:
    selector = dict([shape.product_label])
    if not any(o.product_label == shape.product_label for o in others):
        return selector
    if shape.count_label is not None and all(s.count_label == shape.count_label for s in group):
        selector.update([shape.count_label])
    elif shape.instance_type and all(s.instance_type == shape.instance_type for s in group):
        selector[INSTANCE_TYPE] = shape.instance_type
    return selector


def discover_pools(nodes: Iterable[Mapping[str, Any]]) -> list[GPUPool]:
    """One GPUPool per distinct GPU shape among the nodes, sorted by name."""
    groups: dict[tuple[str, float, int], list[NodeShape]] = {}
    for node in nodes:
        shape = node_shape(node)
        if shape is not None:
            groups.setdefault((shape.product, shape.memory_gib, shape.gpus), []).append(shape)
    pools: list[GPUPool] = []
    for key, group in sorted(groups.items()):
        shape = group[0]
        others = [s for k, g in groups.items() if k != key for s in g]
        capabilities = {s.compute_capability for s in group} - {None}
        gpu = GPU(product=shape.product[:128], memory_gi_b=shape.memory_gib,
                  bandwidth_g_bps=_bandwidth(shape.product), nvlink=_nvlink(shape),
                  compute_capability=capabilities.pop() if len(capabilities) == 1 else None)
        spec = GPUPoolSpec(gpu=gpu, gpus_per_node=min(shape.gpus, 64), max_nodes=len(group),
                           node_selector=_selector(shape, group, others),
                           tolerations=_tolerations(group))
        pools.append(GPUPool(metadata=ObjectMeta(name=_pool_name(shape)), spec=spec))
    names = [p.name for p in pools]
    if len(set(names)) != len(names):  # same product and count, different memory (MIG slices)
        pools = [p.model_copy(update={"metadata": ObjectMeta(name=f"{p.name}-{i}")})
                 for i, p in enumerate(pools)]
    return pools


def node_matches(node: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = _labels(node)
    return all(labels.get(k) == v for k, v in selector.items())
