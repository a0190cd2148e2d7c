"""The few constants of the performance model, fitted to measured vLLM latencies.

Fitted by `bench/perf_model_bench.py --fit` (Nelder–Mead on the log error of TTFT and TPOT)
against `bench/data/vllm-latency-h100.csv` (ai-dynamo/aiconfigurator silicon_sample.csv,
vLLM aggregated serving on H100 SXM). They describe software and kernels, not a GPU: the
GPU enters only through its specifications (bandwidth, TFLOP/s, links), so the same constants
predict other GPUs. Results and leave-one-model-out errors: docs/PERFORMANCE.md.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class PerfConstants:
    """Efficiencies (0–1) and per-step overheads (µs). Names say where each one applies.

    - `bandwidth_efficiency`: share of datasheet memory bandwidth a decode step achieves.
    - `compute_efficiency`: share of dense tensor TFLOP/s a prefill (and a compute-bound decode)
      achieves (model FLOPs utilisation).
    - `step_us`: fixed cost of one engine step (scheduler, sampling, launch), µs.
    - `layer_us`: per layer per step (kernel launches, norms, rotary), µs.
    - `tp_layer_us`: per layer per step per doubling of TP (all-reduce latency, sync), µs.
    - `sequence_layer_us`: per sequence per layer per step (attention metadata, small kernels), µs.
    - `prefill_layer_us`: CPU dispatch per layer of a prefill forward pass, µs: a prefill of
      more tokens than vLLM captures in CUDA graphs runs piecewise-eager, so every layer's
      kernels are launched from Python (ai-dynamo/aiconfigurator found ~0.8 ms per layer on
      the same silicon corpus: src/aiconfigurator/sdk/backends/vllm_backend.py,
      `_prefill_dispatch_overhead_ms`).
    - `arrival_burst`: share of the other running requests whose prefills a closed-loop
      client's prompt finds ahead of it (requests of equal length arrive in partial waves).
    """

    bandwidth_efficiency: float
    compute_efficiency: float
    step_us: float
    layer_us: float
    tp_layer_us: float
    sequence_layer_us: float
    prefill_layer_us: float
    arrival_burst: float

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def as_vector(self) -> list[float]:
        return [float(getattr(self, f.name)) for f in fields(self)]

    @classmethod
    def from_vector(cls, values: list[float]) -> PerfConstants:
        return cls(*values)


# Fitted 2026-11-30 on all 207 rows of bench/data/vllm-latency-h100.csv with
# `bench/perf_model_bench.py --fit` (errors and leave-one-model-out: docs/PERFORMANCE.md).
FITTED = PerfConstants(
    bandwidth_efficiency=0.9329,
    compute_efficiency=0.6111,
    step_us=1285.5041,
    layer_us=48.4874,
    tp_layer_us=2.3858,
    sequence_layer_us=0.4275,
    prefill_layer_us=568.0629,
    arrival_burst=0.147,
)
