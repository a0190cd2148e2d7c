"""`modeldeploy render` shows what the operator applies: the CLI and `decide()` plan and
render through one path (`controller.target`), so for the same ModelDeployment, pools and
installed APIs the CLI's objects are `decide()`'s applies less the operator's own stamps (owner
reference, applied hash, rollout memory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from modeldeploy.cli.inputs import load_inputs
from modeldeploy.cli.main import app
from modeldeploy.cli.planning import offline_kinds, plan_all
from modeldeploy.controller.children import APPLIED_HASH, candidate_children
from modeldeploy.controller.decide import Snapshot, decide, names_of
from modeldeploy.controller.rollout.memory import ROLLOUT_INPUTS, ROLLOUT_STARTED
from modeldeploy.controller.rollout.revisions import FAILED_REVISION, READY_REVISIONS
from modeldeploy.controller.rollout.upgrades import RENDERED_GENERATION, ROLLOUT_CAUSE
from modeldeploy.render import RenderOptions

ROOT = Path(__file__).resolve().parents[2]
POOLS = ROOT / "examples" / "pools.yaml"
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p.name != "pools.yaml")
# What only the operator writes on a child: ownership, the applied hash, the rollout memory.
OPERATOR_STAMPS = {APPLIED_HASH, READY_REVISIONS, FAILED_REVISION, ROLLOUT_CAUSE,
                   RENDERED_GENERATION, ROLLOUT_STARTED, ROLLOUT_INPUTS}


def _unstamped(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items() if k != "ownerReferences"}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in OPERATOR_STAMPS}
    meta.pop("annotations", None)
    if annotations:
        meta["annotations"] = annotations
    return {**obj, "metadata": meta}


def _by_ref(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


@pytest.mark.parametrize("no_lws", [False, True], ids=["lws", "no-lws"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_cli_render_is_what_decide_applies(example: Path, no_lws: bool) -> None:
    args = ["render", str(example), "--pools", str(POOLS), "--offline", "-o", "json"]
    result = CliRunner().invoke(app, args + (["--no-lws"] if no_lws else []))
    if result.exit_code != 0:  # infeasible without LeaderWorkerSet: nothing to compare
        assert no_lws and result.exit_code == 3, result.stderr
        return
    cli = json.loads(result.stdout)["items"] if result.stdout.lstrip().startswith("{") \
        else json.loads(result.stdout)

    inputs = load_inputs([example], [POOLS])
    (planned,) = plan_all(inputs, None, not no_lws)
    md = planned.deployment
    (document,) = [d for d in yaml.safe_load_all(example.read_text()) if d]
    body = {**document, "metadata": {**document["metadata"], "uid": "uid-1", "generation": 1,
                                     "resourceVersion": "1"}}
    kinds = offline_kinds(not no_lws)
    namespace = str(md.metadata.namespace)
    children = dict.fromkeys(candidate_children(namespace, names_of(md.metadata.name), kinds))
    snapshot = Snapshot(body=body, children=children, pods=(), pools=inputs.pools, kinds=kinds)
    actions = decide(snapshot, planned.facts, RenderOptions(), now=1_700_000_000.0)
    assert actions.failure is None, actions.failure

    applied = _by_ref([_unstamped(o) for o in actions.applies])
    assert applied == _by_ref(cli)
    # The stamps are all the operator adds: its workload carries them.
    workload = next(o for o in actions.applies if o["kind"] in ("Deployment", "LeaderWorkerSet"))
    assert APPLIED_HASH in workload["metadata"]["annotations"]
    assert workload["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
