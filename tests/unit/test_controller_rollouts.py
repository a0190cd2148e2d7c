"""Rollout tracking and rollback on the workload's annotations, and the pod/node helpers. Pure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modeldeploy.api.base import rfc3339
from modeldeploy.controller import pods as podlib
from modeldeploy.controller.rollout.revisions import (
    FAILED_REVISION,
    READY_REVISIONS,
    ROLLOUT_INPUTS,
    ROLLOUT_STARTED,
    RolloutView,
    downtime_of,
    encode_inputs,
    failure_of,
    parse_failed,
    parse_inputs,
    parse_revisions,
    pod_templates,
    revision_of,
    status_of,
    step,
    with_pod_templates,
    workload_to_apply,
)
from modeldeploy.controller.status import Reason, workload_of
from modeldeploy.decisions.rollout import choose_strategy
from modeldeploy.render import RolloutInputs

HASH = "modeldeploy.dev/pod-template-hash"
POOL = "modeldeploy.dev/pool"
NOW = 1_800_000_000.0
OOM = ("Traceback (most recent call last):\n"
       "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.96 GiB.\n")


def template(rev: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "m"}, "annotations": {HASH: rev}},
            "spec": {"containers": [{"name": "vllm", "image": f"vllm:{rev}"}]}}


def rendered(rev: str, pool: str = "l4") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "m", "annotations": {HASH: rev, POOL: pool}},
            "spec": {"strategy": {"type": "RollingUpdate"}, "template": template(rev)}}


def live(rev: str, *, replicas: int = 1, ready: int = 1, updated: int | None = None,
         current: bool = True, **annotations: str) -> dict[str, Any]:
    obj = rendered(rev)
    obj["metadata"]["annotations"].update(annotations)
    obj["metadata"]["generation"] = 4
    obj["spec"]["replicas"] = replicas
    obj["status"] = {"observedGeneration": 4 if current else 3, "replicas": replicas,
                     "readyReplicas": ready, "availableReplicas": ready,
                     "updatedReplicas": replicas if updated is None else updated}
    return obj


def history(*revs: str) -> str:
    return json.dumps([{"hash": r, "pool": "l4", "templates": [template(r)]} for r in revs])


def pod(name: str, rev: str, *, ready: bool = False, crash: str | None = None,
        pending_gpu: bool = False, node: str | None = "n1") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running" if node else "Pending", "podIP": "10.0.0.1",
                              "conditions": [{"type": "Ready",
                                              "status": "True" if ready else "False"}]}
    if crash is not None:
        status["containerStatuses"] = [{
            "name": "vllm", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": crash}}}]
    if pending_gpu:
        status["conditions"] = [{"type": "PodScheduled", "status": "False",
                                 "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]
    spec: dict[str, Any] = {"containers": [{"name": "vllm", "resources": {
        "requests": {"nvidia.com/gpu": "1"}}}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "annotations": {HASH: rev},
                         "labels": {"modeldeploy.dev/name": "m"}}, "spec": spec, "status": status}


def view(desired: str, current: dict[str, Any] | None, pods: list[dict[str, Any]] | None = None,
         generation: int = 2, auto_rollback: bool = True, deadline: float = 1200) -> RolloutView:
    return RolloutView(desired=rendered(desired), live=current, pods=pods, generation=generation,
                       auto_rollback=auto_rollback, deadline_seconds=deadline, now=NOW)


# --- tracking ------------------------------------------------------------------------------------


def test_a_complete_revision_is_recorded_with_the_templates_the_operator_rendered() -> None:
    started = rfc3339(NOW - 600)
    decided = step(view("a", live("a", **{ROLLOUT_STARTED: started})))
    assert [r.hash for r in decided.history] == ["a"] and decided.history[0].templates == (
        template("a"),)
    assert not decided.fresh_capacity and decided.target.hash == "a" and decided.stuck is None
    applied = workload_to_apply(rendered("a"), decided, RolloutInputs(free_gpus=3))
    notes = applied["metadata"]["annotations"]
    assert json.loads(notes[READY_REVISIONS])[0]["hash"] == "a"
    assert notes[ROLLOUT_STARTED] == started  # carried: the same revision is still live
    assert parse_inputs(applied) == RolloutInputs(free_gpus=3)
    assert FAILED_REVISION not in notes


def test_an_incomplete_revision_is_not_recorded_and_history_is_bounded() -> None:
    assert step(view("a", live("a", ready=0))).history == ()
    full = live("d", **{READY_REVISIONS: history("a", "b", "c")})
    assert [r.hash for r in step(view("d", full)).history] == ["c", "d"]


def test_a_new_template_starts_a_rollout_with_fresh_capacity() -> None:
    current = live("a", **{READY_REVISIONS: history("a"), ROLLOUT_STARTED: rfc3339(NOW - 9999)})
    decided = step(view("b", current))
    assert decided.target.hash == "b" and decided.fresh_capacity and decided.started == NOW
    applied = workload_to_apply(rendered("b"), decided, RolloutInputs())
    assert revision_of(applied) == "b" and applied["metadata"]["annotations"][ROLLOUT_STARTED] \
        == rfc3339(NOW)
    assert step(view("a", None)).fresh_capacity  # a first create observes capacity too


# --- failure and rollback ------------------------------------------------------------------------


def failing(**annotations: str) -> dict[str, Any]:
    return live("b", replicas=1, ready=1, updated=1, current=True,
                **{READY_REVISIONS: history("a"), ROLLOUT_STARTED: rfc3339(NOW - 60),
                   **annotations}) | {"status": {"observedGeneration": 4, "replicas": 2,
                                                 "readyReplicas": 1, "availableReplicas": 1,
                                                 "updatedReplicas": 1}}


def test_a_terminal_failure_of_a_new_revision_rolls_back_to_the_last_ready_one() -> None:
    pods = [pod("old", "a", ready=True), pod("new", "b", crash=OOM)]
    decided = step(view("b", failing(), pods))
    assert decided.rolled_back and decided.target.hash == "a" and decided.fresh_capacity
    assert decided.failed is not None and (decided.failed.hash, decided.failed.reason,
                                           decided.failed.generation) == ("b", "OOMAtLoad", 2)
    applied = workload_to_apply(rendered("b"), decided, RolloutInputs())
    assert pod_templates(applied) == [template("a")] and revision_of(applied) == "a"
    assert applied["metadata"]["annotations"][HASH] == "a"
    assert parse_failed(applied) == decided.failed
    failure = failure_of(decided, True)
    assert failure is not None and failure.reason == Reason.OOM_AT_LOAD
    assert "rolled back to revision a" in failure.message and "CUDA out of memory" in failure.message
    strategy = choose_strategy(1, 1, "auto", 4, 1, True)
    status = status_of(decided, strategy, workload_of(failing()))
    assert (status.current_revision, status.updated_revision, status.reason) == ("a", "a",
                                                                                 "OOMAtLoad")
    assert status.progress == "1/1"


def test_a_rollback_holds_until_the_generation_changes() -> None:
    held = live("a", **{READY_REVISIONS: history("a"), FAILED_REVISION: json.dumps({
        "hash": "b", "generation": 2, "reason": "CrashLoop", "message": "exit code 1: boom",
        "rolledBackTo": "a"})})
    same = step(view("b", held, generation=2))
    assert same.target.hash == "a" and not same.fresh_capacity and not same.rolled_back
    assert same.failed is not None and same.failed.reason == "CrashLoop"
    assert parse_failed(workload_to_apply(rendered("b"), same, RolloutInputs())) == same.failed
    failure = failure_of(same, True)
    assert failure is not None and failure.reason == Reason.CRASH_LOOP
    retried = step(view("b", held, generation=3))
    assert retried.target.hash == "b" and retried.failed is None and retried.fresh_capacity
    assert FAILED_REVISION not in workload_to_apply(rendered("b"), retried, RolloutInputs())[
        "metadata"]["annotations"]
    # A different rendering (an operator upgrade, a new pool) is a new revision: tried.
    assert step(view("c", held, generation=2)).target.hash == "c"


@pytest.mark.parametrize(("auto", "annotations", "why"), [
    (False, {READY_REVISIONS: history("a")}, "autoRollback is false"),
    (True, {}, "no earlier revision was Ready"),
])
def test_a_terminal_failure_without_rollback_stalls_on_the_new_revision(
        auto: bool, annotations: dict[str, str], why: str) -> None:
    current = live("b", ready=0, **{ROLLOUT_STARTED: rfc3339(NOW - 60), **annotations})
    decided = step(view("b", current, [pod("new", "b", crash="RuntimeError: boom\n")],
                        auto_rollback=auto))
    assert not decided.rolled_back and decided.target.hash == "b"
    failure = failure_of(decided, auto)
    assert failure is not None and failure.reason == Reason.CRASH_LOOP and why in failure.message


def test_a_revision_that_was_ready_is_never_rolled_back_and_has_no_deadline() -> None:
    scaling_up = live("a", replicas=2, ready=1, **{READY_REVISIONS: history("a"),
                                                   ROLLOUT_STARTED: rfc3339(NOW - 86400)})
    loading = step(view("a", scaling_up, [pod("a1", "a", ready=True), pod("a2", "a")]))
    assert loading.stuck is None  # a day after the rollout started, a new replica loads
    crashing = step(view("a", scaling_up, [pod("a1", "a", ready=True),
                                           pod("a2", "a", crash=OOM)]))
    assert crashing.stuck is not None and crashing.target.hash == "a" and not crashing.rolled_back
    failure = failure_of(crashing, True)
    assert failure is not None and "rolled back" not in failure.message


def test_a_new_revision_past_its_deadline_is_rolled_back() -> None:
    slow = failing(**{ROLLOUT_STARTED: rfc3339(NOW - 5000)})
    decided = step(view("b", slow, [pod("old", "a", ready=True), pod("new", "b")],
                        deadline=1200))
    assert decided.rolled_back and decided.failed is not None
    assert decided.failed.reason == "ProgressDeadlineExceeded"
    pending = step(view("b", slow, [pod("old", "a", ready=True),
                                    pod("new", "b", pending_gpu=True, node=None)], deadline=1200))
    assert pending.failed is not None and pending.failed.reason == "InsufficientGPU"
    early = step(view("b", failing(), [pod("new", "b", pending_gpu=True, node=None)]))
    assert early.stuck is not None and not early.stuck.terminal and not early.rolled_back
    at_zero = live("b", replicas=0, ready=0, **{READY_REVISIONS: history("a"),
                                                ROLLOUT_STARTED: rfc3339(NOW - 5000)})
    assert step(view("b", at_zero, [])).stuck is None  # scaled to zero: nothing to wait for


def test_in_place_replacement_is_reported_while_it_lasts() -> None:
    in_place = choose_strategy(1, 1, "auto", 0, 1, True)
    rolling = step(view("b", live("b", ready=0, current=False,
                                  **{READY_REVISIONS: history("a")}), []))
    downtime = downtime_of(rolling, in_place, workload_of(live("b", ready=0, current=False)))
    assert downtime is not None and downtime.reason == Reason.ROLLOUT_WITHOUT_SPARE_CAPACITY
    surge = choose_strategy(1, 1, "auto", 4, 1, True)
    assert downtime_of(rolling, surge, workload_of(live("b", ready=0))) is None
    first = step(view("a", live("a", ready=0), []))  # nothing to replace on a first create
    assert downtime_of(first, in_place, workload_of(live("a", ready=0))) is None


def test_progress_counts_ready_pods_of_the_updated_revision() -> None:
    strategy = choose_strategy(2, 1, "auto", 4, 1, True)
    rollout = step(view("b", live("b", replicas=2, ready=2, updated=1,
                                  **{READY_REVISIONS: history("a")}),
                        [pod("a1", "a", ready=True), pod("b1", "b", ready=True), pod("b2", "b")]))
    assert status_of(rollout, strategy, workload_of(live("b", replicas=2))).progress == "1/2"
    stale = live("b", replicas=2, ready=2, current=False)
    assert status_of(step(view("b", stale)), strategy, workload_of(stale)).progress == "0/2"


# --- annotations and templates -------------------------------------------------------------------


def test_malformed_annotations_are_ignored() -> None:
    junk = live("a", **{READY_REVISIONS: "[{", FAILED_REVISION: json.dumps({
        "hash": "b", "generation": 2, "reason": "NotAReason", "message": "x",
        "rolledBackTo": "a"}), ROLLOUT_INPUTS: json.dumps({"freeGPUs": 1}),
        ROLLOUT_STARTED: "yesterday"})
    assert parse_revisions(junk) == [] and parse_failed(junk) is None
    assert parse_inputs(junk) is None
    assert step(view("a", junk)).started == NOW
    odd = live("a", **{READY_REVISIONS: json.dumps([{"hash": 1}, {"hash": "x", "templates": "t"},
                                                    "s"])})
    assert parse_revisions(odd) == []


def test_rollout_inputs_round_trip() -> None:
    for inputs in (RolloutInputs(), RolloutInputs(free_gpus=3, spare_replicas=1,
                                                  scheduled_surge_replicas=2, pool_changed=True,
                                                  replicas=4)):
        assert parse_inputs({"metadata": {"annotations": {
            ROLLOUT_INPUTS: encode_inputs(inputs)}}}) == inputs


def test_leaderworkerset_templates_are_replaced_together() -> None:
    lws = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
           "metadata": {"name": "m-lws", "annotations": {HASH: "b"}},
           "spec": {"leaderWorkerTemplate": {"size": 2, "leaderTemplate": template("b"),
                                             "workerTemplate": template("b")}}}
    back = with_pod_templates(lws, [template("a"), template("a")])
    assert revision_of(back) == "a" and pod_templates(back) == [template("a"), template("a")]
    assert back["spec"]["leaderWorkerTemplate"]["size"] == 2 and revision_of(lws) == "b"


# --- pods and nodes ------------------------------------------------------------------------------


def test_scrape_targets_are_ready_serving_pods_with_an_ip() -> None:
    leader = pod("m-lws-0", "a", ready=True)
    leader["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/worker-index"] = "0"
    worker = pod("m-lws-0-1", "a", ready=True)
    worker["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/worker-index"] = "1"
    leaving = pod("old", "a", ready=True)
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    no_ip = pod("fresh", "a", ready=True)
    del no_ip["status"]["podIP"]
    all_pods = [pod("b", "a", ready=True), pod("loading", "a"), leaving, no_ip, leader]
    assert podlib.scrape_targets(all_pods, "Deployment") == [("b", "10.0.0.1"),
                                                             ("m-lws-0", "10.0.0.1")]
    assert podlib.scrape_targets([leader, worker], "LeaderWorkerSet") == [("m-lws-0", "10.0.0.1")]


def test_free_gpus_per_node() -> None:
    def node(name: str, gpus: int, product: str = "NVIDIA-L4",
             cordoned: bool = False) -> dict[str, Any]:
        return {"metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
                "spec": {"unschedulable": cordoned},
                "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}}}

    leaving = pod("leaving", "a", node="n1")
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"  # still holds its GPU
    done = pod("done", "a", node="n2")
    done["status"]["phase"] = "Succeeded"
    nodes = [node("n1", 4), node("n2", 4), node("n3", 8, "NVIDIA-H100"), node("n4", 4, cordoned=True)]
    pods = [pod("x", "a", node="n1"), leaving, done, pod("pending", "a", node=None)]
    assert podlib.free_gpus_per_node(nodes, pods, {"nvidia.com/gpu.product": "NVIDIA-L4"}) == [2, 4]
    assert podlib.bound_replicas(pods, 1) == 1  # only x: leaving is going, pending holds nothing
