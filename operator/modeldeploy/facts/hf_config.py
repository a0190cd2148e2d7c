"""config.json (+ safetensors counts) → ModelFacts, through transformers' config classes. Pure.

One parser for every way a config arrives: the catalog's data files, the hub, and
`spec.model.hfConfig`; the same config therefore plans the same everywhere.

transformers (`AutoConfig.for_model(model_type, **config)`, no torch, no I/O) supplies what a
published config.json leaves to the library: defaults (gemma-3-27b-it has no
text_config.max_position_embeddings), the text config of multimodal models
(`get_text_config`), per-layer `layer_types` (sliding windows, linear attention), normalised
`rope_parameters` and key aliases. A model_type the installed transformers does not know is read
from its raw keys instead, and the facts carry a note saying so. Why transformers:
docs/decisions/config-parsing-with-transformers.md.

Parameters: counted from the checkpoint's safetensors metadata when known (exact); a catalog block
marked `derivedOnly` sizes from its counts but says "estimated" (nothing published confirms them);
otherwise estimated from the shapes (facts/estimate.py) and the facts say "estimated".
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

from ..errors import ConfigFieldError, ModelUnresolved
from .checkpoint import Checkpoint as Checkpoint  # re-exported: callers import it from here
from .encoder import encoder_facts
from .estimate import Breakdown, Shapes, config_int, estimate, linear_state_bytes
from .model import FactsSource, ModelFacts, ParameterSource
from .mtp import expected_bytes, mtp_modules
from .quantization import parse_quantization
from .vllm_model import PIPELINE_PARALLEL_ARCHITECTURES, derived_max_context, indexer_head_dim, sparse_attention

DTYPE_BYTES: dict[str, float] = {"float32": 4, "float16": 2, "bfloat16": 2}
_DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
_FLOAT_STORAGE = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}
# Keys every text config must give (or its class default); later names: raw-config aliases.
_REQUIRED = (("num_hidden_layers", "n_layer", "num_layers"), ("hidden_size", "n_embd", "d_model"),
             ("num_attention_heads", "n_head"), ("vocab_size",))
# Keys that set the model's size: they must be in the config itself (top level, or text_config of
# a multimodal model), never a config class's default — {"model_type": "llama"} alone would
# otherwise be sized as transformers' default Llama (hidden_size 4096, 32 layers: a 7B nobody
# published). vocab_size and max_position_embeddings may come from defaults (gemma-3-27b-it's
# text_config omits both). MLA (DeepSeek) and linear attention (Qwen3-Next) still publish
# num_attention_heads; MoE families publish moe_intermediate_size (or Mixtral's intermediate_size).
_SIZE_KEYS = (("hidden_size", "n_embd", "d_model"), ("num_hidden_layers", "n_layer", "num_layers"),
              ("num_attention_heads", "n_head"),
              ("intermediate_size", "moe_intermediate_size", "ffn_dim", "n_inner"))
_SEQUENCE_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length",
                  "max_seq_length", "seq_len")  # vLLM's possible_keys (vllm/config/model.py)


# The operator resolves facts in worker threads; transformers' lazy module is not safe to import
# from two threads at once ("cannot import name 'AutoConfig' from 'transformers'"), so the first
# import is serialised. functools.cache alone does not serialise a first call.
_IMPORT_LOCK = threading.Lock()


@cache
def _auto_config() -> Any:
    """transformers' AutoConfig, imported on first use: ~1 s of CPU that commands parsing no
    config (crd, rbac, models -o json of nothing) do not pay (docs/PERFORMANCE.md).

    Thread-safe: concurrent first callers wait for one import."""
    with _IMPORT_LOCK:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" on stderr
        from transformers import AutoConfig

        return AutoConfig


@dataclass(frozen=True)
class _Loaded:
    top: Mapping[str, Any]  # the whole config, defaults applied
    text: dict[str, Any]  # the language model's config, defaults applied
    vision: Mapping[str, Any] | None
    note: str | None  # set when transformers could not read it


def _to_dict(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return data


def _load(repo_id: str, config: Mapping[str, Any]) -> _Loaded:
    """The config through its transformers class; raw keys when the model_type is unknown."""
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ConfigFieldError(repo_id, "model_type", "missing (transformers needs it)")
    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    try:
        obj = _auto_config().for_model(model_type, **kwargs)
    except ValueError as exc:
        if "Unrecognized" not in str(exc) and "not recognized" not in str(exc):
            raise _rejected(repo_id, model_type, exc) from exc
        return _raw(config, model_type)
    except Exception as exc:  # the config class rejected a value: name it, one line
        raise _rejected(repo_id, model_type, exc) from exc
    text = obj.get_text_config(decoder=True)
    vision = getattr(obj, "vision_config", None)
    return _Loaded(_to_dict(obj), _text_dict(text), _to_dict(vision) if vision is not None else None, None)


def _text_dict(text: Any) -> dict[str, Any]:
    data = _to_dict(text)
    # attribute_map aliases (gpt2's n_layer …) resolve through getattr, not to_dict.
    for name in ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "vocab_size",
                 "max_position_embeddings", "head_dim", "intermediate_size"):
        value = getattr(text, name, None)
        if value is not None:
            data[name] = value
    return data


def _raw(config: Mapping[str, Any], model_type: str) -> _Loaded:
    nested = config.get("text_config")
    text = dict(nested) if isinstance(nested, Mapping) else dict(config)
    vision = config.get("vision_config")
    note = (f"transformers {metadata.version('transformers')} does not know model_type {model_type!r}: "
            "config.json read from its raw keys, without library defaults")
    return _Loaded(dict(config), text, vision if isinstance(vision, Mapping) else None, note)


def _rejected(repo_id: str, model_type: str, exc: BaseException) -> ModelUnresolved:
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return ModelUnresolved(f"model {repo_id}: config.json is not accepted by transformers' {model_type} "
                           f"config class: {detail}")


def _path(config: Mapping[str, Any], key: str) -> str:
    """Where a text size key belongs in the config as the user wrote it: under text_config when
    the config has one (multimodal models), else at the top level."""
    return f"text_config.{key}" if isinstance(config.get("text_config"), Mapping) else key


def _required(repo_id: str, config: Mapping[str, Any], text: Mapping[str, Any], key: str, *aliases: str) -> int:
    value = config_int(text, key, *aliases)
    if not value or value < 1:
        raise ConfigFieldError(repo_id, _path(config, key),
                               "missing or not a positive integer (and the config class has no default)")
    return value


def _require_size_keys(repo_id: str, config: Mapping[str, Any], loaded: _Loaded) -> None:
    """Raise ModelUnresolved naming the first size key the config leaves to a library default."""
    nested = config.get("text_config")
    places = [nested, config] if isinstance(nested, Mapping) else [config]
    for key, *aliases in _SIZE_KEYS:
        if not any(place.get(name) is not None for place in places for name in (key, *aliases)):
            default = loaded.text.get(key)
            would = f" (transformers would default it to {default})" if default is not None else ""
            raise ConfigFieldError(repo_id, _path(config, key), f"required to size the model{would}")


def _dtype(repo_id: str, loaded: _Loaded) -> str:
    raw = loaded.text.get("dtype") or loaded.top.get("dtype") or loaded.top.get("torch_dtype") or "bfloat16"
    name = str(raw).removeprefix("torch.")
    name = _DTYPE_ALIASES.get(name, name)
    if name not in DTYPE_BYTES:
        raise ConfigFieldError(repo_id, "torch_dtype", f"unsupported value {raw!r}")
    return name


def _kinds(text: Mapping[str, Any], layers: int, window: int | None) -> tuple[str, ...]:
    """Per layer: full attention, sliding-window attention, or linear attention (fixed state)."""
    sliding = "sliding" if window else "full"
    types = text.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        out = []
        for t in map(str, types):
            if t in ("linear_attention", "mamba", "deltanet", "gated_deltanet"):
                out.append("linear")
            elif t.startswith("sliding"):
                out.append(sliding)
            else:
                out.append("full")  # full, chunked and indexed attention: sized as full (conservative)
        return tuple(out)
    interval = config_int(text, "full_attention_interval")
    if interval:
        return tuple("full" if (i + 1) % interval == 0 else "linear" for i in range(layers))
    if text.get("model_type") in ("mistral", "mixtral") and window:
        return (sliding,) * layers  # Mistral applies its window (when set) to every layer
    return ("full",) * layers


def _shapes(repo_id: str, config: Mapping[str, Any], loaded: _Loaded, max_context: int) -> Shapes:
    text = loaded.text
    layers, hidden, heads, _ = (_required(repo_id, config, text, *keys) for keys in _REQUIRED)
    kv_lora, rope, nope = (config_int(text, k) for k in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim"))
    head_dim = (nope + rope) if kv_lora and nope is not None and rope is not None else (
        config_int(text, "head_dim") or hidden // heads)
    text_type = str(text.get("model_type") or loaded.top.get("model_type") or "")
    experts = config_int(text, "num_local_experts", "num_experts", "n_routed_experts")
    llama4 = text_type.startswith("llama4")
    if experts:  # Mixtral and Llama-4 name the expert width intermediate_size
        moe_inter = config_int(text, "moe_intermediate_size") or config_int(text, "intermediate_size")
        dense = config_int(text, "intermediate_size_mlp") if llama4 else config_int(text, "intermediate_size")
    else:
        moe_inter, dense = None, config_int(text, "intermediate_size", "ffn_dim", "n_inner")
    shared_inter = config_int(text, "shared_expert_intermediate_size")
    if not experts:
        shared = 0
    elif shared_inter and moe_inter:
        shared = max(1, round(shared_inter / moe_inter))
    else:
        shared = 1 if llama4 else (config_int(text, "n_shared_experts") or 0)
    tied = text.get("tie_word_embeddings")
    if not isinstance(tied, bool):
        tied = loaded.top.get("tie_word_embeddings")
    window = config_int(text, "sliding_window")
    window = window if window and window < max_context else None
    return Shapes(
        cfg=text, text_type=text_type, layers=layers, hidden=hidden, heads=heads,
        kv_heads=config_int(text, "num_key_value_heads", "n_head_kv", "num_kv_heads") or heads,
        head_dim=head_dim, vocab=int(text["vocab_size"]), tied=bool(tied), kinds=_kinds(text, layers, window),
        experts=experts, experts_per_token=config_int(text, "num_experts_per_tok", "moe_topk") if experts else None,
        moe_intermediate=moe_inter, dense_intermediate=dense, shared_intermediate=shared_inter,
        shared_experts=shared, kv_lora_rank=kv_lora, qk_rope_head_dim=rope, qk_nope_head_dim=nope,
    )


def _max_context(repo_id: str, config: Mapping[str, Any], loaded: _Loaded) -> int:
    text = loaded.text
    found = [v for k in _SEQUENCE_KEYS if (v := config_int(text, k))]
    if not found:
        raise ConfigFieldError(repo_id, _path(config, "max_position_embeddings"),
                               "missing (and the config class has no default)")
    model_type = str(loaded.top.get("model_type") or "")
    return derived_max_context(min(found), text.get("rope_parameters") or text.get("rope_scaling"), model_type)


def _counted(checkpoint: Checkpoint | None, quantized: bool, estimate_total: int) -> tuple[int, str | None]:
    """(parameters, stored float dtype) from safetensors counts of an unquantized checkpoint."""
    if checkpoint is None or quantized:
        return estimate_total, None
    if checkpoint.parameters:
        floats = {d.upper() for d, n in checkpoint.parameters.items() if n}
        stored = _FLOAT_STORAGE.get(next(iter(floats))) if len(floats) == 1 else None
        return int(sum(checkpoint.parameters.values())), stored
    return estimate_total, None


def _from_total_size(total: int, dtype: str, estimate_total: int) -> tuple[int, str]:
    """Parameters from an unquantized checkpoint's byte total: trust the declared dtype unless the
    count it implies is off the estimate by more than 1.5× (Gemma-2 configs say float32 for bf16
    shards); then the width that matches wins."""
    declared = DTYPE_BYTES[dtype]
    if 1 / 1.5 <= (total / declared) / estimate_total <= 1.5:
        return round(total / declared), dtype
    width = 4 if abs(total / 4 - estimate_total) < abs(total / 2 - estimate_total) else 2
    stored = "float32" if width == 4 else ("bfloat16" if dtype == "float32" else dtype)
    return round(total / width), stored


def _notes(loaded: _Loaded, source: ParameterSource, tower: int, encoder: object) -> tuple[str, ...]:
    notes = [loaded.note] if loaded.note else []
    if tower and encoder is None:
        notes.append(f"the multimodal encoder of model_type {loaded.top.get('model_type')!r} is not sized: "
                     "vLLM's encoder profiling memory is left out of the plan")
    if source == ParameterSource.ESTIMATE:
        notes.append("parameters estimated from config.json (no safetensors counts)")
    return tuple(notes)


def facts_from_hf(
    repo_id: str,
    config: Mapping[str, Any],
    checkpoint: Checkpoint | Mapping[str, Any] | None = None,
    *,
    source: FactsSource = FactsSource.HUB,
) -> ModelFacts:
    """ModelFacts from a config.json and, optionally, the checkpoint's safetensors metadata.

    `checkpoint`: a Checkpoint, or a model.safetensors.index.json mapping (its total_size).
    Raises ModelUnresolved with one line naming the config field at fault.
    """
    if not isinstance(config, Mapping):
        raise ModelUnresolved(f"model {repo_id}: config.json is not a JSON object")
    counts = checkpoint if isinstance(checkpoint, Checkpoint) or checkpoint is None else Checkpoint.from_index(checkpoint)
    loaded = _load(repo_id, config)
    _require_size_keys(repo_id, config, loaded)
    for key, *aliases in _REQUIRED:
        _required(repo_id, config, loaded.text, key, *aliases)
    max_context = _max_context(repo_id, config, loaded)
    shapes = _shapes(repo_id, config, loaded, max_context)
    dtype = _dtype(repo_id, loaded)
    quant = parse_quantization(repo_id, config)
    parts: Breakdown = estimate(shapes, loaded.vision)
    parameters, stored = _counted(counts, quant is not None, parts.total)
    exact = counts is not None and bool(counts.parameters) and quant is None
    if counts is not None and not counts.parameters and counts.total_bytes and quant is None:
        parameters, dtype = _from_total_size(counts.total_bytes, dtype, parts.total)
        exact = True
    if quant is not None and counts is not None and counts.bytes:
        exact = True  # the weights are the stored bytes; the parameter count comes from the shapes
    dtype = stored or dtype
    mtp = mtp_modules(shapes, quant, DTYPE_BYTES[dtype], parts, _counted_bytes(counts, parameters, dtype, quant, exact))
    if mtp.in_counts and quant is None:
        parameters -= mtp.parameters  # served parameters: vLLM skips the MTP modules the counts include
    param_source = ParameterSource.ESTIMATE if not exact else (
        ParameterSource.DERIVED if counts is not None and counts.derived_only else ParameterSource.SAFETENSORS)
    architectures = [str(a) for a in (config.get("architectures") or loaded.top.get("architectures") or [])]
    active = parameters - parts.inactive if shapes.experts else None
    facts = _build(repo_id, source, _Parsed(shapes, loaded, dtype, quant, parts, parameters, active, counts,
                                            param_source, architectures, max_context))
    split_estimated = exact and counts is not None and not counts.parameters
    return facts.model_copy(update={
        "mtp_layers": mtp.layers, "mtp_parameters": mtp.parameters, "mtp_bytes": mtp.stored_bytes,
        "mtp_embedding_parameters": mtp.embedding_parameters, "mtp_module_parameters": mtp.modules,
        "stored_bytes_estimate": None if counts and counts.bytes else int(
            expected_bytes(parts, quant, DTYPE_BYTES[dtype], shapes.layers) + mtp.stored_bytes),
        "unloaded_bytes": mtp.stored_bytes if mtp.in_counts else 0, "dtype_split_estimated": split_estimated})


def _counted_bytes(counts: Checkpoint | None, parameters: int, dtype: str, quant: Any, exact: bool) -> float | None:
    """What the counts at hand weigh, for facts/mtp.py to tell whether they hold the MTP modules:
    an unquantized checkpoint's parameters at its stored width, a quantized one's bytes; None
    for an estimate from the shapes (it never counts them)."""
    if not exact or counts is None:
        return None
    return parameters * DTYPE_BYTES[dtype] if quant is None else counts.bytes


@dataclass(frozen=True)
class _Parsed:
    """What facts_from_hf read from one config (and its checkpoint), ready to become ModelFacts."""

    shapes: Shapes
    loaded: _Loaded
    dtype: str
    quant: Any
    parts: Breakdown
    parameters: int
    active: int | None
    counts: Checkpoint | None
    param_source: ParameterSource
    architectures: list[str]
    max_context: int


def _build(repo_id: str, source: FactsSource, p: _Parsed) -> ModelFacts:
    s, loaded, dtype, quant, parts, counts = p.shapes, p.loaded, p.dtype, p.quant, p.parts, p.counts
    parameters, active, param_source, architectures, max_context = (
        p.parameters, p.active, p.param_source, p.architectures, p.max_context)
    linear = s.kinds.count("linear")
    sliding = s.kinds.count("sliding")
    encoder = encoder_facts(str(loaded.top.get("model_type") or ""), loaded.top, loaded.vision) if parts.tower else None
    try:
        return ModelFacts(
            id=repo_id, source=source, family=str(loaded.top.get("model_type") or s.text_type),
            parameters=parameters, active_parameters=active, layers=s.layers, hidden_size=s.hidden,
            attention_heads=s.heads, kv_heads=s.kv_heads, head_dim=s.head_dim,
            intermediate_size=s.dense_intermediate, vocab_size=s.vocab, max_context=max_context,
            tie_word_embeddings=s.tied, native_dtype=dtype, quantization=quant,
            checkpoint_bytes=counts.bytes if counts else None, checkpoint_commit=counts.commit if counts else None,
            parameter_source=param_source, architecture=architectures[0] if architectures else "",
            module_parameters=dict(parts.modules), vision_parameters=parts.tower, encoder=encoder,
            sparse_attention=sparse_attention(loaded.text, architectures),
            index_head_dim=indexer_head_dim(repo_id, loaded.text, architectures),
            experts=s.experts, experts_per_token=s.experts_per_token, shared_experts=s.shared_experts,
            moe_intermediate_size=s.moe_intermediate, kv_lora_rank=s.kv_lora_rank,
            qk_rope_head_dim=s.qk_rope_head_dim if s.kv_lora_rank else None,
            sliding_window=config_int(s.cfg, "sliding_window") if sliding else None, sliding_window_layers=sliding,
            linear_attention_layers=linear,
            linear_state_bytes_per_layer=linear_state_bytes(s, DTYPE_BYTES[dtype]) if linear else 0,
            supports_pipeline_parallel=any(a in PIPELINE_PARALLEL_ARCHITECTURES for a in architectures),
            notes=_notes(loaded, param_source, parts.tower, encoder),
        )
    except ValueError as exc:  # pydantic's ValidationError: inconsistent config values
        raise ModelUnresolved(f"model {repo_id}: config.json is inconsistent: {exc}") from exc


def estimate_parameters(config: Mapping[str, Any]) -> tuple[int, int | None]:
    """(total, active) parameter estimate from config.json alone (facts/estimate.py)."""
    facts = facts_from_hf("config.json", config)
    return facts.parameters, facts.active_parameters
