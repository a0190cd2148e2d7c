"""vLLM's layout rules (SIZING-FACTS.md, "vLLM rules that constrain a layout"). Pure.

Each check returns None when the layout is allowed, or a sentence saying why not, naming the
vLLM rule. Rules that depend on the GPU generation live in planner/gpu_rules.py.
"""

from __future__ import annotations

import math

from ..facts import ModelFacts
from .memory import Precision

# vllm/model_executor/layers/quantization/utils/marlin_utils.py
MARLIN_MIN_THREAD_N = 64  # GPTQ_MARLIN_MIN_THREAD_N: output columns per rank
MARLIN_MIN_THREAD_K = 128  # GPTQ_MARLIN_MIN_THREAD_K: input rows per rank


def head_rule(facts: ModelFacts, tp: int) -> str | None:
    if facts.attention_heads % tp:
        return f"{facts.attention_heads} attention heads are not divisible by TP {tp}"
    return None


def kv_head_rule(facts: ModelFacts, tp: int) -> str | None:
    if facts.is_mla:
        return None  # one latent per layer, replicated on every rank
    kv = facts.kv_heads
    if tp >= kv and tp % kv:
        return f"TP {tp} is not a multiple of the {kv} KV heads (vLLM replicates KV heads only evenly)"
    if tp < kv and kv % tp:
        return f"{kv} KV heads are not divisible by TP {tp}"
    return None


def _mlp_width(facts: ModelFacts) -> tuple[str, int] | None:
    if facts.is_moe and facts.moe_intermediate_size:
        return "moe_intermediate_size", facts.moe_intermediate_size
    if facts.intermediate_size:
        return "intermediate_size", facts.intermediate_size
    return None


def fp8_block_rule(facts: ModelFacts, precision: Precision, tp: int) -> str | None:
    """Block-quantized FP8 checkpoints need each rank's MLP slice to be whole blocks.

    vLLM: validate_fp8_block_shape (vllm/model_executor/layers/quantization/utils/fp8_utils.py)
    and Fp8MoEMethod.create_weights (fp8.py): intermediate_size_per_partition % block_n.
    Qwen3-30B-A3B-FP8 at TP 4: 768 / 4 = 192 → refused (vllm-project/vllm#25292).
    """
    quant = precision.quantization
    if quant is None or quant.weight_block_size is None or not quant.float_weights:
        return None
    block_n = quant.weight_block_size[0]
    found = _mlp_width(facts)
    if found is None:
        return None
    what, width = found
    if width % tp or (width // tp) % block_n:
        return (
            f"FP8 block quantization: {what} {width} / TP {tp} = {width / tp:g} "
            f"is not a multiple of the {block_n}-wide weight block (vLLM fp8_utils.validate_fp8_block_shape)"
        )
    return None


def weight_partition_rule(facts: ModelFacts, precision: Precision, tp: int) -> str | None:
    """AWQ/GPTQ/compressed-tensors integer kernels need whole quantization groups per rank.

    The MLP's down projection is split by its input (intermediate_size / TP) and gate/up by their
    output. vLLM's Marlin kernels (marlin_utils.verify_marlin_supports_shape) need the rank's
    input slice to be a multiple of 128 and of the group size and its output slice a multiple
    of 64; the kernels it falls back to (awq.py, gptq.py create_weights: "The input size is not
    aligned with the quantized weight shape") need whole groups too. Qwen2.5-VL-72B-AWQ at TP 2:
    29568 / 2 = 14784 is not a multiple of 128 → refused at load (vllm-project/vllm#13640).
    """
    quant = precision.quantization
    if quant is None or not quant.marlin_family:
        return None
    found = _mlp_width(facts)
    if found is None:
        return None
    what, width = found
    need = math.lcm(quant.group_size or MARLIN_MIN_THREAD_K, MARLIN_MIN_THREAD_K)
    if width % tp or (width // tp) % need:
        return (
            f"{quant.method} kernels (Marlin, vLLM marlin_utils.verify_marlin_supports_shape): {what} {width} / "
            f"TP {tp} = {width / tp:g} per rank is not a multiple of {need} (group size {quant.group_size or 'per channel'})"
        )
    # The output-slice condition (a multiple of MARLIN_MIN_THREAD_N = 64) holds whenever the input
    # slice above is a multiple of 128: gate/up give 2 × (a multiple of 128) columns per rank.
    return None


def pipeline_rule(facts: ModelFacts, pp: int) -> str | None:
    """PP > 1 only for model classes implementing SupportsPP (facts/vllm_model.py)."""
    if pp > 1 and not facts.supports_pipeline_parallel:
        arch = f" ({facts.architecture})" if facts.architecture else ""
        return f"{facts.id}{arch} does not support pipeline parallelism in vLLM"
    if pp > facts.layers:
        return f"PP {pp} exceeds the model's {facts.layers} layers"
    return None


def model_rules(facts: ModelFacts, precision: Precision, tp: int, pp: int) -> str | None:
    """The first model-level rule (independent of the pool) a layout breaks."""
    for reason in (
        head_rule(facts, tp),
        kv_head_rule(facts, tp),
        fp8_block_rule(facts, precision, tp),
        weight_partition_rule(facts, precision, tp),
        pipeline_rule(facts, pp),
    ):
        if reason:
            return reason
    return None
