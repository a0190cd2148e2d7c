"""What one GPU of a layout moves and computes per token: the inputs of the performance model.

The planner derives a `LayoutLoad` from the model facts, precision and layout
(`modeldeploy.planner.performance.layout_load`); the bench builds the same from the measured
rows. Everything is per GPU of the most loaded pipeline stage, in bytes and FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ComputeFormat(StrEnum):
    """Tensor-core format the GEMMs run in (selects the GPU's TFLOP/s)."""

    BF16 = "bf16"  # also FP16, and weight-only quantization (AWQ/GPTQ/MXFP4 dequantize to 16 bit)
    FP8 = "fp8"  # W8A8 FP8 (compute capability ≥ 8.9)
    FP4 = "fp4"  # W4A4 NVFP4 (Blackwell)


@dataclass(frozen=True)
class LayoutLoad:
    """Per-GPU work of one layout (TP × PP, optional expert parallelism).

    - `dense_bytes`: weights every decode step reads whatever the batch (attention, dense MLP,
      lm_head, MoE router and shared experts), bytes per GPU.
    - `expert_bytes`: routed-expert weights held by the GPU, bytes; a step reads the share of
      experts its batch touches (`experts`, `experts_per_token`).
    - `flops_per_token`: 2 × active parameters per GPU (matmul FLOPs of one token), of which
      `expert_flops_per_token` run in the routed experts' grouped GEMMs.
    - `attention_flops_per_token2`: causal attention FLOPs per GPU per (token × context token),
      so prefill attention costs this × L² / 2.
    - `kv_bytes_per_token`: KV read per context token per GPU for full-attention layers;
      `window_kv_bytes_per_token` for sliding-window layers, capped at `window_tokens`;
      `state_bytes_per_sequence` for linear-attention layers (a fixed state per sequence).
    - `allreduce_bytes_per_token`: activation bytes all-reduced per token per layer (TP > 1).
    """

    tp: int
    pp: int
    nodes: int
    expert_parallel: bool
    layers: int  # layers on the most loaded stage
    dense_bytes: float
    expert_bytes: float
    experts: int
    experts_per_token: int
    flops_per_token: float
    expert_flops_per_token: float  # the routed experts' share of flops_per_token
    attention_flops_per_token2: float
    kv_bytes_per_token: float
    window_kv_bytes_per_token: float
    window_tokens: int
    state_bytes_per_sequence: float  # recurrent state (Mamba / Gated DeltaNet) read per step
    allreduce_bytes_per_token: float
    compute: ComputeFormat

    def kv_read_bytes(self, context: float) -> float:
        """KV bytes one decode step reads for one sequence of `context` tokens."""
        window = self.window_kv_bytes_per_token * min(context, self.window_tokens)
        return self.kv_bytes_per_token * context + window + self.state_bytes_per_sequence

    def touched_expert_fraction(self, batch: float) -> float:
        """Share of routed experts a step of `batch` tokens reads (uniform top-k routing).

        1 − (1 − k/E)^B: the chance an expert is picked by at least one of B tokens; 1 for a
        dense model (no routed experts).
        """
        if self.experts <= 1 or self.expert_bytes <= 0:
            return 1.0
        return float(1.0 - (1.0 - self.experts_per_token / self.experts) ** max(batch, 1.0))
