"""vLLM's layout rules (SIZING-FACTS.md, "vLLM rules that constrain a layout"). Pure.

Each check returns None when the layout is allowed, or a sentence saying why not, naming the
vLLM rule. Rules that depend on the GPU generation live in planner/gpu_rules.py.
"""

from __future__ import annotations

from ..facts import ModelFacts
from .memory import Precision
from .wna16 import SliceKernel, mlp_slice_kernel, mlp_width


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
    found = mlp_width(facts)
    if found is None:
        return None
    what, width = found
    if width % tp or (width // tp) % block_n:
        return (
            f"FP8 block quantization: {what} {width} / TP {tp} = {width / tp:g} "
            f"is not a multiple of the {block_n}-wide weight block (vLLM fp8_utils.validate_fp8_block_shape)"
        )
    return None


def weight_partition_rule(facts: ModelFacts, precision: Precision, tp: int, *, pinned: bool = False) -> str | None:
    """AWQ/GPTQ/compressed-tensors integer kernels and the MLP's per-rank slice (planner/wna16.py).

    Refused: what vLLM refuses at load (Qwen2.5-VL-72B-AWQ at TP 2: 29568 / 2 = 14784 splits a
    128-wide group, vllm-project/vllm#13640). A layout vLLM starts only by splitting quantization
    groups (Exllama fallback) is refused too unless the user pinned that TP (`pinned`): the plan
    then carries the warning (slice_note).
    """
    verdict = mlp_slice_kernel(facts, precision.quantization, precision.dtype, tp)
    if verdict.kernel is SliceKernel.REFUSED or (verdict.kernel is SliceKernel.SPLIT_GROUPS and not pinned):
        return verdict.reason
    return None


def slice_note(facts: ModelFacts, precision: Precision, tp: int) -> str | None:
    """What the plan should say about the chosen TP's quantized MLP kernel, or None (Marlin)."""
    verdict = mlp_slice_kernel(facts, precision.quantization, precision.dtype, tp)
    if verdict.kernel is SliceKernel.SPLIT_GROUPS:
        return f"warning: {verdict.reason}; kept because spec.placement.tensorParallelSize asks for TP {tp}"
    return verdict.reason if verdict.kernel is SliceKernel.SLOWER_KERNEL else None


def pipeline_rule(facts: ModelFacts, pp: int) -> str | None:
    """PP > 1 only for model classes implementing SupportsPP (facts/vllm_model.py)."""
    if pp > 1 and not facts.supports_pipeline_parallel:
        arch = f" ({facts.architecture})" if facts.architecture else ""
        return f"{facts.id}{arch} does not support pipeline parallelism in vLLM"
    if pp > facts.layers:
        return f"PP {pp} exceeds the model's {facts.layers} layers"
    return None


def model_rules(facts: ModelFacts, precision: Precision, tp: int, pp: int, *, tp_pinned: bool = False) -> str | None:
    """The first model-level rule (independent of the pool) a layout breaks. `tp_pinned`: the
    spec pins this TP (weight_partition_rule then lets a layout vLLM starts through)."""
    for reason in (
        head_rule(facts, tp),
        kv_head_rule(facts, tp),
        fp8_block_rule(facts, precision, tp),
        weight_partition_rule(facts, precision, tp, pinned=tp_pinned),
        pipeline_rule(facts, pp),
    ):
        if reason:
            return reason
    return None
