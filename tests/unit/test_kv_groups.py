"""vLLM's hybrid KV-cache groups: the padding layers its reported token count divides by.

Rule: vllm/v1/core/kv_cache_utils.py `_get_kv_cache_groups_uniform_page_size` (group size = the
smaller attention type's layer count, each type padded to a multiple of it) and
`_report_kv_cache_config` (tokens = blocks / groups × block size). Checked against a vLLM 0.11
start of google/gemma-3-27b-it on an MI300X (bench/data/README.md, source D): "Add 8 padding
layers, may waste at most 15.38% KV cache memory", "Available KV cache memory: 109.86 GiB",
"GPU KV cache size: 205,696 tokens".
"""

from __future__ import annotations

from modeldeploy.facts.catalog import load_catalog
from modeldeploy.planner.memory import kv_bytes_per_token, kv_slot_layers

GIB = 1024**3


def _facts(name: str):  # type: ignore[no-untyped-def]
    found = load_catalog().get(name)
    assert found is not None
    return found


def test_gemma3_27b_pads_its_sliding_layers_to_groups_of_ten() -> None:
    gemma3 = _facts("google/gemma-3-27b-it")
    assert (gemma3.attention_layers, gemma3.sliding_window_layers) == (62, 52)
    assert kv_slot_layers(gemma3) == 70  # 1 full group + 6 sliding groups of 10: 8 padding layers
    # The logged token count from the logged KV memory: 16 KV heads × 128 × 2 (K, V) × 2 bytes.
    per_token = kv_bytes_per_token(gemma3, tp=1, pp=1, kv_bytes=2)
    assert per_token == 70 * 2 * 16 * 128 * 2
    assert abs(109.86 * GIB / per_token - 205_696) / 205_696 < 0.001


def test_models_whose_layer_types_divide_evenly_have_no_padding() -> None:
    for name in ("openai/gpt-oss-20b", "openai/gpt-oss-120b", "google/gemma-2-9b-it", "google/gemma-2-27b-it"):
        facts = _facts(name)
        assert kv_slot_layers(facts) == facts.attention_layers, name


def test_text_models_without_sliding_layers_count_every_attention_layer() -> None:
    llama = _facts("meta-llama/Llama-3.1-8B-Instruct")
    assert kv_slot_layers(llama) == llama.attention_layers == 32
