"""A checkpoint's weight quantization, read from config.json's `quantization_config`. Pure.

Bytes per weight include what each format stores beside the packed weights, per group of
`group_size` weights along the input dimension (sources: vLLM's create_weights of each method
in vllm/model_executor/layers/quantization/):

| method (quant_method)            | weight     | per group / block                          |
|----------------------------------|------------|--------------------------------------------|
| awq (awq.py, awq_marlin.py)      | bits/8     | fp16 scale + packed `bits` zero point      |
| gptq (gptq.py, gptq_marlin.py)   | bits/8     | fp16 scale + packed `bits` zero point      |
| compressed-tensors int (W4A16,   | bits/8     | fp16 scale (+ zero point when asymmetric); |
|   W8A16, W8A8 int8)              |            | per channel: one scale per output row      |
| fp8, compressed-tensors float 8  | 1          | fp32 scale per 128×128 block when blocked  |
| bitsandbytes 4-bit (nf4/fp4)     | 0.5        | fp32 absmax per 64 (8-bit with double      |
|                                  |            | quantization)                              |
| bitsandbytes 8-bit (LLM.int8)    | 1          | one fp32 scale per output row              |
| mxfp4 (gpt-oss)                  | 0.5        | one E8M0 byte per 32                        |
| nvfp4 / modelopt FP4             | 0.5        | one fp8 byte per 16                         |

Per-row and per-tensor scales add under 0.1 % and are left out. Embeddings, `lm_head`, vision
and audio towers, norms and MoE routers stay in the checkpoint's 16-bit dtype; so do the
modules a config lists in `modules_to_not_convert` / `ignore`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..api.deployment import QuantizationMethod as _Method
from ..errors import ConfigFieldError, ModelUnresolved

# Our method names: the values spec.model.architecture.quantization.method accepts.
FP8, AWQ, GPTQ = _Method.FP8.value, _Method.AWQ.value, _Method.GPTQ.value
COMPRESSED_TENSORS, BITSANDBYTES = _Method.COMPRESSED_TENSORS.value, _Method.BITSANDBYTES.value
MXFP4, NVFP4 = _Method.MXFP4.value, _Method.NVFP4.value

# quant_method spellings in published configs → our method names.
_ALIASES = {
    "fp8": FP8,
    "fbgemm_fp8": FP8,
    "awq": AWQ,
    "awq_marlin": AWQ,
    "gptq": GPTQ,
    "gptq_marlin": GPTQ,
    "compressed-tensors": COMPRESSED_TENSORS,
    "compressed_tensors": COMPRESSED_TENSORS,
    "bitsandbytes": BITSANDBYTES,
    "mxfp4": MXFP4,
}

# Module groups of a decoder that a quantization may leave in 16-bit.
ATTENTION, MLP, EXPERTS, ROUTER = "attention", "mlp", "experts", "router"
_MODULE_PATTERNS = {
    ATTENTION: re.compile(r"(self_attn|attention|attn|q_proj|k_proj|v_proj|o_proj|qkv)"),
    ROUTER: re.compile(r"((^|\.)(gate|router)\$?$|shared_expert_gate)"),
    EXPERTS: re.compile(r"experts"),
    # Dense MLPs and shared experts: "mlp.", Llama 4's "feed_forward.{gate,up,down}_proj" and
    # "feed_forward.shared_expert" (its routed experts and router match the patterns above first).
    MLP: re.compile(r"((^|\.)mlp(\.|$)|shared_expert(?!_gate)|feed_forward(?!\.(experts|router)))"),
}
# Listed names that are no group's linear layers: norms (input_layernorm, post_attention_layernorm,
# self_attn.q_norm), Gated DeltaNet's A_log, dt_bias, conv1d and its b/a gate projection
# in_proj_ba (2 × linear_num_value_heads outputs: in_proj_qkvz and out_proj stay quantized), and
# the vision/audio towers (sized apart, at their stored dtype). Qwen3-Next-80B-A3B-Instruct-FP8
# lists all of these per layer while its q/k/v/o projections are FP8 (the published safetensors
# inventory: F8_E4M3 with [128, 128] scales for every self_attn projection, data/models).
_NO_GROUP = re.compile(r"(norm|A_log|dt_bias|conv1d|in_proj_ba)$"
                       r"|(^|\.)(vision_model|visual|vision_tower|multi_modal_projector|audio_tower)(\.|$)")


class WeightQuantization(BaseModel):
    """How the linear layers of a checkpoint are stored.

    bytes_per_weight: average bytes per quantized weight including scales and zero points.
    activation_bits: 8 when activations are quantized too (W8A8), else 16.
    unquantized: module groups kept in 16-bit (attention, mlp, experts, router).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str
    bits: int
    group_size: int | None = None  # None: per channel or per tensor
    desc_act: bool = False
    zero_point: bool = False
    # Integer formats: no runtime zero point in vLLM's kernel type (GPTQ `sym: true`, compressed-tensors
    # `symmetric`); only these have the Exllama fallback (planner/wna16.py).
    symmetric: bool = False
    weight_block_size: tuple[int, int] | None = None
    float_weights: bool = False  # fp8/fp4 floats rather than integers
    activation_bits: int = 16
    bytes_per_weight: float
    unquantized: tuple[str, ...] = ()
    # Groups kept in 16-bit only in the decoder layers a config names one by one (Meta's
    # Llama-3.1-405B-FP8 keeps the MLPs of layers 0 and 125): (group, layer indices); -1 - i marks
    # multi-token-prediction layer i ("mtp.layers.0…" → -1), which is no decoder layer.
    unquantized_in_layers: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @property
    def label(self) -> str:
        """Short description for plans: "gptq 8-bit g128"."""
        group = f" g{self.group_size}" if self.group_size else ""
        block = f" block {self.weight_block_size[0]}x{self.weight_block_size[1]}" if self.weight_block_size else ""
        width = "" if self.method == FP8 else f" {self.bits}-bit"
        return f"{self.method}{width}{group}{block}"

    @property
    def marlin_family(self) -> bool:
        """Integer weight-only formats vLLM runs through its mixed-precision GEMM kernels."""
        return self.method in (AWQ, GPTQ) or (
            self.method == COMPRESSED_TENSORS and not self.float_weights and self.activation_bits == 16
        )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _group_bytes(bits: int, group: int | None, *, zero_point: bool) -> float:
    """Bytes per weight: the packed weight plus an fp16 scale (and packed zero) per group."""
    if not group or group <= 0:
        return bits / 8
    return bits / 8 + 2 / group + (bits / 8 / group if zero_point else 0.0)


def quantized_share(modules: Mapping[str, int], quant: WeightQuantization | None, layers: int | None = None) -> int:
    """Parameters of `modules` (the decoder's linear layers by group, facts/estimate.py) stored
    at the format's bytes per weight: every group but those `quant` keeps in 16-bit, and never
    the MoE routers (vLLM builds the gate as an unquantized ReplicatedLinear in every format).

    A group kept only in some decoder layers (`unquantized_in_layers`) keeps that share of its
    parameters, assuming every one of the model's `layers` carries the same share of the group
    (exact for dense models; an average for MoE models interleaving dense layers). Without
    `layers` (the multi-token-prediction modules, facts/mtp.py) such a group counts as kept.
    """
    kept = {*(quant.unquantized if quant else ()), ROUTER}
    total = 0
    for group, n in modules.items():
        if group not in kept:
            total += n - round(n * _kept_fraction(quant, group, layers))
    return total


def _kept_fraction(quant: WeightQuantization | None, group: str, layers: int | None) -> float:
    named = {i for g, indices in (quant.unquantized_in_layers if quant else ()) if g == group for i in indices}
    if not named:
        return 0.0
    if layers is None:
        return 1.0
    # Named MTP layers (negative) count too: MTP drafting serves them as extra layers (planner/speculative.py).
    return min(len({i for i in named if i < layers}), layers) / layers


# A decoder layer named by index ("model.layers.0.mlp.down_proj", "language_model.model.layers.3.…",
# "mtp.layers.0.…").
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)(?:\.|$)")


def _group_of(name: str) -> str | None:
    """The module group whose linear layers `name` lists; None for no group's (`_NO_GROUP`)."""
    if _NO_GROUP.search(name.removesuffix("$")):
        return None
    for group, pattern in _MODULE_PATTERNS.items():
        if pattern.search(name):
            return group
    return None


def _unquantized_in_layers(names: Sequence[Any]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(group, layer indices) of the modules named in specific decoder layers."""
    found: dict[str, set[int]] = {}
    for raw in names:
        name = str(raw).removeprefix("re:")
        layer = _LAYER.search(name)
        group = _group_of(name)
        if layer is None or group is None:
            continue
        index = int(layer.group(1))
        found.setdefault(group, set()).add(-1 - index if name.startswith("mtp.") else index)
    return tuple((g, tuple(sorted(found[g]))) for g in sorted(found))


def _unquantized(names: Sequence[Any]) -> tuple[str, ...]:
    """Module groups named in modules_to_not_convert / ignore for every layer (patterns without a
    layer index: "model.layers.*.self_attn", "re:.*self_attn.*")."""
    found = set()
    for raw in names:
        name = str(raw).removeprefix("re:")
        group = _group_of(name)
        if group is not None and _LAYER.search(name) is None:
            found.add(group)
    return tuple(sorted(found))


def _fail(repo_id: str, field: str, problem: str) -> ModelUnresolved:
    return ConfigFieldError(repo_id, f"quantization_config.{field}", problem)


def _bits(repo_id: str, qc: Mapping[str, Any], allowed: tuple[int, ...], key: str = "bits") -> int:
    bits = _int(qc.get(key))
    if bits not in allowed:
        raise _fail(repo_id, key, f"{qc.get(key)!r} is not one of {', '.join(map(str, allowed))}")
    assert bits is not None
    return bits


def _block(qc: Mapping[str, Any]) -> tuple[int, int] | None:
    block = qc.get("weight_block_size")
    if isinstance(block, list) and len(block) == 2 and all(_int(b) for b in block):
        return int(block[0]), int(block[1])
    return None


def _fp8(qc: Mapping[str, Any], ignore: tuple[str, ...]) -> WeightQuantization:
    block = _block(qc)
    extra = 4 / (block[0] * block[1]) if block else 0.0  # one fp32 scale per block
    return WeightQuantization(method=FP8, bits=8, weight_block_size=block, float_weights=True,
                              activation_bits=8, bytes_per_weight=1 + extra, unquantized=ignore)


def _group_size(repo_id: str, qc: Mapping[str, Any], default: int | None) -> int | None:
    raw = qc.get("group_size", default)
    group = _int(raw)
    if group is None or group == 0 or group < -1:
        raise _fail(repo_id, "group_size", f"{raw!r} is not a positive integer or -1")
    return None if group == -1 else group


def _awq_gptq(repo_id: str, method: str, qc: Mapping[str, Any], ignore: tuple[str, ...]) -> WeightQuantization:
    bits = _bits(repo_id, qc, (4, 8) if method == AWQ else (2, 3, 4, 8))
    group = _group_size(repo_id, qc, 128)
    # GPTQ checkpoints store packed qzeros even when symmetric (AutoGPTQ format).
    zero = bool(qc.get("zero_point", True)) if method == AWQ else True
    return WeightQuantization(method=method, bits=bits, group_size=group, desc_act=bool(qc.get("desc_act", False)),
                              zero_point=zero, symmetric=method == GPTQ and qc.get("sym") is True, bytes_per_weight=_group_bytes(bits, group, zero_point=zero),
                              unquantized=ignore)


def _compressed_tensors(repo_id: str, qc: Mapping[str, Any], ignore: tuple[str, ...]) -> WeightQuantization:
    groups = qc.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        raise _fail(repo_id, "config_groups", "missing: cannot tell how the weights are stored")
    schemes = [g for g in groups.values() if isinstance(g, Mapping) and isinstance(g.get("weights"), Mapping)]
    if not schemes:
        raise _fail(repo_id, "config_groups", "no group describes its weights")
    # Mixed schemes: size by the widest (conservative).
    scheme = max(schemes, key=lambda g: _int(g["weights"].get("num_bits")) or 16)
    weights: Mapping[str, Any] = scheme["weights"]
    acts = scheme.get("input_activations")
    kind = str(weights.get("type") or "int")
    bits = _bits(repo_id, weights, (4, 8), "num_bits")
    act_bits = _int(acts.get("num_bits")) if isinstance(acts, Mapping) else None
    strategy = str(weights.get("strategy") or "")
    group = _int(weights.get("group_size")) if strategy == "group" else None
    block = None
    if strategy == "block":
        raw = weights.get("block_structure")
        block = (int(raw[0]), int(raw[1])) if isinstance(raw, list) and len(raw) == 2 else (128, 128)
    if kind == "float":
        per_group = 1 / 16 if bits == 4 else (4 / (block[0] * block[1]) if block else 0.0)
        return WeightQuantization(method=COMPRESSED_TENSORS, bits=bits, group_size=16 if bits == 4 else None,
                                  weight_block_size=block, float_weights=True, activation_bits=act_bits or 16,
                                  bytes_per_weight=bits / 8 + per_group, unquantized=ignore)
    zero = weights.get("symmetric") is False
    return WeightQuantization(method=COMPRESSED_TENSORS, bits=bits, group_size=group, zero_point=zero,
                              symmetric=not zero, desc_act=weights.get("actorder") not in (None, False, "static"),
                              activation_bits=act_bits or 16,
                              bytes_per_weight=_group_bytes(bits, group, zero_point=zero), unquantized=ignore)


def _bitsandbytes(qc: Mapping[str, Any], ignore: tuple[str, ...]) -> WeightQuantization:
    if qc.get("load_in_8bit"):
        return WeightQuantization(method=BITSANDBYTES, bits=8, bytes_per_weight=1.0, unquantized=ignore)
    double = bool(qc.get("bnb_4bit_use_double_quant"))
    absmax = 1 / 64 + 4 / (64 * 256) if double else 4 / 64  # per 64-weight block
    return WeightQuantization(method=BITSANDBYTES, bits=4, group_size=64, bytes_per_weight=0.5 + absmax,
                              unquantized=ignore)


def _modelopt(repo_id: str, qc: Mapping[str, Any], ignore: tuple[str, ...]) -> WeightQuantization:
    nested = qc.get("quantization")
    algo = str(qc.get("quant_algo") or (nested.get("quant_algo") if isinstance(nested, Mapping) else "") or "").upper()
    if "FP8" in algo:
        return _fp8({}, ignore)
    if "FP4" in algo:
        return WeightQuantization(method=NVFP4, bits=4, group_size=16, float_weights=True, activation_bits=4,
                                  bytes_per_weight=0.5 + 1 / 16, unquantized=ignore)
    raise _fail(repo_id, "quant_algo", f"{algo or '?'!r} is not a ModelOpt format the planner sizes (FP8, NVFP4)")


def parse_quantization(repo_id: str, config: Mapping[str, Any]) -> WeightQuantization | None:
    """The checkpoint's quantization, or None for plain 16/32-bit weights.

    Raises ModelUnresolved (one line naming the field) for a method or width the planner
    cannot size: never guess 16-bit for a checkpoint that says it is quantized.
    """
    qc = config.get("quantization_config")
    if qc is None:
        return None
    if not isinstance(qc, Mapping):
        raise ConfigFieldError(repo_id, "quantization_config", "not an object")
    names = [*(qc.get("modules_to_not_convert") or []), *(qc.get("ignore") or []), *(qc.get("ignored_layers") or []),
             *(qc.get("exclude_modules") or []), *(qc.get("llm_int8_skip_modules") or [])]
    parsed = _parse(repo_id, qc, _unquantized(names))
    in_layers = _unquantized_in_layers(names)
    return parsed.model_copy(update={"unquantized_in_layers": in_layers}) if in_layers else parsed


def _parse(repo_id: str, qc: Mapping[str, Any], ignore: tuple[str, ...]) -> WeightQuantization:
    raw = str(qc.get("quant_method") or "").lower()
    if raw in ("modelopt", "modelopt_fp4"):
        return _modelopt(repo_id, qc, ignore)
    method = _ALIASES.get(raw)
    if method == FP8:
        return _fp8(qc, ignore)
    if method in (AWQ, GPTQ):
        return _awq_gptq(repo_id, method, qc, ignore)
    if method == COMPRESSED_TENSORS:
        return _compressed_tensors(repo_id, qc, ignore)
    if method == BITSANDBYTES:
        return _bitsandbytes(qc, ignore)
    if method == MXFP4:
        # gpt-oss quantizes only the MoE experts (modules_to_not_convert lists the rest).
        rest = tuple(sorted({*ignore, ATTENTION, MLP, ROUTER}))
        return WeightQuantization(method=MXFP4, bits=4, group_size=32, float_weights=True,
                                  bytes_per_weight=0.5 + 1 / 32, unquantized=rest)
    raise _fail(repo_id, "quant_method", f"{raw or '(missing)'!r} is not a format the planner sizes "
                f"({', '.join(sorted(_ALIASES))}, modelopt)")


def quantization_from_spec(method: str, bits: int | None, group_size: int | None) -> WeightQuantization:
    """spec.model.architecture.quantization → WeightQuantization (the config.json equivalent)."""
    qc: dict[str, Any] = {"quant_method": method}
    if method in (AWQ, GPTQ):
        qc.update(bits=bits or 4, group_size=group_size or 128)
    elif method == COMPRESSED_TENSORS:
        strategy = "group" if group_size and group_size > 0 else "channel"
        qc["config_groups"] = {"group_0": {"weights": {"type": "int", "num_bits": bits or 4, "strategy": strategy,
                                                       "group_size": group_size}}}
    elif method == BITSANDBYTES:
        qc["load_in_8bit" if bits == 8 else "load_in_4bit"] = True
    elif method == NVFP4:
        qc = {"quant_method": "modelopt", "quant_algo": "NVFP4"}
    parsed = parse_quantization("spec.model.architecture", {"quantization_config": qc})
    assert parsed is not None
    return parsed


def online_fp8() -> WeightQuantization:
    """What `--quantization fp8` does to a 16-bit checkpoint at load: per-tensor FP8 weights."""
    return _fp8({}, ())
