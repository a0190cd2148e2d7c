"""The seed guides' hardware and speed claims, checked against the planner: docs/claims.md.

Run `python -m modeldeploy.planner.claims > docs/claims.md`; tests/unit/test_claims.py fails
when the file is stale or a row lacks a verdict. Each claim is planned as stated (model, GPU,
count) at BF16, FP8 and 4-bit AWQ, and the row names the precision and layout that make it
true, or why none does. Speed and cost claims use the performance model and the built-in API
prices. Pure: catalog data in, Markdown out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..api import GPUPool, ModelDeployment
from ..errors import InvalidSpec
from ..facts import ModelFacts
from ..facts.catalog import load_catalog
from ..facts.quantization import quantization_from_spec
from .apicost import builtin_prices
from .plan import Plan
from .planner import plan_deployment

# Single-GPU pools the claims name. Memory as the device reports it (SIZING-FACTS.md); the
# A100 at $3.50/h is SIZING-FACTS.md's "common planning figure". The RTX 3060 12GB is not in
# the GPU catalog (memory-only claim): 12 GB GDDR6 = 12,288 MiB.
A100_80_GIB = 79.2
A100_80 = {"product": "NVIDIA-A100-SXM4-80GB", "memoryGiB": A100_80_GIB, "nvlink": True}
RTX_4090 = {"product": "NVIDIA-GeForce-RTX-4090", "memoryGiB": 24.0}
RTX_3060 = {"product": "NVIDIA-GeForce-RTX-3060", "memoryGiB": 12.0}
PRECISIONS = ("as published", "fp8", "awq")
FEW_MILLION = 10e6  # "a few million tokens a day": read generously as up to ten million


def _pool(name: str, gpu: dict[str, Any], gpus: int, price: float | None = None, nodes: int = 1) -> GPUPool:
    spec: dict[str, Any] = {"gpu": gpu, "gpusPerNode": gpus, "maxNodes": nodes}
    if price is not None:
        spec["pricePerGPUHour"] = price
    return GPUPool.model_validate({"metadata": {"name": name}, "spec": spec})


def _facts(model: str, precision: str) -> ModelFacts:
    facts = load_catalog().get(model)
    assert facts is not None, model
    if precision == "awq":  # the same architecture as a 4-bit AWQ checkpoint of it
        return facts.model_copy(update={"quantization": quantization_from_spec("awq", 4, 128), "checkpoint_bytes": None})
    return facts


def _plan(model: str, precision: str, pools: list[GPUPool], serving: dict[str, Any] | None = None) -> Plan | None:
    spec: dict[str, Any] = {"model": {"name": model}, "serving": serving or {}}
    if precision == "fp8":
        spec["model"]["quantization"] = "fp8"
    md = ModelDeployment.model_validate({"metadata": {"name": "claim"}, "spec": spec})
    facts = _facts(model, precision)
    if precision == "fp8" and facts.native_quantization is not None:
        return None  # already FP8 (or quantized): "as published" is that row
    try:
        return plan_deployment(md, facts, pools)
    except InvalidSpec:
        return None


def _layout(p: Plan) -> str:
    pp = f" × PP {p.pipeline_parallel_size}" if (p.pipeline_parallel_size or 1) > 1 else ""
    return (f"{p.gpus_per_replica} × {p.gpu_product} (TP {p.tensor_parallel_size}{pp}), "
            f"maxModelLen {p.max_model_len}, {p.memory_per_gpu.weights_gib if p.memory_per_gpu else 0:.1f} GiB weights/GPU")


def _fit_table(model: str, pools: list[GPUPool]) -> dict[str, Plan | None]:
    return {precision: _plan(model, precision, pools) for precision in PRECISIONS}


def _describe_fits(fits: dict[str, Plan | None]) -> str:
    parts = []
    for precision, p in fits.items():
        if p is None:
            parts.append(f"{precision}: not applicable")
        elif p.feasible:
            parts.append(f"{precision}: fits — {_layout(p)}")
        else:
            parts.append(f"{precision}: does not fit ({(p.suggestions or [p.reason])[0][:160]})")
    return "; ".join(parts)


@dataclass(frozen=True)
class Claim:
    text: str
    source: str
    planner: str
    makes_it: str
    verdict: str  # true | false | partly


def _fits_claim(text: str, model: str, pools: list[GPUPool], note: str = "") -> Claim:
    fits = _fit_table(model, pools)
    ok = [k for k, p in fits.items() if p is not None and p.feasible]
    verdict = "true" if "as published" in ok else ("partly" if ok else "false")
    makes = (f"true at {', '.join(ok)}" if ok else "no precision the planner knows fits") + note
    return Claim(text, "seed guides (issue 13)", _describe_fits(fits), makes, verdict)


def _deepseek_claim() -> Claim:
    model = "deepseek-ai/DeepSeek-V3"
    one_node = _plan(model, "as published", [_pool("a100-80-x8", A100_80, 8)])
    more = _plan(model, "as published", [_pool("a100-80-x8", A100_80, 8, nodes=4)])
    facts = _facts(model, "as published")
    bf16_gib = facts.parameters * 2 / 1024**3
    gpus_bf16 = -(-bf16_gib // (A100_80_GIB * 0.9))
    fits_8 = one_node is not None and one_node.feasible
    planner = (f"FP8 (its native precision, the published checkpoint): "
               f"{'fits 8 × A100-80' if fits_8 else 'does not fit one node of 8 × A100-80'}"
               + (f"; needs {_layout(more)}" if more is not None and more.feasible else "")
               + f"; BF16 ('full precision') weights alone are {bf16_gib:.0f} GiB: at least {gpus_bf16:.0f} A100-80s")
    return Claim("DeepSeek V3 at full precision requires 8x A100", "seed guides (issue 13)", planner,
                 "8 × A100-80 give 570 GiB at utilization 0.9: less than V3's 671B parameters need at FP8 (~625 GiB) or BF16",
                 "true" if fits_8 else "false")


def _speed_claim() -> Claim:
    pool = [_pool("a100-80-x1", A100_80, 1, 3.5)]
    rows, speeds = [], []
    for precision in ("fp8", "awq"):
        p = _plan("meta-llama/Llama-3.3-70B-Instruct", precision, pool,
                  {"workload": {"inputTokens": 1000, "outputTokens": 256, "concurrency": 1}})
        if p is not None and p.feasible and p.performance is not None:
            tps = 1000 / p.performance.tpot_ms
            speeds.append(tps)
            rows.append(f"{precision}: one stream {tps:.0f} tokens/s (TPOT {p.performance.tpot_ms:.1f} ms)")
    in_range = [s for s in speeds if 20 <= s <= 40]
    verdict = "true" if speeds and len(in_range) == len(speeds) else ("partly" if in_range else "false")
    return Claim("70B on one A100 with vLLM serves 20–40 tokens/s", "seed guides (issue 13)",
                 "; ".join(rows) + " (BF16 does not fit one A100)",
                 "single-stream decode is bandwidth-bound: 4-bit weights (~37 GB) read per token at 2 TB/s",
                 verdict)


def _break_even_claim() -> Claim:
    pool = [_pool("a100-80-x1", A100_80, 1, 3.5)]
    p = _plan("meta-llama/Llama-3.3-70B-Instruct", "awq", pool,
              {"workload": {"inputTokens": 1000, "outputTokens": 250, "concurrency": 16}})
    daily = 3.5 * 24
    volumes = {price.name: daily / (price.blended(1000, 250) / 1e6) for price in builtin_prices().prices}
    cheapest, dearest = min(volumes.values()), max(volumes.values())
    capacity = ""
    if p is not None and p.performance is not None and p.performance.capacity_output_tokens_per_second:
        per_day = p.performance.capacity_output_tokens_per_second * 86_400 * 1250 / 250
        capacity = f"; one A100 (4-bit) serves at most ~{per_day / 1e6:.0f}M tokens/day at this mix"
    verdict = "true" if dearest <= FEW_MILLION else ("partly" if cheapest <= FEW_MILLION * 3 else "false")
    listed = ", ".join(f"{name} {v / 1e6:.0f}M" for name, v in sorted(volumes.items(), key=lambda kv: kv[1]))
    return Claim("A self-hosted 70B on one A100 at ~$3.50/h breaks even with hosted APIs at a few million tokens a day",
                 "seed guides (issue 13); SIZING-FACTS.md", f"$84/day fixed; break-even tokens/day (4:1 input:output): {listed}{capacity}",
                 "only against premium closed APIs, and at ~15–20M tokens/day rather than a few million; "
                 "open-model APIs at $0.2–0.6/M need 100M+ tokens/day", verdict)


CLAIMS: tuple[Callable[[], Claim], ...] = (
    lambda: _fits_claim("Llama 3.3 70B fits on a single A100 80GB", "meta-llama/Llama-3.3-70B-Instruct",
                        [_pool("a100-80-x1", A100_80, 1)]),
    _deepseek_claim,
    lambda: _fits_claim("Gemma 2 27B runs on a single RTX 4090", "google/gemma-2-27b-it", [_pool("rtx4090-x1", RTX_4090, 1)]),
    lambda: _fits_claim("Qwen3-Coder-Next runs on an RTX 3060 12GB", "Qwen/Qwen3-Next-80B-A3B-Instruct",
                        [_pool("rtx3060-x1", RTX_3060, 1)],
                        " (Qwen3-Coder-Next has Qwen3-Next-80B-A3B's architecture: 80B parameters, all resident)"),
    _speed_claim,
    _break_even_claim,
)


def render_claims() -> str:
    """docs/claims.md: every claim with the planner's answer and a verdict."""
    lines = [
        "# The seed guides' claims, checked",
        "",
        "Generated by `python -m modeldeploy.planner.claims > docs/claims.md` from the model and GPU",
        "catalogs, the memory model and the performance model (docs/PERFORMANCE.md); "
        "tests/unit/test_claims.py fails when this file is stale.",
        "Verdicts: **true** (as stated), **partly** (true only at the precision or layout named), **false**.",
        "",
        "| Claim | What the planner says | What makes it true or false | Verdict |",
        "|---|---|---|---|",
    ]
    for make in CLAIMS:
        c = make()
        lines.append(f"| {c.text} | {c.planner} | {c.makes_it} | **{c.verdict}** |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(render_claims())
