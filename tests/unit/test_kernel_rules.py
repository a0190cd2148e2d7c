"""Kernel rules, each triggered by the real checkpoint that showed it (sources: docs/sizing.md)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import make_md, make_pool
from tests.unit.real_configs import (
    GPT_OSS_120B,
    LLAMA_32_90B_VISION,
    QWEN2_72B_GPTQ_INT8,
    QWEN3_30B_A3B_FP8,
    QWEN25_VL_72B_AWQ,
    case_config,
)

from modeldeploy.api import GPUPool, ModelSource, Serving
from modeldeploy.facts import ModelFacts
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.hf_config import facts_from_hf
from modeldeploy.planner import plan_deployment
from modeldeploy.planner.gpu_rules import capability_rule, pool_capability, pool_rule, weight_only_note
from modeldeploy.planner.memory import Precision, precision_for
from modeldeploy.planner.rules import fp8_block_rule, model_rules, pipeline_rule, slice_note, weight_partition_rule
from modeldeploy.planner.wna16 import SliceKernel, mlp_slice_kernel


def facts(repo: str, config: dict[str, Any]) -> ModelFacts:
    return facts_from_hf(repo, config)


def precision(f: ModelFacts, quantization: str | None = None) -> Precision:
    return precision_for(f, ModelSource(name=f.id, quantization=quantization), Serving())


def catalog(repo: str) -> ModelFacts:
    found = load_catalog().get(repo)
    assert found is not None
    return found


def test_marlin_partition_alignment_awq() -> None:
    # vllm-project/vllm#13640: 29568 / 2 = 14784 is not a multiple of 128.
    f = facts("Qwen/Qwen2.5-VL-72B-Instruct-AWQ", case_config(QWEN25_VL_72B_AWQ))
    p = precision(f)
    assert weight_partition_rule(f, p, 1) is None
    reason = weight_partition_rule(f, p, 2)
    assert reason is not None and "14784" in reason and "Marlin" in reason and "128" in reason
    assert weight_partition_rule(f, p, 8) is not None  # 3696


def test_published_qwen25_vl_72b_awq_is_padded_so_every_tp_loads() -> None:
    # The hub's Qwen2.5-VL-72B-Instruct-AWQ (catalog entry, config.json at 666b8f5f) pads the MLP to
    # 29696 = 232 groups of 128, so TP 2/4/8 give whole 128-row slices (14848, 7424, 3712); its
    # published parameter total holds only with 29696 (tools/catalog_counts.py EVIDENCE).
    f = catalog("Qwen/Qwen2.5-VL-72B-Instruct-AWQ")
    p = precision(f)
    assert f.intermediate_size == 29696 and p.effective_quantization == "awq"
    assert all(weight_partition_rule(f, p, tp) is None and slice_note(f, p, tp) is None for tp in (1, 2, 4, 8))
    unpadded = facts("acme/Qwen2.5-VL-72B-AWQ-unpadded", case_config(QWEN25_VL_72B_AWQ))
    assert weight_partition_rule(unpadded, precision(unpadded), 2) is not None


def test_quantization_groups_must_split_evenly_gptq() -> None:
    # QwenLM/Qwen3#578: 29568 = 231 groups of 128 cannot split over 4 GPUs; 29696 (padded) can.
    padded = facts("Qwen/Qwen2-72B-Instruct-GPTQ-Int8", case_config(QWEN2_72B_GPTQ_INT8))
    unpadded_config = case_config(QWEN2_72B_GPTQ_INT8) | {"intermediate_size": 29568}
    unpadded = facts("acme/Qwen2-72B-GPTQ-Int8-unpadded", unpadded_config)
    assert all(weight_partition_rule(padded, precision(padded), tp) is None for tp in (1, 2, 4, 8))
    assert all(slice_note(padded, precision(padded), tp) is None for tp in (1, 2, 4, 8))
    assert weight_partition_rule(unpadded, precision(unpadded), 4) is not None
    # A 16-bit checkpoint with the same shapes has no such rule.
    plain = facts("acme/plain", {k: v for k, v in unpadded_config.items() if k != "quantization_config"})
    assert weight_partition_rule(plain, precision(plain), 4) is None


def test_split_groups_vllm_starts_only_when_pinned_and_float16() -> None:
    # vllm-project/vllm#5993 ran Qwen2-72B-Instruct-GPTQ-Int8 at TP 4 (logged 17.98 GiB per GPU). With
    # the unpadded 29568, Marlin refuses the 7392-row slice and the Exllama kernel (float16 only,
    # exllama.py can_implement checks the full 29568) starts it: a pin keeps it, with the warning.
    unpadded = facts("acme/Qwen2-72B-GPTQ-Int8-unpadded", case_config(QWEN2_72B_GPTQ_INT8) | {"intermediate_size": 29568})
    p = precision(unpadded)
    assert p.dtype == "float16"
    verdict = mlp_slice_kernel(unpadded, p.quantization, p.dtype, 4)
    assert verdict.kernel is SliceKernel.SPLIT_GROUPS and "7392" in verdict.reason and "Exllama" in verdict.reason
    assert weight_partition_rule(unpadded, p, 4, pinned=True) is None
    assert "kept because spec.placement.tensorParallelSize" in (slice_note(unpadded, p, 4) or "")
    # bfloat16 activations: Exllama refuses, so does vLLM, pinned or not.
    bf16 = facts("acme/bf16", case_config(QWEN2_72B_GPTQ_INT8) | {"intermediate_size": 29568, "torch_dtype": "bfloat16"})
    assert mlp_slice_kernel(bf16, precision(bf16).quantization, "bfloat16", 4).kernel is SliceKernel.REFUSED
    assert weight_partition_rule(bf16, precision(bf16), 4, pinned=True) is not None
    # Asymmetric or act-order GPTQ have no Exllama path on a split input either.
    for change in ({"sym": False}, {"desc_act": True}):
        config = case_config(QWEN2_72B_GPTQ_INT8) | {"intermediate_size": 29568}
        config["quantization_config"] = config["quantization_config"] | change
        f = facts("acme/variant", config)
        assert mlp_slice_kernel(f, f.quantization, "float16", 4).kernel is SliceKernel.REFUSED, change
    # AWQ's fallback (awq.py) needs whole groups: the split is refused even when pinned.
    awq = facts("Qwen/Qwen2.5-VL-72B-Instruct-AWQ", case_config(QWEN25_VL_72B_AWQ))
    assert weight_partition_rule(awq, precision(awq), 2, pinned=True) is not None


def test_group_aligned_slices_marlin_cannot_tile_run_on_a_slower_kernel() -> None:
    # 29568 with 32-wide groups (924 groups): TP 4 gives 7392 rows = 231 groups, not a multiple of
    # Marlin's 128 rows; the layer falls back (AWQ: awq_marlin.py per-layer fallback, vLLM PR
    # #13119; GPTQ float16: Exllama), so vLLM starts at normal numerics and the plan says it is slower.
    for method in ("awq", "gptq"):
        config = case_config(QWEN2_72B_GPTQ_INT8) | {"intermediate_size": 29568}
        config["quantization_config"] = {"quant_method": method, "bits": 4, "group_size": 32, "sym": True,
                                         "desc_act": False, "zero_point": True, "version": "gemm"}
        f = facts(f"acme/g32-{method}", config)
        p = precision(f)
        assert mlp_slice_kernel(f, p.quantization, p.dtype, 4).kernel is SliceKernel.SLOWER_KERNEL, method
        assert weight_partition_rule(f, p, 4) is None
        assert "slower decode" in (slice_note(f, p, 4) or "")


def test_fp8_block_rule_fires_from_the_checkpoint() -> None:
    # vllm-project/vllm#25292: Qwen3-30B-A3B-FP8 at TP 4: 768 / 4 = 192.
    f = facts("Qwen/Qwen3-30B-A3B-FP8", case_config(QWEN3_30B_A3B_FP8))
    p = precision(f)
    assert fp8_block_rule(f, p, 2) is None
    reason = fp8_block_rule(f, p, 4)
    assert reason is not None and "moe_intermediate_size 768 / TP 4 = 192" in reason
    # SIZING-FACTS rule 6: Qwen3-235B-A22B-FP8 (catalog) cannot run at TP 8 (1536 / 8 = 192).
    big = catalog("Qwen/Qwen3-235B-A22B-FP8")
    assert fp8_block_rule(big, precision(big), 8) is not None
    # Online FP8 of the bf16 release quantizes per tensor: no blocks, no rule.
    bf16 = catalog("Qwen/Qwen3-235B-A22B")
    assert fp8_block_rule(bf16, precision(bf16, "fp8"), 8) is None


def test_pipeline_parallel_only_where_vllm_implements_it() -> None:
    # vllm-project/vllm#9015: MllamaForConditionalGeneration has no pipeline parallelism.
    mllama = facts("meta-llama/Llama-3.2-90B-Vision-Instruct", case_config(LLAMA_32_90B_VISION))
    reason = pipeline_rule(mllama, 2)
    assert reason is not None and "MllamaForConditionalGeneration" in reason
    qwen_vl = facts("Qwen/Qwen2.5-VL-72B-Instruct-AWQ", case_config(QWEN25_VL_72B_AWQ))
    assert pipeline_rule(qwen_vl, 2) is None and pipeline_rule(mllama, 1) is None


def pool(product: str, memory: float, gpus: int = 8, **gpu: Any) -> GPUPool:
    """A pool of `product` GPUs; `gpu` adds GPUPool spec.gpu overrides (wire names)."""
    wire = make_pool(f"pool-{product.lower()}", product, memory, gpus, max_nodes=8).wire()
    wire["spec"]["gpu"].update(gpu)
    return GPUPool.model_validate(wire)


def test_fp8_needs_ampere_and_runs_weight_only_below_ada() -> None:
    f = catalog("Qwen/Qwen3-32B-FP8")
    p = precision(f)
    t4, a100, l40s = pool("Tesla-T4", 14.75), pool("NVIDIA-A100-SXM4-80GB", 79.15), pool("NVIDIA-L40S", 44.4)
    reason = pool_rule(f, p, t4)
    assert reason is not None and "≥ 8.0" in reason and "7.5" in reason and "Fp8Config" in reason
    assert pool_rule(f, p, a100) is None and pool_rule(f, p, l40s) is None
    assert "W8A16" in (weight_only_note(p, pool_capability(a100)) or "")
    assert weight_only_note(p, pool_capability(l40s)) is None
    # Online FP8 of a bf16 checkpoint follows the same rule.
    bf16 = catalog("Qwen/Qwen3-32B")
    assert pool_rule(bf16, precision(bf16, "fp8"), t4) is not None and pool_rule(bf16, precision(bf16), t4) is None


def test_deepseek_v32_sparse_attention_needs_sm90_or_sm100() -> None:
    # vllm-project/vllm#30644: FlashMLA sparse kernels exist for SM90 and SM100 only.
    v32, v3 = catalog("deepseek-ai/DeepSeek-V3.2"), catalog("deepseek-ai/DeepSeek-V3")
    assert v32.sparse_attention and not v3.sparse_attention
    l40s, h100, b200 = pool("NVIDIA-L40S", 44.4), pool("NVIDIA-H100-80GB-HBM3", 79.11), pool("NVIDIA-B200", 179.0)
    reason = pool_rule(v32, precision(v32), l40s)
    assert reason is not None and "SM90/SM100" in reason and "8.9" in reason
    assert pool_rule(v32, precision(v32), h100) is None and pool_rule(v32, precision(v32), b200) is None
    assert pool_rule(v3, precision(v3), l40s) is None
    plan = plan_deployment(make_md("deepseek-ai/DeepSeek-V3.2"), v32, [l40s])
    assert not plan.feasible and "SM90/SM100" in plan.reason


def test_mxfp4_and_nvfp4_minimum_capabilities() -> None:
    gpt_oss = facts("openai/gpt-oss-120b", GPT_OSS_120B)
    reason = capability_rule(gpt_oss, precision(gpt_oss), (7, 5))  # T4
    assert reason is not None and "Mxfp4Config" in reason
    assert capability_rule(gpt_oss, precision(gpt_oss), (9, 0)) is None
    nvfp4_config = case_config(QWEN2_72B_GPTQ_INT8) | {
        "quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16}}
    nvfp4 = facts("acme/Qwen2-72B-NVFP4", nvfp4_config)
    v100 = pool("Tesla-V100-SXM2-32GB", 31.7, computeCapability="7.0", memoryBandwidthGBps=900.0, bf16TFLOPS=125.0)
    assert pool_rule(nvfp4, precision(nvfp4), v100) is not None  # a pool override gives 7.0
    assert "FP4 matmuls need 10.0" in (weight_only_note(precision(nvfp4), (9, 0)) or "")
    assert weight_only_note(precision(nvfp4), (10, 0)) is None


def test_unknown_gpus_are_not_judged() -> None:
    v32 = catalog("deepseek-ai/DeepSeek-V3.2")
    assert pool_rule(v32, precision(v32), pool("ACME-X1", 96.0)) is None


def test_model_rules_report_the_first_broken_rule() -> None:
    f = facts("Qwen/Qwen2.5-VL-72B-Instruct-AWQ", case_config(QWEN25_VL_72B_AWQ))
    assert model_rules(f, precision(f), 3, 1) == "64 attention heads are not divisible by TP 3"
    assert "Marlin" in (model_rules(f, precision(f), 2, 1) or "")


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_plans_never_pick_a_layout_a_rule_forbids(tp: int) -> None:
    f = facts("Qwen/Qwen3-30B-A3B-FP8", case_config(QWEN3_30B_A3B_FP8))
    plan = plan_deployment(make_md("Qwen/Qwen3-30B-A3B-FP8"), f, [pool("NVIDIA-H100-80GB-HBM3", 79.11, gpus=tp)])
    assert plan.feasible and plan.tensor_parallel_size in (1, 2)
