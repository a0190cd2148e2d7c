"""The README's sample outputs are what the planner says today: the `make plan` table and reason,
and the `kubectl get modeldeployments` layout of the examples. A sample that drifts (a new
catalog entry, a changed memory model) fails here with the lines to paste."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from modeldeploy.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
POOLS = ROOT / "examples" / "pools.yaml"
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p != POOLS)
runner = CliRunner()


def block_after(heading: str) -> list[str]:
    """The lines of the first fenced block after `heading` in the README."""
    start = README.index(heading)
    opened = README.index("```", start)
    body = README.index("\n", opened) + 1
    return README[body:README.index("```", body)].splitlines()


def make_plan() -> str:
    """What `make plan` prints (modeldeploy plan examples/*.yaml --offline, through a pipe)."""
    result = runner.invoke(app, ["plan", *map(str, sorted((ROOT / "examples").glob("*.yaml"))), "--offline"])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]


def test_make_plan_sample_rows_are_the_planners_rows() -> None:
    sample = block_after("`make plan` prints a table like this")
    actual = make_plan()
    rows = {cells(line)[0]: cells(line) for line in actual.splitlines() if line.startswith(("│", "┃"))}
    shown = [line for line in sample if line.startswith(("│", "┃")) and cells(line) and cells(line)[0] != "..."]
    assert len(shown) >= 3, "the README's make plan sample lost its rows"
    for line in shown:
        name = cells(line)[0]
        assert cells(line) == rows.get(name), f"README's make plan row for {name} is stale; now:\n" + next(
            (a for a in actual.splitlines() if a.startswith(("│", "┃")) and cells(a)[0] == name), "(no such row)")


def test_make_plan_sample_reason_is_the_planners_reason() -> None:
    """Each reason starts `examples/…` and runs to the next one (a long line may be wrapped)."""
    text = "\n".join(block_after("`make plan` prints a table like this"))
    sample = [" ".join(("examples/" + part).split()) for part in text.split("\nexamples/")[1:]]
    actual = " ".join(make_plan().split())
    assert sample, "the README's make plan sample lost its reason line"
    for line in sample:
        assert line in actual, f"README's reason line is stale: {line}"


def planned_with_example_pools() -> dict[str, dict[str, object]]:
    result = runner.invoke(app, ["plan", *map(str, EXAMPLES), "--pools", str(POOLS), "--offline", "-o", "json"])
    assert result.exit_code == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_kubectl_get_sample_shows_the_examples_planned_layouts() -> None:
    """The sample is a cluster after the README's install (examples/pools.yaml applied)."""
    sample = block_after("## What `kubectl get modeldeployments` shows")
    header, *rows = [line.split() for line in sample if line.strip()]
    assert header == ["NAME", "MODEL", "GPU", "TP", "PP", "READY", "REPLICAS", "AGE"]
    assert rows
    plans = planned_with_example_pools()
    models = {doc["metadata"]["name"]: doc["spec"]["model"]["name"]
              for path in EXAMPLES for doc in yaml.safe_load_all(path.read_text()) if doc}
    for name, model, gpu, tp, pp, ready, replicas, _age in rows:
        plan = plans[name]
        assert model == models[name] == plan["model"]
        now = (plan["gpuProduct"], str(plan["tensorParallelSize"]), str(plan["pipelineParallelSize"]))
        assert (gpu, tp, pp) == now, f"README's kubectl get row for {name} is stale; the plan is now {now}"
        assert ready in {"True", "False", "Unknown"} and 0 <= int(replicas) <= int(str(plan["replicas"]))


def test_the_two_kv_numbers_are_explained_and_mean_what_the_readme_says() -> None:
    """New-user trial (2026-11-30): the table's KV/GPU and the reason's "KV" differ; the README
    says which is which, and the examples' plans bear it out."""
    intro = README[README.index("`make plan` prints a table like this"):README.index("```", README.index("`make plan` prints"))]
    said = " ".join(intro.split())
    assert "KV/GPU column is the KV cache each GPU has left" in said and "`kvCacheGiB`" in said
    assert "`KV` in the reason is what the plan must hold" in said and "`kvRequiredGiB`" in said
    result = runner.invoke(app, ["plan", *map(str, EXAMPLES), "--offline", "-o", "json"])
    for plan in json.loads(result.stdout):
        m = plan["memoryPerGPU"]
        assert abs(m["kvCacheGiB"] - (m["budgetGiB"] - m["weightsGiB"] - m["overheadGiB"])) <= 0.02, plan["name"]
        assert f", KV {m['kvRequiredGiB']:.2f} for " in plan["reason"], plan["name"]
        assert m["kvCacheGiB"] >= m["kvRequiredGiB"] - 0.01, plan["name"]  # every example fits
