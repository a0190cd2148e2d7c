"""Which vLLM kernel runs an integer weight-only (AWQ / GPTQ / compressed-tensors WNA16) MLP slice. Pure.

Tensor parallelism splits the MLP's down projection by its input: each rank holds
`intermediate_size / TP` input rows and `(intermediate_size / TP) / group_size` groups of scales.
vLLM does not refuse every slice Marlin cannot run; it walks a chain of kernels and refuses only
when none accepts. The verdicts below follow that chain (vLLM source, current main):

- **Marlin** (`kernels/mixed_precision/marlin.py`, `utils/marlin_utils.verify_marlin_supports_shape`):
  the rank's input slice must be a multiple of 128 (GPTQ_MARLIN_MIN_THREAD_K) and of the group
  size; output slice a multiple of 64. The clean case: no note.
- **Group-aligned, Marlin tile-misaligned** (slice a multiple of the group size, not of 128): AWQ
  falls back per layer to its unoptimised kernel (`awq_marlin.py` get_quant_method, vLLM PR
  #13119); GPTQ / WNA16 fall to the Exllama kernel, which takes float16 activations only
  (`kernels/mixed_precision/exllama.py`; the chain is listed in vLLM PR #43731). vLLM starts,
  decode is slower: a note.
- **Split groups** (slice not a multiple of the group size): a quantization group straddles two
  ranks. AWQ's fallback refuses ("The input size is not aligned with the quantized weight
  shape", `awq.py` create_weights) and so does Marlin. For symmetric GPTQ / WNA16 checkpoints in
  float16 without act-order, Exllama still accepts: its `can_implement` checks only the *full*
  input against the group size. vLLM then loads every rank's scales as whole groups from
  `rank × groups-per-rank` (`parameter.py` load_row_parallel_weight), which do not line up with
  the rank's weight rows. Qwen re-published its 72B quantized checkpoints padded from 29568 to
  29696 so that TP 2/4/8 split whole groups (QwenLM/Qwen3#578, QwenLM/Qwen3-VL#230). The planner never chooses such a layout; an explicit
  `spec.placement.tensorParallelSize` gets it with a warning, since vLLM does start.
- Otherwise (asymmetric or act-order GPTQ, bfloat16 activations, AWQ): refused, naming the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from ..facts import ModelFacts
from ..facts.quantization import AWQ, WeightQuantization

# vllm/model_executor/layers/quantization/utils/marlin_utils.py
MARLIN_MIN_THREAD_K = 128  # GPTQ_MARLIN_MIN_THREAD_K: input rows per rank
MARLIN_MIN_THREAD_N = 64  # GPTQ_MARLIN_MIN_THREAD_N: output columns per rank (holds when the input does)


class SliceKernel(Enum):
    """How vLLM runs one rank's slice of a quantized MLP."""

    MARLIN = "marlin"  # the fast path
    SLOWER_KERNEL = "slower kernel"  # group-aligned, Marlin tile-misaligned: a fallback kernel
    SPLIT_GROUPS = "split groups"  # vLLM starts (Exllama) but the scales do not line up
    REFUSED = "refused"  # vLLM refuses at load


@dataclass(frozen=True)
class SliceVerdict:
    """The kernel verdict for one TP degree and the sentence that explains it ("" for Marlin)."""

    kernel: SliceKernel
    reason: str = ""


def mlp_width(facts: ModelFacts) -> tuple[str, int] | None:
    """(config key, width) of the MLP that TP splits: the expert width for MoE models."""
    if facts.is_moe and facts.moe_intermediate_size:
        return "moe_intermediate_size", facts.moe_intermediate_size
    if facts.intermediate_size:
        return "intermediate_size", facts.intermediate_size
    return None


def _exllama_takes(quant: WeightQuantization, dtype: str, width: int) -> bool:
    """ExllamaLinearKernel.can_implement: float16 activations, symmetric 4/8-bit types, no
    act-order on a split input, and the full input a multiple of the group size."""
    return (quant.method != AWQ and quant.symmetric and not quant.desc_act and quant.bits in (4, 8)
            and dtype == "float16" and width % (quant.group_size or width) == 0)


def _fallback_kernel(facts: ModelFacts, quant: WeightQuantization, dtype: str, width: int) -> str | None:
    """The kernel vLLM falls back to for a group-aligned slice Marlin cannot tile, if any."""
    if facts.is_moe:  # gptq_marlin.py / awq_marlin.py: "Falling back to Moe WNA16 kernels"
        return "MoE WNA16 kernel"
    if quant.method == AWQ:
        return "unoptimised AWQ kernel"
    return "Exllama kernel" if _exllama_takes(quant, dtype, width) else None


def mlp_slice_kernel(facts: ModelFacts, quant: WeightQuantization | None, dtype: str, tp: int) -> SliceVerdict:
    """The verdict for the MLP's per-rank input slice at TP `tp` (see the module docstring).

    dtype: the activations' dtype (vLLM's resolved --dtype: "float16", "bfloat16").
    `quant` None or not an integer weight-only format: always MARLIN (nothing to check).
    """
    found = mlp_width(facts)
    if quant is None or not quant.marlin_family or found is None:
        return SliceVerdict(SliceKernel.MARLIN)
    what, width = found
    group = quant.group_size
    if width % tp:
        return SliceVerdict(SliceKernel.REFUSED, f"{what} {width} does not divide by TP {tp}")
    per_rank = width // tp
    shape = f"{what} {width} / TP {tp} = {per_rank} rows per rank"
    if per_rank % math.lcm(group or MARLIN_MIN_THREAD_K, MARLIN_MIN_THREAD_K) == 0:
        return SliceVerdict(SliceKernel.MARLIN)
    if group is None or per_rank % group == 0:
        fallback = _fallback_kernel(facts, quant, dtype, width)
        if fallback:
            return SliceVerdict(SliceKernel.SLOWER_KERNEL, (
                f"{quant.label}: {shape}, not a multiple of Marlin's {MARLIN_MIN_THREAD_K}; vLLM runs that "
                f"layer with the {fallback} (marlin_utils.verify_marlin_supports_shape): slower decode"))
        return SliceVerdict(SliceKernel.REFUSED, (
            f"{quant.label} kernels (Marlin, vLLM marlin_utils.verify_marlin_supports_shape): {shape}, not a "
            f"multiple of {MARLIN_MIN_THREAD_K}, and vLLM's fallback (Exllama: float16, symmetric, no act-order; "
            f"here: {dtype}) cannot take it"))
    split = f"{quant.label}: {shape}, which splits a {group}-wide quantization group between ranks"
    if not facts.is_moe and _exllama_takes(quant, dtype, width):
        return SliceVerdict(SliceKernel.SPLIT_GROUPS, (
            f"{split}: vLLM starts it with the Exllama kernel, but each rank loads whole groups of scales "
            f"that do not line up with its rows (published checkpoints pad the width, e.g. Qwen 72B "
            f"29568 → 29696, QwenLM/Qwen3#578)"))
    fallback = "moe_wna16.py" if facts.is_moe else "awq.py" if quant.method == AWQ else "gptq.py, exllama.py"
    return SliceVerdict(SliceKernel.REFUSED, (
        f"{split}; vLLM refuses it at load (Marlin: marlin_utils.verify_marlin_supports_shape; {fallback})"))
