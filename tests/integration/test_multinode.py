"""Multi-node models on the emulator: a LeaderWorkerSet rolls back and scales up and down like
a Deployment, and a layout change between the two, either way, surges when the GPUs allow it
and otherwise steps down with a status reason.

The test plays the LeaderWorkerSet controller, the scheduler and the kubelet: a group is a
leader pod (worker index 0, the one serving HTTP and /metrics) and its workers, each bound to
its own 8-GPU node; the LeaderWorkerSet's status counts Ready groups.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from modeldeploy.controller.decide import names_of
from modeldeploy.controller.rollout.revisions import revision_of

from .emulator import LWS_KIND, EmulatorServer
from .fleet import (
    SimFleet,
    crashed_simulator,
    deployment_status,
    gpu_node,
    gpu_pod,
    pod_crashing,
    pod_running,
)
from .harness import (
    Cluster,
    OperatorThread,
    assert_rbac_allows,
    eventually,
    fast_config,
    gpu_pool,
    model_deployment,
    operator_writes,
    quiet_period,
    settle,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
L4 = {"nvidia.com/gpu.product": "NVIDIA-L4"}
BIG = "meta-llama/Llama-3.1-405B-Instruct"  # two 8 x H100 nodes per replica
MOVING = "meta-llama/Llama-3.3-70B-Instruct"  # one H100 node, or two 4 x L4 nodes
WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
SCRAPE = 0.5
WINDOW = 2  # scaleDownStabilizationSeconds of the autoscaled model


def h100_pool() -> dict[str, Any]:
    return gpu_pool("h100", product="NVIDIA-H100-80GB-HBM3", memory=79.11, gpus=8, price=6.88)


@pytest.fixture()
def operator(emulator_server: EmulatorServer, kubeconfig: Path, cluster: Cluster,
             fleet: SimFleet) -> Iterator[OperatorThread]:
    emulator_server.emulator.register(LWS_KIND)  # the LeaderWorkerSet CRD is installed
    cluster.create_pool(h100_pool())
    cluster.create_pool(gpu_pool("l4", gpus=4))
    config = fast_config(kubeconfig, scrape_interval=SCRAPE, resync_interval=2.0,
                         pool_status_interval=30.0, vllm_metrics_port=fleet.port,
                         scrape_timeout=1.0)
    thread = OperatorThread(config).start()
    try:
        yield thread
    finally:
        thread.stop()
        assert_rbac_allows(emulator_server)


def lws(cluster: Cluster, name: str) -> dict[str, Any] | None:
    custom = CustomObjectsApi(cluster.api)
    try:
        return custom.get_namespaced_custom_object(  # type: ignore[no-any-return]
            "leaderworkerset.x-k8s.io", "v1", cluster.ns, "leaderworkersets",
            names_of(name).leader_worker_set)
    except Exception:
        return None


def lws_status(cluster: Cluster, name: str, *, replicas: int, ready: int,
               updated: int | None = None) -> None:
    """What the LeaderWorkerSet controller writes (v0.9+: with observedGeneration).

    Like the controller, it reports on the generation it read; if the operator changed the spec
    meanwhile, it reports again on the new one (else the status stays stale for ever, since the
    emulator runs no controller that would catch up)."""
    custom = CustomObjectsApi(cluster.api)

    def report() -> bool:
        obj = lws(cluster, name)
        assert obj is not None
        generation = obj["metadata"]["generation"]
        custom.patch_namespaced_custom_object_status(
            "leaderworkerset.x-k8s.io", "v1", cluster.ns, "leaderworkersets",
            obj["metadata"]["name"], {"status": {
                "observedGeneration": generation, "replicas": replicas, "readyReplicas": ready,
                "updatedReplicas": replicas if updated is None else updated}})
        after = lws(cluster, name)
        return after is not None and after["metadata"]["generation"] == generation

    eventually(report, what=f"{name} LeaderWorkerSet status on its latest generation")


def group(cluster: Cluster, name: str, index: int, revision: str, nodes: tuple[str, ...],
          ip: str, gpus: int = 8, crash: Any = None) -> None:
    """One replica: a leader and its workers, one pod per node, all Running and Ready (or the
    leader crashing at load)."""
    for worker, node in enumerate(nodes):
        pod = f"{name}-{revision[:5]}-{index}-{worker}"
        gpu_pod(cluster.core, cluster.ns, pod, node, model=name, revision=revision, gpus=gpus,
                labels={WORKER_INDEX: str(worker)})
        pod_ip = ip if worker == 0 else f"{ip}{worker}"
        if crash is not None and worker == 0:
            pod_crashing(cluster.core, cluster.ns, pod, pod_ip, crash.returncode, crash.stderr)
        else:
            pod_running(cluster.core, cluster.ns, pod, pod_ip)


def current(cluster: Cluster, name: str) -> str | None:
    return revision_of(lws(cluster, name))


def rollout(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict((cluster.md(name).get("status") or {}).get("rollout") or {})


def serving_lws(cluster: Cluster, name: str, nodes: tuple[str, ...], ip: str) -> str:
    first = str(eventually(lambda: current(cluster, name), what="LeaderWorkerSet"))
    group(cluster, name, 0, first, nodes, ip)
    lws_status(cluster, name, replicas=1, ready=1)
    eventually(lambda: rollout(cluster, name).get("currentRevision") == first,
               what="revision recorded as Ready")
    cluster.wait_condition(name, "Ready", "True")
    return first


def test_a_failed_leaderworkerset_rollout_rolls_back(
        operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer) -> None:
    crash = crashed_simulator("oom")
    for i in range(4):
        gpu_node(cluster.core, f"h{i}", gpus=8, labels=H100)
    cluster.create(model_deployment("big", model=BIG, placement={"pools": ["h100"]}))
    first = serving_lws(cluster, "big", ("h0", "h1"), "127.0.0.2")
    assert cluster.deployment("big") is None
    cluster.patch_md("big", {"spec": {"serving": {"maxModelLen": 4096}}})
    second = str(eventually(lambda: (h := current(cluster, "big")) != first and h,
                            what="new revision"))
    # The operator writes the new revision in more than one request (template, then the surge);
    # the LeaderWorkerSet controller reports on the spec it last saw, so wait for the last one:
    # a status written against an older generation is never "current" and nothing rolls back.
    settle(emulator_server)
    # The new group's leader dies at load (CUDA OOM) on the spare nodes.
    group(cluster, "big", 1, second, ("h2", "h3"), "127.0.0.3", crash=crash)
    lws_status(cluster, "big", replicas=2, ready=1, updated=1)
    eventually(lambda: current(cluster, "big") == first, what="rolled back")
    _, reason, message = cluster.wait_condition("big", "Stalled", "True")
    assert reason == "OOMAtLoad" and f"rolled back to revision {first}" in message
    obj = lws(cluster, "big")
    assert obj is not None
    failed = json.loads(obj["metadata"]["annotations"]["modeldeploy.dev/failed-revision"])
    assert (failed["hash"], failed["rolledBackTo"]) == (second, first)
    # Not retried while the spec is unchanged.
    for worker in range(2):
        cluster.core.delete_namespaced_pod(f"big-{second[:5]}-1-{worker}", cluster.ns)
    lws_status(cluster, "big", replicas=1, ready=1)
    # The operator answers the new counts with one status write; on a loaded machine that can
    # come later than settle's quiet window, so wait for it to be seen before asking for quiet.
    eventually(lambda: (cluster.md("big").get("status") or {}).get("replicas") == 1,
               what="status.replicas 1 recorded")
    settle(emulator_server)
    assert operator_writes(quiet_period(emulator_server, 2.5)) == []
    assert current(cluster, "big") == first


def test_the_builtin_autoscaler_scales_a_leaderworkerset_up_and_down_by_its_leaders(
        operator: OperatorThread, cluster: Cluster, fleet: SimFleet,
        emulator_server: EmulatorServer) -> None:
    for i in range(4):
        gpu_node(cluster.core, f"h{i}", gpus=8, labels=H100)
    cluster.create(model_deployment("big", model=BIG, placement={"pools": ["h100"]},
                                    autoscaling={"minReplicas": 1, "maxReplicas": 2,
                                                 "metric": "requestsWaiting", "target": 2,
                                                 "scaleDownStabilizationSeconds": WINDOW}))
    fleet.start_sim("127.0.0.2")
    first = serving_lws(cluster, "big", ("h0", "h1"), "127.0.0.2")
    mark = emulator_server.emulator.log_mark()
    fleet.load("127.0.0.2", 6)  # one runs, five wait at the leader
    eventually(lambda: (lws(cluster, "big") or {}).get("spec", {}).get("replicas") == 2,
               timeout=15, what="scaled up to two groups")
    writes = [r for r in operator_writes(emulator_server.emulator.requests_since(mark))
              if r.resource == "leaderworkersets"]
    assert [(r.subresource, r.content_type) for r in writes] == [
        ("scale", "application/merge-patch+json")]
    status = eventually(lambda: (s := (cluster.md("big").get("status") or {})
                                 .get("autoscaling") or {}).get("lastDecision") and s,
                        what="autoscaling status")
    assert (status["lastDecision"]["from"], status["lastDecision"]["to"]) == (1, 2)
    assert current(cluster, "big") == first  # scaling is not a rollout

    # The LeaderWorkerSet controller brings the second group up on the spare nodes; its leader
    # serves metrics too. The load ends: after the window, back to one group through /scale.
    fleet.start_sim("127.0.0.3")
    group(cluster, "big", 1, first, ("h2", "h3"), "127.0.0.3")
    lws_status(cluster, "big", replicas=2, ready=2)
    mark = emulator_server.emulator.log_mark()
    fleet.stop_load()
    eventually(lambda: (lws(cluster, "big") or {}).get("spec", {}).get("replicas") == 1,
               timeout=WINDOW + 15, what="scaled down to one group")
    writes = [r for r in operator_writes(emulator_server.emulator.requests_since(mark))
              if r.resource == "leaderworkersets"]
    assert [(r.subresource, r.content_type) for r in writes] == [
        ("scale", "application/merge-patch+json")]
    down = eventually(lambda: (d := ((cluster.md("big").get("status") or {}).get("autoscaling")
                                     or {}).get("lastDecision") or {}).get("to") == 1 and d,
                      what="status of the scale-down")
    assert (down["from"], down["to"], down["reason"]) == (2, 1, "ScaledDown")
    assert current(cluster, "big") == first


def moving_model(cluster: Cluster, pool: str) -> None:
    """Model "m" in `pool`, with room for both layouts: one free 8 x H100 node (a Deployment)
    and two free 4 x L4 nodes (a LeaderWorkerSet group)."""
    gpu_node(cluster.core, "h0", gpus=8, labels=H100)
    for i in range(2):
        gpu_node(cluster.core, f"l{i}", gpus=4, labels=L4)
    cluster.create(model_deployment("m", model=MOVING, placement={"pools": [pool]}))


def test_a_layout_change_to_leaderworkerset_surges_then_removes_the_deployment(
        operator: OperatorThread, cluster: Cluster) -> None:
    moving_model(cluster, "h100")
    eventually(lambda: cluster.deployment("m"), what="deployment")
    deployment_status(cluster.api, cluster.ns, "m", replicas=1, ready=1)
    cluster.wait_condition("m", "Ready", "True")
    # Two nodes of 4 L4 each are free: the new group fits beside the serving Deployment.
    cluster.patch_md("m", {"spec": {"placement": {"pools": ["l4"]}}})
    new = str(eventually(lambda: current(cluster, "m"), what="LeaderWorkerSet"))
    time.sleep(1.0)  # a few passes (resync 2 s, child events at once)
    assert cluster.deployment("m") is not None, "the Deployment serves until the group is Ready"
    assert cluster.conditions("m")["Ready"][0] == "False"
    group(cluster, "m", 0, new, ("l0", "l1"), "127.0.0.4", gpus=4)
    lws_status(cluster, "m", replicas=1, ready=1)
    eventually(lambda: cluster.deployment("m") is None, what="old Deployment removed")
    cluster.wait_condition("m", "Ready", "True")


def test_a_layout_change_without_spare_gpus_steps_down_with_a_reason(
        operator: OperatorThread, cluster: Cluster) -> None:
    gpu_node(cluster.core, "h0", gpus=8, labels=H100)
    gpu_node(cluster.core, "l0", gpus=4, labels=L4)  # half of what the new group needs
    cluster.create(model_deployment("m", model=MOVING, placement={"pools": ["h100"]}))
    eventually(lambda: cluster.deployment("m"), what="deployment")
    deployment_status(cluster.api, cluster.ns, "m", replicas=1, ready=1)
    cluster.wait_condition("m", "Ready", "True")
    cluster.patch_md("m", {"spec": {"placement": {"pools": ["l4"]}}})
    eventually(lambda: cluster.deployment("m") is None, what="old Deployment removed first")
    assert current(cluster, "m") is not None
    *_, message = cluster.wait_condition("m", "Reconciling", "True",
                                         reason="LayoutChangeWithoutSpareCapacity")
    assert "Deployment to LeaderWorkerSet" in message


def test_a_layout_change_to_deployment_surges_then_removes_the_leaderworkerset(
        operator: OperatorThread, cluster: Cluster) -> None:
    moving_model(cluster, "l4")
    old = str(eventually(lambda: current(cluster, "m"), what="LeaderWorkerSet"))
    assert cluster.deployment("m") is None
    group(cluster, "m", 0, old, ("l0", "l1"), "127.0.0.4", gpus=4)
    lws_status(cluster, "m", replicas=1, ready=1)
    cluster.wait_condition("m", "Ready", "True")
    # The H100 node is free: the Deployment's replica fits beside the serving group.
    cluster.patch_md("m", {"spec": {"placement": {"pools": ["h100"]}}})
    eventually(lambda: cluster.deployment("m"), what="deployment")
    time.sleep(1.0)  # a few passes (resync 2 s, child events at once)
    assert lws(cluster, "m") is not None, "the group serves until the Deployment is Ready"
    assert cluster.conditions("m")["Ready"][0] == "False"
    deployment_status(cluster.api, cluster.ns, "m", replicas=1, ready=1)
    eventually(lambda: lws(cluster, "m") is None, what="old LeaderWorkerSet removed")
    cluster.wait_condition("m", "Ready", "True")
