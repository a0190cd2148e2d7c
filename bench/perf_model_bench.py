"""Accuracy of the performance model against measured vLLM latencies.

Run: .venv/bin/python bench/perf_model_bench.py [--csv PATH] [--fit] [--markdown]

Prints median and p90 absolute percentage error (APE) of TTFT and TPOT: overall, per model,
per TP, and leave-one-model-out (constants refitted without the model, then scored on it).
`--fit` refits the constants on every row and prints them (paste into
operator/modeldeploy/perf/constants.py). `--csv` scores another file of the same columns
(bench/data/README.md) with the shipped constants, e.g. the held-out measurements on other
GPUs: `--csv bench/data/vllm-latency-other-gpus.csv --no-lomo` (also per model and GPU).
Results are recorded in docs/PERFORMANCE.md with machine and date.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import yaml

from modeldeploy.facts import ModelFacts
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.perf.constants import FITTED, PerfConstants
from modeldeploy.perf.fit import fit_constants
from modeldeploy.planner.calibration import Case, Errors, build_cases, by, errors, parse_rows

DATA = Path(__file__).parent / "data"


def facts_of(model: str) -> ModelFacts | None:
    extra = yaml.safe_load((DATA / "perf-models.yaml").read_text(encoding="utf-8")) or {}
    if model in extra:
        return ModelFacts(id=model, **extra[model])
    return load_catalog().get(model)


def load_cases(csv_path: Path) -> list[Case]:
    return build_cases(parse_rows(csv_path.read_text(encoding="utf-8")), facts_of)


def objective(cases: Sequence[Case]):  # type: ignore[no-untyped-def]
    """Mean absolute log error of TTFT and TPOT: scale-free, so short and long latencies
    weigh alike, and robust to the few outlier rows (it is an L1 loss)."""

    def loss(constants: PerfConstants) -> float:
        total = 0.0
        for case in cases:
            p = case.predict(constants)
            total += abs(math.log(p.ttft_ms / case.row.ttft_ms)) + abs(math.log(p.tpot_ms / case.row.tpot_ms))
        return total / (2 * len(cases))

    return loss


def fit(cases: Sequence[Case], start: PerfConstants = FITTED) -> PerfConstants:
    return fit_constants(objective(cases), start)


def line(name: str, e: Errors) -> str:
    return (f"| {name} | {e.count} | {e.ttft_median:.1f} | {e.ttft_p90:.1f} | "
            f"{e.tpot_median:.1f} | {e.tpot_p90:.1f} |")


def header() -> str:
    return "| cases | rows | TTFT median APE % | TTFT p90 % | TPOT median APE % | TPOT p90 % |\n|---|---|---|---|---|---|"


def leave_one_model_out(cases: Sequence[Case]) -> list[tuple[str, Errors]]:
    out = []
    for model, held in sorted(by(cases, lambda c: c.row.model).items(), key=lambda kv: str(kv[0])):
        rest = [c for c in cases if c.row.model != model]
        out.append((str(model), errors(held, fit(rest))))
    return out


def pooled(cases: Sequence[Case]) -> Errors:
    """Leave-one-model-out errors pooled over every held-out row."""
    ttft: list[float] = []
    tpot: list[float] = []
    for model in sorted({c.row.model for c in cases}):
        constants = fit([c for c in cases if c.row.model != model])
        for case in (c for c in cases if c.row.model == model):
            p = case.predict(constants)
            ttft.append(abs(p.ttft_ms - case.row.ttft_ms) / case.row.ttft_ms * 100)
            tpot.append(abs(p.tpot_ms - case.row.tpot_ms) / case.row.tpot_ms * 100)

    def p90(v: list[float]) -> float:
        return sorted(v)[min(len(v) - 1, round(0.9 * (len(v) - 1)))]

    return Errors(len(ttft), statistics.median(ttft), p90(ttft), statistics.median(tpot), p90(tpot))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", type=Path, default=DATA / "vllm-latency-h100.csv")
    parser.add_argument("--fit", action="store_true", help="refit the constants on every row")
    parser.add_argument("--no-lomo", action="store_true", help="skip leave-one-model-out")
    args = parser.parse_args()
    cases = load_cases(args.csv)
    started = time.perf_counter()
    constants = fit(cases) if args.fit else FITTED
    print(f"# perf model bench — {args.csv.name}, {len(cases)} rows, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} {platform.processor() or ''} "
          f"Python {platform.python_version()}")
    if args.fit:
        print(f"fitted constants: {constants}")
    print(header())
    print(line("all rows (fitted constants)", errors(cases, constants)))
    for model, group in sorted(by(cases, lambda c: c.row.model).items(), key=lambda kv: str(kv[0])):
        print(line(f"model {model}", errors(group, constants)))
    for tp, group in sorted(by(cases, lambda c: c.row.tp).items(), key=lambda kv: int(str(kv[0]))):
        print(line(f"TP {tp}", errors(group, constants)))
    gpus = by(cases, lambda c: c.row.gpu_product)
    for (model, gpu), group in sorted(by(cases, lambda c: (c.row.model, c.row.gpu_product)).items(), key=str):
        if len(gpus) > 1:
            print(line(f"{model} on {gpu}", errors(group, constants)))
    if not args.no_lomo and len({c.row.model for c in cases}) > 1:
        for model, e in leave_one_model_out(cases):
            print(line(f"leave-one-model-out: {model}", e))
        print(line("leave-one-model-out, pooled", pooled(cases)))
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
