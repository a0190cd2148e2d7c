"""Real vLLM reports as tests: `modeldeploy plan -o json --offline` must agree with each.

Cases and their sources: tests/fixtures/sizing_reports.yaml. The checks mirror the shared
case runner's (exit 2 naming the field, or an infeasible plan naming it; weight and KV ranges).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from modeldeploy.cli.main import app

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "fixtures" / "sizing_reports.yaml").read_text(encoding="utf-8"))
runner = CliRunner()


def _plan(case: dict[str, Any], tmp_path: Path) -> tuple[int, str, dict[str, Any] | None]:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "GPUPool", "metadata": {"name": p["name"]}, "spec": p["spec"]}
        for p in case.get("pools") or []
    ]
    docs.append({"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
                 "metadata": {"name": "case", "namespace": "default"}, "spec": case["spec"]})
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    result = runner.invoke(app, ["plan", str(path), "-o", "json", "--offline"])
    try:
        out = json.loads(result.stdout)
    except ValueError:
        return result.exit_code, result.output, None
    return result.exit_code, result.output, out[0] if isinstance(out, list) else out


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_plan_agrees_with_the_report(case: dict[str, Any], tmp_path: Path) -> None:
    code, said, out = _plan(case, tmp_path)
    expect = case["expect"]
    assert "Traceback" not in said
    if "mentions" in expect:
        assert expect["mentions"].lower() in said.lower(), said
    if "not_mentions" in expect:
        assert expect["not_mentions"].lower() not in said.lower(), said
    if "refused" in expect:
        named = expect["refused"] in said
        assert (code == 2 and named) or (out is not None and out["feasible"] is False and named), said
        return
    if expect.get("valid"):
        assert code != 2, said
    if "feasible" in expect:
        assert out is not None and out["feasible"] is expect["feasible"], said
    if out is None or not out["feasible"]:
        return
    for key in ("tensorParallelSize", "nodesPerReplica"):
        if key in expect:
            assert out[key] == expect[key]
    for key, value in (("weightsGiB", out["memoryPerGPU"]["weightsGiB"]), ("kvCacheTokens", out["kvCacheTokens"])):
        if key in expect:
            low, high = expect[key]
            assert low <= value <= high, f"{key} {value} not in [{low}, {high}]"
