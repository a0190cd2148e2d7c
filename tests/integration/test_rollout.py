"""Capacity-aware rollouts and rollback on the emulator.

The test plays the scheduler, the kubelet and the Deployment controller: GPU Nodes with
allocatable `nvidia.com/gpu`, pods bound to them (their GPU requests are what is not free), pod
and Deployment status. A failing revision's pod carries the termination message the real vLLM
simulator printed when it crashed at load.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .emulator import EmulatorServer
from .fleet import (
    crashed_simulator,
    deployment_status,
    gpu_node,
    gpu_pod,
    pod_crashing,
    pod_running,
    set_node_gpus,
)
from .harness import (
    Cluster,
    OperatorThread,
    eventually,
    fast_config,
    model_deployment,
    operator_writes,
    quiet_period,
    running_operator,
    settle,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HASH = "modeldeploy.dev/pod-template-hash"


@pytest.fixture()
def operator(emulator_server: EmulatorServer, kubeconfig: Path,
             cluster: Cluster) -> Iterator[OperatorThread]:
    with running_operator(emulator_server, cluster, fast_config(kubeconfig, pool_status_interval=30.0)) as thread:
        yield thread


def revision(cluster: Cluster, name: str = "m") -> str:
    return str(cluster.deployment(name).spec.template.metadata.annotations[HASH])


def rollout(cluster: Cluster, name: str = "m") -> dict[str, Any]:
    return dict((cluster.md(name).get("status") or {}).get("rollout") or {})


def strategy(cluster: Cluster, name: str = "m") -> tuple[int, int]:
    update = cluster.deployment(name).spec.strategy.rolling_update
    return int(update.max_surge), int(update.max_unavailable)


def serving(cluster: Cluster, name: str = "m", replicas: int = 1, node: str = "n1") -> str:
    """The first revision is up: its pods are bound and Ready, the Deployment available; the
    operator has recorded it as the revision to return to."""
    eventually(lambda: cluster.deployment(name), what="deployment")
    first = revision(cluster, name)
    for i in range(replicas):
        gpu_pod(cluster.core, cluster.ns, f"{name}-{first[:5]}-{i}", node, model=name,
                revision=first)
        pod_running(cluster.core, cluster.ns, f"{name}-{first[:5]}-{i}", f"127.0.0.{i + 2}")
    deployment_status(cluster.api, cluster.ns, name, replicas=replicas, ready=replicas)
    eventually(lambda: rollout(cluster, name).get("currentRevision") == first,
               what="revision recorded as Ready")
    cluster.wait_condition(name, "Ready", "True")
    return first


def new_revision(cluster: Cluster, old: str, patch: dict[str, Any], name: str = "m") -> str:
    cluster.patch_md(name, {"spec": patch})
    return str(eventually(lambda: (h := revision(cluster, name)) != old and h,
                          what="new pod template"))


def test_rollout_with_spare_gpus_surges(operator: OperatorThread, cluster: Cluster) -> None:
    gpu_node(cluster.core, "n1", gpus=4)
    cluster.create(model_deployment("m"))
    first = serving(cluster)
    second = new_revision(cluster, first, {"serving": {"maxModelLen": 4096}})
    assert strategy(cluster) == (1, 0)  # 3 GPUs free, 1 per replica: surge, never go down
    status = eventually(lambda: (r := rollout(cluster)).get("updatedRevision") == second and r,
                        what="rollout status")
    assert (status["currentRevision"], status["strategy"], status["reason"]) == (
        first, "Surge", "SurgeWithSpareCapacity")
    assert status["progress"] == "0/1"
    assert cluster.conditions("m")["Reconciling"][0] == "True"
    # The surge pod comes up on a spare GPU; the old one goes.
    gpu_pod(cluster.core, cluster.ns, "m-new-0", "n1", model="m", revision=second)
    pod_running(cluster.core, cluster.ns, "m-new-0", "127.0.0.9")
    cluster.core.delete_namespaced_pod(f"m-{first[:5]}-0", cluster.ns)
    deployment_status(cluster.api, cluster.ns, "m", replicas=1, ready=1)
    cluster.wait_condition("m", "Ready", "True")
    done = eventually(lambda: (r := rollout(cluster)).get("currentRevision") == second and r,
                      what="new revision recorded")
    assert done["progress"] == "1/1" and done["updatedRevision"] == second


def test_rollout_without_spare_gpus_replaces_the_only_replica_in_place(
        operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer) -> None:
    gpu_node(cluster.core, "n1", gpus=1)
    cluster.create(model_deployment("m"))
    first = serving(cluster)
    second = new_revision(cluster, first, {"serving": {"maxModelLen": 4096}})
    assert strategy(cluster) == (0, 1)
    *_, message = cluster.wait_condition("m", "Reconciling", "True",
                                         reason="RolloutWithoutSpareCapacity")
    assert "replacing the only replica in place" in message
    assert cluster.conditions("m")["Ready"][0] == "False"
    status = rollout(cluster)
    assert (status["strategy"], status["reason"], status["updatedRevision"]) == (
        "InPlace", "RolloutWithoutSpareCapacity", second)
    # GPUs appearing mid-rollout do not rewrite the workload: its strategy is the rollout's.
    mark = emulator_server.emulator.log_mark()
    set_node_gpus(cluster.core, "n1", 8)
    quiet_period(emulator_server, 1.5)
    applies = [w for w in operator_writes(emulator_server.emulator.requests_since(mark))
               if w.resource == "deployments"]
    assert applies == [] and strategy(cluster) == (0, 1)


def test_failed_rollout_rolls_back_and_stalls_until_the_spec_changes(
        operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer) -> None:
    crash = crashed_simulator("oom")  # vLLM's CUDA OOM at load, from the real simulator
    assert crash.returncode == 1 and "CUDA out of memory" in crash.stderr
    gpu_node(cluster.core, "n1", gpus=4)
    created = cluster.create(model_deployment("m"))
    first = serving(cluster)
    second = new_revision(cluster, first, {"serving": {"maxModelLen": 4096}})
    user_spec = cluster.md("m")["spec"]

    # The surge pod of the new revision crashes at load and backs off.
    gpu_pod(cluster.core, cluster.ns, "m-new-0", "n1", model="m", revision=second)
    pod_crashing(cluster.core, cluster.ns, "m-new-0", "127.0.0.9", crash.returncode, crash.stderr)
    deployment_status(cluster.api, cluster.ns, "m", replicas=2, ready=1, updated=1)

    eventually(lambda: revision(cluster) == first, what="rolled back to the Ready revision")
    _, reason, message = cluster.wait_condition("m", "Stalled", "True")
    assert reason == "OOMAtLoad"
    assert f"rolled back to revision {first}" in message and "CUDA out of memory" in message
    dep = cluster.deployment("m")
    failed = json.loads(dep.metadata.annotations["modeldeploy.dev/failed-revision"])
    assert (failed["hash"], failed["reason"], failed["rolledBackTo"]) == (second, "OOMAtLoad",
                                                                          first)
    status = rollout(cluster)
    assert (status["currentRevision"], status["updatedRevision"], status["reason"]) == (
        first, first, "OOMAtLoad")
    now = cluster.md("m")
    assert now["spec"] == user_spec and now["metadata"]["generation"] == 2
    assert created["spec"] != user_spec  # the user's change stays; only the child went back
    eventually(lambda: any(e.reason == "OOMAtLoad" and e.type == "Warning"
                           for e in cluster.core.list_namespaced_event(cluster.ns).items),
               what="warning event")

    # The Deployment controller replaces the failed pod by the old revision's.
    cluster.core.delete_namespaced_pod("m-new-0", cluster.ns)
    deployment_status(cluster.api, cluster.ns, "m", replicas=1, ready=1)
    eventually(lambda: cluster.md("m")["status"]["replicas"] == 1, what="status settled")
    # Not retried: the failed revision is never re-applied while the spec is unchanged.
    settle(emulator_server)
    assert operator_writes(quiet_period(emulator_server, 2.5)) == []
    assert revision(cluster) == first
    assert cluster.conditions("m")["Stalled"][:2] == ("True", "OOMAtLoad")

    # A new spec (a new generation) is tried again.
    third = new_revision(cluster, first, {"serving": {"maxModelLen": 2048}})
    assert third not in (first, second)
    cluster.wait_condition("m", "Stalled", "False")
    assert "modeldeploy.dev/failed-revision" not in (
        cluster.deployment("m").metadata.annotations or {})


def test_crash_loop_without_auto_rollback_stalls_on_the_new_revision(
        operator: OperatorThread, cluster: Cluster) -> None:
    crash = crashed_simulator("crash")
    gpu_node(cluster.core, "n1", gpus=4)
    cluster.create(model_deployment("m", rollout={"autoRollback": False}))
    first = serving(cluster)
    second = new_revision(cluster, first, {"serving": {"maxModelLen": 4096}})
    gpu_pod(cluster.core, cluster.ns, "m-new-0", "n1", model="m", revision=second)
    pod_crashing(cluster.core, cluster.ns, "m-new-0", "127.0.0.9", crash.returncode, crash.stderr)
    deployment_status(cluster.api, cluster.ns, "m", replicas=2, ready=1, updated=1)
    _, reason, message = cluster.wait_condition("m", "Stalled", "True")
    assert reason == "CrashLoop" and "autoRollback is false" in message
    assert revision(cluster) == second


def test_a_restart_mid_rollout_resumes_from_the_workloads_annotations(
        operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer) -> None:
    gpu_node(cluster.core, "n1", gpus=4)
    cluster.create(model_deployment("m"))
    first = serving(cluster)
    second = new_revision(cluster, first, {"serving": {"maxModelLen": 4096}})
    assert strategy(cluster) == (1, 0)
    settle(emulator_server)
    operator.stop()  # mid-rollout: the new revision has no pod yet
    # Meanwhile another pod takes the spare GPUs; the rollout keeps the strategy it started with.
    gpu_pod(cluster.core, cluster.ns, "other", "n1", gpus=3)
    mark = emulator_server.emulator.log_mark()
    second_operator = OperatorThread(operator.config).start()
    try:
        eventually(lambda: second_operator.passes() >= 2, what="passes after the restart")
        assert [w for w in operator_writes(emulator_server.emulator.requests_since(mark))
                if w.resource == "deployments"] == []
        assert revision(cluster) == second and strategy(cluster) == (1, 0)
        status = rollout(cluster)
        assert (status["currentRevision"], status["updatedRevision"]) == (first, second)
        gpu_pod(cluster.core, cluster.ns, "m-new-0", "n1", model="m", revision=second)
        pod_running(cluster.core, cluster.ns, "m-new-0", "127.0.0.9")
        cluster.core.delete_namespaced_pod(f"m-{first[:5]}-0", cluster.ns)
        deployment_status(cluster.api, cluster.ns, "m", replicas=1, ready=1)
        eventually(lambda: rollout(cluster).get("currentRevision") == second,
                   what="the resumed rollout completed")
        cluster.wait_condition("m", "Ready", "True")
    finally:
        second_operator.stop()
