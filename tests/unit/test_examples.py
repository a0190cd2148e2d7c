"""The examples say what they do: each one's `# Plan:` comment is the layout the planner
chooses, with the built-in pool catalog and with examples/pools.yaml; each renders alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeldeploy.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
POOLS = ROOT / "examples" / "pools.yaml"
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p != POOLS)
PLAN_LINE = re.compile(r"^# Plan: (?P<gpus>.+?), TP (?P<tp>\d+), PP (?P<pp>\d+), (?P<nodes>\d+) nodes?\.$", re.M)
runner = CliRunner()


def stated(example: Path) -> tuple[set[str], int, int, int]:
    found = PLAN_LINE.search(example.read_text(encoding="utf-8"))
    assert found, f"{example.name} states no '# Plan: GPU, TP n, PP n, n node(s).' line"
    return (set(found["gpus"].split(" or ")), int(found["tp"]), int(found["pp"]), int(found["nodes"]))


@pytest.mark.parametrize("pools", [[], ["--pools", str(POOLS)]], ids=["built-in pools", "examples/pools.yaml"])
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_each_example_plans_the_layout_its_comment_states(example: Path, pools: list[str]) -> None:
    result = runner.invoke(app, ["plan", str(example), *pools, "--offline", "-o", "json"])
    assert result.exit_code == 0, result.stderr
    (plan,) = json.loads(result.stdout)
    gpus, tp, pp, nodes = stated(example)
    assert plan["gpuProduct"] in gpus, plan["reason"]
    assert (plan["tensorParallelSize"], plan["pipelineParallelSize"], plan["nodesPerReplica"]) == (tp, pp, nodes)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_each_example_renders_alone(example: Path) -> None:
    result = runner.invoke(app, ["render", str(example), "--offline"])
    assert result.exit_code == 0, result.stderr
    assert "kind: Deployment" in result.stdout or "kind: LeaderWorkerSet" in result.stdout
