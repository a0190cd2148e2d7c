"""Sizes derived from the plan: checkpoint, startup budget, cache (formulas in docs/decisions/rendering.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..planner import Plan
from .options import RenderOptions

# The startupProbe's budget: a backstop, not a judgement. The operator judges a start by its
# progress (controller.starts: no vLLM startup line or downloaded byte for
# rollout.stallSeconds, or a vLLM error) and deletes a stalled pod itself; a fixed budget at
# the kubelet would kill slow-but-healthy starts (aibrix#772; KServe's 10 min, SkyServe's
# 20 min). One week is longer than any start that moves (405 GB of FP8 weights at 50 MB/s:
# 2 h 15 min) and still frees a hung pod's GPUs should the operator be gone for that long.
STARTUP_PROBE_BACKSTOP_SECONDS = 7 * 86_400


@dataclass(frozen=True)
class Sizing:
    """Derived sizes. Formulas (documented in docs/decisions/rendering.md):

    checkpoint GiB   = the plan's checkpointGiB: the safetensors bytes on disk (planner/memory.py
                       stored_bytes), MTP layers vLLM skips and the 16-bit weights it quantizes to
                       fp8 on load included; a plan without it (hand-built): weights per GPU x
                       GPUs per replica, x 2 with fp8 quantization on load
    startup budget s = startup_base_seconds + startup_seconds_per_gib x checkpoint GiB
                       (startup_unknown_seconds when the plan has no memory breakdown): the
                       expected start, for deadlines and scale-from-zero holds; the
                       startupProbe uses STARTUP_PROBE_BACKSTOP_SECONDS instead
    cache GiB        = ceil(1.1 x checkpoint GiB) + 10 (200 when unknown): the download, its
                       config and tokenizer files (render/cache.py: what vLLM reads) and headroom
    """

    checkpoint_gib: float | None
    startup_seconds: int
    cache_gib: int


def sizing(plan: Plan, options: RenderOptions) -> Sizing:
    mem = plan.memory_per_gpu
    if mem is None or not plan.gpus_per_replica:
        return Sizing(None, options.startup_unknown_seconds, 200)
    on_load = 2 if plan.online_quantization and plan.quantization == "fp8" else 1
    ckpt = plan.checkpoint_gib or mem.weights_gib * plan.gpus_per_replica * on_load
    startup = options.startup_base_seconds + math.ceil(options.startup_seconds_per_gib * ckpt)
    return Sizing(ckpt, startup, math.ceil(1.1 * ckpt) + 10)
