"""What hardware would hold a model that fits no allowed pool: the closest pool grown (more
nodes, more GPUs per node) and the smallest bigger GPU of the catalog. Pure.

Every suggestion is a layout the planner itself found on a hypothetical pool (the same memory
model and vLLM rules as a real plan), so its numbers are real: never a per-GPU memory no GPU
has (planning Llama 3.1 405B on L4s once advised "GPUs of at least 850 GiB").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..api import GPUPool
from ..facts.gpus import GPUSpec, LinkTopology, Vendor, load_gpu_catalog
from .search import MAX_NODES_SEARCHED, Candidate

Best = Callable[[Sequence[GPUPool]], Candidate | None]  # the planner's search on other pools

# Common node shapes, GPUs per node: cloud GPU instances come with 1, 2, 4 or 8 GPUs (AWS g5/g6
# xlarge to 48xlarge: 1, 4, 8; GKE g2-standard-24/48/96: 2, 4, 8 L4), and 8 is the largest
# (HGX/DGX boards, AWS p4d/p5, GKE a3). A pool with smaller nodes is offered the next shapes.
NODE_SHAPES = (2, 4, 8)
NODE_GPUS = NODE_SHAPES[-1]


def layout_text(c: Candidate) -> str:
    """`4 × NVIDIA-L4 (TP 4 × PP 2 across 2 nodes)`: GPUs, product and layout of one replica."""
    layout = f"TP {c.tp}" + (f" × PP {c.pp}" if c.pp > 1 else "")
    nodes = f" across {c.nodes} nodes" if c.nodes > 1 else ""
    return f"{c.gpus} × {c.pool.spec.gpu.product} ({layout}{nodes})"


def _reshaped(pool: GPUPool, **spec: object) -> GPUPool:
    return pool.model_copy(update={"spec": pool.spec.model_copy(update=spec)})


def _with_gpu(pool: GPUPool, gpu: GPUSpec, gpus_per_node: int) -> GPUPool:
    """`pool`'s shape with catalog GPU `gpu` (memory as the catalog says the device reports)."""
    switch = gpu.gpu_link_topology is LinkTopology.SWITCH
    card = pool.spec.gpu.model_copy(update={
        "product": gpu.product, "memory_gi_b": gpu.memory_gib, "bandwidth_g_bps": gpu.hbm_bandwidth_gbps,
        "nvlink": switch, "compute_capability": None, "memory_bandwidth_g_bps": None, "bf16_tflops": None,
        "fp8_tflops": None, "fp4_tflops": None, "interconnect_g_bps": None})
    return _reshaped(pool, gpu=card, gpus_per_node=gpus_per_node, price_per_gpu_hour=None)


def _more_nodes(closest: GPUPool, best: Best) -> str | None:
    limit = closest.spec.max_nodes
    if limit is None or limit >= MAX_NODES_SEARCHED:
        return None  # the search already went as far as a replica reasonably spans
    found = best([_reshaped(closest, max_nodes=MAX_NODES_SEARCHED)])
    if found is None:
        return None
    # A pool must hold every replica: the fitting layout's nodes, at least.
    return (f"raise spec.maxNodes of GPUPool {closest.name} from {limit} to at least {found.nodes} "
            f"(fits {layout_text(found)})")


def _wider_nodes(closest: GPUPool, best: Best) -> str | None:
    """The smallest common node shape (2, 4 or 8 GPUs) of the same GPU that holds the model."""
    own = closest.spec.gpus_per_node
    for gpus in (n for n in NODE_SHAPES if n > own):
        found = best([_reshaped(closest, gpus_per_node=gpus)])
        if found is not None:
            return (f"nodes with {gpus} × {closest.spec.gpu.product} in GPUPool {closest.name} "
                    f"(gpusPerNode {gpus}, not {own}; fits {layout_text(found)})")
    return None


def _bigger_gpus(closest: GPUPool) -> list[GPUSpec]:
    """Catalog GPUs with more memory than the closest pool's, smallest first (full GPUs of the
    pool's vendor: a MIG slice or another vendor's software stack is not a drop-in change)."""
    own = closest.spec.gpu.memory_gi_b
    vendor = Vendor.AMD if closest.spec.gpu.product.upper().startswith("AMD") else Vendor.NVIDIA
    found = [g for g in load_gpu_catalog().entries() if g.vendor is vendor and g.mig_fraction is None
             and g.memory_gib > own]
    # Same nominal size (an 80 GB A100 and H100): the older generation first, usually cheaper.
    return sorted(found, key=lambda g: (g.memory_gb or g.memory_gib, g.compute_capability, g.product))


def _catalog_gpu(closest: GPUPool, best: Best) -> list[str]:
    """The smallest bigger catalog GPU that holds the model in the pool's own node shape, and,
    when that needs several nodes, the smallest that holds it in one node of NODE_GPUS."""
    out: list[str] = []
    shapes = [(closest.spec.gpus_per_node, closest.spec.max_nodes)]
    if closest.spec.gpus_per_node < NODE_GPUS:
        shapes.append((NODE_GPUS, 1))
    for gpus_per_node, max_nodes in shapes:
        for gpu in _bigger_gpus(closest):
            pool = _reshaped(_with_gpu(closest, gpu, gpus_per_node), max_nodes=max_nodes)
            found = best([pool])
            if found is not None:
                out.append(f"a GPUPool of {gpu.product} ({gpu.memory_gib:g} GiB each, {gpus_per_node} per node) "
                           f"from the GPU catalog (fits {layout_text(found)})")
                if found.nodes == 1:
                    return out
                break
    return out


def hardware_that_fits(closest: Candidate, best: Best) -> list[str]:
    """What would hold the model, nearest change first: the closest layout's pool with more
    nodes, then with more GPUs per node, then a bigger catalog GPU. Each names the layout found."""
    out = [s for s in (_more_nodes(closest.pool, best), _wider_nodes(closest.pool, best)) if s]
    return out + _catalog_gpu(closest.pool, best)
