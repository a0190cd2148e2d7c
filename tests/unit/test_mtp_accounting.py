"""Multi-token-prediction modules are subtracted from the served weights only when the counts at
hand include them (facts/mtp.py), and counted when MTP speculative decoding loads them
(planner/speculative.py)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import make_md
from tests.unit.real_configs import catalog_config

from modeldeploy.errors import InvalidSpec
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.hf_config import facts_from_hf
from modeldeploy.facts.model import FactsSource, ModelFacts
from modeldeploy.planner import default_pools, plan_deployment
from modeldeploy.planner.memory import precision_for, weights_for
from modeldeploy.planner.plan import Plan
from modeldeploy.planner.speculative import is_mtp, speculative_method, with_speculative_mtp

V3 = "deepseek-ai/DeepSeek-V3"
# The published checkpoint: safetensors total with its MTP layer 61 (the catalog's totalBytes,
# huggingface.co/api/models/deepseek-ai/DeepSeek-V3?expand[]=safetensors, reproduced by
# tools/checkpoint_inventory.py).
V3_TOTAL = 688574839360
# One MTP module as stored: an MoE decoder layer in FP8 with block scales, eh_proj, norms and
# its own embed_tokens and shared_head.head in BF16 (facts/estimate.py mtp_layer_parameters).
V3_MTP_BYTES = 15424224880


def _spec_facts(config: dict[str, Any], total: int | None) -> ModelFacts:
    index = {"metadata": {"total_size": total}} if total else None
    return facts_from_hf("acme/deepseek-v3-ft", config, index, source=FactsSource.HF_CONFIG)


def _served_bytes(facts: ModelFacts) -> float:
    md = make_md("m", model={"name": facts.id})
    return weights_for(facts, precision_for(facts, md.spec.model, md.spec.serving)).total


def test_the_published_total_holds_the_mtp_layer_and_it_is_subtracted() -> None:
    facts = _spec_facts(catalog_config(V3), V3_TOTAL)
    assert facts.unloaded_bytes == V3_MTP_BYTES
    assert _served_bytes(facts) == pytest.approx(V3_TOTAL - V3_MTP_BYTES)
    assert "14.4 GiB of 1 multi-token-prediction layer subtracted" in facts.parameter_provenance


def test_a_total_without_the_mtp_layer_is_served_whole() -> None:
    # A fine-tune saved through transformers' DeepseekV3ForCausalLM: the class builds no MTP
    # module, so the shards lack layer 61 while the copied config.json still declares it.
    resaved = V3_TOTAL - V3_MTP_BYTES
    facts = _spec_facts(catalog_config(V3), resaved)
    assert facts.unloaded_bytes == 0 and facts.mtp_layers == 1
    assert _served_bytes(facts) == pytest.approx(resaved)
    assert "nothing subtracted" in facts.parameter_provenance


def test_an_estimate_never_counts_the_mtp_layer_so_subtracts_nothing() -> None:
    facts = _spec_facts(catalog_config(V3), None)
    catalog = load_catalog().get(V3)
    assert catalog is not None and facts.unloaded_bytes == 0
    # The estimate from shapes is the served checkpoint to 0.01 %: no MTP layer in it.
    assert _served_bytes(facts) == pytest.approx(_served_bytes(catalog), rel=1e-4)
    assert "without the 1 multi-token-prediction layer" in facts.parameter_provenance


def test_counts_by_dtype_of_a_checkpoint_without_mtp_subtract_nothing() -> None:
    # Qwen3.5-27B declares mtp_num_hidden_layers 1; a copy whose counts equal the config's
    # tensors alone (the catalog's counts less the module) stores none.
    catalog = load_catalog().get("Qwen/Qwen3.5-27B")
    assert catalog is not None and catalog.unloaded_bytes > 0
    without = {"parameters": {"BF16": catalog.parameters}}
    facts = facts_from_hf("acme/qwen35-ft", catalog_config("Qwen/Qwen3.5-27B"), without)
    assert facts.parameters == catalog.parameters and facts.unloaded_bytes == 0


def test_the_plan_says_what_was_subtracted() -> None:
    md = make_md("v3", model={"name": V3}, serving={"maxModelLen": 16384})
    catalog = load_catalog().get(V3)
    assert catalog is not None
    plan = plan_deployment(md, catalog, default_pools())
    assert plan.parameters_source is not None
    assert "multi-token-prediction layer subtracted: the counts include it" in plan.parameters_source


DEEPSEEK_MTP = ["--speculative-config", '{"method": "deepseek_mtp", "num_speculative_tokens": 1}']


def _plan(facts: ModelFacts, extra_args: list[str]) -> Plan:
    md = make_md("v3", model={"name": facts.id}, placement={"pools": ["aws-p5en-h200-x8"], "tensorParallelSize": 8},
                 serving={"maxModelLen": 16384, "extraArgs": extra_args})
    return plan_deployment(md, facts, default_pools())


def test_mtp_speculative_decoding_loads_the_mtp_layer() -> None:
    # vLLM drafts with layer 61 (SpeculativeConfig.hf_config_override: deepseek_v3 → deepseek_mtp,
    # n_predict = num_nextn_predict_layers) and shares the target's embed_tokens with it.
    v3 = load_catalog().get(V3)
    assert v3 is not None
    plain, drafting = _plan(v3, []), _plan(v3, DEEPSEEK_MTP)
    assert plain.memory_per_gpu is not None and drafting.memory_per_gpu is not None
    embed = 129280 * 7168 * 2  # the module's own embed_tokens (vocab × hidden, BF16), shared
    added = (V3_MTP_BYTES - embed) / 8 / 2**30  # per GPU at TP 8
    assert drafting.memory_per_gpu.weights_gib - plain.memory_per_gpu.weights_gib == pytest.approx(added, abs=0.011)
    assert drafting.kv_cache_tokens is not None and plain.kv_cache_tokens is not None
    assert drafting.kv_cache_tokens < plain.kv_cache_tokens  # its MLA layer holds KV too (62 layers, not 61)
    assert drafting.parameters_source is not None
    assert "its 1 multi-token-prediction layer counted" in drafting.parameters_source
    assert "deepseek_mtp speculative decoding" in drafting.parameters_source


@pytest.mark.parametrize("args", [
    ["--speculative-config.method", "qwen3_next_mtp", "--speculative-config.num_speculative_tokens", "2"],
    ['--speculative-config={"method": "mtp", "num_speculative_tokens": 2}'],
])
def test_qwen3_next_mtp_in_every_spelling_vllm_accepts(args: list[str]) -> None:
    # Qwen3-Next declares no count; vLLM's qwen3_next_mtp.py assumes one module.
    facts = load_catalog().get("Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert facts is not None
    served = with_speculative_mtp(facts, args)
    assert served.layers == facts.layers + 1 and served.unloaded_bytes == 0  # shares the model's embeddings
    assert served.parameters == facts.parameters + facts.mtp_parameters


def test_other_speculative_methods_leave_the_mtp_layer_out() -> None:
    v3 = load_catalog().get(V3)
    assert v3 is not None
    ngram = ["--speculative-config", '{"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 4}']
    assert with_speculative_mtp(v3, ngram) is v3 and speculative_method(ngram) == "ngram"
    assert not is_mtp("eagle3") and is_mtp("mtp") and is_mtp("qwen3_5_mtp")


def test_mtp_drafting_is_refused_without_mtp_layers() -> None:
    llama = load_catalog().get("meta-llama/Llama-3.1-8B-Instruct")
    assert llama is not None
    with pytest.raises(InvalidSpec, match=r"^spec\.serving\.extraArgs: --speculative-config method mtp .* declares none"):
        with_speculative_mtp(llama, ['--speculative-config={"method": "mtp"}'])
    resaved = _spec_facts(catalog_config(V3), V3_TOTAL - V3_MTP_BYTES)  # the fine-tune without layer 61
    with pytest.raises(InvalidSpec, match=r"counts match a checkpoint without them"):
        _plan(resaved, DEEPSEEK_MTP)


def test_mtp_drafting_on_an_estimate_adds_the_module_at_the_checkpoint_precision() -> None:
    # Without counts the weights come from the shapes: the drafter's linear layers are FP8 like
    # the model's, its projection, norms and router BF16, and its embed_tokens shared.
    estimated = _spec_facts(catalog_config(V3), None)
    served = with_speculative_mtp(estimated, DEEPSEEK_MTP)
    embed = 129280 * 7168
    assert served.parameters == estimated.parameters + estimated.mtp_parameters - embed
    added = _served_bytes(served) - _served_bytes(estimated)
    assert added == pytest.approx(V3_MTP_BYTES - 2 * embed, rel=1e-3)
    # Qwen3-Next-80B-A3B-Instruct-FP8's config without its counts (estimated): one module of
    # 1.65B parameters, FP8 blocks but for the 16-bit fc projection and norms.
    fp8 = _spec_facts(catalog_config("Qwen/Qwen3-Next-80B-A3B-Instruct-FP8"), None)
    assert fp8.parameter_source == "estimate"
    drafting = with_speculative_mtp(fp8, ["--speculative-config", '{"method": "qwen3_next_mtp"}'])
    assert _served_bytes(drafting) - _served_bytes(fp8) == pytest.approx(fp8.mtp_bytes, rel=1e-3)
    assert fp8.mtp_bytes < 0.6 * 2 * fp8.mtp_parameters  # mostly 1 byte per weight, not 2


# Qwen/Qwen3-Next-80B-A3B-Instruct-FP8's one MTP module (vllm/model_executor/models/
# qwen3_next_mtp.py: fc [2h → h], pre_fc_norm_embedding, pre_fc_norm_hidden, norm and one
# full-attention MoE decoder layer; h 2048, 16 heads × 256 with the output gate, 2 KV heads, 512
# experts of 512), as its inventory stores it: q/k/v/o, experts and shared expert F8_E4M3 with F32
# [128, 128] block scales; fc, router, shared_expert_gate and the norms BF16.
_FP8 = 2048 * 8192 + 2 * 2048 * 512 + 4096 * 2048 + (512 + 1) * 3 * 2048 * 512
_SCALES = 4 * (64 * 16 + 2 * 4 * 16 + 16 * 32 + (512 + 1) * 3 * 4 * 16)
_BF16 = 2 * (4096 * 2048 + 512 * 2048 + 2048 + 5 * 2048 + 2 * 256)
QWEN3_NEXT_FP8_MTP = _FP8 + _SCALES + _BF16  # 1660322048 bytes, 1.55 GiB
QWEN3_NEXT_FP8 = "Qwen/Qwen3-Next-80B-A3B-Instruct-FP8"
QWEN3_NEXT_FP8_TOTAL = 82032869120  # the catalog's totalBytes (its safetensors inventory)


def _tp1(facts: ModelFacts, extra_args: list[str]) -> Plan:
    md = make_md("q3n", model={"name": facts.id}, serving={"maxModelLen": 32768, "extraArgs": extra_args},
                 placement={"pools": ["aws-p5en-h200-x8"], "tensorParallelSize": 1})
    return plan_deployment(md, facts, default_pools())


def test_a_quantized_checkpoints_mtp_layer_is_subtracted_as_stored() -> None:
    # vLLM's qwen3_next.py load_weights skips every "mtp." weight unless MTP drafting is asked.
    facts = load_catalog().get(QWEN3_NEXT_FP8)
    assert facts is not None and facts.quantization is not None
    assert facts.unloaded_bytes == pytest.approx(QWEN3_NEXT_FP8_MTP, abs=1024)
    plan = _tp1(facts, [])
    assert plan.memory_per_gpu is not None and plan.parameters_source is not None
    served = (QWEN3_NEXT_FP8_TOTAL - QWEN3_NEXT_FP8_MTP) / 2**30
    assert plan.memory_per_gpu.weights_gib == pytest.approx(served, abs=0.006)
    assert "1.5 GiB of 1 multi-token-prediction layer subtracted" in plan.parameters_source
    # The same checkpoint described by its hub counts by dtype or by a byte total alone.
    for counts in ({"parameters": {"BF16": 688319744, "F32": 4921664, "F8_E4M3": 80636542976}},
                   {"metadata": {"total_size": QWEN3_NEXT_FP8_TOTAL}}):
        described = facts_from_hf("acme/q3n-fp8", catalog_config(QWEN3_NEXT_FP8), counts, source=FactsSource.HF_CONFIG)
        assert described.unloaded_bytes == facts.unloaded_bytes


def test_qwen3_next_mtp_drafting_loads_the_quantized_mtp_layer() -> None:
    facts = load_catalog().get(QWEN3_NEXT_FP8)
    assert facts is not None
    plain, drafting = _tp1(facts, []), _tp1(facts, ["--speculative-config", '{"method": "qwen3_next_mtp"}'])
    assert plain.memory_per_gpu is not None and drafting.memory_per_gpu is not None
    # The module shares the target's embed_tokens (it has none of its own): the whole stored
    # checkpoint is loaded.
    assert drafting.memory_per_gpu.weights_gib == pytest.approx(QWEN3_NEXT_FP8_TOTAL / 2**30, abs=0.006)
    added = drafting.memory_per_gpu.weights_gib - plain.memory_per_gpu.weights_gib
    assert added == pytest.approx(QWEN3_NEXT_FP8_MTP / 2**30, abs=0.011)
