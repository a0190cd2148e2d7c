"""DeepSeek-V3.2's KV cache: the MLA latent plus the lightning indexer's key, per layer per token.

Rules (planner/mla_cache.py): vllm/model_executor/models/deepseek_v2.py
`DeepseekV32IndexerCache.get_kv_cache_spec` (one uint8 head of index_head_dim + index_head_dim //
128 × 4 = 132 bytes), vllm/v1/kv_cache_interface.py `MLAAttentionSpec.real_page_size_bytes`
(fp8_ds_mla: 656 bytes), vllm/model_executor/models/config.py `DeepseekV32ForCausalLM` (fp8
dtypes, and "auto" in vLLM 0.11 — vllm-project/vllm#25988 — become fp8_ds_mla), and
vllm/v1/core/kv_cache_utils.py (both specs of every layer share one group; pages add up).
The facts are the catalog's verbatim config.json of deepseek-ai/DeepSeek-V3.2.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.conftest import make_md, make_pool

from modeldeploy.api import ModelSource, Serving
from modeldeploy.errors import ConfigFieldError
from modeldeploy.facts import ModelFacts
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.hf_config import facts_from_hf
from modeldeploy.planner import plan_deployment
from modeldeploy.planner.memory import kv_bytes_per_token, kv_bytes_per_token_layer, precision_for
from modeldeploy.planner.mla_cache import indexer_key_bytes, mla_latent_bytes

V32, V3 = "deepseek-ai/DeepSeek-V3.2", "deepseek-ai/DeepSeek-V3"
CATALOG_FILE = (Path(__file__).resolve().parents[2] / "operator" / "modeldeploy" / "data" / "models"
                / "deepseek-ai--DeepSeek-V3.2.yaml")


def _facts(name: str) -> ModelFacts:
    found = load_catalog().get(name)
    assert found is not None
    return found


def test_v32_facts_carry_the_indexer_key_width_from_config_json() -> None:
    v32, v3 = _facts(V32), _facts(V3)
    assert v32.sparse_attention and v32.index_head_dim == 128  # config.json index_head_dim
    assert not v3.sparse_attention and v3.index_head_dim is None


def test_v32_token_holds_latent_and_indexer_key_in_every_layer_on_every_rank() -> None:
    v32 = _facts(V32)
    assert indexer_key_bytes(v32) == 128 + 4  # fp8 values + one fp32 scale per 128
    assert mla_latent_bytes(v32, 1) == 512 + 16 + 64 * 2 == 656  # fp8_ds_mla
    assert mla_latent_bytes(v32, 2) == (512 + 64) * 2
    for tp in (1, 8):  # one latent and one key per token: not split by TP
        assert kv_bytes_per_token_layer(v32, tp, 1) == 788
        assert kv_bytes_per_token_layer(v32, tp, 2) == 1284
    # one KV group, no padding layers: 61 layers × the sum
    assert kv_bytes_per_token(v32, tp=8, pp=1, kv_bytes=1) == 61 * 788
    assert kv_bytes_per_token(v32, tp=8, pp=2, kv_bytes=1) == 31 * 788


def test_v32_bytes_per_token_match_a_logged_sglang_allocation() -> None:
    # sgl-project/sglang#11309 (bench/data/README.md): DeepSeek-V3.2-Exp on 8 x B200 with an FP8
    # cache logs 975,424 tokens in 43.67 GiB with the indexer keys, and 1,462,784 tokens in
    # 54.52 GiB without them (the bug that PR fixed): the same 656 + 132 bytes per layer.
    v32 = _facts(V32)
    per_token = kv_bytes_per_token(v32, tp=8, pp=1, kv_bytes=1)
    assert abs(43.67 * 1024**3 / 975_424 - per_token) / per_token < 1e-3
    assert abs(54.52 * 1024**3 / 1_462_784 - 61 * mla_latent_bytes(v32, 1)) / per_token < 1e-3


def test_v3_without_sparse_attention_keeps_the_plain_latent() -> None:
    v3 = _facts(V3)
    assert kv_bytes_per_token_layer(v3, 8, 1) == 576 and kv_bytes_per_token_layer(v3, 8, 2) == 1152
    assert indexer_key_bytes(v3) == 0


@pytest.mark.parametrize(("image", "kv_dtype", "kv_bytes"), [
    ("vllm/vllm-openai:v0.11.0", "auto", 1),  # 0.11: auto is fp8_ds_mla (vllm#25988)
    ("vllm/vllm-openai:v0.11.2", "auto", 1),
    ("vllm/vllm-openai:v0.30.0", "auto", 2),  # later: auto is the 16-bit dtype
    ("vllm/vllm-openai:latest", "auto", 2),  # no version: sized as the default image
    ("vllm/vllm-openai:v0.30.0", "fp8", 1),  # every fp8 dtype becomes fp8_ds_mla
])
def test_v32_kv_dtype_follows_the_vllm_release(image: str, kv_dtype: str, kv_bytes: int) -> None:
    serving = Serving.model_validate({"image": image, "kvCacheDtype": kv_dtype})
    assert precision_for(_facts(V32), ModelSource(name=V32), serving).kv_bytes == kv_bytes


def test_v3_auto_stays_16_bit_on_vllm_011() -> None:
    serving = Serving.model_validate({"image": "vllm/vllm-openai:v0.11.0"})
    assert precision_for(_facts(V3), ModelSource(name=V3), serving).kv_bytes == 2


def test_v32_plan_counts_the_indexer_in_its_kv_tokens() -> None:
    v32 = _facts(V32)
    h200 = make_pool("h200", "NVIDIA-H200", 139.8, 8)
    md = make_md(V32, serving={"kvCacheDtype": "fp8", "maxModelLen": 32768}, placement={"tensorParallelSize": 8})
    plan = plan_deployment(md, v32, [h200])
    assert plan.feasible and plan.memory_per_gpu is not None and plan.kv_cache_tokens is not None
    kv_bytes = plan.memory_per_gpu.kv_cache_gib * 1024**3
    # tokens = KV memory / (61 × 788): the V3-style latent alone (576) would promise 37 % more
    assert abs(plan.kv_cache_tokens - kv_bytes / (61 * 788)) / plan.kv_cache_tokens < 1e-3  # GiB rounded
    assert plan.kv_cache_tokens < 0.75 * kv_bytes / (61 * 576)


def test_index_head_dim_missing_takes_transformers_default_and_zero_is_refused() -> None:
    entry = yaml.safe_load(CATALOG_FILE.read_text())
    # transformers' DeepseekV32Config defaults index_head_dim to 128, as vLLM (which loads the
    # config through it) does.
    without = {k: v for k, v in entry["config"].items() if k != "index_head_dim"}
    assert facts_from_hf(V32, without).index_head_dim == 128
    with pytest.raises(ConfigFieldError) as err:
        facts_from_hf(V32, entry["config"] | {"index_head_dim": 0})
    assert err.value.field == "index_head_dim"
