"""The memory model: what one GPU of a layout holds. Pure arithmetic, no I/O.

Per GPU, vLLM needs weights/(TP·PP) + overhead (activations, non-torch memory, CUDA graphs;
per vLLM release, planner/overhead.py) + the KV cache for the requested context and
concurrency, within total × utilization. See docs/sizing.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..api import Dtype, KvCacheDtype, ModelSource, Quantization, Serving
from ..errors import InvalidSpec
from ..facts import ModelFacts
from ..facts.estimate import EXPERTS
from ..facts.quantization import MXFP4, WeightQuantization, online_fp8, quantized_share
from .mla_cache import auto_kv_is_fp8, mla_bytes_per_token_layer
from .overhead import DEFAULT_RELEASE, Overhead, parse_vllm_version

GIB = 1024**3
KV_BLOCK_TOKENS = 16  # vLLM allocates KV in blocks of 16 tokens

DEFAULT_MAX_MODEL_LEN = 8192
DEFAULT_KV_SEQUENCES = 2

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class Precision:
    """Bytes per parameter and per KV element a deployment will really use."""

    linear_bytes: float  # quantized linear layers, bytes per weight incl. scales and zero points
    embed_bytes: float  # embeddings, lm_head, towers and unquantized modules (activation dtype)
    kv_bytes: int
    quantization_flag: str | None  # value for --quantization; None = the checkpoint's own
    effective_quantization: str  # none | fp8 | awq | gptq | compressed-tensors | bitsandbytes | mxfp4 | nvfp4
    native: bool  # the checkpoint is served as stored (its file size is the weight size)
    quantization: WeightQuantization | None = None  # what the linear layers run as
    dtype: str = "bfloat16"  # vLLM's --dtype as resolved: the activations' dtype


def _refuse_quantization(facts: ModelFacts, asked: str, native_q: str) -> InvalidSpec:
    if asked == Quantization.NONE:
        return InvalidSpec(
            f"spec.model.quantization: {facts.id} is a {native_q} checkpoint; vLLM cannot serve "
            "it unquantized (choose its bf16 repository instead)"
        )
    return InvalidSpec(
        f"spec.model.quantization: {asked} needs a pre-quantized {asked} checkpoint; "
        f"{facts.id} is {native_q if native_q != 'none' else facts.native_dtype}"
    )


def precision_for(facts: ModelFacts, model: ModelSource, serving: Serving) -> Precision:
    """Resolve quantization and dtype; refuse combinations vLLM cannot serve (InvalidSpec)."""
    native_q = facts.native_quantization or "none"
    asked = model.quantization
    if model.dtype == Dtype.AUTO:
        dtype = "bfloat16" if facts.native_dtype == "float32" else facts.native_dtype
    else:
        dtype = str(model.dtype)
    act_bytes = _DTYPE_BYTES.get(dtype, 2)
    quant = facts.quantization
    if asked is None or asked == native_q:
        effective, flag = native_q, None
    elif asked == Quantization.FP8 and native_q == "none":
        effective, flag, quant = "fp8", "fp8", online_fp8()  # vLLM quantizes 16-bit weights at load
    else:
        raise _refuse_quantization(facts, str(asked), native_q)
    kv = 1 if serving.kv_cache_dtype == KvCacheDtype.FP8 else act_bytes
    if serving.kv_cache_dtype == KvCacheDtype.AUTO and auto_kv_is_fp8(
            facts, parse_vllm_version(serving.image) or DEFAULT_RELEASE):
        kv = 1  # DeepSeek-V3.2 on vLLM 0.11: auto is fp8_ds_mla (planner/mla_cache.py)
    return Precision(
        linear_bytes=quant.bytes_per_weight if quant else float(act_bytes),
        embed_bytes=float(act_bytes),
        kv_bytes=kv,
        quantization_flag=flag,
        effective_quantization=effective,
        native=flag is None and model.dtype in (Dtype.AUTO, facts.native_dtype),
        quantization=quant,
        dtype=dtype,
    )


@dataclass(frozen=True)
class Weights:
    """Weight bytes: decoder layers, one embedding matrix, both, and the towers (first stage)."""

    body: float
    embed_copy: float  # vocab × hidden, one matrix
    embed_total: float  # both matrices unless tied
    tower: float = 0.0  # vision / audio encoders, kept at their 16-bit dtype

    @property
    def total(self) -> float:
        return self.body + self.embed_total + self.tower


def quantized_parameters(facts: ModelFacts, quant: WeightQuantization | None) -> int:
    """Parameters stored at `linear_bytes`: the decoder's linear layers minus the groups the
    quantization keeps in 16-bit (routers always). Hand-written facts (no module breakdown):
    everything but the embeddings and towers. Without a quantization the linear layers are
    counted too (a Precision built by hand may still give them their own width)."""
    embed = facts.vocab_size * facts.hidden_size * (1 if facts.tie_word_embeddings else 2)
    if not facts.module_parameters:
        return max(facts.parameters - embed - facts.vision_parameters, 0)
    return quantized_share(facts.module_parameters, quant, facts.layers)


MXFP4_HIDDEN_ALIGN = 256


def kernel_padding(facts: ModelFacts, quant: WeightQuantization | None) -> float:
    """Bytes vLLM allocates beyond the checkpoint for its kernels' layouts.

    MXFP4 MoE experts (gpt-oss): vLLM pads hidden_size to a multiple of 256 when it lays the
    experts out for its MoE kernels (vllm/model_executor/layers/quantization/mxfp4.py,
    Mxfp4MoEMethod.create_weights). gpt-oss (hidden 2880 → 3072): +6.7 % on the experts; the
    vLLM v0.11 H100 logs (gpt-oss-20b 13.47 GiB, gpt-oss-120b 64.38 GiB of weights) match this
    within 0.5 %, the unpadded checkpoint is 5 % short.
    """
    if quant is None or quant.method != MXFP4:
        return 0.0
    h = facts.hidden_size
    padded = -(-h // MXFP4_HIDDEN_ALIGN) * MXFP4_HIDDEN_ALIGN
    return facts.module_parameters.get(EXPERTS, 0) * quant.bytes_per_weight * (padded / h - 1)


def weights_for(facts: ModelFacts, precision: Precision) -> Weights:
    """Bytes of every weight vLLM loads. The checkpoint's own size when served as stored and
    known (exact); else parameters × bytes per weight by module group (docs/sizing.md)."""
    embed_params = facts.vocab_size * facts.hidden_size
    embed_matrices = 1 if facts.tie_word_embeddings else 2
    embed_copy = embed_params * precision.embed_bytes
    embed_total = embed_copy * embed_matrices
    tower = facts.vision_parameters * precision.embed_bytes
    if precision.native and facts.checkpoint_bytes:
        stored = facts.checkpoint_bytes - facts.unloaded_bytes  # vLLM skips the MTP modules
        body = max(stored - embed_total - tower, 0.0) + kernel_padding(facts, precision.quantization)
        return Weights(body=body, embed_copy=embed_copy, embed_total=embed_total, tower=tower)
    quantized = quantized_parameters(facts, precision.quantization)
    rest = max(facts.parameters - embed_params * embed_matrices - facts.vision_parameters - quantized, 0)
    body = quantized * precision.linear_bytes + rest * precision.embed_bytes + kernel_padding(facts, precision.quantization)
    return Weights(body=body, embed_copy=embed_copy, embed_total=embed_total, tower=tower)


def stored_bytes(facts: ModelFacts) -> float:
    """Bytes of the checkpoint's safetensors files: what the model cache downloads and holds.

    The counts' total when known (catalog, hub, `checkpointBytes`), MTP modules included; else
    the estimate from config.json shapes (facts/mtp.py expected_bytes, plus the MTP modules the
    config declares). Never the served weights: vLLM skips the MTP modules and quantizes a 16-bit
    checkpoint to FP8 only while loading it (`quantization: fp8`). Hand-written facts: every
    parameter at the checkpoint's width, quantized linear layers at the format's bytes per weight.
    The same for the facts planner/speculative.py serves (they keep the counts and the estimate).
    """
    if facts.checkpoint_bytes or facts.stored_bytes_estimate:
        return float(facts.checkpoint_bytes or facts.stored_bytes_estimate or 0)
    quant = facts.quantization
    if quant is None:
        return facts.parameters * _DTYPE_BYTES.get(facts.native_dtype, 2)
    linear = quantized_parameters(facts, quant)
    return linear * quant.bytes_per_weight + (facts.parameters - linear) * 2.0


def stage_layers(count: int, pp: int) -> int:
    """Layers of a kind on the most loaded pipeline stage."""
    return math.ceil(count / pp) if count else 0


def weights_per_gpu(facts: ModelFacts, weights: Weights, tp: int, pp: int) -> float:
    """Bytes of weights on the most loaded GPU: its stage's layers plus one embedding, / TP."""
    if pp == 1:
        return weights.total / tp
    per_layer = weights.body / facts.layers
    return (stage_layers(facts.layers, pp) * per_layer + weights.embed_copy + weights.tower) / tp


def kv_heads_per_gpu(facts: ModelFacts, tp: int) -> int:
    return max(1, facts.kv_heads // tp)


def kv_bytes_per_token_layer(facts: ModelFacts, tp: int, kv_bytes: int) -> int:
    """KV bytes one token takes in one attention layer on one GPU."""
    if facts.is_mla:  # latent (+ V3.2's indexer key), replicated per rank: planner/mla_cache.py
        return mla_bytes_per_token_layer(facts, kv_bytes)
    return 2 * kv_heads_per_gpu(facts, tp) * facts.head_dim * kv_bytes


@dataclass(frozen=True)
class StageLayers:
    full: int
    sliding: int
    linear: int

    @property
    def attention(self) -> int:
        return self.full + self.sliding


# vLLM's hybrid KV-cache manager: a layer type whose count is at most 1.25× the other's groups
# with that larger count (v0.11 kv_cache_utils.py; 1.5× from later releases: the same for every
# catalog model).
_GROUP_BY_LARGER = 1.25


def kv_slot_layers(facts: ModelFacts) -> int:
    """Attention layers vLLM's reported KV token count divides by, model-wide.

    Models mixing full and sliding-window attention (and no linear attention) get one block pool
    of equal-sized layer groups: vllm/v1/core/kv_cache_utils.py `_get_kv_cache_groups_uniform_page_size`
    takes the smaller type's layer count as the group size (the larger's when within 1.25×) and
    pads each type up to a multiple of it ("Add N padding layers, may waste at most X% KV cache
    memory"); `num_blocks` = memory / (group size × page) and "GPU KV cache size" =
    num_blocks / groups × block size, i.e. memory / (padded layers × bytes per token-layer).
    google/gemma-3-27b-it: 10 full + 52 sliding → groups of 10, 8 padding layers, 70 slots (the
    vLLM 0.11 MI300X log in bench/data logs "Add 8 padding layers ... 15.38%" and 205,696 tokens
    from 109.86 GiB = 70 × 8 KiB per token). Other models: their attention layers.
    """
    sliding = facts.sliding_window_layers
    full = facts.attention_layers - sliding
    if not sliding or not full or facts.linear_attention_layers:
        return facts.attention_layers
    small, large = min(full, sliding), max(full, sliding)
    group = large if large < small * _GROUP_BY_LARGER else small
    return sum(math.ceil(count / group) * group for count in (full, sliding))


def layers_on_stage(facts: ModelFacts, pp: int) -> StageLayers:
    full = facts.attention_layers - facts.sliding_window_layers
    return StageLayers(
        full=stage_layers(full, pp),
        sliding=stage_layers(facts.sliding_window_layers, pp),
        linear=stage_layers(facts.linear_attention_layers, pp),
    )


def _sequence_bytes(facts: ModelFacts, stage: StageLayers, per_layer: int, tp: int, length: int) -> float:
    tokens = math.ceil(length / KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS
    window = min(tokens, facts.sliding_window or tokens)
    state = stage.linear * facts.linear_state_bytes_per_layer / tp
    return float(stage.full * per_layer * tokens + stage.sliding * per_layer * window + state)


def kv_bytes_per_sequence(facts: ModelFacts, tp: int, pp: int, kv_bytes: int, length: int) -> float:
    """KV (and recurrent state) one sequence of `length` tokens needs on the most loaded GPU."""
    per_layer = kv_bytes_per_token_layer(facts, tp, kv_bytes)
    return _sequence_bytes(facts, layers_on_stage(facts, pp), per_layer, tp, length)


def kv_bytes_per_token(facts: ModelFacts, tp: int, pp: int, kv_bytes: int) -> int:
    """Bytes per token across all attention layers on the most loaded GPU (for token counts), with
    the padding layers of vLLM's hybrid KV groups (kv_slot_layers)."""
    return kv_bytes_per_token_layer(facts, tp, kv_bytes) * _token_layers(facts, pp)


def _token_layers(facts: ModelFacts, pp: int) -> int:
    return max(stage_layers(kv_slot_layers(facts), pp), 1)


@dataclass(frozen=True)
class GpuMemory:
    """The arithmetic for the most loaded GPU of one layout, bytes."""

    budget: float
    weights: float
    overhead: float  # inside the budget: activation + non-torch (+ CUDA graphs from v0.21)
    kv_required: float
    kv_per_token: int
    detail: Overhead

    @property
    def kv_available(self) -> float:
        return self.budget - self.weights - self.overhead

    @property
    def needed(self) -> float:
        return self.weights + self.overhead + self.kv_required

    @property
    def fits(self) -> bool:
        return self.needed <= self.budget

    @property
    def kv_tokens(self) -> int:
        return max(int(self.kv_available // self.kv_per_token), 0)


def gpu_memory(
    facts: ModelFacts,
    precision: Precision,
    weights: Weights,
    *,
    tp: int,
    pp: int,
    gpu_gib: float,
    utilization: float,
    max_model_len: int,
    kv_sequences: int,
    overhead: Overhead,
) -> GpuMemory:
    stage = layers_on_stage(facts, pp)  # computed once: the search calls this per layout
    per_layer = kv_bytes_per_token_layer(facts, tp, precision.kv_bytes)
    return GpuMemory(
        budget=gpu_gib * utilization * GIB,
        weights=weights_per_gpu(facts, weights, tp, pp),
        overhead=overhead.in_budget,
        kv_required=kv_sequences * _sequence_bytes(facts, stage, per_layer, tp, max_model_len),
        kv_per_token=per_layer * _token_layers(facts, pp),
        detail=overhead,
    )
