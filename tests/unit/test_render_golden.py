"""Golden YAML snapshots of three real deployments, two of them also autoscaled (tests/golden/*.yaml).

A change to the rendered objects must be deliberate: regenerate with

    UPDATE_GOLDEN=1 python -m pytest tests/unit/test_render_golden.py

and review the diff of tests/golden/ like any other code change.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.unit.render_cases import CASES, with_spec

from modeldeploy.render import RenderOptions, render_objects, to_yaml

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
KEDA = {"mode": "keda", "minReplicas": 0, "maxReplicas": 4, "scaleToZero": True, "idleSeconds": 1800,
        "metric": "requestsWaiting", "target": 4}
HPA = {"mode": "hpa", "minReplicas": 1, "maxReplicas": 3, "metric": "kvCacheUsage", "target": 0.8,
       "scaleUpStabilizationSeconds": 60, "scaleDownStabilizationSeconds": 900}
# golden file -> (render case, spec.autoscaling or None, options)
GOLDENS: dict[str, tuple[str, dict[str, Any] | None, RenderOptions | None]] = {
    "llama-3.1-8b-a10g": ("llama-3.1-8b-a10g", None, None),
    "llama-3.3-70b-h100-tp4": ("llama-3.3-70b-h100-tp4", None, RenderOptions(service_monitor=True)),
    "deepseek-v3-h100-lws": ("deepseek-v3-h100-lws", None, None),
    "llama-3.1-8b-a10g-keda": ("llama-3.1-8b-a10g", KEDA, RenderOptions(
        keda_wake_query='gateway_requests_pending{namespace="$namespace",service="$service"}')),
    "deepseek-v3-h100-lws-hpa": ("deepseek-v3-h100-lws", HPA, None),
}


def rendered(golden: str) -> str:
    case, autoscaling, options = GOLDENS[golden]
    m, p, pool = CASES[case]()
    what = CASES[case].__name__
    if autoscaling is not None:
        m = with_spec(m, autoscaling=autoscaling)
        what += f" with autoscaling.mode {autoscaling['mode']}"
    header = f"# Golden render of tests/unit/render_cases.py::{what} (UPDATE_GOLDEN=1 to regenerate)\n"
    return header + to_yaml(render_objects(m, p, pool, options))


@pytest.mark.parametrize("case", list(GOLDENS))
def test_golden(case: str) -> None:
    path = GOLDEN / f"{case}.yaml"
    text = rendered(case)
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{path.name} differs: review, then UPDATE_GOLDEN=1"


def test_goldens_cover_the_workload_shapes_and_autoscalers() -> None:
    kinds = {case: [line for line in (GOLDEN / f"{case}.yaml").read_text().splitlines() if line.startswith("kind: ")]
             for case in GOLDENS}
    assert kinds["llama-3.1-8b-a10g"] == ["kind: Deployment", "kind: Service"]
    assert kinds["llama-3.3-70b-h100-tp4"] == [
        "kind: PersistentVolumeClaim", "kind: Deployment", "kind: Service", "kind: PodDisruptionBudget",
        "kind: ServiceMonitor"]
    assert kinds["deepseek-v3-h100-lws"] == ["kind: LeaderWorkerSet", "kind: Service"]
    assert kinds["llama-3.1-8b-a10g-keda"] == [
        "kind: Deployment", "kind: Service", "kind: PodDisruptionBudget", "kind: Service",
        "kind: HTTPScaledObject", "kind: ScaledObject"]
    assert kinds["deepseek-v3-h100-lws-hpa"] == [
        "kind: LeaderWorkerSet", "kind: Service", "kind: PodDisruptionBudget", "kind: HorizontalPodAutoscaler"]


def test_output_is_byte_identical_across_processes() -> None:
    """Another interpreter, another hash seed: the same bytes."""
    code = (
        "import sys; from tests.unit.test_render_golden import rendered, GOLDENS;"
        "sys.stdout.write(''.join(rendered(c) for c in GOLDENS))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True, timeout=60)
    assert out.stdout == "".join(rendered(c) for c in GOLDENS)
