"""The planner against every logged vLLM memory profile we hold (bench/data/).

Run: .venv/bin/python bench/sizing_calibration.py [--write]. Prints the calibration table
(predicted vs logged weights, activation, non-torch, KV tokens and the fits/does-not-fit
verdict, with median and worst errors); --write replaces the table in docs/sizing.md between
its calibration markers. tests/unit/test_sizing_calibration.py asserts the bounds and that the
checked-in table is current.

Each log is planned exactly as a user would ask for it: the model, vLLM image of the logged
release, GPU (the memory the device reported), TP pinned, gpuMemoryUtilization and
maxModelLen as logged, one sequence of KV (vLLM starts when one max-model-len sequence fits).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modeldeploy.api import GPUPool, ModelDeployment
from modeldeploy.errors import ModelUnresolved
from modeldeploy.facts import ModelFacts
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.planner import Plan, plan_deployment

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "vllm-memory-profiles.csv"
DOC = ROOT / "docs" / "sizing.md"
BEGIN, END = "<!-- calibration:begin -->", "<!-- calibration:end -->"
GIB = 1024**3
# Source A measured an H100-80GB-HBM3 at 79.18 GiB; B used the same product without saying.
DEFAULT_GPU_GIB = {"NVIDIA-H100-80GB-HBM3": 79.18}


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


def model_facts(repo: str) -> ModelFacts | str:
    """Facts from the built-in catalog (operator/modeldeploy/data/models/); else why there are none."""
    try:
        found = load_catalog().get(repo)
    except ModelUnresolved as exc:
        return str(exc).split(": ", 1)[-1].split(";")[0]
    return found if found is not None else "no config.json found yet"


@dataclass(frozen=True)
class Row:
    """One log and what the planner says for the same deployment."""

    log: dict[str, str]
    plan: Plan | None  # None: no facts for the model yet
    pending: str = ""  # why there are no facts

    @property
    def version(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.log["vllm_version"].split("."))

    @property
    def logged_fits(self) -> bool:
        return self.log["outcome"] == "fits"

    @property
    def logged_tokens(self) -> float | None:
        """KV tokens as logged, or the logged KV GiB over the planner's bytes per token."""
        tokens = _number(self.log["kv_cache_tokens"])
        kv_gib = _number(self.log["kv_cache_gib"])
        if tokens is not None or kv_gib is None or self.plan is None or not self.plan.feasible:
            return tokens
        m = self.plan.memory_per_gpu
        assert m is not None and self.plan.kv_cache_tokens is not None
        per_token = m.kv_cache_gib * GIB / max(self.plan.kv_cache_tokens, 1)
        return kv_gib * GIB / per_token

    def error(self, predicted: float | None, logged: float | None) -> float | None:
        if predicted is None or logged is None or logged == 0:
            return None
        return (predicted - logged) / logged

    @property
    def weights_error(self) -> float | None:
        m = self.plan.memory_per_gpu if self.plan else None
        return self.error(m.weights_gib if m else None, _number(self.log["weights_gib"]))

    @property
    def tokens_error(self) -> float | None:
        predicted = self.plan.kv_cache_tokens if self.plan and self.plan.feasible else None
        return self.error(predicted, self.logged_tokens)

    @property
    def log_consistent(self) -> bool:
        """False when the logged weights + activation + non-torch + KV exceed util × memory by more
        than 0.5 GiB: no memory model reproduces such a log (source A's gpt-oss-120b row repeats
        gpt-oss-20b's 7.38 GiB activation; its own KV figure implies ~3.4 GiB)."""
        parts = [_number(self.log[k]) for k in ("weights_gib", "activation_peak_gib", "non_torch_gib", "kv_cache_gib")]
        gib = _number(self.log["gpu_memory_gib"]) or DEFAULT_GPU_GIB.get(self.log["gpu_product"])
        if any(p is None for p in parts) or gib is None:
            return True
        return sum(p for p in parts if p is not None) <= float(self.log["gpu_memory_utilization"]) * gib + 0.5

    @property
    def verdict_right(self) -> bool | None:
        if self.plan is None or not self.log_consistent:
            return None
        return self.plan.feasible == self.logged_fits


def deployment(log: dict[str, str], facts: ModelFacts) -> tuple[ModelDeployment, GPUPool]:
    model: dict[str, Any] = {"name": facts.id}
    if log["quantization"]:
        model["quantization"] = log["quantization"]
    serving: dict[str, Any] = {
        "maxModelLen": int(log["max_model_len"]), "maxNumSeqs": 1,
        "gpuMemoryUtilization": float(log["gpu_memory_utilization"]),
        "image": f"vllm/vllm-openai:v{log['vllm_version']}",
    }
    if log["max_num_batched_tokens"]:
        serving["maxNumBatchedTokens"] = int(log["max_num_batched_tokens"])
    md = ModelDeployment.model_validate({
        "metadata": {"name": "calibration", "namespace": "default"},
        "spec": {"model": model, "serving": serving, "placement": {"tensorParallelSize": int(log["tp"])}},
    })
    gib = _number(log["gpu_memory_gib"]) or DEFAULT_GPU_GIB[log["gpu_product"]]
    pool = GPUPool.model_validate({"metadata": {"name": "logged"}, "spec": {
        "gpu": {"product": log["gpu_product"], "memoryGiB": gib, "nvlink": True}, "gpusPerNode": 8}})
    return md, pool


def calibrate(path: Path = DATA) -> list[Row]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for log in csv.DictReader(handle):
            facts = model_facts(log["facts"])
            if isinstance(facts, str):
                rows.append(Row(log, None, facts))
                continue
            md, pool = deployment(log, facts)
            rows.append(Row(log, plan_deployment(md, facts, [pool])))
    return rows


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.1f} %"


def _pair(predicted: float | None, logged: str) -> str:
    left = "—" if predicted is None else f"{predicted:.2f}"
    return f"{left} / {logged or '—'}"


def _line(r: Row) -> str:
    m = r.plan.memory_per_gpu if r.plan else None
    tokens = r.plan.kv_cache_tokens if r.plan and r.plan.feasible else None
    logged_tokens = r.logged_tokens
    verdict = {None: f"no facts: {r.pending}" if r.plan is None else "log inconsistent (its parts exceed the budget)",
               True: "right", False: "**wrong**"}[r.verdict_right]
    return (
        f"| {r.log['model']} | {r.log['vllm_version']} | {r.log['tp']} | {r.log['gpu_memory_utilization']} "
        f"| {r.log['max_model_len']} | {_pair(m.weights_gib if m else None, r.log['weights_gib'])} "
        f"| {_pair(m.activation_gib if m else None, r.log['activation_peak_gib'])} "
        f"| {_pair(m.non_torch_gib if m else None, r.log['non_torch_gib'])} "
        f"| {tokens if tokens is not None else '—'} / {round(logged_tokens) if logged_tokens else '—'} "
        f"| {_pct(r.weights_error)} | {_pct(r.tokens_error)} | {verdict} | {r.log['source']} |"
    )


def _summary(name: str, errors: list[float]) -> str:
    if not errors:
        return f"- {name}: no data"
    worst = max(errors, key=abs)
    return f"- {name}: median {_pct(statistics.median(errors))}, worst {_pct(worst)} ({len(errors)} logs)"


def table(rows: list[Row]) -> str:
    head = (
        "| Model | vLLM | TP | util | max len | weights GiB (plan / log) | activation GiB | non-torch GiB "
        "| KV tokens (plan / log) | weights err | KV tokens err | verdict | src |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    recent = [r for r in rows if r.version >= (0, 11, 0)]
    weights = [e for r in recent if (e := r.weights_error) is not None]
    tokens = [e for r in recent if (e := r.tokens_error) is not None]
    verdicts = [v for r in recent if (v := r.verdict_right) is not None]
    summary = "\n".join([
        "Logs of vLLM ≥ 0.11 (the bounds the tests assert: weights within 3 %, KV tokens within 10 %, every verdict right):",
        "",
        _summary("weights", weights),
        _summary("KV tokens", tokens),
        f"- verdicts: {sum(verdicts)} of {len(verdicts)} right; "
        f"{sum(1 for r in recent if r.plan is None)} logs wait for their model's facts",
    ])
    return "\n".join([head, *(_line(r) for r in rows), "", summary])


def write_doc(text: str, doc: Path = DOC) -> None:
    content = doc.read_text(encoding="utf-8")
    start, end = content.index(BEGIN) + len(BEGIN), content.index(END)
    doc.write_text(content[:start] + "\n" + text + "\n" + content[end:], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="update the table in docs/sizing.md")
    args = parser.parse_args()
    text = table(calibrate())
    print(text)
    if args.write:
        write_doc(text)


if __name__ == "__main__":
    main()
