"""What vLLM decides from a model's config alone: context length, PP support, sparse attention. Pure.

Each rule names the vLLM source it mirrors; docs/sizing.md lists them with the reports that
showed them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigFieldError

# vLLM model classes that implement SupportsPP (pipeline parallelism), from the class
# declarations in vllm/model_executor/models/*.py. Unknown classes get False: a multi-node plan
# for a model vLLM cannot split into stages fails at start-up. MllamaForConditionalGeneration
# (Llama-3.2-Vision, mllama.py) does not implement it: vllm-project/vllm#9015.
PIPELINE_PARALLEL_ARCHITECTURES = frozenset(
    {
        "LlamaForCausalLM",  # llama.py
        "MistralForCausalLM",  # served by llama.py
        "MixtralForCausalLM",  # mixtral.py
        "Qwen2ForCausalLM",  # qwen2.py
        "Qwen2MoeForCausalLM",  # qwen2_moe.py
        "Qwen3ForCausalLM",  # qwen3.py
        "Qwen3MoeForCausalLM",  # qwen3_moe.py
        "Qwen3NextForCausalLM",  # qwen3_next.py
        "DeepseekV2ForCausalLM",  # deepseek_v2.py
        "DeepseekV3ForCausalLM",  # deepseek_v2.py
        "DeepseekV32ForCausalLM",  # deepseek_v2.py
        "Gemma2ForCausalLM",  # gemma2.py
        "Gemma3ForCausalLM",  # gemma3.py
        "Gemma3ForConditionalGeneration",  # gemma3_mm.py
        "Phi3ForCausalLM",  # phi3.py (llama.py)
        "Llama4ForCausalLM",  # llama4.py
        "Llama4ForConditionalGeneration",  # mllama4.py
        "GptOssForCausalLM",  # gpt_oss.py
        "Qwen2VLForConditionalGeneration",  # qwen2_vl.py
        "Qwen2_5_VLForConditionalGeneration",  # qwen2_5_vl.py
        "Mistral3ForConditionalGeneration",  # mistral3.py
        "Qwen3VLForConditionalGeneration",  # qwen3_vl.py
        "Qwen3VLMoeForConditionalGeneration",  # qwen3_vl_moe.py
    }
)

# rope types whose max_position_embeddings is already the scaled length (vLLM leaves them).
_UNSCALED_ROPE = ("su", "longrope", "llama3")


def _rope_entries(rope: Any) -> list[Mapping[str, Any]]:
    """rope_parameters as a list: transformers v5 nests it per layer type (Gemma-3)."""
    if not isinstance(rope, Mapping):
        return []
    if all(isinstance(v, Mapping) for v in rope.values()) and rope:
        return [v for v in rope.values() if isinstance(v, Mapping)]
    return [rope]


def derived_max_context(max_positions: int, rope: Any, model_type: str) -> int:
    """The longest context vLLM derives from the config (its default --max-model-len), tokens.

    Mirrors `_get_and_verify_max_len` in vllm/config/model.py: max_position_embeddings × the
    rope scaling factor for every rope type except su/longrope/llama3; yarn scales
    original_max_position_embeddings instead; Gemma-3's max_position_embeddings is already
    scaled. deepseek-coder-6.7b: 16384 × 4 (linear) = 65536 (vllm-project/vllm#5248).
    """
    if "gemma3" in model_type:
        return max_positions
    derived: float = max_positions
    factor = 1.0
    for entry in _rope_entries(rope):
        kind = str(entry.get("rope_type") or entry.get("type") or "default")
        if kind in _UNSCALED_ROPE:
            continue
        raw = entry.get("factor")
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            factor = float(raw)
        original = entry.get("original_max_position_embeddings")
        if kind == "yarn" and isinstance(original, int) and original > 0:
            derived = original
    return int(derived * factor)


def sparse_attention(text: Mapping[str, Any], architectures: Iterable[str]) -> bool:
    """DeepSeek-V3.2's sparse attention (a lightning indexer picks the keys each query reads).

    Its FlashMLA sparse kernels exist for SM90 and SM100 only (vllm-project/vllm#30644;
    vllm/v1/attention/backends/mla/flashmla_sparse.py).
    """
    return "DeepseekV32ForCausalLM" in set(architectures) or text.get("index_topk") is not None


def indexer_head_dim(repo_id: str, text: Mapping[str, Any], architectures: Iterable[str]) -> int | None:
    """Width of the lightning indexer's key (config.json `index_head_dim`, 128 for DeepSeek-V3.2),
    or None for models without sparse attention.

    vLLM builds the indexer from `config.index_head_dim` (vllm/model_executor/models/deepseek_v2.py
    `Indexer.__init__`) and caches one such key per layer per token (planner/memory.py).

    Raises:
        ConfigFieldError: sparse attention without a positive integer `index_head_dim`.
    """
    if not sparse_attention(text, architectures):
        return None
    value = text.get("index_head_dim")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigFieldError(repo_id, "index_head_dim", "DeepSeek-V3.2 sparse attention needs the indexer's key "
                               f"width as a positive integer, got {value!r}")
    return value
