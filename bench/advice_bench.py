"""What the hardware suggestions of an infeasible plan cost (planner/advice.py): planning time of
two infeasible cases with and without them, medians of one run and their ratio.

Run: .venv/bin/python bench/advice_bench.py [--repeat N]. Results are recorded by hand in
docs/PERFORMANCE.md with machine and date.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any

from modeldeploy.api import GPUPool, ModelDeployment
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.planner import planner


def _pool(name: str, product: str, gib: float, per_node: int, max_nodes: int) -> GPUPool:
    return GPUPool.model_validate({"metadata": {"name": name}, "spec": {
        "gpu": {"product": product, "memoryGiB": gib}, "gpusPerNode": per_node, "maxNodes": max_nodes}})


def _md(model: str, **serving: Any) -> ModelDeployment:
    return ModelDeployment.model_validate({"metadata": {"name": "bench"},
                                           "spec": {"model": {"name": model}, "serving": serving}})


# The new-user trial's case (examples/pools.yaml gke-l4-x4) and a context that fits no A10G.
CASES = {
    "Llama-3.1-405B on 6 x 4 L4": (_md("meta-llama/Llama-3.1-405B-Instruct"),
                                   _pool("gke-l4-x4", "NVIDIA-L4", 22.49, 4, 6)),
    "Llama-3.1-8B 131072 tokens on 1 A10G": (_md("meta-llama/Llama-3.1-8B-Instruct", maxModelLen=131072),
                                             _pool("a10g-1", "NVIDIA-A10G", 22.30, 1, 1)),
}


ADVICE = "hardware_that_fits"  # planner.py's name for planner/advice.py's entry point


def _median_ms(md: ModelDeployment, pool: GPUPool, repeat: int) -> float:
    facts = load_catalog().get(md.spec.model.name)
    assert facts is not None
    planner.plan_deployment(md, facts, [pool])  # warm caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        plan = planner.plan_deployment(md, facts, [pool])
        times.append((time.perf_counter() - start) * 1000)
    assert not plan.feasible
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    names = vars(planner)  # the planner module's globals: swap the suggestions for nothing
    advice = names[ADVICE]
    for name, (md, pool) in CASES.items():
        with_advice = _median_ms(md, pool, args.repeat)
        names[ADVICE] = lambda closest, best: []
        try:
            without = _median_ms(md, pool, args.repeat)
        finally:
            names[ADVICE] = advice
        print(f"{name}: {with_advice:.1f} ms with hardware suggestions, {without:.1f} ms without "
              f"({with_advice / without:.2f}x)")


if __name__ == "__main__":
    main()
