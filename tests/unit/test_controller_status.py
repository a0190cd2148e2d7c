"""ModelDeployment status: kstatus conditions, typed reasons, transition times, patches."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from modeldeploy.api import ModelDeploymentStatus
from modeldeploy.controller.pods import group_size, recount
from modeldeploy.controller.status import (
    Failure,
    Observation,
    Reason,
    capacity_overdue,
    compute_status,
    condition,
    parse_status,
    pending_gpu,
    pending_gpu_message,
    status_patch,
    workload_of,
)
from modeldeploy.planner import Plan
from modeldeploy.render.context import HASH_ANNOTATION

T0, T1 = "2026-11-23T10:00:00Z", "2026-11-23T10:05:00Z"


def plan(**overrides: Any) -> Plan:
    fields: dict[str, Any] = dict(
        name="m", model="org/m", feasible=True, pool="l4", gpu_product="NVIDIA-L4",
        tensor_parallel_size=1, pipeline_parallel_size=1, gpus_per_replica=1,
        nodes_per_replica=1, gpus_per_pod=1, max_model_len=8192, kv_sequences=2,
        kv_cache_tokens=40000, cost_per_hour=0.8, reason="cheapest")
    fields.update(overrides)
    return Plan(**fields)


def deployment(replicas: int = 1, ready: int = 0, updated: int = 0, generation: int = 1,
               observed: int | None = 1, conditions: list[dict[str, str]] | None = None,
               ) -> dict[str, Any]:
    status: dict[str, Any] = {"replicas": replicas, "readyReplicas": ready,
                              "updatedReplicas": updated, "availableReplicas": ready,
                              "conditions": conditions or []}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"kind": "Deployment", "metadata": {"generation": generation},
            "spec": {"replicas": replicas}, "status": status}


def triple(status: ModelDeploymentStatus) -> list[tuple[str, str, str]]:
    return [(c.type, c.status, c.reason) for c in status.conditions]


def test_first_visit_sets_all_three_conditions() -> None:
    obs = Observation(generation=1, plan=plan(), failure=None, workload=None)
    status = compute_status(None, obs, T0)
    assert triple(status) == [("Ready", "False", "Progressing"),
                              ("Reconciling", "True", "Progressing"),
                              ("Stalled", "False", "Progressing")]
    assert all(c.observed_generation == 1 and c.last_transition_time == T0
               for c in status.conditions)
    assert status.observed_generation == 1
    assert status.plan is not None and status.plan.pool == "l4" and status.plan.reason


def test_pods_not_ready_then_available() -> None:
    waiting = Observation(1, plan(), None, workload_of(deployment(ready=0, updated=1)),
                          selector="a=b", endpoint="http://m.ns.svc:8000/v1")
    first = compute_status(None, waiting, T0)
    assert triple(first)[0] == ("Ready", "False", "WaitingForPods")
    assert condition(first, "Reconciling").status == "True"  # type: ignore[union-attr]
    assert (first.replicas, first.ready_replicas, first.updated_replicas) == (1, 0, 1)
    assert first.endpoint == "http://m.ns.svc:8000/v1" and first.selector == "a=b"
    ready = compute_status(first, Observation(1, plan(), None,
                                              workload_of(deployment(ready=1, updated=1))), T1)
    assert triple(ready) == [("Ready", "True", "Available"), ("Reconciling", "False", "Available"),
                             ("Stalled", "False", "Available")]
    times = {c.type: c.last_transition_time for c in ready.conditions}
    assert times == {"Ready": T1, "Reconciling": T1, "Stalled": T0}  # Stalled stayed False


def test_stale_workload_status_is_not_ready() -> None:
    wl = workload_of(deployment(ready=1, updated=1, generation=2, observed=1))
    status = compute_status(None, Observation(2, plan(), None, wl), T0)
    assert triple(status)[0] == ("Ready", "False", "Progressing")


@pytest.mark.parametrize("reason", [Reason.INVALID_SPEC, Reason.MODEL_UNRESOLVED,
                                    Reason.NO_FEASIBLE_LAYOUT, Reason.POOL_NOT_FOUND,
                                    Reason.MULTI_NODE_UNAVAILABLE, Reason.APPLY_FAILED])
def test_failures_stall_with_their_reason(reason: Reason) -> None:
    obs = Observation(3, None, Failure(reason, "spec.serving.maxModelLen: too small"), None)
    status = compute_status(None, obs, T0)
    assert triple(status) == [("Ready", "False", reason), ("Reconciling", "False", reason),
                              ("Stalled", "True", reason)]
    assert "spec.serving.maxModelLen" in condition(status, "Stalled").message  # type: ignore[union-attr]


UNSCHEDULABLE = {"status": {"phase": "Pending", "conditions": [{
    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
    "lastTransitionTime": "2026-11-23T10:00:00Z",
    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}}


def test_waiting_for_gpus_is_reconciling_until_the_deadline() -> None:
    """A node being provisioned (HPA step 1→2, a pool scaled to zero) is progress, not a
    failure: Reconciling with the scheduler's message; Stalled only past the deadline."""
    pods = [{"status": {"phase": "Running"}}, UNSCHEDULABLE]
    pending = pending_gpu(pods)
    assert pending is not None and "Insufficient nvidia.com/gpu" in pending.message
    assert pending_gpu_message(pods) == pending.message
    t0 = pending.since
    assert t0 is not None
    assert not capacity_overdue(pending, 600, t0 + 599)
    waiting = Observation(1, plan(), None, workload_of(deployment()),
                          pending_gpu_message=pending.message)
    status = compute_status(None, waiting, T0)
    assert triple(status) == [("Ready", "False", "WaitingForGPUs"),
                              ("Reconciling", "True", "WaitingForGPUs"),
                              ("Stalled", "False", "WaitingForGPUs")]
    assert "Insufficient nvidia.com/gpu" in condition(status, "Reconciling").message  # type: ignore[union-attr]
    assert capacity_overdue(pending, 600, t0 + 601)
    overdue = dataclasses.replace(waiting, pending_gpu_overdue=True)
    assert triple(compute_status(None, overdue, T0))[2] == ("Stalled", "True", "InsufficientGPU")
    cpu_only = [{"status": {"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "message": "Insufficient cpu"}]}}]
    assert pending_gpu_message(cpu_only) is None
    scaled_to_zero = [{"status": {"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/4 nodes are available: 4 node(s) didn't match Pod's node "
                   "affinity/selector."}]}}]
    assert pending_gpu_message(scaled_to_zero) is not None


def test_surge_pod_ready_beside_the_old_one_is_not_ready() -> None:
    """An image change with maxSurge 1: replicas 2, updated 1, ready 1 (the old pod). Ready
    only once the old pod is gone."""
    surge = deployment(replicas=1, ready=1, updated=1)
    surge["status"]["replicas"] = 2
    status = compute_status(None, Observation(1, plan(), None, workload_of(surge)), T0)
    assert triple(status)[0] == ("Ready", "False", "WaitingForPods")
    assert condition(status, "Reconciling").status == "True"  # type: ignore[union-attr]


def test_leaderworkerset_without_observed_generation_is_recounted_from_pods() -> None:
    """LWS before v0.9 reports no status.observedGeneration: without the pods its counts say
    nothing (not current, never Ready); recounted from the pods of the live revision."""
    lws = {"kind": "LeaderWorkerSet", "metadata": {"generation": 3},
           "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 2}},
           "status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}}
    wl = workload_of(lws)
    assert wl is not None and wl.generation_unknown and not wl.current

    def pod(revision: str, is_ready: bool) -> dict[str, Any]:
        return {"metadata": {"annotations": {HASH_ANNOTATION: revision}},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True" if is_ready else "False"}]}}

    assert group_size(lws) == 2
    done = recount(wl, [pod("b", True), pod("b", True)], "b", 2)
    assert done.current and (done.ready, done.updated, done.replicas) == (1, 1, 1)
    assert triple(compute_status(None, Observation(3, plan(), None, done), T0))[0] == \
        ("Ready", "True", "Available")
    half = recount(wl, [pod("b", True), pod("b", False), pod("a", True), pod("a", True)], "b", 2)
    assert (half.ready, half.updated, half.replicas) == (0, 1, 2)
    assert triple(compute_status(None, Observation(3, plan(), None, half), T0))[0][1] == "False"
    deployment_wl = workload_of(deployment(observed=None))
    assert deployment_wl is not None and not deployment_wl.generation_unknown


def test_progress_deadline_exceeded_stalls() -> None:
    wl = workload_of(deployment(conditions=[{"type": "Progressing", "status": "False",
                                             "reason": "ProgressDeadlineExceeded"}]))
    status = compute_status(None, Observation(1, plan(), None, wl), T0)
    assert triple(status)[2] == ("Stalled", "True", "ProgressDeadlineExceeded")


def test_scaled_to_zero_is_ready() -> None:
    status = compute_status(None, Observation(1, plan(), None, workload_of(deployment(0))), T0)
    assert triple(status)[0] == ("Ready", "True", "ScaledToZero")


def test_transition_time_changes_only_when_status_changes() -> None:
    failing = Observation(1, None, Failure(Reason.MODEL_UNRESOLVED, "hub down"), None)
    first = compute_status(None, failing, T0)
    other = Observation(2, None, Failure(Reason.NO_FEASIBLE_LAYOUT, "too big"), None)
    second = compute_status(first, other, T1)
    assert {c.last_transition_time for c in second.conditions} == {T0}  # same statuses
    assert condition(second, "Stalled").reason == "NoFeasibleLayout"  # type: ignore[union-attr]
    assert all(c.observed_generation == 2 for c in second.conditions)


def test_recomputing_an_unchanged_world_gives_an_equal_status_and_no_patch() -> None:
    obs = Observation(1, plan(), None, workload_of(deployment(ready=1, updated=1)),
                      selector="s", endpoint="e")
    first = compute_status(None, obs, T0)
    written = first.wire()
    again = compute_status(parse_status(written), obs, T1)
    assert again == first
    assert status_patch(written, again) is None


def test_status_patch_touches_only_owned_fields() -> None:
    obs = Observation(1, None, Failure(Reason.INVALID_SPEC, "x"), None)
    new = compute_status(None, obs, T0)
    observed = {"rollout": {"strategy": "Surge"}, "endpoint": "old", "replicas": 2,
                "someoneElses": {"x": 1}}
    patch = status_patch(observed, new)
    assert patch is not None
    assert patch["endpoint"] is None and patch["replicas"] is None  # gone now
    # rollout and autoscaling are recomputed every pass too: nothing to report without a workload
    assert patch["rollout"] is None and "autoscaling" not in patch
    assert "someoneElses" not in patch and patch["observedGeneration"] == 1


def test_unreadable_previous_status_keeps_conditions_if_it_can() -> None:
    good = compute_status(None, Observation(1, None, Failure(Reason.INVALID_SPEC, "x"), None),
                          T0).wire()
    broken = {**good, "replicas": "many"}
    parsed = parse_status(broken)
    assert parsed is not None and parsed.conditions and parsed.replicas is None
    assert parse_status({"conditions": "nope"}) is None and parse_status(None) is None
