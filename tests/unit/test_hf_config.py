"""facts_from_hf: config.json normalisation across families, checked against the catalog."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.errors import ModelUnresolved
from modeldeploy.facts import FactsSource
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.hf_config import estimate_parameters, facts_from_hf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hub"
IN_CATALOG = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "deepseek-ai/DeepSeek-V3",
    "Qwen/Qwen2.5-72B-Instruct",
    "Qwen/Qwen3-235B-A22B-FP8",
    "Qwen/Qwen3-Next-80B-A3B-Instruct",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "google/gemma-2-9b-it",
    "microsoft/phi-4",
]
ARCH_FIELDS = (
    "family",
    "parameters",
    "active_parameters",
    "layers",
    "hidden_size",
    "attention_heads",
    "kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_context",
    "tie_word_embeddings",
    "native_quantization",
    "weight_block_size",
    "experts",
    "experts_per_token",
    "shared_experts",
    "moe_intermediate_size",
    "kv_lora_rank",
    "qk_rope_head_dim",
    "sliding_window",
    "sliding_window_layers",
    "linear_attention_layers",
    "linear_state_bytes_per_layer",
    "supports_pipeline_parallel",
)


def config(repo: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / repo / "config.json").read_text())
    return data


def index(repo: str) -> dict[str, Any] | None:
    path = FIXTURES / repo / "model.safetensors.index.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.mark.parametrize("repo", IN_CATALOG)
def test_hub_facts_equal_the_catalog_entry(repo: str) -> None:
    hub = facts_from_hf(repo, config(repo), index(repo))
    cat = load_catalog().get(repo)
    assert cat is not None
    assert hub.source == FactsSource.HUB and hub.id == repo
    # Without an index fixture the hub facts estimate the count the catalog has exactly.
    fields = ARCH_FIELDS if index(repo) else [k for k in ARCH_FIELDS if k not in ("parameters", "active_parameters")]
    assert {k: getattr(hub, k) for k in fields} == {k: getattr(cat, k) for k in fields}
    assert hub.parameters == pytest.approx(cat.parameters, rel=1e-3)


def test_index_total_size_gives_the_exact_count() -> None:
    repo = "meta-llama/Llama-3.1-8B-Instruct"
    f = facts_from_hf(repo, config(repo), index(repo))
    assert (f.parameters, f.checkpoint_bytes) == (8030261248, 16060522496)
    assert estimate_parameters(config(repo)) == (8030261248, None)  # the formula agrees exactly
    no_index = facts_from_hf(repo, config(repo), None)
    assert no_index.parameters == 8030261248 and no_index.checkpoint_bytes is None


def test_quantized_checkpoints_keep_the_estimate_and_record_the_size() -> None:
    repo = "deepseek-ai/DeepSeek-V3"
    # The hub's counts {BF16: 3918786560, F8_E4M3: 680571043840, F32: 41555600} in bytes.
    total = 3918786560 * 2 + 680571043840 + 41555600 * 4
    f = facts_from_hf(repo, config(repo), {"metadata": {"total_size": total}})
    assert f.parameters == 671026419200  # total_size mixes fp8, bf16 and scales: not a count
    assert f.checkpoint_bytes == total and f.parameter_source == "safetensors"  # the weights are exact
    assert f.parameter_provenance.startswith("exact: 641.3 GiB of fp8 weights, from the hub's")


def test_deepseek_mla_fields() -> None:
    f = facts_from_hf("deepseek-ai/DeepSeek-V3", config("deepseek-ai/DeepSeek-V3"), None)
    assert f.is_mla and (f.kv_lora_rank, f.qk_rope_head_dim, f.head_dim) == (512, 64, 192)
    assert (f.experts, f.experts_per_token, f.shared_experts) == (256, 8, 1)
    assert (f.native_quantization, f.weight_block_size) == ("fp8", (128, 128))


def test_gemma_float32_config_with_bf16_shards() -> None:
    repo = "google/gemma-2-9b-it"
    declared = facts_from_hf(repo, config(repo), None)
    assert declared.native_dtype == "float32"  # all config.json says
    stored = facts_from_hf(repo, config(repo), {"metadata": {"total_size": 2 * 9241705984}})
    assert (stored.native_dtype, stored.parameters) == ("bfloat16", 9241705984)
    assert (stored.sliding_window, stored.sliding_window_layers, stored.tie_word_embeddings) == (
        4096,
        21,
        True,
    )


def test_text_config_nesting_takes_top_level_dtype_and_quantization() -> None:
    cfg = config("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    del cfg["text_config"]["torch_dtype"]
    cfg["torch_dtype"] = "float16"
    cfg["quantization_config"] = {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0}
    f = facts_from_hf("acme/scout-fp8", cfg, None)
    assert (f.native_dtype, f.native_quantization, f.weight_block_size) == ("float16", "fp8", None)
    assert (f.layers, f.experts, f.moe_intermediate_size, f.intermediate_size) == (
        48,
        16,
        8192,
        16384,
    )
    assert f.family == "llama4"


def test_llama4_interleaved_moe_layers() -> None:
    cfg = config("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    scout_total, _ = estimate_parameters(cfg)
    cfg["text_config"]["interleave_moe_layer_step"] = 2
    half_total, _ = estimate_parameters(cfg)
    expert = 3 * 5120 * 8192
    dense, moe = (
        3 * 5120 * 16384,
        17 * expert + 5120 * 16,
    )  # dense MLP vs 16 experts + shared + router
    assert scout_total - half_total == 24 * (moe - dense)


@pytest.mark.parametrize("key", ["num_local_experts", "num_experts", "n_routed_experts"])
def test_expert_count_key_aliases(key: str) -> None:
    cfg = config("mistralai/Mixtral-8x7B-Instruct-v0.1")
    cfg[key] = cfg.pop("num_local_experts")
    f = facts_from_hf("acme/mixtral", cfg, None)
    assert (f.experts, f.experts_per_token, f.moe_intermediate_size) == (8, 2, 14336)
    assert f.active_parameters == 12879925248


def test_missing_head_dim_is_hidden_over_heads_and_dtype_key_is_read() -> None:
    cfg = config("microsoft/phi-4")
    assert "head_dim" not in cfg
    cfg["dtype"] = cfg.pop("torch_dtype")
    f = facts_from_hf("microsoft/phi-4", cfg, None)
    assert f.head_dim == 5120 // 40 and f.native_dtype == "bfloat16"
    assert facts_from_hf("x/y", {**cfg, "head_dim": 96}, None).head_dim == 96


def test_qwen3_next_layer_types_and_interval_agree() -> None:
    cfg = config("Qwen/Qwen3-Next-80B-A3B-Instruct")
    by_interval = facts_from_hf("q/next", cfg, None)
    listed = dict(cfg)
    del listed["full_attention_interval"]
    listed["layer_types"] = (["linear_attention"] * 3 + ["full_attention"]) * 12
    by_list = facts_from_hf("q/next", listed, None)
    assert by_interval == by_list
    assert (by_list.linear_attention_layers, by_list.attention_layers) == (36, 12)


def test_layer_types_sliding_and_windows_longer_than_the_context() -> None:
    cfg = config("meta-llama/Llama-3.1-8B-Instruct")
    cfg |= {
        "sliding_window": 1024,
        "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 5
        + ["full_attention"] * 2,
    }
    f = facts_from_hf("acme/sliding", cfg, None)
    assert (f.sliding_window, f.sliding_window_layers) == (1024, 25)
    qwen = facts_from_hf("Qwen/Qwen2.5-72B-Instruct", config("Qwen/Qwen2.5-72B-Instruct"), None)
    assert (
        qwen.sliding_window is None and qwen.sliding_window_layers == 0
    )  # use_sliding_window false


def test_mistral_window_applies_to_every_layer() -> None:
    cfg = config("mistralai/Mixtral-8x7B-Instruct-v0.1") | {"sliding_window": 4096}
    f = facts_from_hf("acme/mixtral-sw", cfg, None)
    assert (f.sliding_window, f.sliding_window_layers) == (4096, 32)


@pytest.mark.parametrize(
    ("qc", "expected"),
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, ("awq", None)),
        ({"quant_method": "gptq", "bits": 4}, ("gptq", None)),
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, ("fp8", (128, 128))),
        ({"quant_method": "modelopt", "quant_algo": "FP8"}, ("fp8", None)),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"group_0": {"weights": {"type": "float", "num_bits": 8}}},
            },
            ("compressed-tensors", None),
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"group_0": {"weights": {"type": "int", "num_bits": 4}}},
            },
            ("compressed-tensors", None),
        ),
    ],
)
def test_quantization_config(
    qc: dict[str, Any], expected: tuple[str, tuple[int, int] | None]
) -> None:
    cfg = config("microsoft/phi-4") | {"quantization_config": qc}
    f = facts_from_hf("acme/q", cfg, {"metadata": {"total_size": 123}})
    assert (f.native_quantization, f.weight_block_size) == expected
    assert f.parameters == 14659507200 and f.checkpoint_bytes == 123


def test_unsupported_quantization_is_unresolved() -> None:
    cfg = config("microsoft/phi-4") | {"quantization_config": {"quant_method": "hqq"}}
    with pytest.raises(
        ModelUnresolved,
        match=re.escape("acme/q: config.json quantization_config.quant_method: 'hqq' is not a format"),
    ):
        facts_from_hf("acme/q", cfg, None)
    bad_bits = config("microsoft/phi-4") | {"quantization_config": {"quant_method": "gptq", "bits": 5}}
    with pytest.raises(ModelUnresolved, match=re.escape("quantization_config.bits: 5 is not one of 2, 3, 4, 8")):
        facts_from_hf("acme/q", bad_bits, None)


def test_library_defaults_fill_what_config_json_omits() -> None:
    # transformers' Phi3Config knows phi-4's family defaults; a missing key is not an error.
    cfg = config("microsoft/phi-4")
    del cfg["vocab_size"]
    assert facts_from_hf("acme/m", cfg, None).vocab_size == 32064  # Phi3Config.vocab_size default


def test_unknown_model_types_are_read_raw_and_say_so() -> None:
    raw = config("microsoft/phi-4") | {"model_type": "brand_new", "architectures": ["BrandNewForCausalLM"]}
    f = facts_from_hf("acme/new", raw, None)
    assert (f.layers, f.hidden_size, f.supports_pipeline_parallel) == (40, 5120, False)
    assert any("does not know model_type 'brand_new'" in n for n in f.notes)
    del raw["num_hidden_layers"]
    with pytest.raises(ModelUnresolved, match=re.escape("model acme/m: config.json num_hidden_layers: required to size")):
        facts_from_hf("acme/m", raw, None)
    nested = {"model_type": "brand_new_vl", "text_config": {"hidden_size": 1024}}
    with pytest.raises(ModelUnresolved, match=re.escape("config.json text_config.num_hidden_layers: required to size")):
        facts_from_hf("acme/m", nested, None)
    with pytest.raises(ModelUnresolved, match=re.escape("config.json model_type: missing")):
        facts_from_hf("acme/m", {"hidden_size": 1024}, None)


def test_inconsistent_or_unknown_configs() -> None:
    cfg = config("microsoft/phi-4") | {"num_key_value_heads": 7}
    with pytest.raises(ModelUnresolved, match=re.escape("acme/m: config.json is inconsistent")):
        facts_from_hf("acme/m", cfg, None)
    with pytest.raises(ModelUnresolved, match="torch_dtype: unsupported value 'int8'"):
        facts_from_hf("acme/m", config("microsoft/phi-4") | {"torch_dtype": "int8"}, None)
    exotic = config("microsoft/phi-4") | {
        "architectures": ["BrandNewForCausalLM"],
        "model_type": "brand_new",
    }
    assert facts_from_hf("acme/new", exotic, None).supports_pipeline_parallel is False


def test_untied_unless_the_family_ties_by_default() -> None:
    cfg = config("google/gemma-2-9b-it")
    assert "tie_word_embeddings" not in cfg
    assert facts_from_hf("g/9b", cfg, None).tie_word_embeddings is True
    llama = config("meta-llama/Llama-3.1-8B-Instruct")
    del llama["tie_word_embeddings"]
    assert facts_from_hf("m/8b", llama, None).tie_word_embeddings is False


_RACE = """
import sys, threading
from modeldeploy.facts import hf_config
errors, barrier = [], threading.Barrier(8)
def first_parse():
    barrier.wait()
    try:
        hf_config._auto_config()
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=first_parse) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(errors[0] if errors else "")
sys.exit(1 if errors else 0)
"""


def test_first_transformers_import_is_safe_from_many_threads() -> None:
    # The operator resolves facts in worker threads; without the import lock two first parses
    # at once failed with "cannot import name 'AutoConfig' from 'transformers'" (2 of 3 runs
    # on 2026-11-30). A fresh interpreter each time: the race is only in the first import.
    import subprocess
    import sys

    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", _RACE], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


def test_mtp_modules_the_checkpoint_stores_are_not_served() -> None:
    """vLLM skips MTP weights unless speculating (deepseek_v2.py spec layers, qwen3_next.py "mtp.")."""
    repo = "Qwen/Qwen3-Next-80B-A3B-Instruct"
    # The hub's count (81324862720) is the config's 79674391296 tensors plus one undeclared MTP module.
    hub = facts_from_hf(repo, config(repo), {"parameters": {"BF16": 81324856960, "F32": 5760}})
    assert hub.parameters == 79674391296 and hub.parameter_source == "safetensors"
    assert hub.unloaded_bytes == (81324862720 - 79674391296) * 2
    assert "multi-token-prediction" in hub.parameter_provenance
    exact_config = facts_from_hf(repo, config(repo), {"parameters": {"BF16": 79674391296}})
    assert exact_config.parameters == 79674391296 and exact_config.unloaded_bytes == 0


def test_declared_mtp_layers_leave_the_served_weights_and_active_parameters() -> None:
    catalog = load_catalog()
    v3 = catalog.get("deepseek-ai/DeepSeek-V3")
    assert v3 is not None and v3.checkpoint_bytes is not None
    # One MTP module: a MoE layer (11.6B parameters at FP8) plus its own embed_tokens and head (BF16).
    assert 14e9 < v3.unloaded_bytes < 16e9
    moe = catalog.get("Qwen/Qwen3.5-35B-A3B")
    assert moe is not None and moe.active_parameters is not None
    assert moe.parameters == 35107181936  # the checkpoint's 35951822704 less the MTP module
    assert moe.active_parameters == pytest.approx(3e9, rel=0.35)
