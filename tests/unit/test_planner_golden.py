"""Golden cases from real deployments and real model configurations.

Sources are named per case; GPU memory is what the device reports (SIZING-FACTS.md).
"""

from __future__ import annotations

import pytest
from tests.conftest import make_md, make_pool

from modeldeploy.errors import InvalidSpec
from modeldeploy.facts import ModelFacts
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.planner import default_pools, plan_deployment
from modeldeploy.planner.memory import GIB, kv_bytes_per_sequence, kv_bytes_per_token_layer

A10G = make_pool("a10g", "NVIDIA-A10G", 22.30, 1, price=1.006, bandwidth=600)
L4X1 = make_pool("l4-x1", "NVIDIA-L4", 22.49, 1, price=0.805)
L4X2 = make_pool("l4-x2", "NVIDIA-L4", 22.49, 2, price=0.9)
L4X4 = make_pool("l4-x4", "NVIDIA-L4", 22.49, 4, price=1.15)
H100X8 = make_pool("h100", "NVIDIA-H100-80GB-HBM3", 79.11, 8, nvlink=True, price=6.88, max_nodes=4, bandwidth=3350)
H200X8 = make_pool("h200", "NVIDIA-H200", 140.0, 8, nvlink=True, price=7.91, max_nodes=2, bandwidth=4800)
A100X8 = make_pool("a100-80", "NVIDIA-A100-SXM4-80GB", 79.2, 8, nvlink=True, price=3.43, bandwidth=2000)


def facts(repo: str) -> ModelFacts:
    found = load_catalog().get(repo)
    assert found is not None, repo
    return found


def test_llama_8b_bf16_fits_one_a10g_with_vllms_weight_size() -> None:
    # vLLM log on A10G (SIZING-FACTS rule 8) and vllm-project/vllm#17122 (L40S):
    # "Model loading took 14.9889 GiB" for meta-llama/Llama-3.1-8B-Instruct.
    plan = plan_deployment(make_md("meta-llama/Llama-3.1-8B-Instruct"), facts("meta-llama/Llama-3.1-8B-Instruct"), [A10G])
    assert plan.feasible, plan.reason
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.gpus_per_replica) == (1, 1, 1)
    assert plan.memory_per_gpu is not None
    assert plan.memory_per_gpu.weights_gib == pytest.approx(14.99, abs=0.05)
    assert plan.memory_per_gpu.budget_gib == pytest.approx(22.30 * 0.9, abs=0.01)
    # The same log left 4.17 GiB for KV; our estimate is conservative but of that order.
    assert 2.5 < plan.memory_per_gpu.kv_cache_gib < 4.2


def test_kv_bytes_per_token_match_sizing_facts() -> None:
    assert kv_bytes_per_token_layer(facts("meta-llama/Llama-3.3-70B-Instruct"), 1, 2) * 80 == 327_680
    assert kv_bytes_per_token_layer(facts("meta-llama/Llama-3.1-8B-Instruct"), 1, 2) * 32 == 131_072
    deepseek = facts("deepseek-ai/DeepSeek-V3")
    assert kv_bytes_per_token_layer(deepseek, 1, 2) * 61 == 70_272
    # MLA's latent is replicated on every rank: TP does not divide it.
    assert kv_bytes_per_token_layer(deepseek, 8, 2) == kv_bytes_per_token_layer(deepseek, 1, 2)


def test_qwen3_coder_480b_kv_for_full_context_is_vllms_62_gib() -> None:
    # Qwen/Qwen3-Coder-480B-A35B-Instruct config.json: 62 layers, 8 KV heads, head_dim 128;
    # vLLM reports 62.0 GiB for one 262,144-token sequence in bf16 (SIZING-FACTS rule 9).
    qwen = ModelFacts(id="Qwen/Qwen3-Coder-480B-A35B-Instruct", parameters=480_000_000_000, layers=62,
                      hidden_size=6144, attention_heads=96, kv_heads=8, head_dim=128, max_context=262_144)
    assert kv_bytes_per_sequence(qwen, 1, 1, 2, 262_144) / GIB == pytest.approx(62.0, abs=0.01)


def test_gemma_2_27b_needs_four_l4() -> None:
    # google/gemma-2-27b-it: 54 GB of bf16 weights; an L4 reports 23034 MiB.
    gemma = facts("google/gemma-2-27b-it")
    md = make_md("google/gemma-2-27b-it")
    one_node_of_two = make_pool("l4-x2", "NVIDIA-L4", 22.49, 2, max_nodes=1)
    two = plan_deployment(md, gemma, [one_node_of_two])
    assert not two.feasible
    assert any("GiB per GPU" in r.reason for r in two.rejected)
    for pool in (L4X4, L4X2, L4X1):  # four GPUs, in one node or across several
        plan = plan_deployment(md, gemma, [pool])
        assert plan.feasible, plan.reason
        assert plan.gpus_per_replica == 4, (pool.name, plan.reason)
    plan = plan_deployment(md, gemma, [L4X4])
    assert plan.nodes_per_replica == 1
    # 3 × L4 is never offered: 32 heads are not divisible by 3.
    assert all(r.tensor_parallel_size != 3 for r in plan.rejected if r.pool == "l4-x4")


def test_deepseek_v3_needs_two_h100_nodes_or_one_h200_node() -> None:
    deepseek = facts("deepseek-ai/DeepSeek-V3")
    md = make_md("deepseek-ai/DeepSeek-V3")
    on_h100 = plan_deployment(md, deepseek, [H100X8])
    assert on_h100.feasible, on_h100.reason
    assert (on_h100.tensor_parallel_size, on_h100.pipeline_parallel_size, on_h100.nodes_per_replica) == (8, 2, 2)
    assert on_h100.gpus_per_pod == 8
    single = [r for r in on_h100.rejected if r.tensor_parallel_size == 8 and r.pipeline_parallel_size == 1]
    assert single and "GiB per GPU" in single[0].reason
    on_h200 = plan_deployment(md, deepseek, [H200X8])
    assert on_h200.feasible, on_h200.reason
    assert (on_h200.tensor_parallel_size, on_h200.pipeline_parallel_size, on_h200.nodes_per_replica) == (8, 1, 1)
    # Served as its own FP8 checkpoint: the plan says so, and vLLM reads the method from its config.
    assert on_h200.quantization == "fp8" and not on_h200.online_quantization


def test_qwen3_235b_fp8_is_refused_at_tp8_and_runs_at_tp4() -> None:
    qwen = facts("Qwen/Qwen3-235B-A22B-FP8")
    plan = plan_deployment(make_md("Qwen/Qwen3-235B-A22B-FP8"), qwen, [H100X8])
    assert plan.feasible, plan.reason
    assert plan.tensor_parallel_size == 4
    block = [r for r in plan.rejected if r.tensor_parallel_size == 8]
    assert block and "block" in block[0].reason and "1536" in block[0].reason
    with pytest.raises(InvalidSpec, match=r"spec.placement.tensorParallelSize: vLLM refuses TP 8 for .*: FP8 block"):
        plan_deployment(make_md("Qwen/Qwen3-235B-A22B-FP8", placement={"tensorParallelSize": 8}), qwen, [H100X8])


def test_llama_70b_on_a100_trades_context_for_gpus() -> None:
    # meta-llama/Llama-3.3-70B-Instruct, bf16: 131.4 GiB of weights, 65.7 GiB per GPU at TP 2.
    llama = facts("meta-llama/Llama-3.3-70B-Instruct")
    long = plan_deployment(make_md(llama.id, serving={"maxModelLen": 32768}), llama, [A100X8, H100X8])
    assert long.feasible and long.pool == "a100-80" and "cheapest" in long.reason
    # At 2 × 32768 tokens TP 2 misses (10 GiB of KV per GPU); the rejection says by how much.
    assert long.tensor_parallel_size == 4 and long.cost_per_hour == pytest.approx(13.72)
    tp2 = next(r for r in long.rejected if r.pool == "a100-80" and r.tensor_parallel_size == 2)
    assert "needs 77.1 GiB per GPU at TP 2" in tp2.reason and "gives 71.3 GiB" in tp2.reason
    # The default 2 × 8192 tokens fit at TP 2 (A100s keep vLLM's small batch defaults).
    short = plan_deployment(make_md(llama.id), llama, [A100X8, H100X8])
    assert short.tensor_parallel_size == 2 and short.cost_per_hour == pytest.approx(6.86)
    # maxNumSeqs is vLLM's concurrency cap only: it neither shrinks nor grows the KV reserved.
    capped = plan_deployment(make_md(llama.id, serving={"maxNumSeqs": 64}), llama, [A100X8, H100X8])
    assert capped.tensor_parallel_size == 2 and capped.kv_sequences == 2 and capped.max_num_seqs == 64


def test_policies_pick_their_optimum() -> None:
    llama = facts("meta-llama/Llama-3.3-70B-Instruct")
    # In fp8 (66 GiB of weights) one H200 holds it; an A100-80 needs two but costs less.
    fp8 = {"quantization": "fp8"}
    fewest = plan_deployment(make_md(llama.id, model=fp8, placement={"policy": "fewestGPUs"}), llama, [A100X8, H200X8])
    assert fewest.pool == "h200" and fewest.gpus_per_replica == 1
    cheapest = plan_deployment(make_md(llama.id, model=fp8), llama, [A100X8, H200X8])
    assert cheapest.pool == "a100-80" and cheapest.gpus_per_replica == 2
    fastest = plan_deployment(make_md("meta-llama/Llama-3.3-70B-Instruct", placement={"policy": "fastest"}), llama, [A100X8, H100X8])
    assert fastest.pool == "h100" and fastest.tensor_parallel_size == 8


def test_moe_is_sized_by_total_parameters() -> None:
    scout = facts("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    plan = plan_deployment(make_md(scout.id), scout, [H100X8])
    assert plan.feasible and plan.memory_per_gpu is not None
    assert plan.memory_per_gpu.weights_gib * plan.gpus_per_replica > 190  # 109B × 2 bytes, not 17B
    assert plan.expert_parallel


def test_pin_breaking_a_vllm_rule_is_a_spec_error() -> None:
    phi = facts("microsoft/phi-4")  # 40 heads, 10 KV heads
    with pytest.raises(InvalidSpec, match=r"spec.placement.tensorParallelSize: vLLM refuses TP 4 for microsoft/phi-4: 10 KV heads are not divisible by TP 4"):
        plan_deployment(make_md("microsoft/phi-4", placement={"tensorParallelSize": 4}), phi, [A100X8])


def test_max_model_len_beyond_the_model_is_a_spec_error() -> None:
    with pytest.raises(InvalidSpec, match=r"spec.serving.maxModelLen: 200000 exceeds"):
        plan_deployment(make_md("meta-llama/Llama-3.1-8B-Instruct", serving={"maxModelLen": 200_000}),
                        facts("meta-llama/Llama-3.1-8B-Instruct"), [A10G])


def test_unknown_pool_in_allow_list() -> None:
    plan = plan_deployment(make_md("meta-llama/Llama-3.1-8B-Instruct", placement={"pools": ["nope"]}),
                           facts("meta-llama/Llama-3.1-8B-Instruct"), [A10G])
    assert not plan.feasible and plan.failure == "PoolNotFound"
    assert "nope" in plan.reason and "a10g" in plan.reason


def test_infeasible_plan_says_what_would_fit() -> None:
    llama = facts("meta-llama/Llama-3.1-8B-Instruct")
    one_node = make_pool("a10g-1", "NVIDIA-A10G", 22.30, 1, max_nodes=1)
    plan = plan_deployment(make_md(llama.id, serving={"maxModelLen": 131072}), llama, [one_node])
    assert not plan.feasible and plan.failure == "NoFeasibleLayout"
    assert "needs" in plan.reason and "NVIDIA-A10G gives 20.1 GiB" in plan.reason
    assert not plan.reason.endswith(("…", ",")) and "rejected" in plan.reason
    assert plan.suggestions[0].startswith("set spec.serving.maxModelLen: 16832 or less")
    assert plan.suggestions[-1].startswith("a GPUPool of NVIDIA-A100-80GB-PCIe (79.2 GiB each, 1 per node)")
    # fp8 halves neither enough here; it is suggested only where it makes the plan fit.
    assert not any("fp8" in s for s in plan.suggestions)
    llama70 = facts("meta-llama/Llama-3.3-70B-Instruct")
    # In fp8 it needs 74.5 GiB per GPU: more than an H100-80GB (71.2), less than an H100 NVL (84.2).
    one_h100 = make_pool("h100nvl-1", "NVIDIA-H100-NVL", 93.6, 1, max_nodes=1)
    plan = plan_deployment(make_md(llama70.id, serving={"maxModelLen": 4096}), llama70, [one_h100])
    assert not plan.feasible
    assert any(s.startswith("set spec.model.quantization: fp8") for s in plan.suggestions)


def test_fp8_quantization_halves_linear_weights() -> None:
    llama = facts("meta-llama/Llama-3.3-70B-Instruct")
    bf16 = plan_deployment(make_md(llama.id), llama, [H100X8])
    fp8 = plan_deployment(make_md(llama.id, model={"quantization": "fp8"}), llama, [H100X8])
    assert fp8.quantization == "fp8" and fp8.online_quantization  # vLLM quantizes at load
    assert bf16.quantization == "none" and not bf16.online_quantization
    # 131.4 GiB in bf16, 67.7 GiB in fp8: both need TP 2 on H100-80GB (the v0.11 logs show fp8 at
    # TP 1 leaves no KV cache), with about half the weights per GPU in fp8.
    assert fp8.memory_per_gpu is not None and bf16.memory_per_gpu is not None
    assert fp8.tensor_parallel_size == bf16.tensor_parallel_size == 2
    assert fp8.memory_per_gpu.weights_gib == pytest.approx(33.8, abs=0.2)
    assert bf16.memory_per_gpu.weights_gib == pytest.approx(65.7, abs=0.2)


def test_every_catalog_model_plans_on_the_default_pools() -> None:
    for entry in load_catalog().entries():
        plan = plan_deployment(make_md(entry.id), entry, default_pools())
        assert plan.feasible, f"{entry.id}: {plan.reason}"
