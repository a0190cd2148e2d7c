"""quantization_config → bytes per weight, 16-bit modules, and the weights vLLM loads."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tests.unit.real_configs import (
    GPT_OSS_120B,
    QWEN2_72B_GPTQ_INT8,
    QWEN3_30B_A3B_FP8,
    QWEN25_VL_72B_AWQ,
    case_config,
    catalog_config,
)

from modeldeploy.api import ModelSource, Serving
from modeldeploy.errors import ModelUnresolved
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.hf_config import facts_from_hf
from modeldeploy.facts.quantization import WeightQuantization, parse_quantization, quantized_share
from modeldeploy.planner.memory import GIB, precision_for, weights_for, weights_per_gpu

# compressed-tensors preset schemes (neuralmagic/compressed-tensors,
# src/compressed_tensors/quantization/quant_scheme.py): W4A16, W8A8 (int8), FP8_DYNAMIC, FP8_BLOCK.
W4A16 = {"weights": {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 128}}
W8A8_INT8 = {"weights": {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "channel"},
             "input_activations": {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "token", "dynamic": True}}
FP8_DYNAMIC = {"weights": {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "channel"},
               "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True}}
FP8_BLOCK = {"weights": {"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [128, 128]},
             "input_activations": {"num_bits": 8, "type": "float", "strategy": "group", "group_size": 128}}


def ct(scheme: dict[str, Any], ignore: list[str] | None = None) -> dict[str, Any]:
    return {"quant_method": "compressed-tensors", "config_groups": {"group_0": {**scheme, "targets": ["Linear"]}},
            "ignore": ignore or ["lm_head"]}


def kept_groups(q: WeightQuantization) -> set[str]:
    """Module groups kept 16-bit in every layer or in the layers the list names."""
    return {*q.unquantized, *(group for group, _ in q.unquantized_in_layers)}


def parse(qc: dict[str, Any]) -> WeightQuantization:
    parsed = parse_quantization("acme/q", {"quantization_config": qc})
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    ("qc", "method", "bits", "group", "per_weight"),
    [
        (case_config(QWEN25_VL_72B_AWQ)["quantization_config"], "awq", 4, 128, 0.5 + 2 / 128 + 0.5 / 128),
        (case_config(QWEN2_72B_GPTQ_INT8)["quantization_config"], "gptq", 8, 128, 1 + 2 / 128 + 1 / 128),
        ({"quant_method": "gptq", "bits": 3, "group_size": -1, "desc_act": True}, "gptq", 3, None, 3 / 8),
        (case_config(QWEN3_30B_A3B_FP8)["quantization_config"], "fp8", 8, None, 1 + 4 / (128 * 128)),
        (ct(W4A16), "compressed-tensors", 4, 128, 0.5 + 2 / 128),
        (ct(W8A8_INT8), "compressed-tensors", 8, None, 1.0),
        (ct(FP8_DYNAMIC), "compressed-tensors", 8, None, 1.0),
        (ct(FP8_BLOCK), "compressed-tensors", 8, None, 1 + 4 / (128 * 128)),
        # transformers' BitsAndBytesConfig.to_dict(), as bnb-4bit repos publish it (nf4, double quant)
        ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
          "bnb_4bit_use_double_quant": True}, "bitsandbytes", 4, 64, 0.5 + 1 / 64 + 4 / (64 * 256)),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "bitsandbytes", 8, None, 1.0),
        (GPT_OSS_120B["quantization_config"], "mxfp4", 4, 32, 0.5 + 1 / 32),
        # vLLM ModelOptNvFp4Config.from_config: quant_algo NVFP4, group_size 16, exclude_modules
        ({"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head"]},
         "nvfp4", 4, 16, 0.5 + 1 / 16),
    ],
)
def test_bytes_per_weight_include_scales_and_zero_points(
    qc: dict[str, Any], method: str, bits: int, group: int | None, per_weight: float
) -> None:
    q = parse(qc)
    assert (q.method, q.bits, q.group_size) == (method, bits, group)
    assert q.bytes_per_weight == pytest.approx(per_weight)


def test_activation_and_float_flags_pick_the_kernels() -> None:
    assert parse(ct(FP8_DYNAMIC)).activation_bits == 8 and parse(ct(FP8_DYNAMIC)).float_weights
    assert parse(ct(FP8_BLOCK)).weight_block_size == (128, 128)
    assert parse(ct(W4A16)).marlin_family and not parse(ct(W8A8_INT8)).marlin_family
    assert not parse(ct(FP8_DYNAMIC)).marlin_family


def test_modules_that_stay_16_bit() -> None:
    gpt_oss = parse(GPT_OSS_120B["quantization_config"])
    assert {"attention", "router"} <= set(gpt_oss.unquantized)  # experts only are MXFP4
    ignore = ["lm_head", "re:.*mlp.gate$", "model.layers.0.self_attn.q_proj", "re:.*self_attn.*"]
    assert parse(ct(W4A16, ignore)).unquantized == ("attention", "router")


# Meta's Llama-3.1-405B-Instruct-FP8 exclusions (AWS Neuron modules_to_not_convert.json, awsdocs-neuron
# v2.29.0; the catalog entry's config): every layer's attention, the MLPs of layers 0 and 125 only.
LLAMA_405B_FP8_KEEP = ["lm_head", *(f"model.layers.{i}.self_attn.{p}" for i in range(126) for p in ("q_proj", "o_proj")),
                       *(f"model.layers.{i}.mlp.{p}" for i in (0, 125) for p in ("gate_proj", "up_proj", "down_proj"))]


def test_modules_named_in_some_layers_stay_16_bit_in_those_layers_only() -> None:
    q = parse({"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0, "modules_to_not_convert": LLAMA_405B_FP8_KEEP})
    assert q.unquantized == () and dict(q.unquantized_in_layers) == {"attention": tuple(range(126)), "mlp": (0, 125)}
    modules = {"attention": 126 * 570425344, "mlp": 126 * 2617245696}  # 405B: per layer q,k,v,o / gate,up,down
    assert quantized_share(modules, q, 126) == 124 * 2617245696  # the MLPs of layers 1-124 only
    # Without the layer count (the multi-token-prediction modules, facts/mtp.py) a named group counts as kept.
    assert quantized_share(modules, q) == 0


def test_llama4_shared_experts_and_dense_ffn_are_the_mlp_group() -> None:
    q = parse(ct(FP8_DYNAMIC, ["re:.*shared_expert.*", "re:.*feed_forward\\.(gate|up|down)_proj",
                               "language_model.model.layers.3.feed_forward.router"]))
    assert q.unquantized == ("mlp",) and q.unquantized_in_layers == (("router", (3,)),)


@pytest.mark.parametrize(
    ("qc", "message"),
    [
        ({"quant_method": "hqq"}, "quantization_config.quant_method: 'hqq' is not a format"),
        ({"quant_method": "gptq", "bits": 5}, "quantization_config.bits: 5 is not one of 2, 3, 4, 8"),
        ({"quant_method": "awq", "bits": 4, "group_size": 0}, "quantization_config.group_size: 0 is not"),
        ({"quant_method": "compressed-tensors"}, "quantization_config.config_groups: missing"),
        ({"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"}, "quantization_config.quant_algo: 'W4A8_AWQ'"),
    ],
)
def test_unreadable_quantization_is_refused_never_sized_as_16_bit(qc: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelUnresolved, match=re.escape(message)):
        parse(qc)
    with pytest.raises(ModelUnresolved, match=r"config\.json quantization_config: not an object"):
        parse_quantization("acme/q", {"quantization_config": "awq"})


def _weights(config: dict[str, Any], tp: int = 1) -> tuple[float, float]:
    facts = facts_from_hf("acme/model", config)
    prec = precision_for(facts, ModelSource(name="acme/model"), Serving())
    w = weights_for(facts, prec)
    return w.tower, weights_per_gpu(facts, w, tp, 1) / GIB


def test_gptq_8_bit_is_sized_at_8_bits_as_vllm_logged() -> None:
    # vllm-project/vllm#5993: 17.98 GiB of weights per GPU at TP 4 for Qwen2-72B-Instruct-GPTQ-Int8.
    _, per_gpu = _weights(case_config(QWEN2_72B_GPTQ_INT8), tp=4)
    assert per_gpu == pytest.approx(17.98, rel=0.03)


def test_the_vision_tower_of_an_awq_checkpoint_stays_16_bit() -> None:
    config = case_config(QWEN25_VL_72B_AWQ)
    facts = facts_from_hf("Qwen/Qwen2.5-VL-72B-Instruct-AWQ", config)
    tower, per_gpu = _weights(config)
    assert facts.vision_parameters > 600_000_000 and tower == facts.vision_parameters * 2
    linear = sum(facts.module_parameters.values())  # the decoder's linear layers: AWQ 4-bit
    embed = 2 * 152064 * 8192
    rest = facts.parameters - linear - embed - facts.vision_parameters  # norms
    expected = linear * (0.5 + 2.5 / 128) + (rest + embed + facts.vision_parameters) * 2
    assert per_gpu * GIB == pytest.approx(expected, rel=1e-9)


def test_gpt_oss_keeps_attention_in_bf16_and_experts_in_mxfp4() -> None:
    facts = facts_from_hf("openai/gpt-oss-120b", GPT_OSS_120B)
    experts = facts.module_parameters["experts"]
    others = facts.parameters - experts
    _, per_gpu = _weights(GPT_OSS_120B)
    padded = 3072 / 2880  # vLLM pads the experts' hidden size to a multiple of 256 (mxfp4.py)
    assert per_gpu * GIB == pytest.approx(experts * (0.5 + 1 / 32) * padded + others * 2, rel=1e-6)
    assert per_gpu == pytest.approx(64.38, rel=0.03)  # vLLM v0.11 on H100 (bench/data/vllm-memory-profiles.csv)


def test_listed_norms_and_gated_deltanet_parameters_leave_attention_quantized() -> None:
    # Qwen/Qwen3-Next-80B-A3B-Instruct-FP8 lists every layer's norms, self_attn.q_norm/k_norm and
    # linear_attn A_log/conv1d/dt_bias/in_proj_ba/norm in modules_to_not_convert, never a q/k/v/o
    # projection: its published safetensors inventory (catalog configSource) holds 4921664 F32
    # [128, 128] block scales, exactly the scales of 49 MoE layers (48 + the MTP layer: 512
    # experts × 192 + the shared expert's 192), 13 full-attention layers' q/k/v/o (1664 each) and
    # 36 Gated DeltaNet layers' in_proj_qkvz/out_proj (2048 each): the attention is FP8.
    moe, full_attention, linear_attention = 49 * (512 * 192 + 192), 13 * 1664, 36 * 2048
    assert moe + full_attention + linear_attention == 4921664
    qc = parse(catalog_config("Qwen/Qwen3-Next-80B-A3B-Instruct-FP8")["quantization_config"])
    assert kept_groups(qc) == {"router"}
    # Qwen/Qwen3-30B-A3B-FP8 lists model.layers.N.post_attention_layernorm: a norm, not attention.
    assert kept_groups(parse(catalog_config("Qwen/Qwen3-30B-A3B-FP8")["quantization_config"])) == {"router"}


def test_ignored_tower_modules_leave_the_language_model_quantized() -> None:
    # RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic ignores vision_model.*.mlp.fc1/fc2 (the
    # tower, sized apart at 16-bit) and the language model's attention and routers; its shared
    # experts carry FP8 per-channel scales (tools/README.md), so the MLP group stays FP8.
    config = catalog_config("RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic")
    q = parse(config["quantization_config"])
    assert kept_groups(q) == {"attention", "router"}  # named layer by layer: every one of its 48
    assert dict(q.unquantized_in_layers)["attention"] == tuple(range(48))


def _catalog_weights_per_gpu(model: str, tp: int) -> float:
    facts = load_catalog().get(model)
    assert facts is not None
    prec = precision_for(facts, ModelSource(name=model), Serving())
    return weights_per_gpu(facts, weights_for(facts, prec), tp, 1) / GIB


def test_meta_fp8_entries_are_sized_from_the_modules_they_keep_in_bf16() -> None:
    # Llama-3.1-405B-Instruct-FP8 at TP 8: tools/checkpoint_inventory.py derives 487229259776 bytes
    # (attention and the MLPs of layers 0 and 125 BF16, per-row F32 scales the planner leaves out).
    per_gpu = _catalog_weights_per_gpu("meta-llama/Llama-3.1-405B-Instruct-FP8", 8)
    assert per_gpu * GIB == pytest.approx(487229259776 / 8, rel=1e-3)
    # vLLM 0.5.3 logged 57.7520 GiB on H100 (vllm-project/vllm#6746; 57.7485 on A100, #6689) for the
    # checkpoint as first published, whose KV heads the hub later corrected (#6689, 2024-08-16; sglang#723
    # forced num_key_value_heads = 8 for it): the log is reproduced with k_proj/v_proj of 16 heads (2048
    # rows, +0.984375 GiB per GPU) and vLLM's 131072 x 128 BF16 rotary cache (+0.03125 GiB).
    assert per_gpu + 0.984375 + 0.03125 == pytest.approx(57.7520, rel=1e-3)
    # Llama-4-Maverick-17B-128E-Instruct-FP8 at TP 8: only the routed experts FP8 (416884747264 bytes derived).
    # vLLM 0.8.3 logged 48.8682 GiB (vllm-project/vllm#16152), which adds the 1048576 x 128 BF16 rotary
    # cache (0.25 GiB) and, per GPU, the replicated norms, router and down_proj scales (0.08 GiB).
    per_gpu = _catalog_weights_per_gpu("meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8", 8)
    assert per_gpu * GIB == pytest.approx(416884747264 / 8, rel=2e-3)
    assert per_gpu + 0.25 == pytest.approx(48.8682, rel=5e-3)
