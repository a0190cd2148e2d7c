"""An infeasible plan says what would hold the model, with numbers the planner itself found:
more nodes or GPUs per node in the closest pool, a bigger GPU of the catalog, quantization.
The new-user trial (2026-11-30) planned Llama 3.1 405B on an L4 pool and was told to use
"GPUs of at least 850 GiB", which no GPU has."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import make_md, make_pool

from modeldeploy.api import GPUPool
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.gpus import load_gpu_catalog
from modeldeploy.planner import Plan, plan_deployment

LLAMA_405B = "meta-llama/Llama-3.1-405B-Instruct"
# examples/pools.yaml's gke-l4-x4: 4 × L4 per g2-standard-48 node, at most 6 nodes.
L4X4 = make_pool("gke-l4-x4", "NVIDIA-L4", 22.49, 4, max_nodes=6, price=1.15)


def plan_405b(pool: GPUPool = L4X4, **spec: Any) -> Plan:
    facts = load_catalog().get(LLAMA_405B)
    assert facts is not None
    return plan_deployment(make_md(LLAMA_405B, **spec), facts, [pool])


def layout_of(suggestion: str) -> tuple[int, str, int, int, int]:
    """(GPUs, product, TP, PP, nodes) of the layout a suggestion says fits."""
    m = re.search(r"fits (\d+) × (\S+) .*?\(TP (\d+)(?: × PP (\d+))?(?: across (\d+) nodes)?\)\)$", suggestion)
    assert m, suggestion
    return int(m[1]), m[2], int(m[3]), int(m[4] or 1), int(m[5] or 1)


def test_no_suggestion_asks_for_a_gpu_that_does_not_exist() -> None:
    plan = plan_405b()
    assert not plan.feasible and plan.failure == "NoFeasibleLayout"
    biggest = max(g.memory_gib for g in load_gpu_catalog().entries())
    for text in [plan.reason, *plan.suggestions]:
        assert "report at least" not in text
        for gib in re.findall(r"(\d+(?:\.\d+)?) GiB each", text):
            assert float(gib) <= biggest, text


def test_the_reason_says_what_would_fit() -> None:
    plan = plan_405b()
    assert "; it would fit with: " in plan.reason
    fixes = plan.reason.split("; it would fit with: ", 1)[1]
    assert plan.suggestions[0] in fixes  # the nearest change, word for word
    # The closest layout is the widest chain tried (6 nodes × 4 L4), not one node missing by 9x.
    assert "the closest layout, 24 × NVIDIA-L4 in pool gke-l4-x4 (TP 4 × PP 6 across 6 nodes)" in plan.reason


def test_more_nodes_is_a_layout_the_grown_pool_really_plans() -> None:
    plan = plan_405b()
    (more,) = [s for s in plan.suggestions if s.startswith("raise spec.maxNodes of GPUPool gke-l4-x4 from 6 to at least ")]
    nodes = int(more.split("to at least ")[1].split(" ")[0])
    grown = make_pool("gke-l4-x4", "NVIDIA-L4", 22.49, 4, max_nodes=nodes, price=1.15)
    fits = plan_405b(grown)
    assert fits.feasible
    gpus, product, tp, pp, across = layout_of(more)
    assert (fits.gpus_per_replica, fits.gpu_product, fits.tensor_parallel_size, fits.pipeline_parallel_size,
            fits.nodes_per_replica) == (gpus, product, tp, pp, across) and across == nodes
    too_few = plan_405b(make_pool("gke-l4-x4", "NVIDIA-L4", 22.49, 4, max_nodes=nodes - 1, price=1.15))
    assert not too_few.feasible  # "at least" is the least


def test_wider_nodes_and_a_bigger_catalog_gpu_are_offered() -> None:
    plan = plan_405b()
    assert any(s.startswith("nodes with 8 × NVIDIA-L4 in GPUPool gke-l4-x4 (gpusPerNode 8, not 4;")
               for s in plan.suggestions)
    catalog = [s for s in plan.suggestions if s.startswith("a GPUPool of ")]
    assert catalog and all("from the GPU catalog" in s for s in catalog)
    # One node of 8 × H200 (140 GiB) holds 405B in bf16 (about 760 GiB of weights); 8 × H100 does not.
    assert catalog[-1] == ("a GPUPool of NVIDIA-H200 (140 GiB each, 8 per node) from the GPU catalog "
                           "(fits 8 × NVIDIA-H200 (TP 8))")
    h200 = make_pool("h200", "NVIDIA-H200", 140.0, 8, nvlink=True, max_nodes=1)
    assert plan_405b(h200).feasible


def test_quantization_is_offered_when_it_makes_the_pool_fit() -> None:
    plan = plan_405b()
    (fp8,) = [s for s in plan.suggestions if s.startswith("set spec.model.quantization: fp8")]
    fits = plan_405b(model={"quantization": "fp8"})
    assert fits.feasible and layout_of(fp8)[0] == fits.gpus_per_replica


def test_too_high_a_utilization_is_told_the_highest_that_fits() -> None:
    # At 0.98 an L4 keeps 0.45 GiB outside vLLM's budget, less than the CUDA context takes: the
    # memory fits, so the nearest change is a lower utilization, not more hardware.
    l4 = make_pool("l4", "NVIDIA-L4", 22.49, 1, max_nodes=4)
    facts = load_catalog().get("meta-llama/Llama-3.2-3B-Instruct")
    assert facts is not None
    plan = plan_deployment(make_md(facts.id, serving={"gpuMemoryUtilization": 0.98}), facts, [l4])
    assert not plan.feasible and "the closest layout, 1 × NVIDIA-L4 in pool l4 (TP 1)," in plan.reason
    first = plan.suggestions[0]
    assert first.startswith("set spec.serving.gpuMemoryUtilization: 0.97 (fits 1 × NVIDIA-L4")
    assert plan_deployment(make_md(facts.id, serving={"gpuMemoryUtilization": 0.97}), facts, [l4]).feasible
