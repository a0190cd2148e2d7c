"""The kind e2e suite offline: it imports and collects, skips here with its reason (never
passes), and its scenarios rest on premises the API and the planner agree with."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e import helpers
from e2e.fake_gpu import SHAPES, helm_values

from modeldeploy.api import GPUPool, ModelDeployment
from modeldeploy.facts.resolve import facts_from_architecture
from modeldeploy.planner import plan_deployment

ROOT = Path(__file__).resolve().parents[2]
REASON = "e2e needs Docker and kind"
E2E_TESTS = 8


def run_pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPLOY_E2E_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT, env={**base, **(env or {})}, capture_output=True, text=True, timeout=120,
        check=False,
    )


def summary(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_the_skip_reason_is_the_documented_one() -> None:
    assert helpers.SKIP_REASON == REASON


def test_e2e_module_imports_and_collects_every_test() -> None:
    done = run_pytest("--collect-only", "-q", "e2e")
    assert done.returncode == 0, done.stdout + done.stderr
    ids = [ln for ln in done.stdout.splitlines() if ln.startswith("e2e/test_e2e.py::")]
    assert len(ids) == E2E_TESTS, done.stdout
    assert f"{E2E_TESTS} tests collected" in done.stdout


def test_e2e_suite_skips_here_with_its_reason_and_never_passes() -> None:
    done = run_pytest("e2e", "-rs")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert re.search(rf"SKIPPED \[\d+\] e2e/test_e2e\.py:\d+: {REASON}", out), out
    last = summary(done.stdout)
    assert re.fullmatch(rf"=+ {E2E_TESTS} skipped in [\d.]+s =+", last), last
    assert "passed" not in last and "failed" not in last and "error" not in last


def test_the_env_var_alone_does_not_enable_the_suite(tmp_path: Path) -> None:
    # run.sh's variable set, but no kind and no docker on PATH: still skipped, not run.
    done = run_pytest("e2e", "-rs", env={helpers.ENV_CLUSTER: "modeldeploy-e2e",
                                         "PATH": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert REASON in done.stdout
    assert re.fullmatch(rf"=+ {E2E_TESTS} skipped in [\d.]+s =+", summary(done.stdout))


def test_probe_log_parsing_counts_only_downtime_after_first_success() -> None:
    log = "\n".join([
        '{"ok": false, "error": "refused"}',  # before the Service first answered: not downtime
        '{"ok": true, "code": 200}',
        "some stray line",
        '{"ok": true, "code": 200}',
        '{"ok": false, "error": "reset"}',
        '{"ok": true, "code": 200}',
    ])
    results = helpers.parse_probe_log(log)
    assert len(results) == 5
    assert helpers.downtime_after_first_success(results) == [{"ok": False, "error": "reset"}]
    assert helpers.downtime_after_first_success([{"ok": False}]) == [{"ok": False}]


def test_status_helpers() -> None:
    md = {"metadata": {"generation": 3},
          "status": {"observedGeneration": 3,
                     "conditions": [{"type": "Ready", "status": "True"}]}}
    assert helpers.is_ready(md)
    md["status"]["observedGeneration"] = 2
    assert not helpers.is_ready(md), "a Ready from an older generation is not Ready"
    pod = {"spec": {"containers": [
        {"resources": {"requests": {"nvidia.com/gpu": "2"}}},
        {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
        {},
    ]}}
    assert helpers.pod_gpu_request(pod) == 3
    child = {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}}
    assert helpers.owned_by(child, "u1") and not helpers.owned_by(child, "u2")


# ---------------------------------------------------------------- the scenarios' premises

def md_of(spec: dict[str, Any]) -> ModelDeployment:
    return ModelDeployment.model_validate({
        "apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "tiny", "namespace": "e2e"}, "spec": spec,
    })


def e2e_pools() -> list[GPUPool]:
    return [GPUPool.model_validate({"metadata": {"name": p["name"]}, "spec": p["spec"]})
            for p in helm_values(SHAPES.values())["gpuPools"]]


def plan_of(spec: dict[str, Any]) -> Any:
    md = md_of(spec)
    assert md.spec.model.architecture is not None
    facts = facts_from_architecture(md.spec.model.name, md.spec.model.architecture)
    return plan_deployment(md, facts, e2e_pools())


IMAGE = "localhost/modeldeploy-vllm-sim:e2e"


@pytest.mark.parametrize(("shape", "tp"), [("l4x4", None), ("h100x8", 2)])
def test_each_pool_scenario_plans_on_its_pool(shape: str, tp: int | None) -> None:
    pool = SHAPES[shape]
    plan = plan_of(helpers.tiny_model_spec(IMAGE, pools=[pool.pool], tensor_parallel=tp))
    assert plan.feasible, plan.reason
    assert plan.pool == pool.pool
    assert plan.gpus_per_replica <= pool.gpus_per_node, "the suite expects a single-node layout"
    if tp:
        assert plan.tensor_parallel_size == tp


def test_rollout_and_crash_scenarios_leave_room_to_surge() -> None:
    l4 = SHAPES["l4x4"]
    plan = plan_of(helpers.tiny_model_spec(IMAGE, pools=[l4.pool], replicas=2))
    assert plan.feasible, plan.reason
    total = l4.gpus_per_node * l4.nodes
    assert (plan.replicas + 1) * plan.gpus_per_replica <= total


def test_autoscaling_scenario_is_a_valid_spec_within_capacity() -> None:
    autoscaling = {"minReplicas": 1, "maxReplicas": 2, "metric": "requestsWaiting", "target": 1,
                   "scaleUpStabilizationSeconds": 0, "scaleDownStabilizationSeconds": 30}
    l4 = SHAPES["l4x4"]
    spec = helpers.tiny_model_spec(IMAGE, pools=[l4.pool], autoscaling=autoscaling,
                                   max_num_seqs=1)
    plan = plan_of(spec)
    assert plan.feasible, plan.reason
    assert md_of(spec).spec.autoscaling.max_replicas * plan.gpus_per_replica <= (  # type: ignore[union-attr]
        l4.gpus_per_node * l4.nodes)


def test_huge_model_scenario_fits_no_pool() -> None:
    plan = plan_of(helpers.tiny_model_spec(IMAGE, parameters=2_000_000_000_000))
    assert not plan.feasible
    assert plan.failure == "NoFeasibleLayout"
    assert plan.reason
