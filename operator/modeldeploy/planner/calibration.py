"""Measured vLLM latencies → performance-model cases; errors and fitting. Pure (text in).

The measured CSV (bench/data/vllm-latency-h100.csv, source in bench/data/README.md) has one
row per (model, GPU, precision, layout, workload) with mean TTFT and TPOT. Each row becomes a
`Case`: the same `LayoutLoad` and `Hardware` the planner would build for that deployment, the
KV room the memory model gives it, and vLLM's default chunk (maxNumBatchedTokens).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..facts import ModelFacts
from ..facts.gpus import GPUSpec, lookup_gpu
from ..perf.constants import PerfConstants
from ..perf.load import LayoutLoad
from ..perf.model import Hardware, Limits, Prediction, Workload, predict
from .memory import Precision, gpu_memory, weights_for
from .overhead import batch_defaults, overhead_for, profile_for_image
from .performance import hardware_for, layout_load

# Measured checkpoints with the architecture of a catalog entry (bench/data/README.md).
SAME_ARCHITECTURE = {"meta-llama/Llama-3.1-70B": "meta-llama/Llama-3.3-70B-Instruct",
                     "nvidia/Llama-3.1-8B-Instruct-FP8": "meta-llama/Llama-3.1-8B-Instruct"}
MEASURED_UTILIZATION = 0.9  # vLLM's default --gpu-memory-utilization
MXFP4_BYTES = 4.25 / 8  # 4-bit values + one 8-bit scale per 32 (OCP MX spec)


@dataclass(frozen=True)
class MeasuredRow:
    model: str
    gpu_product: str
    precision: str
    vllm_version: str
    input_tokens: int
    output_tokens: int
    concurrency: int
    tp: int
    pp: int
    expert_parallel: bool
    ttft_ms: float
    tpot_ms: float


def parse_rows(text: str) -> list[MeasuredRow]:
    """The CSV's rows (header as in bench/data/vllm-latency-h100.csv). Raises ValueError."""
    rows = []
    for n, raw in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            rows.append(MeasuredRow(
                model=raw["model"], gpu_product=raw["gpu_product"], precision=raw["precision"],
                vllm_version=raw["vllm_version"], input_tokens=int(raw["input_tokens"]),
                output_tokens=int(raw["output_tokens"]), concurrency=int(raw["concurrency"]),
                tp=int(raw["tp"]), pp=int(raw["pp"]), expert_parallel=raw["expert_parallel"].strip() == "True",
                ttft_ms=float(raw["ttft_ms"]), tpot_ms=float(raw["tpot_ms"]),
            ))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"line {n}: {exc}") from exc
    return rows


def measured_precision(facts: ModelFacts, precision: str) -> Precision:
    """The Precision a measured row ran with (bf16, fp8 W8A8, or gpt-oss's native MXFP4)."""
    act = 2.0
    if precision == "fp8":
        return Precision(1.0, act, 2, "fp8", "fp8", native=facts.native_quantization == "fp8")
    if precision == "mxfp4":
        return Precision(MXFP4_BYTES, act, 2, None, "mxfp4", native=True)
    if precision in ("bf16", "fp16"):
        return Precision(act, act, 2, None, "none", native=facts.native_quantization is None)
    raise ValueError(f"unknown precision {precision!r}")


@dataclass(frozen=True)
class Case:
    """One measured row with the model inputs the planner would use for it."""

    row: MeasuredRow
    load: LayoutLoad
    hardware: Hardware
    limits: Limits

    @property
    def workload(self) -> Workload:
        return Workload(self.row.input_tokens, self.row.output_tokens, concurrency=float(self.row.concurrency))

    def predict(self, constants: PerfConstants) -> Prediction:
        return predict(self.load, self.hardware, constants, self.workload, self.limits)


def build_case(row: MeasuredRow, facts: ModelFacts, gpu: GPUSpec) -> Case:
    """The row as the planner would see it: vLLM's batch defaults and memory accounting for
    the row's release ("unrecorded": the default image's), KV room at the default utilization."""
    precision = measured_precision(facts, row.precision)
    weights = weights_for(facts, precision)
    load = layout_load(facts, precision, weights, gpu, tp=row.tp, pp=row.pp, nodes=1,
                       expert_parallel=row.expert_parallel)
    profile = profile_for_image(f"vllm/vllm-openai:v{row.vllm_version}").profile
    length = row.input_tokens + row.output_tokens
    defaults = batch_defaults(profile, gpu.product, gpu.memory_gib, length)
    overhead = overhead_for(profile, facts, tp=row.tp, pp=row.pp, tokens=defaults.tokens,
                            rows=defaults.sequences, nvlink=gpu.gpu_link_topology != "none",
                            max_model_len=length)
    memory = gpu_memory(facts, precision, weights, tp=row.tp, pp=row.pp, gpu_gib=gpu.memory_gib,
                        utilization=MEASURED_UTILIZATION, max_model_len=length, kv_sequences=1,
                        overhead=overhead)
    limits = Limits(memory.kv_tokens, defaults.sequences, defaults.tokens)
    return Case(row, load, hardware_for(gpu, load), limits)


def build_cases(rows: Iterable[MeasuredRow], facts_of: Callable[[str], ModelFacts | None]) -> list[Case]:
    """Cases for the rows whose model and GPU are known; raises ValueError naming the first
    unknown one (a calibration set must be complete, not silently thinned)."""
    out = []
    for row in rows:
        facts = facts_of(SAME_ARCHITECTURE.get(row.model, row.model))
        gpu = lookup_gpu(row.gpu_product)
        if facts is None or gpu is None:
            missing = f"model {row.model}" if facts is None else f"GPU {row.gpu_product}"
            raise ValueError(f"no facts for {missing}")
        out.append(build_case(row, facts, gpu))
    return out


def ape(predicted: float, measured: float) -> float:
    """Absolute percentage error, %."""
    return abs(predicted - measured) / measured * 100


@dataclass(frozen=True)
class Errors:
    """Median and 90th-percentile APE (%) of TTFT and TPOT over some cases."""

    count: int
    ttft_median: float
    ttft_p90: float
    tpot_median: float
    tpot_p90: float


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def errors(cases: Sequence[Case], constants: PerfConstants) -> Errors:
    ttft, tpot = [], []
    for case in cases:
        p = case.predict(constants)
        ttft.append(ape(p.ttft_ms, case.row.ttft_ms))
        tpot.append(ape(p.tpot_ms, case.row.tpot_ms))
    return Errors(len(cases), statistics.median(ttft), _p90(ttft), statistics.median(tpot), _p90(tpot))


def by(cases: Sequence[Case], key: Callable[[Case], object]) -> Mapping[object, list[Case]]:
    groups: dict[object, list[Case]] = {}
    for case in cases:
        groups.setdefault(key(case), []).append(case)
    return groups
