"""The layout and GPU-generation rules not covered by test_kernel_rules.py, each triggered by a
real checkpoint (named, with the source of the rule). Together the two files give every rule in
planner/rules.py and planner/gpu_rules.py a real model that breaks it and one that does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from tests.conftest import make_pool
from tests.unit.real_configs import QWEN25_VL_72B_AWQ, case_config
from tests.unit.test_quantization import FP8_DYNAMIC, W4A16, W8A8_INT8, ct

from modeldeploy.api import GPUPool, ModelSource, Serving
from modeldeploy.facts import ModelFacts
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.hf_config import facts_from_hf
from modeldeploy.planner.gpu_rules import pool_capability, pool_rule, weight_only_note
from modeldeploy.planner.memory import Precision, precision_for
from modeldeploy.planner.rules import head_rule, kv_head_rule, pipeline_rule

# https://huggingface.co/nvidia/DeepSeek-R1-NVFP4/blob/main/hf_quant_config.json: ModelOpt's
# "quantization" block (vLLM's ModelOptNvFp4Config reads it as the quantization_config);
# exclude_modules abridged to the lm_head and one attention block of the published list.
DEEPSEEK_R1_NVFP4_QUANTIZATION: dict[str, Any] = {
    "quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_quant_algo": None, "group_size": 16,
    "exclude_modules": ["lm_head", "model.layers.30.self_attn*"],
}


MODELS = Path(__file__).resolve().parents[2] / "operator" / "modeldeploy" / "data" / "models"


def catalog(repo: str) -> ModelFacts:
    found = load_catalog().get(repo)
    assert found is not None, repo
    return found


def precision(f: ModelFacts) -> Precision:
    return precision_for(f, ModelSource(name=f.id), Serving())


def pool(product: str, memory: float, **gpu: Any) -> GPUPool:
    """A pool of `product` GPUs; `gpu` adds GPUPool spec.gpu overrides (wire names)."""
    wire = make_pool(f"pool-{product.lower()}", product, memory, 8).wire()
    wire["spec"]["gpu"].update(gpu)
    return GPUPool.model_validate(wire)


# Tesla V100 (compute capability 7.0, not in the GPU catalog): the pool states its generation.
# NVIDIA's CUDA GPUs list (developer.nvidia.com/cuda-gpus): V100 7.0.
V100 = ("Tesla-V100-SXM2-32GB", 31.7)
V100_OVERRIDES = {"computeCapability": "7.0", "memoryBandwidthGBps": 900.0, "bf16TFLOPS": 125.0}


def test_kv_heads_must_split_evenly_or_replicate_evenly() -> None:
    # vLLM QKVParallelLinear (vllm/model_executor/layers/linear.py): with TP ≥ KV heads each KV head
    # is replicated, so TP must be a multiple of them; below, they must divide by TP.
    # microsoft/phi-4: 40 query heads, 10 KV heads. TP 4 divides the 40 but not the 10.
    phi4 = catalog("microsoft/phi-4")
    assert (phi4.attention_heads, phi4.kv_heads) == (40, 10)
    assert head_rule(phi4, 4) is None
    assert kv_head_rule(phi4, 4) == "10 KV heads are not divisible by TP 4"
    assert kv_head_rule(phi4, 2) is None and kv_head_rule(phi4, 10) is None
    # Qwen/Qwen2.5-7B-Instruct: 28 query heads, 4 KV heads. TP 7 divides the 28; 7 is not a multiple of 4.
    qwen = catalog("Qwen/Qwen2.5-7B-Instruct")
    assert (qwen.attention_heads, qwen.kv_heads) == (28, 4)
    assert head_rule(qwen, 7) is None
    assert kv_head_rule(qwen, 7) == "TP 7 is not a multiple of the 4 KV heads (vLLM replicates KV heads only evenly)"
    assert kv_head_rule(qwen, 4) is None
    # MLA keeps one latent per layer on every rank: no KV-head rule (deepseek-ai/DeepSeek-V3).
    v3 = catalog("deepseek-ai/DeepSeek-V3")
    assert v3.is_mla and kv_head_rule(v3, 16) is None


def test_query_heads_must_divide_by_tp() -> None:
    # vLLM's attention layers assert total_num_heads % tp_size == 0 (e.g. LlamaAttention).
    # google/gemma-2-9b-it: 16 heads; TP 3 does not divide them.
    gemma = catalog("google/gemma-2-9b-it")
    assert head_rule(gemma, 3) == f"{gemma.attention_heads} attention heads are not divisible by TP 3"
    assert head_rule(gemma, 2) is None


def test_pipeline_stages_cannot_outnumber_layers() -> None:
    # vLLM's get_pp_indices (vllm/distributed/utils.py) gives each stage at least one layer.
    # Qwen/Qwen3-0.6B has 28 layers.
    small = catalog("Qwen/Qwen3-0.6B")
    assert pipeline_rule(small, 32) == "PP 32 exceeds the model's 28 layers"
    assert pipeline_rule(small, 28) is None


def test_awq_needs_turing_or_newer() -> None:
    # vLLM awq.py AWQConfig.get_min_capability() = 75 ("Minimum capability: 75. Current
    # capability: 70." on V100). Qwen/Qwen2.5-VL-72B-Instruct-AWQ on V100 is refused; a T4 (7.5) is not.
    f = facts_from_hf("Qwen/Qwen2.5-VL-72B-Instruct-AWQ", case_config(QWEN25_VL_72B_AWQ))
    reason = pool_rule(f, precision(f), pool(*V100, **V100_OVERRIDES))
    assert reason is not None and "≥ 7.5" in reason and "7.0" in reason and "AWQConfig" in reason
    assert pool_rule(f, precision(f), pool("Tesla-T4", 14.75)) is None


def test_nvfp4_floor_is_turing_and_fp4_matmuls_need_blackwell() -> None:
    # nvidia/DeepSeek-R1-NVFP4: DeepSeek-R1's config with ModelOpt NVFP4 weights. vLLM modelopt.py
    # ModelOptNvFp4Config.get_min_capability() = 75: refused on V100; below SM100 the weights
    # run through Marlin as W4A16 (same memory, slower matmuls); B200 runs FP4 matmuls.
    config = _catalog_config("deepseek-ai/DeepSeek-R1")
    config["quantization_config"] = DEEPSEEK_R1_NVFP4_QUANTIZATION
    f = facts_from_hf("nvidia/DeepSeek-R1-NVFP4", config)
    p = precision(f)
    assert p.effective_quantization == "nvfp4"
    reason = pool_rule(f, p, pool(*V100, **V100_OVERRIDES))
    assert reason is not None and "ModelOptNvFp4Config" in reason
    h100, b200 = pool("NVIDIA-H100-80GB-HBM3", 79.11), pool("NVIDIA-B200", 179.0)
    assert pool_rule(f, p, h100) is None
    assert "W4A16" in (weight_only_note(p, pool_capability(h100)) or "")
    assert weight_only_note(p, pool_capability(b200)) is None


def _catalog_config(repo: str) -> dict[str, Any]:
    """The verbatim config.json a catalog data file holds."""
    text = (MODELS / f"{repo.replace('/', '--')}.yaml").read_text(encoding="utf-8")
    config: dict[str, Any] = yaml.safe_load(text)["config"]
    return config


def _with_scheme(repo: str, scheme: dict[str, Any]) -> dict[str, Any]:
    """A catalog model's config.json with a compressed-tensors preset as its quantization_config
    (how llm-compressor writes RedHatAI's checkpoints of that model)."""
    config = _catalog_config(repo)
    config["quantization_config"] = ct(scheme)
    return config


def test_compressed_tensors_schemes_need_their_kernels_generation() -> None:
    # vLLM compressed_tensors.py _check_scheme_supported → the scheme's get_min_capability().
    v100, t4, a100 = pool(*V100, **V100_OVERRIDES), pool("Tesla-T4", 14.75), pool("NVIDIA-A100-SXM4-80GB", 79.15)
    # RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8 (INT8 W8A8): CompressedTensorsW8A8Int8, 75.
    w8a8 = facts_from_hf("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8",
                         _with_scheme("meta-llama/Llama-3.1-8B-Instruct", W8A8_INT8))
    reason = pool_rule(w8a8, precision(w8a8), v100)
    assert reason is not None and "CompressedTensorsW8A8Int8" in reason and "≥ 7.5" in reason
    assert pool_rule(w8a8, precision(w8a8), t4) is None
    # RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16 (INT4 weights): CompressedTensorsWNA16, 75.
    w4a16 = facts_from_hf("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16",
                          _with_scheme("meta-llama/Llama-3.1-8B-Instruct", W4A16))
    reason = pool_rule(w4a16, precision(w4a16), v100)
    assert reason is not None and "CompressedTensorsWNA16" in reason
    assert pool_rule(w4a16, precision(w4a16), t4) is None
    # RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic (FP8 weights and activations, the calibration
    # logs' checkpoint): FP8 needs 8.0 (W8A16 Marlin on Ampere), W8A8 from 8.9.
    fp8 = facts_from_hf("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic",
                        _with_scheme("meta-llama/Llama-3.3-70B-Instruct", FP8_DYNAMIC))
    reason = pool_rule(fp8, precision(fp8), t4)
    assert reason is not None and "≥ 8.0" in reason and "7.5" in reason
    assert pool_rule(fp8, precision(fp8), a100) is None
    assert "W8A16" in (weight_only_note(precision(fp8), pool_capability(a100)) or "")
