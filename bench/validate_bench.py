"""Cost of the one validation path (validation.validate_model_deployment: type meta, name rule,
CRD structural schema, models, reserved arguments) against the models alone, per object.

The operator runs it on every reconcile pass; `plan` and `render` on every document.
Run: .venv/bin/python bench/validate_bench.py [--repeat N]. Results: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from modeldeploy.api import ModelDeployment
from modeldeploy.validation import validate_model_deployment

SPEC: dict[str, Any] = {
    "apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
    "metadata": {"name": "llama-3-3-70b", "namespace": "models"},
    "spec": {"model": {"name": "meta-llama/Llama-3.3-70B-Instruct"},
             "serving": {"maxModelLen": 16384, "maxNumSeqs": 64, "extraArgs": ["--enable-prefix-caching"],
                         "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}]},
             "placement": {"policy": "cheapest"}, "replicas": 2,
             "autoscaling": {"minReplicas": 1, "maxReplicas": 4},
             "credentials": {"huggingFaceToken": {"name": "hf-token"}}},
}


def median_us(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    validate_model_deployment(SPEC)  # warm the CRD schema cache
    models = median_us(lambda: ModelDeployment.model_validate(SPEC), args.repeat)
    full = median_us(lambda: validate_model_deployment(SPEC), args.repeat)
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"models only          median {models:8.1f} us")
    print(f"validation path      median {full:8.1f} us   ratio {full / models:.2f}")


if __name__ == "__main__":
    main()
