"""KV bytes of MLA models (DeepSeek V2/V3/R1/V3.2) per layer per token, as vLLM lays them out. Pure.

DeepSeek-V3.2 (sparse attention) holds two caches per layer, both replicated on every TP rank
(one latent per token, no heads to split):
- the MLA latent (`kv_lora_rank + qk_rope_head_dim` values). At 16 bits: 576 × 2 = 1152 bytes.
  With an FP8 cache vLLM switches V3.2 to its own `fp8_ds_mla` layout (every fp8 dtype is
  rewritten to it: vllm/model_executor/models/config.py `DeepseekV32ForCausalLM`): 512 fp8
  values, one fp32 scale per 128 of them, the 64 rope values kept in bf16 = 656 bytes
  (vllm/v1/kv_cache_interface.py `MLAAttentionSpec.real_page_size_bytes`;
  vllm/v1/attention/backends/mla/flashmla_sparse.py).
- the lightning indexer's keys: `DeepseekV32IndexerCache.get_kv_cache_spec`
  (vllm/model_executor/models/deepseek_v2.py) returns an MLAAttentionSpec of one head of
  `index_head_dim + index_head_dim // 128 * 4` uint8 (fp8 values plus one fp32 scale per
  128-value block, `quant_block_size` 128): 132 bytes whatever --kv-cache-dtype says.
vLLM puts both specs of all layers in one KV group (vllm/v1/core/kv_cache_utils.py: the layers
are all full attention, so `UniformTypeKVCacheSpecs` merges them and its page size is the sum
of the layers' pages; no padding layers), so a token costs the sum: 61 × (656 + 132) bytes for
V3.2 with FP8, 61 × (1152 + 132) at 16 bits.
"""

from __future__ import annotations

from ..facts import ModelFacts

# vLLM's FP8 quantization block of the indexer keys and of the fp8_ds_mla latent (values per
# fp32 scale): `quant_block_size = 128` in deepseek_v2.py `Indexer`, and 4 scales for 512 values
# in the fp8_ds_mla layout (flashmla_sparse.py).
FP8_SCALE_BLOCK = 128
SCALE_BYTES = 4  # fp32
ROPE_BYTES = 2  # the fp8_ds_mla layout keeps the rope part in bf16

# --kv-cache-dtype auto on DeepSeek-V3.2: vLLM 0.11.0 rewrote "auto" to fp8_ds_mla as well
# (vllm-project/vllm#25988, merged 2025-09-30, in v0.11.0); the newest source we hold rewrites
# only fp8 dtypes ("a custom fp8 format is used when fp8 kv-cache is enabled"), so auto is the
# model's 16-bit dtype. We could not pin the release in between: from 0.12 on "auto" is sized
# at 16 bits, the larger layout (fewer tokens than vLLM may give, never more).
AUTO_IS_FP8_DS_MLA = ((0, 11, 0), (0, 12, 0))  # [first, end) of the releases that do it


def auto_kv_is_fp8(facts: ModelFacts, release: tuple[int, int, int]) -> bool:
    """Whether vLLM `release` stores this model's KV cache in FP8 when --kv-cache-dtype is auto."""
    first, end = AUTO_IS_FP8_DS_MLA
    return facts.sparse_attention and facts.is_mla and first <= release < end


def mla_latent_bytes(facts: ModelFacts, kv_bytes: int) -> int:
    """Bytes of one MLA latent (one layer, one token): kv_bytes per value, or V3.2's fp8_ds_mla
    layout when its cache is FP8 (kv_bytes 1). Requires MLA facts (kv_lora_rank set)."""
    assert facts.kv_lora_rank is not None and facts.qk_rope_head_dim is not None
    if facts.sparse_attention and kv_bytes == 1:
        scales = facts.kv_lora_rank // FP8_SCALE_BLOCK * SCALE_BYTES
        return facts.kv_lora_rank + scales + facts.qk_rope_head_dim * ROPE_BYTES
    return (facts.kv_lora_rank + facts.qk_rope_head_dim) * kv_bytes


def indexer_key_bytes(facts: ModelFacts) -> int:
    """Bytes of the lightning indexer's cached key (one layer, one token); 0 without sparse attention."""
    dim = facts.index_head_dim
    if not facts.sparse_attention or dim is None:
        return 0
    return dim + dim // FP8_SCALE_BLOCK * SCALE_BYTES


def mla_bytes_per_token_layer(facts: ModelFacts, kv_bytes: int) -> int:
    """KV bytes one token takes in one MLA layer on every GPU (replicated across TP ranks)."""
    return mla_latent_bytes(facts, kv_bytes) + indexer_key_bytes(facts)
