"""Derive a catalog checkpoint's safetensors inventory (parameters by stored dtype, total bytes)
from its config.json through the transformers reference implementation. Developer tool: not used
by `make test` or the operator; needs torch (a separate venv, see tools/README.md).

The model class named by `architectures[0]` is built on the meta device (no memory, no weights);
every parameter it registers is one stored tensor (tied weights once). Then the differences
between the class and what the published checkpoint stores are applied explicitly:
- multi-token-prediction layers the class does not build (DeepSeek-V3 `num_nextn_predict_layers`,
  Qwen3-Next / Qwen3.5 `mtp_num_hidden_layers`),
- quantized layouts (FP8 block / per-channel weight + scale, AWQ packed int32 + fp16 scales,
  MXFP4 blocks + scales), with the modules each method leaves in 16 bits.

Usage: tools/checkpoint_inventory.py [--scale-dtype BF16] FILE.yaml [...]  → one JSON line per file.
Every derived inventory is a claim to cross-check against a published number (hub page
"Model size", model.safetensors.index.json total_size) before it goes into the catalog.
"""

from __future__ import annotations

import copy
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import transformers
import yaml

BYTES = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "I32": 4, "U8": 1, "I8": 1}
FLOAT = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}


def _text(cfg: dict[str, Any]) -> dict[str, Any]:
    return cfg.get("text_config") or cfg


def _stored_float(cfg: dict[str, Any], override: str | None) -> str:
    if override:
        return override
    text = _text(cfg)
    name = text.get("torch_dtype") or text.get("dtype") or cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    return FLOAT[str(name)]


def class_tensors(cfg: dict[str, Any]) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every parameter the reference class registers (tied ones once)."""
    plain = copy.deepcopy(cfg)
    plain.pop("quantization_config", None)
    _text(plain).pop("quantization_config", None)
    config = transformers.AutoConfig.for_model(**plain)
    text_tied = bool(getattr(config.get_text_config(), "tie_word_embeddings", False))
    config.tie_word_embeddings = text_tied
    cls = getattr(transformers, plain["architectures"][0])
    with torch.device("meta"):
        model = cls(config)
    # The language model's own config decides (Mistral3Config's top-level default says tied while its
    # text config, like the checkpoint, does not).
    if getattr(config.get_text_config(), "tie_word_embeddings", False):
        model.tie_weights()
    for name, param in model.named_parameters(remove_duplicate=True):
        yield name, tuple(param.shape)


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def model_tensors(cfg: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    """The class's parameters plus its persistent buffers (DeepSeek's e_score_correction_bias):
    a checkpoint saved from the class holds both."""
    plain = copy.deepcopy(cfg)
    plain.pop("quantization_config", None)
    _text(plain).pop("quantization_config", None)
    config = transformers.AutoConfig.for_model(**plain)
    cls = getattr(transformers, plain["architectures"][0])
    with torch.device("meta"):
        model = cls(config)
    names = dict(class_tensors(cfg))
    for name, buf in model.named_buffers():
        module, _, leaf = name.rpartition(".")
        owner = model.get_submodule(module)
        if leaf not in owner._non_persistent_buffers_set:
            names[name] = tuple(buf.shape)
    return list(names.items())


def _layer(tensors: list[tuple[str, tuple[int, ...]]], index: int) -> list[tuple[str, tuple[int, ...]]]:
    """One decoder layer's tensors, renamed to an anonymous prefix."""
    marker = f"layers.{index}."
    return [("mtp." + n.split(marker, 1)[1], s) for n, s in tensors if marker in n and "visual" not in n
            and "vision" not in n]


def mtp_tensors(cfg: dict[str, Any], tensors: list[tuple[str, tuple[int, ...]]]) -> list[tuple[str, tuple[int, ...]]]:
    """Multi-token-prediction modules the checkpoint stores beside the layers the class builds.

    DeepSeek-V3 (`num_nextn_predict_layers`; vLLM deepseek_mtp.py): a MoE decoder layer, enorm, hnorm,
    eh_proj [h, 2h], shared_head.norm, and its own embed_tokens and shared_head.head [vocab, h].
    Qwen3-Next / Qwen3.5 (`mtp_num_hidden_layers`; vLLM qwen3_next_mtp.py): a full-attention MoE (or
    dense) decoder layer, fc [h, 2h], pre_fc_norm_embedding, pre_fc_norm_hidden, norm; embeddings and
    lm_head shared with the model unless mtp_use_dedicated_embeddings.
    """
    text = _text(cfg)
    extra: list[tuple[str, tuple[int, ...]]] = []
    if not (text.get("num_nextn_predict_layers") or text.get("mtp_num_hidden_layers")):
        return extra
    h, vocab = text["hidden_size"], text["vocab_size"]
    if n := text.get("num_nextn_predict_layers"):
        for i in range(n):
            layer = _layer(tensors, text["num_hidden_layers"] - 1)
            extra += [(name.replace("mtp.", f"mtp.{i}.", 1), s) for name, s in layer]
            extra += [(f"mtp.{i}.enorm.weight", (h,)), (f"mtp.{i}.hnorm.weight", (h,)),
                      (f"mtp.{i}.eh_proj.weight", (h, 2 * h)), (f"mtp.{i}.shared_head.norm.weight", (h,)),
                      (f"mtp.{i}.embed_tokens.weight", (vocab, h)), (f"mtp.{i}.shared_head.head.weight", (vocab, h))]
    if n := text.get("mtp_num_hidden_layers"):
        types = text.get("layer_types") or []
        full = types.index("full_attention") if "full_attention" in types else text.get("full_attention_interval", 4) - 1
        for i in range(n):
            extra += [(name.replace("mtp.", f"mtp.{i}.", 1), s) for name, s in _layer(tensors, full)]
            extra += [(f"mtp.{i}.fc.weight", (h, 2 * h)), (f"mtp.{i}.pre_fc_norm_embedding.weight", (h,)),
                      (f"mtp.{i}.pre_fc_norm_hidden.weight", (h,)), (f"mtp.{i}.norm.weight", (h,))]
            if text.get("mtp_use_dedicated_embeddings"):
                extra += [(f"mtp.{i}.embed_tokens.weight", (vocab, h))]
    return extra


ROUTER = ("mlp.gate.weight", "mlp.router.weight", "router.weight", "shared_expert_gate.weight", "mlp.gate.e_score_correction_bias")
LINEAR_LEAVES = ("_proj.weight", "_proj", "proj_with_mqa.weight", ".fc1.weight", ".fc2.weight", ".qkv.weight",
                 ".proj.weight", "in_proj_qkvz.weight", "in_proj_ba.weight", "in_proj_qkv.weight",
                 "in_proj_z.weight", "in_proj_a.weight", "in_proj_b.weight", ".wq_b.weight", ".wk.weight")
# DeepSeek-V3.2's indexer.weights_proj is not quantized (vLLM deepseek_v2.py Indexer builds it with
# quant_config=None); the hub's DeepSeek-V3.2-Exp total is reproduced only that way.


def is_linear(name: str, shape: tuple[int, ...]) -> bool:
    """A decoder linear layer's weight (2-D, or 3-D fused experts [E, out, in]); not embeddings,
    lm_head, norms, convolutions or the MoE router, which every method here keeps in 16 bits."""
    if len(shape) < 2 or "embed" in name or name.startswith("lm_head") or name.endswith(ROUTER):
        return False
    if "conv" in name or "norm" in name or "head.weight" in name or "eh_proj" in name or "weights_proj" in name:
        return False
    return name.endswith(LINEAR_LEAVES)


def _matrices(name: str, shape: tuple[int, ...], hidden: int) -> list[tuple[int, int]]:
    """(out, in) of each stored matrix. transformers fuses experts as [E, 2I, H] gate_up / [E, H, I]
    down, except Llama 4 (Llama4TextExperts: [E, H, 2I] / [E, I, H], input dimension first);
    checkpoints store per-expert gate, up, down. `hidden` (H) tells the two layouts apart."""
    if len(shape) == 2:
        return [(shape[0], shape[1])]
    experts, a, b = shape
    if name.endswith("gate_up_proj"):
        return [(b // 2, a)] * (2 * experts) if a == hidden else [(a // 2, b)] * (2 * experts)
    return [(a, b)] * experts if a == hidden else [(b, a)] * experts


# transformers 5 nests multimodal language and vision models under `model.`; checkpoints saved by
# transformers 4.5x (and their `ignore` lists, e.g. RedHatAI's Llama 4 FP8) name them from the top:
# language_model.model.layers.N…, language_model.lm_head, vision_model…, multi_modal_projector….
LEGACY_PREFIXES = (("model.language_model.", "language_model.model."), ("model.vision_model.", "vision_model."),
                   ("model.multi_modal_projector.", "multi_modal_projector."))


def legacy_name(name: str, multimodal: bool) -> str:
    """The tensor's name as a transformers 4.5x checkpoint of a multimodal model stores it."""
    for new, old in LEGACY_PREFIXES:
        if name.startswith(new):
            return old + name[len(new):]
    return "language_model." + name if multimodal and name.startswith("lm_head") else name


def skipped(name: str, patterns: list[str], multimodal: bool = False) -> bool:
    """Whether a module list (`modules_to_not_convert`, `ignore`) names this tensor (under its
    transformers 5 or its legacy checkpoint name): a plain module path matches as a substring;
    `*` matches one path segment (gpt-oss "model.layers.*.self_attn"); "re:" prefixes a regular
    expression (compressed-tensors)."""
    names = {name, legacy_name(name, multimodal)}
    return any(_skipped(n, patterns) for n in names)


def _skipped(name: str, patterns: list[str]) -> bool:
    for p in patterns:
        if not p:
            continue
        if p.startswith("re:"):
            if re.match(p[3:], name.rsplit(".", 1)[0]):
                return True
        elif "*" in p:
            if re.search(re.escape(p).replace(r"\*", r"[^.]+"), name):
                return True
        elif p in name:
            return True
    return False


# Tensors a checkpoint keeps in float32 whatever its dtype, by family (evidence in each entry's source):
# DeepSeek-V3's router bias (hub page lists F32; total_size reproduced); Gated DeltaNet's A_log and
# gated norm (Qwen3.5-122B-A10B total_size reproduced only with these two in F32).
F32_TENSORS = ("e_score_correction_bias", "linear_attn.A_log", "linear_attn.norm.weight")


def inventory(cfg: dict[str, Any], stored: str | None = None, scale_dtype: str = "F32",
              f32_tensors: tuple[str, ...] = F32_TENSORS) -> tuple[Counter[str], list[str]]:
    """(count by safetensors dtype, notes) of the checkpoint `cfg` describes; `scale_dtype`: the
    scales' stored dtype: F32 by default (DeepSeek's block scales, Meta's FP8 builds), BF16 for
    Qwen's FP8 builds and for llm-compressor checkpoints of a BF16 model (compressed-tensors 0.9.3
    quantization/lifecycle/initialize.py `_initialize_scale_zero_point` creates `weight_scale` in
    `module.weight.dtype`, and utils/offload.py `update_offload_parameter` casts every observer
    result to it; llm-compressor 0.5.0 pins compressed-tensors==0.9.3; still so in 0.12);
    `f32_tensors`: the name suffixes its family keeps in float32 (none for Qwen3-Next, whose A_log
    is stored BF16)."""
    float_dt = _stored_float(cfg, stored)
    tensors = model_tensors(cfg)
    tensors += mtp_tensors(cfg, tensors)
    qc = cfg.get("quantization_config") or _text(cfg).get("quantization_config") or {}
    method = qc.get("quant_method")
    counts: Counter[str] = Counter()
    notes: list[str] = []
    keep = list(qc.get("modules_to_not_convert") or qc.get("ignore") or [])
    multimodal = "text_config" in cfg
    hidden = _text(cfg)["hidden_size"]
    shapes = dict(tensors)

    def quantized(name: str, shape: tuple[int, ...]) -> bool:
        return bool(method) and is_linear(name, shape) and not skipped(name, keep, multimodal) \
            and "visual" not in name and "vision" not in name

    for name, shape in tensors:
        n = numel(shape)
        if f32_tensors and name.endswith(f32_tensors):
            counts["F32"] += n
        elif quantized(name, shape):
            _quantized(counts, name, _matrices(name, shape, hidden), qc, scale_dtype)
        elif method == "awq" and name.endswith(".bias") and quantized(weight := name[:-4] + "weight",
                                                                      shapes.get(weight, ())):
            # AutoAWQ's WQLinear_GEMM.from_linear stores the bias as `linear.bias.clone().half()`
            # (awq/modules/linear/gemm.py, v0.2.7 to v0.2.9): F16 whatever the model's dtype.
            counts["F16"] += n
        else:
            counts[float_dt] += n
    return counts, notes


def compressed_fp8_scales(qc: dict[str, Any], out: int, inp: int) -> int:
    """Scale elements of one FP8 compressed-tensors matrix, by the weights' `strategy`
    (compressed-tensors QuantizationStrategy: tensor = one, channel = one per output row, block =
    one per `block_structure` tile), plus one input scale when activations are static."""
    groups = list((qc.get("config_groups") or {}).values())
    if len(groups) != 1 or (groups[0].get("weights") or {}).get("type") != "float":
        raise SystemExit(f"compressed-tensors: no layout for config_groups {groups}")
    weights, acts = groups[0]["weights"], groups[0].get("input_activations") or {}
    strategy = weights.get("strategy")
    if strategy == "channel":
        scales = out
    elif strategy == "tensor":
        scales = 1
    elif strategy == "block":
        bn, bk = weights["block_structure"]
        scales = math.ceil(out / bn) * math.ceil(inp / bk)
    else:
        raise SystemExit(f"compressed-tensors: no layout for weight strategy {strategy}")
    return scales + (1 if acts and not acts.get("dynamic") else 0)


def _quantized(counts: Counter[str], name: str, matrices: list[tuple[int, int]], qc: dict[str, Any],
               scale_dtype: str) -> None:
    method = qc["quant_method"]
    for out, inp in matrices:
        if method == "fp8" and qc.get("weight_block_size"):
            bn, bk = qc["weight_block_size"]
            counts["F8_E4M3"] += out * inp
            counts[scale_dtype] += math.ceil(out / bn) * math.ceil(inp / bk)
        elif method == "compressed-tensors":
            counts["F8_E4M3"] += out * inp
            counts[scale_dtype] += compressed_fp8_scales(qc, out, inp)
        elif method in ("fp8", "fbgemm_fp8"):  # per-output-channel scale
            counts["F8_E4M3"] += out * inp
            counts[scale_dtype] += out
        elif method == "awq":
            g, bits = qc["group_size"], qc["bits"]
            pack = 32 // bits
            counts["I32"] += inp * out // pack + (inp // g) * out // pack  # qweight + qzeros
            # AutoAWQ's WQLinear_GEMM (awq/modules/linear/gemm.py) keeps its scales in float16
            # whatever the model's dtype.
            counts["F16"] += (inp // g) * out
        elif method == "mxfp4":
            counts["U8"] += out * inp // 2 + out * inp // 32  # blocks (2 FP4 a byte) + E8M0 scales
        else:
            raise SystemExit(f"{name}: no layout for {method}")


def total_bytes(counts: Counter[str]) -> int:
    return sum(BYTES[d] * n for d, n in counts.items())


def checkpoint_block(counts: Counter[str], source: str, commit: str | None, derived_only: bool = False) -> str:
    """The catalog's `checkpoint:` mapping as YAML text (docs/sizing.md, "Catalog data files");
    `derived_only`: no published number confirms the counts (the block says `derivedOnly: true`)."""
    params = ", ".join(f"{d}: {n}" for d, n in sorted(counts.items()) if n)
    lines = ["checkpoint:", f"  parameters: {{{params}}}", f"  totalBytes: {total_bytes(counts)}",
             *(["  derivedOnly: true"] if derived_only else []), "  source: >-"]
    words, line = source.split(), "   "
    for word in words:
        if len(line) + len(word) > 100 and line.strip():
            lines.append(line)
            line = "   "
        line += " " + word
    lines.append(line)
    if commit:
        lines.append(f"  commit: {commit}")
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str) -> str:
    """The data file with its `checkpoint:` mapping replaced (or appended)."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("checkpoint:"):
            skipping = True
            continue
        if skipping and (line.startswith((" ", "\t")) or not line.strip()):
            continue
        skipping = False
        out.append(line)
    body = "".join(out)
    return body + ("" if body.endswith("\n") else "\n") + block


def main(argv: list[str]) -> None:
    """Usage: [--scale-dtype BF16] FILE.yaml ... (the scales' stored dtype; default F32)."""
    scale_dtype = "F32"
    if argv[:1] == ["--scale-dtype"]:
        scale_dtype, argv = argv[1], argv[2:]
    for path in argv:
        entry = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        counts, _ = inventory(entry["config"], None, scale_dtype)
        print(json.dumps({"id": entry["id"], "parameters": dict(counts), "total": sum(counts.values()),
                          "totalBytes": total_bytes(counts)}))


if __name__ == "__main__":
    main(sys.argv[1:])
