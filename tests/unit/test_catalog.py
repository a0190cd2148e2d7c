"""The built-in model catalog: golden facts from SIZING-FACTS.md, lookup rules, validation."""

from __future__ import annotations

import pytest

from modeldeploy.facts import FactsSource, ModelFacts
from modeldeploy.facts.catalog import Catalog, CatalogError, load_catalog

# SIZING-FACTS.md "Model architecture facts": repo, params (B), active (B), layers, hidden,
# heads, kv heads (None = MLA), head_dim (None = MLA), vocab, max context.
TABLE = [
    ("meta-llama/Llama-3.1-8B-Instruct", 8.03, None, 32, 4096, 32, 8, 128, 128256, 131072),
    ("meta-llama/Llama-3.2-3B-Instruct", 3.21, None, 28, 3072, 24, 8, 128, 128256, 131072),
    ("meta-llama/Llama-3.3-70B-Instruct", 70.55, None, 80, 8192, 64, 8, 128, 128256, 131072),
    ("meta-llama/Llama-3.1-405B-Instruct", 405.85, None, 126, 16384, 128, 8, 128, 128256, 131072),
    (
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        109,
        17,
        48,
        5120,
        40,
        8,
        128,
        202048,
        10_485_760,
    ),
    (
        "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
        400,
        17,
        48,
        5120,
        40,
        8,
        128,
        202048,
        1_048_576,
    ),
    ("deepseek-ai/DeepSeek-V3", 671, 37, 61, 7168, 128, None, None, 129280, 163840),
    ("deepseek-ai/DeepSeek-R1", 671, 37, 61, 7168, 128, None, None, 129280, 163840),
    ("deepseek-ai/DeepSeek-V3.2", 671, 37, 61, 7168, 128, None, None, 129280, 163840),
    ("Qwen/Qwen2.5-72B-Instruct", 72.7, None, 80, 8192, 64, 8, 128, 152064, 32768),
    ("Qwen/Qwen2.5-Coder-32B-Instruct", 32.8, None, 64, 5120, 40, 8, 128, 152064, 32768),
    ("Qwen/Qwen3-32B", 32.8, None, 64, 5120, 64, 8, 128, 151936, 40960),
    ("Qwen/Qwen3-235B-A22B", 235, 22, 94, 4096, 64, 4, 128, 151936, 40960),
    ("Qwen/Qwen3-Next-80B-A3B-Instruct", 80, 3, 48, 2048, 16, 2, 256, 151936, 262144),
    # The table says 32768; config.json (max_position_embeddings) says 131072 (SIZING-FACTS addendum).
    ("mistralai/Mistral-Large-Instruct-2407", 122.6, None, 88, 12288, 96, 8, 128, 32768, 131072),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", 46.7, 12.9, 32, 4096, 32, 8, 128, 32000, 32768),
    ("google/gemma-2-27b-it", 27.2, None, 46, 4608, 32, 16, 128, 256000, 8192),
    ("google/gemma-2-9b-it", 9.24, None, 42, 3584, 16, 8, 256, 256000, 8192),
    ("microsoft/phi-4", 14.7, None, 40, 5120, 40, 10, 128, 100352, 16384),
]

FP8_VARIANTS = {
    "meta-llama/Llama-3.1-405B-Instruct": "meta-llama/Llama-3.1-405B-Instruct-FP8",
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct": (
        "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"
    ),
    "Qwen/Qwen3-32B": "Qwen/Qwen3-32B-FP8",
    "Qwen/Qwen3-235B-A22B": "Qwen/Qwen3-235B-A22B-FP8",
    "Qwen/Qwen3-Next-80B-A3B-Instruct": "Qwen/Qwen3-Next-80B-A3B-Instruct-FP8",
}
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


def kv_bytes_per_token(f: ModelFacts, dtype_bytes: int = 2) -> int:
    """KV cache per token at TP 1 (DESIGN.md): MLA latent or 2 x kv heads x head_dim."""
    if f.is_mla:
        assert f.kv_lora_rank is not None and f.qk_rope_head_dim is not None
        return f.attention_layers * (f.kv_lora_rank + f.qk_rope_head_dim) * dtype_bytes
    return f.attention_layers * 2 * f.kv_heads * f.head_dim * dtype_bytes


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.mark.parametrize("row", TABLE, ids=[r[0] for r in TABLE])
def test_every_sizing_facts_model_matches_the_table(catalog: Catalog, row: tuple) -> None:  # type: ignore[type-arg]
    repo, params_b, active_b, layers, hidden, heads, kv, head_dim, vocab, ctx = row
    f = catalog.get(repo)
    assert f is not None, f"{repo} missing from the catalog"
    assert f.id == repo and f.source == FactsSource.CATALOG
    assert (f.layers, f.hidden_size, f.attention_heads, f.vocab_size, f.max_context) == (
        layers,
        hidden,
        heads,
        vocab,
        ctx,
    )
    if kv is None:
        assert f.is_mla
    else:
        assert (f.kv_heads, f.head_dim) == (kv, head_dim)
    assert f.parameters == pytest.approx(params_b * 1e9, rel=0.01)
    if active_b is None:
        assert f.active_parameters is None and not f.is_moe
    else:
        assert f.is_moe and f.active_parameters == pytest.approx(active_b * 1e9, rel=0.3)
    assert f.supports_pipeline_parallel


def test_llama_kv_bytes_per_token_golden(catalog: Catalog) -> None:
    llama8 = catalog.get("meta-llama/Llama-3.1-8B-Instruct")
    llama70 = catalog.get("meta-llama/Llama-3.3-70B-Instruct")
    assert llama8 is not None and llama70 is not None
    assert kv_bytes_per_token(llama8) == 32 * 8 * 128 * 2 * 2 == 131072
    assert kv_bytes_per_token(llama70) == 327680
    assert llama8.checkpoint_bytes == 16060522496 == 2 * llama8.parameters


def test_deepseek_is_native_fp8_mla(catalog: Catalog) -> None:
    for repo in ("deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3.2"):
        f = catalog.get(repo)
        assert f is not None
        assert (f.kv_lora_rank, f.qk_rope_head_dim) == (512, 64)
        assert (f.native_quantization, f.weight_block_size) == ("fp8", (128, 128))
        assert (f.experts, f.experts_per_token, f.shared_experts, f.moe_intermediate_size) == (
            256,
            8,
            1,
            2048,
        )
        assert kv_bytes_per_token(f) == 70272
        assert f.fp8_variant is None


def test_hybrid_and_sliding_layers(catalog: Catalog) -> None:
    nxt = catalog.get("Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert nxt is not None
    assert (nxt.linear_attention_layers, nxt.attention_layers) == (36, 12)
    conv = (2 * 16 * 128 + 32 * 128) * (4 - 1)
    recurrent = 32 * 128 * 128
    assert nxt.linear_state_bytes_per_layer == (conv + recurrent) * 2 == 1_097_728
    for repo, layers in (("google/gemma-2-27b-it", 46), ("google/gemma-2-9b-it", 42)):
        g = catalog.get(repo)
        assert g is not None
        assert (g.sliding_window, g.sliding_window_layers) == (4096, layers // 2)
        assert g.tie_word_embeddings


@pytest.mark.parametrize(("base", "fp8"), sorted(FP8_VARIANTS.items()))
def test_fp8_variants_are_linked_and_share_the_architecture(
    catalog: Catalog, base: str, fp8: str
) -> None:
    b, v = catalog.get(base), catalog.get(fp8)
    assert b is not None and v is not None
    assert b.fp8_variant == fp8 and v.fp8_variant is None
    # An FP8 checkpoint: quant_method fp8 / fbgemm_fp8, or compressed-tensors float 8-bit (Maverick's).
    assert b.native_quantization is None and v.quantization is not None
    assert v.quantization.float_weights and v.quantization.bits == 8
    shape_fields = [k for k in ARCH_FIELDS if k not in ("parameters", "active_parameters")]
    assert {k: getattr(b, k) for k in shape_fields} == {k: getattr(v, k) for k in shape_fields}
    # The base counts its stored tensors; a quantized checkpoint's parameter count comes from its shapes.
    assert v.parameters == pytest.approx(b.parameters, rel=1e-3)


def test_qwen_fp8_releases_use_128_blocks(catalog: Catalog) -> None:
    for repo in (
        "Qwen/Qwen3-235B-A22B-FP8",
        "Qwen/Qwen3-32B-FP8",
        "Qwen/Qwen3-Next-80B-A3B-Instruct-FP8",
    ):
        f = catalog.get(repo)
        assert f is not None and f.weight_block_size == (128, 128)


def test_lookup_ignores_case_and_accepts_bare_ids(catalog: Catalog) -> None:
    exact = catalog.get("meta-llama/Llama-3.1-8B-Instruct")
    assert exact is not None
    assert catalog.get("META-LLAMA/llama-3.1-8b-instruct") is exact
    assert catalog.get("  llama-3.1-8B-INSTRUCT ") is exact
    assert "qwen3-32b" in catalog
    assert catalog.get("acme/Llama-3.1-8B-Instruct") is None  # a slash means a full repo id
    assert catalog.get("no-such-model") is None


def test_ambiguous_bare_ids_resolve_to_nothing() -> None:
    base = load_catalog().get("microsoft/phi-4")
    assert base is not None
    twin = base.model_copy(update={"id": "acme/phi-4"})
    cat = Catalog([base, twin])
    assert cat.get("phi-4") is None
    assert cat.ambiguous("PHI-4") == ["acme/phi-4", "microsoft/phi-4"]
    assert cat.get("acme/phi-4") is twin


def test_entries_are_sorted_and_cached(catalog: Catalog) -> None:
    ids = [f.id for f in catalog.entries()]
    assert ids == sorted(ids, key=str.lower)
    assert len(ids) == len(set(ids)) == len(catalog)
    assert load_catalog() is catalog


GOOD = """
id: acme/tiny
configSource: test value
config:
  architectures: [LlamaForCausalLM]
  model_type: llama
  hidden_size: 1024         # test value
  intermediate_size: 4096   # test value
  num_hidden_layers: 8      # test value
  num_attention_heads: 8    # test value
  num_key_value_heads: 8    # test value
  vocab_size: 32000         # test value
  max_position_embeddings: 4096  # test value
"""
GOOD_FILE = "data/models/acme--tiny.yaml"


def test_a_valid_document_loads() -> None:
    f = Catalog.from_files([(GOOD_FILE, GOOD)]).get("tiny")
    assert f is not None and f.id == "acme/tiny" and f.source == FactsSource.CATALOG
    assert f.layers == 8 and f.parameter_source == "estimate"


def test_checkpoint_counts_make_parameters_exact() -> None:
    text = GOOD + "checkpoint: {parameters: {BF16: 123456789}, source: test value, commit: abc}\n"
    f = Catalog.from_files([(GOOD_FILE, text)]).get("acme/tiny")
    assert f is not None
    assert (f.parameters, f.checkpoint_bytes, f.checkpoint_commit) == (123456789, 246913578, "abc")
    assert f.parameter_source == "safetensors" and f.notes == ()


def test_derived_only_counts_size_the_weights_but_plan_estimated() -> None:
    text = GOOD + "checkpoint: {parameters: {BF16: 123456789}, derivedOnly: true, source: test value}\n"
    f = Catalog.from_files([(GOOD_FILE, text)]).get("acme/tiny")
    assert f is not None and (f.parameters, f.checkpoint_bytes) == (123456789, 246913578)
    assert f.parameter_source == "derived" and f.parameter_provenance.startswith("estimated: 123,456,789 bfloat16")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("num_key_value_heads: 8 ", "num_key_value_heads: 3 "), "acme/tiny: .*multiple of KV heads"),
        (GOOD + "heads: 8\n", "unknown keys \\['heads'\\]"),
        (GOOD.replace("configSource: test value\n", ""), "missing keys \\['configSource'\\]"),
        (GOOD.replace("num_hidden_layers: 8", "num_hidden_layers: 0"), "num_hidden_layers: missing or not a positive"),
        (GOOD.replace("id: acme/tiny", "id: acme/tiny\nid: acme/other"), "duplicate key 'id'"),
        (GOOD.replace("id: acme/tiny", "id: tiny"), "'tiny' is not a Hugging Face repo id"),
        (GOOD + "fp8Variant: acme/tiny-FP8\n", "fp8Variant acme/tiny-FP8 is not in the catalog"),
        (GOOD + "checkpoint: {totalBytes: -1}\n", "totalBytes must be a positive integer"),
        (GOOD + "checkpoint: {parameters: {BF16: 1}, derivedOnly: 'yes'}\n", "derivedOnly must be true or false"),
        (GOOD + "checkpoint: {totalBytes: 2, derivedOnly: true}\n", "true only beside the parameters"),
        (GOOD.replace("model_type: llama", "model_type: llama\n  quantization_config: {quant_method: int3}"),
         "quantization_config.quant_method: 'int3' is not a format"),
        ("- a list\n", "expected a mapping"),
        ("id: [1, 2\n", "invalid YAML"),
    ],
)
def test_bad_entries_fail_loudly(text: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        Catalog.from_files([(GOOD_FILE, text)]).entries()


def test_file_names_and_ids_agree_and_ids_are_unique() -> None:
    with pytest.raises(CatalogError, match=r"belongs in a file named acme--tiny\.yaml"):
        Catalog.from_files([("data/models/acme--small.yaml", GOOD)])
    twin = GOOD.replace("acme/tiny", "ACME/Tiny")
    with pytest.raises(CatalogError, match="listed twice"):
        Catalog.from_files([(GOOD_FILE, GOOD), ("data/models/ACME--Tiny.yaml", twin)])

