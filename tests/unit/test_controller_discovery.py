"""GPU pools from Node labels (GFD, Karpenter, GKE) and GPUPool capacity status."""

from __future__ import annotations

from typing import Any

from modeldeploy.api import GPUPool
from modeldeploy.controller.pools.discovery import discover_pools, node_matches, node_shape
from modeldeploy.controller.pools.status import pod_gpus, pool_status, requested_by_node


def node(name: str, labels: dict[str, str], gpus: int | None = None) -> dict[str, Any]:
    status = {"allocatable": {"nvidia.com/gpu": str(gpus)}} if gpus is not None else {}
    return {"metadata": {"name": name, "labels": labels}, "status": status}


def gfd(product: str, memory_mib: int, count: int, **extra: str) -> dict[str, str]:
    return {"nvidia.com/gpu.product": product, "nvidia.com/gpu.memory": str(memory_mib),
            "nvidia.com/gpu.count": str(count), **extra}


def test_gfd_nodes_of_one_shape_form_one_pool() -> None:
    nodes = [node(f"n{i}", gfd("NVIDIA-H100-80GB-HBM3", 81559, 8), gpus=8) for i in range(3)]
    (pool,) = discover_pools(nodes)
    assert pool.name == "discovered-nvidia-h100-80gb-hbm3-x8"
    assert pool.spec.gpu.product == "NVIDIA-H100-80GB-HBM3"
    assert pool.spec.gpu.memory_gi_b == 79.65
    assert pool.spec.gpu.nvlink and pool.spec.gpu.bandwidth_g_bps == 3350
    assert pool.spec.gpus_per_node == 8 and pool.spec.max_nodes == 3
    assert pool.spec.price_per_gpu_hour is None  # unknown from labels
    assert pool.spec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def test_same_product_different_counts_are_told_apart_by_the_count_label() -> None:
    nodes = [node("a", gfd("NVIDIA-L4", 23034, 1)), node("b", gfd("NVIDIA-L4", 23034, 4))]
    pools = discover_pools(nodes)
    assert [p.spec.gpus_per_node for p in pools] == [1, 4]
    assert pools[1].spec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-L4",
                                           "nvidia.com/gpu.count": "4"}
    assert not pools[0].spec.gpu.nvlink  # PCIe L4
    for pool, expected in zip(pools, ("a", "b"), strict=True):
        assert [n["metadata"]["name"] for n in nodes
                if node_matches(n, pool.spec.node_selector)] == [expected]


def test_karpenter_labels() -> None:
    labels = {"karpenter.k8s.aws/instance-gpu-name": "a10g",
              "karpenter.k8s.aws/instance-gpu-count": "4",
              "karpenter.k8s.aws/instance-gpu-memory": "22888",
              "node.kubernetes.io/instance-type": "g5.12xlarge"}
    (pool,) = discover_pools([node("k", labels)])
    assert pool.spec.gpu.product == "NVIDIA-A10G" and pool.spec.gpus_per_node == 4
    assert pool.spec.gpu.memory_gi_b == 22.35 and not pool.spec.gpu.nvlink
    assert pool.spec.node_selector == {"karpenter.k8s.aws/instance-gpu-name": "a10g"}


def test_gke_memory_comes_from_the_accelerator_table_and_count_from_allocatable() -> None:
    (pool,) = discover_pools([node("g", {"cloud.google.com/gke-accelerator": "nvidia-l4"}, 2)])
    assert pool.spec.gpu.memory_gi_b == 22.49 and pool.spec.gpus_per_node == 2
    assert pool.spec.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}


def test_gke_instance_type_disambiguates_when_no_count_label() -> None:
    nodes = [node("a", {"cloud.google.com/gke-accelerator": "nvidia-l4",
                        "node.kubernetes.io/instance-type": "g2-standard-4"}, 1),
             node("b", {"cloud.google.com/gke-accelerator": "nvidia-l4",
                        "node.kubernetes.io/instance-type": "g2-standard-24"}, 2)]
    pools = discover_pools(nodes)
    assert [p.spec.node_selector["node.kubernetes.io/instance-type"] for p in pools] == [
        "g2-standard-4", "g2-standard-24"]


def test_nodes_without_gpu_labels_are_ignored() -> None:
    assert discover_pools([node("cpu", {"kubernetes.io/os": "linux"}, None)]) == []
    assert node_shape(node("bad", {"nvidia.com/gpu.product": "X", "nvidia.com/gpu.memory": "?"},
                           1)) is None
    assert node_shape(node("unknown-gke", {"cloud.google.com/gke-accelerator": "tpu"}, 1)) is None


def test_discovery_is_deterministic() -> None:
    nodes = [node("a", gfd("NVIDIA-L4", 23034, 1)), node("b", gfd("NVIDIA-A100-SXM4-80GB",
                                                                  81920, 8))]
    assert discover_pools(nodes) == discover_pools(list(reversed(nodes)))


def pool(selector: dict[str, str]) -> GPUPool:
    return GPUPool.model_validate({
        "metadata": {"name": "p"},
        "spec": {"gpu": {"product": "NVIDIA-L4", "memoryGiB": 22.49}, "gpusPerNode": 4,
                 "nodeSelector": selector}})


def pod(node_name: str | None, gpus: int, phase: str = "Running") -> dict[str, Any]:
    return {"spec": {"nodeName": node_name,
                     "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
            "status": {"phase": phase}}


def test_pool_status_counts_nodes_and_gpus() -> None:
    nodes = [node("a", {"pool": "l4"}, 4), node("b", {"pool": "l4"}, 4), node("c", {}, 8)]
    pods = [pod("a", 2), pod("a", 1), pod("b", 4, phase="Succeeded"), pod("c", 8), pod(None, 1)]
    status = pool_status(pool({"pool": "l4"}), nodes, requested_by_node(pods), None, 3,
                         "2026-11-23T00:00:00Z")
    assert (status.nodes, status.allocatable_gp_us, status.requested_gp_us, status.free_gp_us) \
        == (2, 8, 3, 5)
    (ready,) = status.conditions
    assert (ready.status, ready.reason, ready.observed_generation) == ("True", "NodesFound", 3)


def test_pool_status_keeps_transition_time_while_status_is_unchanged() -> None:
    first = pool_status(pool({"x": "y"}), [], {}, None, 1, "t1")
    # An empty pool (scaled to zero) is valid and Ready: GitOps waits on Ready.
    assert (first.conditions[0].status, first.conditions[0].reason) == ("True", "NoMatchingNodes")
    second = pool_status(pool({"x": "y"}), [], {}, first, 1, "t2")
    assert second == first
    third = pool_status(pool({"x": "y"}), [node("n", {"x": "y"}, 1)], {}, second, 1, "t3")
    assert third.conditions[0].last_transition_time == "t1"  # Ready stayed True
    assert third.conditions[0].reason == "NodesFound"


def test_pod_gpus_uses_requests_then_limits_and_init_containers() -> None:
    assert pod_gpus({"spec": {"containers": [
        {"resources": {"requests": {"nvidia.com/gpu": "2"}}},
        {"resources": {"limits": {"nvidia.com/gpu": 1}}}],
        "initContainers": [{"resources": {"limits": {"nvidia.com/gpu": "4"}}}]}}) == 4
    assert pod_gpus({"spec": {}}) == 0


def test_a_tainted_gpu_node_group_yields_tolerations_the_workload_carries() -> None:
    # AKS GPU node pools: `sku=gpu:NoSchedule`; EKS GPU AMIs / the GPU operator docs:
    # `nvidia.com/gpu=present:NoSchedule`. Lifecycle taints are never tolerated.
    tainted = [{**node(f"n{i}", gfd("NVIDIA-L4", 23034, 4, **{
        "nvidia.com/gpu.compute.major": "8", "nvidia.com/gpu.compute.minor": "9"}), gpus=4),
        "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
                            {"key": "sku", "value": "gpu", "effect": "NoSchedule"},
                            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}}
        for i in range(2)]
    (pool,) = discover_pools(tainted)
    assert [t.wire() for t in pool.spec.tolerations] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
        {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
    ]
    assert pool.spec.gpu.compute_capability == "8.9"
    from tests.conftest import make_md

    from modeldeploy.facts.catalog import load_catalog
    from modeldeploy.planner import plan_deployment
    from modeldeploy.render import render_objects

    md = make_md("meta-llama/Llama-3.1-8B-Instruct")
    facts = load_catalog().get(md.spec.model.name)
    assert facts is not None
    plan = plan_deployment(md, facts, [pool])
    (deployment,) = [o for o in render_objects(md, plan, pool) if o["kind"] == "Deployment"]
    tolerations = deployment["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in tolerations
    assert {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in tolerations


def test_untainted_nodes_need_no_toleration_and_the_capability_comes_from_labelled_nodes() -> None:
    nodes = [node("a", gfd("NVIDIA-A10G", 23028, 1, **{"nvidia.com/gpu.compute.major": "8",
                                                         "nvidia.com/gpu.compute.minor": "6"}), gpus=1),
             node("b", gfd("NVIDIA-A10G", 23028, 1), gpus=1)]
    (pool,) = discover_pools(nodes)
    assert pool.spec.tolerations == [] and pool.spec.gpu.compute_capability == "8.6"
