"""Parameter counts from a config's shapes, by module group. Pure.

The last resort when the checkpoint's safetensors metadata is unknown (plans say "estimated").
h = hidden size, per decoder layer:
  attention   q, k, v, o projections: h·heads·hd + 2·h·kv·hd + heads·hd·h
              (+ q/k/v biases for Qwen2, + per-head q/k norms for Qwen3/Gemma3, q doubled by the
              output gate of Qwen3-Next); MLA (DeepSeek): q_a/q_b (LoRA) or q, kv_a, kv_b, o
  linear attn Gated DeltaNet: in_proj_qkvz, in_proj_ba, conv1d, dt_bias, A_log, norm, out
  MLP         dense: 3·h·intermediate (gate, up, down); MoE: experts·3·h·moe_intermediate
              + router h·experts + shared experts
  norms       2·h (4·h for Gemma-2/3)
plus embeddings vocab·h, lm_head vocab·h unless tied, a final norm h, and the vision tower
(layers·(4·h_v² + 2·h_v·i_v), 3·h_v·i_v when gated) of multimodal configs. DeepSeek's multi-token-prediction layer is
left out: vLLM loads it only for speculative decoding. Biases of non-Qwen2 models, rotary
buffers and vision projectors are ignored (well under 0.1 % for the catalog models; checked in
tests against safetensors counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Module groups (keys of Breakdown.modules) a quantization may keep in 16-bit.
ATTENTION, LINEAR_ATTENTION, MLP, EXPERTS, ROUTER = "attention", "linear_attention", "mlp", "experts", "router"

_UNGATED_MLP = frozenset({"gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi", "starcoder2"})
_QK_NORM = frozenset({"qwen3", "qwen3_moe", "qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "gemma3", "gemma3_text"})
_FOUR_NORMS = frozenset({"gemma2", "gemma3", "gemma3_text"})


def config_int(cfg: Mapping[str, Any], *keys: str) -> int | None:
    """The first key holding an integer (an integral float counts; booleans do not)."""
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    return None


@dataclass
class Breakdown:
    """Parameters by where they live. `modules` holds the decoder's linear layers by group."""

    embedding: int = 0
    lm_head: int = 0
    tower: int = 0  # vision / audio encoders and their projectors
    norms: int = 0
    modules: dict[str, int] = field(default_factory=dict)
    inactive: int = 0  # routed experts a token does not use (MoE)

    def add(self, group: str, count: int) -> None:
        self.modules[group] = self.modules.get(group, 0) + count

    @property
    def total(self) -> int:
        return self.embedding + self.lm_head + self.tower + self.norms + sum(self.modules.values())


@dataclass(frozen=True)
class Shapes:
    """The text model's shapes, as the facts parser read them from the config object."""

    cfg: Mapping[str, Any]  # the text config as a dict (transformers' to_dict, defaults included)
    text_type: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    kinds: tuple[str, ...]  # per layer: full | sliding | linear
    experts: int | None
    experts_per_token: int | None
    moe_intermediate: int | None
    dense_intermediate: int | None
    shared_intermediate: int | None
    shared_experts: int
    kv_lora_rank: int | None
    qk_rope_head_dim: int | None
    qk_nope_head_dim: int | None

    def is_moe_layer(self, i: int) -> bool:
        cfg = self.cfg
        if not self.experts:
            return False
        moe_layers = cfg.get("moe_layers")
        if isinstance(moe_layers, list) and moe_layers:
            return i in moe_layers
        first_dense = config_int(cfg, "first_k_dense_replace")
        if first_dense is not None:
            return i >= first_dense and i % (config_int(cfg, "moe_layer_freq") or 1) == 0
        step = config_int(cfg, "interleave_moe_layer_step", "decoder_sparse_step") or 1
        mlp_only = cfg.get("mlp_only_layers") or []
        return i not in mlp_only and (i + 1) % step == 0


def _attention(s: Shapes) -> int:
    cfg, h, heads, kv, hd = s.cfg, s.hidden, s.heads, s.kv_heads, s.head_dim
    if s.kv_lora_rank and s.qk_rope_head_dim is not None:
        nope = s.qk_nope_head_dim or 0
        v_dim = config_int(cfg, "v_head_dim") or nope
        q_rank = config_int(cfg, "q_lora_rank")
        q_head = nope + s.qk_rope_head_dim
        q = h * q_rank + q_rank + q_rank * heads * q_head if q_rank else h * heads * q_head
        kv_a = h * (s.kv_lora_rank + s.qk_rope_head_dim) + s.kv_lora_rank
        kv_b = s.kv_lora_rank * heads * (nope + v_dim)
        return q + kv_a + kv_b + heads * v_dim * h
    # Gated attention doubles q_proj (Qwen3-Next always; Qwen3.5 says attn_output_gate).
    gate = 2 if s.text_type == "qwen3_next" or cfg.get("attn_output_gate") is True else 1
    params = h * heads * hd * gate + 2 * h * kv * hd + heads * hd * h
    if s.text_type in ("qwen2", "qwen2_moe", "qwen2_5_vl_text", "qwen2_vl_text"):
        params += heads * hd + 2 * kv * hd  # q/k/v biases
    elif cfg.get("attention_bias") is True:
        params += heads * hd + 2 * kv * hd + h
    if s.text_type in _QK_NORM:
        params += 2 * hd
    return params


def _linear_attention(s: Shapes) -> int:
    cfg, h = s.cfg, s.hidden
    k_heads = config_int(cfg, "linear_num_key_heads") or 0
    v_heads = config_int(cfg, "linear_num_value_heads") or 0
    k_dim = config_int(cfg, "linear_key_head_dim") or 0
    v_dim = config_int(cfg, "linear_value_head_dim") or 0
    kernel = config_int(cfg, "linear_conv_kernel_dim") or 0
    key, value = k_heads * k_dim, v_heads * v_dim
    in_proj = h * (2 * key + 2 * value) + h * 2 * v_heads
    conv = (2 * key + value) * kernel
    return in_proj + conv + 2 * v_heads + v_dim + value * h


def linear_state_bytes(s: Shapes, dtype_bytes: float) -> int:
    """Gated DeltaNet state per layer per sequence at TP 1: conv + recurrent state.

    conv: (2·key_dim + value_dim) channels × (kernel − 1) past inputs; recurrent: value heads ×
    key head dim × value head dim; both in the model dtype (vLLM's mamba cache dtype "auto").
    """
    cfg = s.cfg
    k_heads = config_int(cfg, "linear_num_key_heads") or 0
    v_heads = config_int(cfg, "linear_num_value_heads") or 0
    k_dim = config_int(cfg, "linear_key_head_dim") or 0
    v_dim = config_int(cfg, "linear_value_head_dim") or 0
    kernel = config_int(cfg, "linear_conv_kernel_dim") or 1
    conv = (2 * k_heads * k_dim + v_heads * v_dim) * (kernel - 1)
    recurrent = v_heads * k_dim * v_dim
    return int((conv + recurrent) * dtype_bytes)


def _moe(s: Shapes, out: Breakdown) -> None:
    h, experts = s.hidden, s.experts or 0
    expert = 3 * h * (s.moe_intermediate or 0)
    out.add(EXPERTS, experts * expert)
    router = h * experts
    if s.text_type.startswith("deepseek") and s.cfg.get("topk_method") == "noaux_tc":
        router += experts  # e_score_correction_bias
    if s.shared_intermediate:
        out.add(MLP, 3 * h * s.shared_intermediate)
        router += h  # the shared expert's gate
    else:
        out.add(MLP, s.shared_experts * expert)
    out.add(ROUTER, router)
    out.inactive += (experts - (s.experts_per_token or 1)) * expert


def tower_parameters(vision: Mapping[str, Any] | None) -> int:
    """A vision encoder's parameters: layers·(4·h² attention + 2·h·i MLP, 3·h·i when gated).

    Approximate (patch embedding, position embeddings and projector left out).
    """
    if not vision:
        return 0
    h = config_int(vision, "hidden_size", "embed_dim") or 0
    layers = (config_int(vision, "num_hidden_layers", "depth") or 0) + (config_int(vision, "num_global_layers") or 0)
    inter = config_int(vision, "intermediate_size") or 4 * h
    matrices = 3 if vision.get("hidden_act") == "silu" else 2  # SiLU towers (Qwen2.5-VL) are gated
    return layers * (4 * h * h + matrices * h * inter)


def mtp_layers(cfg: Mapping[str, Any]) -> int:
    """Multi-token-prediction modules the config declares (DeepSeek-V3 `num_nextn_predict_layers`,
    Qwen3.5 `mtp_num_hidden_layers`)."""
    return config_int(cfg, "num_nextn_predict_layers", "mtp_num_hidden_layers") or 0


def mtp_layer_parameters(s: Shapes) -> tuple[dict[str, int], int]:
    """(linear layers by module group, other 16-bit) parameters of one multi-token-prediction
    module as checkpoints store it; the MoE router is a group of its own (kept 16-bit).

    vLLM loads these only for MTP speculative decoding; the served model skips them
    (vllm/model_executor/models/deepseek_v2.py get_spec_layer_idx_from_weight_name; qwen3_next.py
    and qwen3_5.py skip "mtp." weights). One module: a decoder layer (full attention, the MoE or
    dense MLP of the model's last layer) plus a [h, 2h] projection and three norms
    (deepseek_mtp.py: enorm, hnorm, eh_proj, shared_head.norm; qwen3_next_mtp.py: fc,
    pre_fc_norm_embedding, pre_fc_norm_hidden, norm). DeepSeek's also stores its own embed_tokens
    and shared_head.head [vocab, h]; Qwen's shares the model's unless mtp_use_dedicated_embeddings.
    The projection stays 16-bit in quantized checkpoints (DeepSeek-V3's hub counts).
    """
    h = s.hidden
    layer = Breakdown()
    layer.add(ATTENTION, _attention(s))
    if s.is_moe_layer(s.layers - 1):
        _moe(s, layer)
    else:
        layer.add(MLP, (2 if s.text_type in _UNGATED_MLP else 3) * h * (s.dense_intermediate or 4 * h))
    norms = (4 if s.text_type in _FOUR_NORMS else 2) * h + 3 * h
    own_embeddings = s.text_type.startswith("deepseek") or s.cfg.get("mtp_use_dedicated_embeddings") is True
    embeddings = (2 if s.text_type.startswith("deepseek") else 1) * s.vocab * h if own_embeddings else 0
    return layer.modules, norms + 2 * h * h + embeddings


def estimate(s: Shapes, vision: Mapping[str, Any] | None) -> Breakdown:
    """Parameters by module group, from the shapes (see the module docstring)."""
    h = s.hidden
    out = Breakdown(embedding=s.vocab * h, lm_head=0 if s.tied else s.vocab * h, tower=tower_parameters(vision))
    norms = (4 if s.text_type in _FOUR_NORMS else 2) * h
    out.norms = h + norms * s.layers
    attention = _attention(s)
    matrices = 2 if s.text_type in _UNGATED_MLP else 3
    for i, kind in enumerate(s.kinds):
        if kind == "linear":
            out.add(LINEAR_ATTENTION, _linear_attention(s))
        else:
            out.add(ATTENTION, attention)
        if s.is_moe_layer(i):
            _moe(s, out)
        else:
            out.add(MLP, matrices * h * (s.dense_intermediate or 4 * h))
    return out
