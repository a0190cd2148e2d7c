"""The autoscaling target per replica: spec, else the predicted capacity, else the default."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api import ModelDeployment
from modeldeploy.api.deployment import target_or_default
from modeldeploy.controller.status import plan_status
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.planner import default_pools, plan_deployment
from modeldeploy.planner.autoscaling_target import effective_autoscaling
from modeldeploy.render import render_objects

WORKLOAD = {"inputTokens": 1000, "outputTokens": 300, "concurrency": 200}


def _plan(autoscaling: dict[str, Any], **serving: Any):  # type: ignore[no-untyped-def]
    md = ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "ns"}, "spec": {
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}, "serving": serving,
        "autoscaling": {"minReplicas": 1, "maxReplicas": 20, **autoscaling}}})
    facts = load_catalog().get(md.spec.model.name)
    assert facts is not None
    return md, plan_deployment(md, facts, default_pools())


def test_a_spec_target_is_kept() -> None:
    _, plan = _plan({"metric": "requestsRunning", "target": 7}, workload=WORKLOAD)
    assert plan.autoscaling_target is not None
    assert (plan.autoscaling_target.value, plan.autoscaling_target.source) == (7, "spec")


def test_requests_running_target_is_the_predicted_capacity() -> None:
    md, plan = _plan({"metric": "requestsRunning"}, workload=WORKLOAD, slo={"tpotMs": 30})
    t, perf = plan.autoscaling_target, plan.performance
    assert t is not None and perf is not None and t.source == "predictedCapacity"
    assert t.value == perf.capacity_concurrency and t.value >= 1
    scaling = effective_autoscaling(md, t)
    assert scaling is not None and scaling.target == t.value
    assert plan_status(plan).autoscaling_target == t  # status says which


def test_kv_usage_target_is_the_share_that_capacity_occupies() -> None:
    _, plan = _plan({"metric": "kvCacheUsage"}, workload=WORKLOAD, slo={"tpotMs": 30})
    t, perf = plan.autoscaling_target, plan.performance
    assert t is not None and perf is not None and perf.capacity_concurrency and plan.kv_cache_tokens
    assert t.source == "predictedCapacity" and 0.05 <= t.value <= 0.95
    expected = perf.capacity_concurrency * 1300 / plan.kv_cache_tokens
    assert t.value == pytest.approx(min(max(expected, 0.05), 0.95), abs=1e-3)


def test_waiting_target_is_the_queue_the_ttft_target_absorbs() -> None:
    _, loose = _plan({"metric": "requestsWaiting"}, workload=WORKLOAD, slo={"ttftMs": 5000})
    _, tight = _plan({"metric": "requestsWaiting"}, workload=WORKLOAD, slo={"ttftMs": 400})
    assert loose.autoscaling_target is not None and tight.autoscaling_target is not None
    assert loose.autoscaling_target.source == "predictedCapacity"
    assert loose.autoscaling_target.value > tight.autoscaling_target.value >= 1


@pytest.mark.parametrize(("metric", "default"), [("requestsWaiting", 5.0), ("kvCacheUsage", 0.8)])
def test_without_a_workload_the_default_and_the_status_says_so(metric: str, default: float) -> None:
    md, plan = _plan({"metric": metric})
    assert plan.autoscaling_target is not None
    assert (plan.autoscaling_target.value, plan.autoscaling_target.source) == (default, "default")
    assert md.spec.autoscaling is not None and target_or_default(md.spec.autoscaling) == default


def test_hpa_renders_the_predicted_target() -> None:
    md, plan = _plan({"metric": "requestsRunning", "mode": "hpa"}, workload=WORKLOAD, slo={"tpotMs": 30})
    pool = next(p for p in default_pools() if p.name == plan.pool)
    hpa = next(o for o in render_objects(md, plan, pool) if o["kind"] == "HorizontalPodAutoscaler")
    assert plan.autoscaling_target is not None
    value = hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"]
    assert float(str(value)) == plan.autoscaling_target.value
