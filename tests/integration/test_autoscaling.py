"""The builtin autoscaler end to end on the emulator: real operator, real vLLM simulators.

Each serving pod is a Pod object the test creates (Running, Ready, podIP 127.0.0.N) backed by a
simulator bound to that loopback address on a shared port; the operator scrapes them over HTTP,
decides, and writes the Deployment's scale subresource. The ModelDeployment is never written
except for its status.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .emulator import KEDA_KIND, EmulatorServer, LoggedRequest
from .fleet import SimFleet, deployment_status, gpu_node, gpu_pod, pod_running
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SCRAPE = 0.5  # scrape interval of these tests, s


@pytest.fixture()
def autoscaling_operator(emulator_server: EmulatorServer, kubeconfig: Path, cluster: Cluster,
                         fleet: SimFleet) -> Iterator[OperatorThread]:
    cluster.create_pool(gpu_pool())
    # Passes come from the scrape interval (and child events), not from a fast resync.
    config = fast_config(kubeconfig, scrape_interval=SCRAPE, resync_interval=30.0,
                         pool_status_interval=30.0,
                         vllm_metrics_port=fleet.port, scrape_timeout=1.0)
    thread = OperatorThread(config).start()
    try:
        yield thread
    finally:
        thread.stop()
        assert_rbac_allows(emulator_server)


def autoscaled(name: str, **autoscaling: Any) -> dict[str, Any]:
    return model_deployment(name, autoscaling={"minReplicas": 1, "maxReplicas": 2,
                                               "metric": "requestsWaiting", "target": 2,
                                               **autoscaling})


def autoscaling_status(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict((cluster.md(name).get("status") or {}).get("autoscaling") or {})


def revision(cluster: Cluster, name: str) -> str:
    return str(cluster.deployment(name).spec.template.metadata.annotations[
        "modeldeploy.dev/pod-template-hash"])


def scale_writes(requests: list[LoggedRequest]) -> list[LoggedRequest]:
    return [r for r in operator_writes(requests)
            if r.resource == "deployments" and r.subresource == "scale"]


def serve(cluster: Cluster, fleet: SimFleet, name: str, pod: str, ip: str, node: str,
          **sim: Any) -> None:
    """Start a simulator at ip and the Ready pod the kubelet would report for it."""
    if sim.pop("garbage", False):
        fleet.start_garbage(ip)
    else:
        fleet.start_sim(ip, **sim)
    gpu_pod(cluster.core, cluster.ns, pod, node, model=name, revision=revision(cluster, name))
    pod_running(cluster.core, cluster.ns, pod, ip)


def test_load_spike_scales_up_within_one_scrape_interval_and_down_after_the_window(
        autoscaling_operator: OperatorThread, cluster: Cluster, fleet: SimFleet,
        emulator_server: EmulatorServer) -> None:
    window = 3
    gpu_node(cluster.core, "n1", gpus=4)
    created = cluster.create(autoscaled("m", scaleDownStabilizationSeconds=window))
    eventually(lambda: cluster.deployment("m"), what="deployment")
    serve(cluster, fleet, "m", "m-a", "127.0.0.2", "n1")
    deployment_status(cluster.api, cluster.ns, "m", replicas=1, ready=1)
    idle = eventually(lambda: (s := autoscaling_status(cluster, "m")).get("value") == 0 and s,
                      what="metrics read")
    assert (idle["currentReplicas"], idle["desiredReplicas"]) == (1, 1)
    assert cluster.deployment("m").spec.replicas == 1

    mark = emulator_server.emulator.log_mark()
    fleet.load("127.0.0.2", 6)  # one runs, five wait
    eventually(lambda: fleet.requests("127.0.0.2") == (1, 5), what="queue on the simulator")
    spiked = time.monotonic()
    eventually(lambda: cluster.deployment("m").spec.replicas == 2, timeout=10, interval=0.02,
               what="scale up")
    reaction = time.monotonic() - spiked
    assert reaction <= SCRAPE + 1.0, f"scaled up {reaction:.2f}s after the spike"
    (write,) = scale_writes(emulator_server.emulator.requests_since(mark))
    assert write.content_type == "application/merge-patch+json" and write.name == "m"
    scaled = eventually(lambda: (s := autoscaling_status(cluster, "m")).get("lastDecision")
                        and s, what="status")
    assert scaled["lastDecision"]["from"] == 1 and scaled["lastDecision"]["to"] == 2
    assert scaled["lastDecision"]["reason"] == "ScaledUp" and scaled["metric"] == "requestsWaiting"
    now = cluster.md("m")
    assert now["spec"] == created["spec"] and now["metadata"]["generation"] == 1

    # The Deployment controller and the kubelet bring the second replica up; the load ends.
    serve(cluster, fleet, "m", "m-b", "127.0.0.3", "n1")
    deployment_status(cluster.api, cluster.ns, "m", replicas=2, ready=2)
    fleet.stop_load()
    eventually(lambda: fleet.requests("127.0.0.2") == (0, 0), what="load gone")
    gone = time.monotonic()
    eventually(lambda: cluster.deployment("m").spec.replicas == 1, timeout=window + 10,
               interval=0.05, what="scale down")
    waited = time.monotonic() - gone
    # The last busy recommendation was at most one scrape before the load ended.
    assert waited >= window - SCRAPE, f"scaled down {waited:.2f}s after the load ended"
    down = eventually(lambda: (d := autoscaling_status(cluster, "m").get("lastDecision") or {})
                      .get("to") == 1 and d, what="status of the scale-down")  # after /scale
    assert (down["from"], down["to"], down["reason"]) == (2, 1, "ScaledDown")
    deployment_status(cluster.api, cluster.ns, "m", replicas=1, ready=1)
    cluster.core.delete_namespaced_pod("m-b", cluster.ns)
    fleet.stop("127.0.0.3")
    eventually(lambda: autoscaling_status(cluster, "m").get("currentReplicas") == 1
               and cluster.conditions("m")["Ready"][0] == "True", what="settled")
    # A steady autoscaled model: scrapes every interval, and not one write.
    settle(emulator_server)
    assert operator_writes(quiet_period(emulator_server, 4 * SCRAPE)) == []
    assert cluster.md("m")["spec"] == created["spec"]


def test_unreadable_metrics_hold_the_count_and_status_says_why(
        autoscaling_operator: OperatorThread, cluster: Cluster, fleet: SimFleet,
        emulator_server: EmulatorServer) -> None:
    gpu_node(cluster.core, "n1", gpus=4)
    cluster.create(autoscaled("m", maxReplicas=3, scaleDownStabilizationSeconds=0))
    eventually(lambda: cluster.deployment("m"), what="deployment")
    # Someone scales to 2 by hand; with readable, idle metrics the autoscaler would go to 1.
    cluster.apps.patch_namespaced_deployment_scale("m", cluster.ns, {"spec": {"replicas": 2}})
    # (The unreadable pod is Ready first: with only the good one, idle, it would scale down.)
    serve(cluster, fleet, "m", "m-b", "127.0.0.3", "n1", garbage=True)
    serve(cluster, fleet, "m", "m-a", "127.0.0.2", "n1")
    deployment_status(cluster.api, cluster.ns, "m", replicas=2, ready=2)

    def held(needle: str) -> dict[str, Any] | None:
        status = autoscaling_status(cluster, "m")
        # (A pass that read the Deployment before the hand scaling may report 1 once.)
        return status if status.get("reason") == "MetricsUnavailable" and \
            needle in status.get("message", "") and status.get("currentReplicas") == 2 else None

    status = eventually(lambda: held("m-b: MalformedExposition"), what="garbage reported")
    eventually(lambda: (cluster.md("m")["status"].get("rollout") or {}).get("currentRevision"),
               what="the serving revision recorded")
    assert status["desiredReplicas"] == 2
    assert "value" not in status  # no value is claimed from half the fleet
    # Holding, not flapping: no scale write and no status rewrite while nothing changes.
    settle(emulator_server)
    assert operator_writes(quiet_period(emulator_server, 4 * SCRAPE)) == []
    assert cluster.deployment("m").spec.replicas == 2

    fleet.stop("127.0.0.3")  # the endpoint goes down
    eventually(lambda: held("m-b: Unreachable (cannot connect to 127.0.0.3"), what="down reported")
    assert scale_writes(quiet_period(emulator_server, 4 * SCRAPE)) == []
    assert cluster.deployment("m").spec.replicas == 2

    # The pod vanishes: the one left is readable and idle, so the count follows the metric.
    cluster.core.delete_namespaced_pod("m-b", cluster.ns)
    eventually(lambda: cluster.deployment("m").spec.replicas == 1, what="scale down")
    eventually(lambda: (autoscaling_status(cluster, "m").get("lastDecision") or {}).get("reason")
               == "ScaledDown", what="status of the scale-down")


def test_scale_up_is_capped_by_the_gpus_the_pool_has(
        autoscaling_operator: OperatorThread, cluster: Cluster, fleet: SimFleet,
        emulator_server: EmulatorServer) -> None:
    gpu_node(cluster.core, "n1", gpus=2)
    gpu_pod(cluster.core, cluster.ns, "other-tenant", "n1")  # holds the second GPU
    cluster.create(autoscaled("m", maxReplicas=4))
    eventually(lambda: cluster.deployment("m"), what="deployment")
    serve(cluster, fleet, "m", "m-a", "127.0.0.2", "n1")
    deployment_status(cluster.api, cluster.ns, "m", replicas=1, ready=1)
    fleet.load("127.0.0.2", 6)
    status = eventually(lambda: (s := autoscaling_status(cluster, "m")).get("reason")
                        == "CapacityLimited" and s, what="capacity limited")
    assert status["desiredReplicas"] == 1 and "the pool fits 1" in status["message"], status
    assert scale_writes(emulator_server.emulator.log) == []
    cluster.core.delete_namespaced_pod("other-tenant", cluster.ns)  # a GPU frees up
    eventually(lambda: cluster.deployment("m").spec.replicas == 2, what="scale up")


def test_initial_replicas_are_min_replicas_and_spec_is_never_written(
        autoscaling_operator: OperatorThread, cluster: Cluster,
        emulator_server: EmulatorServer) -> None:
    gpu_node(cluster.core, "n1", gpus=8)
    created = cluster.create(autoscaled("m", minReplicas=3, maxReplicas=5))
    eventually(lambda: (d := cluster.deployment("m")) and d.spec.replicas == 3,
               what="minReplicas")
    status = eventually(lambda: (s := autoscaling_status(cluster, "m")).get("reason") and s,
                        what="status")
    assert status["reason"] == "MetricsUnavailable"  # no pod ready yet: holding at the floor
    writes = operator_writes(emulator_server.emulator.log)
    assert not [w for w in writes if w.resource == "modeldeployments" and w.subresource != "status"]
    assert cluster.md("m")["spec"] == created["spec"]


@pytest.fixture()
def resyncing_operator(emulator_server: EmulatorServer, kubeconfig: Path,
                       cluster: Cluster) -> Iterator[OperatorThread]:
    """The default fast resync (1 s): a KEDA installed later is picked up by the resync."""
    cluster.create_pool(gpu_pool())
    thread = OperatorThread(fast_config(kubeconfig, pool_status_interval=30.0)).start()
    try:
        yield thread
    finally:
        thread.stop()
        assert_rbac_allows(emulator_server)


def test_hpa_and_keda_modes_own_the_replicas_and_a_mode_switch_prunes_their_object(
        resyncing_operator: OperatorThread, cluster: Cluster,
        emulator_server: EmulatorServer) -> None:
    emu = emulator_server.emulator
    cluster.create(autoscaled("m", mode="hpa", maxReplicas=4))
    hpa = eventually(lambda: emu.peek(emu.kind_of("autoscaling", "v2", "horizontalpodautoscalers"),
                                      cluster.ns, "m"), what="HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "m"}
    status = eventually(lambda: (s := autoscaling_status(cluster, "m")).get("reason") and s,
                        what="status")
    assert status["reason"] == "ExternalAutoscaler"
    cluster.apps.patch_namespaced_deployment_scale("m", cluster.ns, {"spec": {"replicas": 3}})
    eventually(lambda: autoscaling_status(cluster, "m").get("currentReplicas") == 3,
               what="the HPA's count reported")
    assert cluster.deployment("m").spec.replicas == 3  # the operator leaves it to the HPA

    cluster.patch_md("m", {"spec": {"autoscaling": {"mode": "keda"}}})
    _, reason, message = cluster.wait_condition("m", "Stalled", "True")
    assert reason == "KEDAUnavailable" and "keda.sh/v1alpha1" in message
    emu.register(KEDA_KIND)  # KEDA gets installed: the next passes use it
    eventually(lambda: emu.peek(KEDA_KIND, cluster.ns, "m"), what="ScaledObject")
    eventually(lambda: emu.peek(emu.kind_of("autoscaling", "v2", "horizontalpodautoscalers"),
                                cluster.ns, "m") is None, what="HPA pruned")
    assert cluster.deployment("m").spec.replicas == 3

    cluster.patch_md("m", {"spec": {"autoscaling": {"mode": "builtin"}}})
    eventually(lambda: emu.peek(KEDA_KIND, cluster.ns, "m") is None, what="ScaledObject pruned")
    # builtin: no ready pod to read yet, so it holds the count, clamped into [1, 4]
    status = eventually(lambda: (s := autoscaling_status(cluster, "m")).get("reason")
                        == "MetricsUnavailable" and s, what="builtin status")
    assert status["currentReplicas"] == 3


def test_an_api_removed_since_discovery_is_found_missing_at_the_next_write(
        resyncing_operator: OperatorThread, cluster: Cluster,
        emulator_server: EmulatorServer) -> None:
    """Discovery is re-read on a slow timer (60 s here) and soon after a write finds a kind
    gone (404): KEDA removed under a keda-mode model stalls it with the reason well before."""
    emu = emulator_server.emulator
    emu.register(KEDA_KIND)
    cluster.create(autoscaled("m", mode="keda"))
    eventually(lambda: emu.peek(KEDA_KIND, cluster.ns, "m"), what="ScaledObject")
    emu.unregister(KEDA_KIND)  # its CRD deleted
    cluster.patch_md("m", {"spec": {"autoscaling": {"maxReplicas": 4}}})  # the apply meets a 404
    _, _, message = cluster.wait_condition("m", "Stalled", "True", reason="KEDAUnavailable")
    assert "keda.sh/v1alpha1" in message
