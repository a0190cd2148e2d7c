"""Multi-token-prediction (MTP) modules: how many a checkpoint has, whether the counts at hand
include them, and what vLLM loads of them. Pure.

DeepSeek-V3/R1/V3.2 (`num_nextn_predict_layers`), Qwen3.5 (`mtp_num_hidden_layers`) and
Qwen3-Next (undeclared in its config.json) publish checkpoints that store MTP modules. vLLM
skips them for plain serving (vllm/model_executor/models/deepseek_v2.py drops the weights of the
spec layers, get_spec_layer_idx_from_weight_name; qwen3_next.py and qwen3_5.py skip "mtp."
weights) and loads them only for MTP speculative decoding (planner/speculative.py).

Whether to subtract them from the served weights depends on what the counts describe:

* safetensors counts by dtype, an index's `total_size` or a user's `checkpointBytes` of the
  published checkpoint include them;
* a checkpoint re-saved through transformers (a fine-tune) does not: transformers' DeepSeek-V3
  and Qwen3-Next classes build no MTP module, so save_pretrained writes none, while the copied
  config.json still declares them;
* an estimate from config.json shapes (facts/estimate.py) never counts them.

So the counts decide: the modules are in them when the counts sit nearer the config's tensors
plus the modules than the config's tensors alone (DeepSeek-V3: 688574839360 bytes published,
673150614480 for the config's tensors, one module 15424224880). Qwen3-Next's config.json
declares no count; vLLM assumes one module (vllm/model_executor/models/qwen3_next_mtp.py:
`num_mtp_layers = getattr(config, "num_nextn_predict_layers", 1)`), and the hub's 81324862720
parameters for Qwen3-Next-80B-A3B are its config's 79674391296 plus exactly one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .estimate import Breakdown, Shapes, mtp_layer_parameters, mtp_layers
from .quantization import WeightQuantization, quantized_share

# Families whose config.json leaves the module count to vLLM's default (see above).
IMPLIED_LAYERS = {"qwen3_next": 1}


@dataclass(frozen=True)
class MtpModules:
    """The MTP modules of one checkpoint.

    layers: modules the config declares (or vLLM implies); parameters and stored_bytes: all of
    them as the checkpoint stores them (16-bit projection, norms and router, quantized linear
    layers); modules: their linear layers by group (facts/estimate.py); embedding_parameters: the modules' own input embeddings, which
    vLLM replaces by the target model's when it drafts with them (vllm/v1/spec_decode/eagle.py
    load_model: "Detected MTP model. Sharing target model embedding weights", PP = 1);
    in_counts: the counts at hand include them.
    """

    layers: int = 0
    parameters: int = 0
    stored_bytes: int = 0
    embedding_parameters: int = 0
    in_counts: bool = False
    modules: dict[str, int] = field(default_factory=dict)


def _nearer_with(surplus: float, module: float, layers: int) -> bool:
    """The counts exceed the config's tensors by nearer `layers` modules than none."""
    return abs(surplus - layers * module) < abs(surplus)


def expected_bytes(parts: Breakdown, quant: WeightQuantization | None, width: float, layers: int) -> float:
    """Bytes of the config's tensors as stored: quantized linear layers at the format's bytes per
    weight (scales included), the rest at the 16-bit activation dtype; `width` bytes each when
    unquantized. `layers`: the decoder layers, for modules kept 16-bit in named layers only."""
    if quant is None:
        return parts.total * width
    linear = quantized_share(parts.modules, quant, layers)
    return linear * quant.bytes_per_weight + (parts.total - linear) * 2.0


def mtp_modules(s: Shapes, quant: WeightQuantization | None, width: float, parts: Breakdown,
                counted_bytes: float | None) -> MtpModules:
    """The MTP modules of a checkpoint and whether `counted_bytes` (the checkpoint's safetensors
    bytes, or its parameters × `width` when unquantized; None for an estimate) include them.

    width: bytes per parameter of an unquantized checkpoint (2 for BF16).
    """
    modules, other = mtp_layer_parameters(s)
    linear = sum(modules.values())
    if quant is None:
        module_bytes = (linear + other) * width
    else:  # the groups the format quantizes at its bytes per weight, the rest 16-bit
        share = quantized_share(modules, quant)
        module_bytes = share * quant.bytes_per_weight + (linear - share + other) * 2.0
    layers = mtp_layers(s.cfg) or IMPLIED_LAYERS.get(s.text_type, 0)
    own_embedding = s.text_type.startswith("deepseek") or s.cfg.get("mtp_use_dedicated_embeddings") is True
    in_counts = bool(layers) and counted_bytes is not None and _nearer_with(
        counted_bytes - expected_bytes(parts, quant, width, s.layers), module_bytes, layers)
    return MtpModules(layers=layers, parameters=layers * (linear + other), stored_bytes=int(layers * module_bytes),
                      embedding_parameters=layers * s.vocab * s.hidden if own_embedding else 0, in_counts=in_counts,
                      modules={group: layers * n for group, n in modules.items()})

