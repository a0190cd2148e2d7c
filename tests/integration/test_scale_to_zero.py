"""Scale to zero and back on the emulator: who owns the replica count, and loading replicas.

- mode builtin: the operator alone writes the count; at zero it is woken by the KEDA HTTP
  add-on's interceptor count, which it reads from each interceptor's admin `/queue` (an
  EndpointSlice of the admin Service points at a fake interceptor on loopback). The add-on is
  told never to create a ScaledObject of its own, so nothing fights the operator.
- mode keda: KEDA owns the count (the test plays KEDA through the scale subresource); the
  operator never writes it, not even when a rollout re-applies the Deployment.
- a replica that is still loading is never removed by a scale-down.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import DiscoveryV1Api

from modeldeploy.controller.decide import names_of
from modeldeploy.render.scaletozero import SKIP_SCALED_OBJECT

from .emulator import KEDA_HTTP_KIND, KEDA_KIND, EmulatorServer, Fault, LoggedRequest
from .fleet import SimFleet, deployment_status, gpu_node, gpu_pod, pod_running
from .harness import (
    Cluster,
    OperatorThread,
    assert_rbac_allows,
    eventually,
    fast_config,
    gpu_pool,
    model_deployment,
    operator_reads,
    operator_writes,
    quiet_period,
    settle,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SCRAPE = 0.5
TO_ZERO = {"minReplicas": 0, "maxReplicas": 2, "scaleToZero": True, "idleSeconds": 600,
           "metric": "requestsWaiting", "target": 2}
INTERCEPTOR_IP = "127.0.0.9"


def start_operator(emulator_server: EmulatorServer, kubeconfig: Path, cluster: Cluster,
                   fleet: SimFleet, resync_interval: float = 30.0) -> OperatorThread:
    emu = emulator_server.emulator
    emu.register(KEDA_KIND)
    emu.register(KEDA_HTTP_KIND)
    cluster.create_pool(gpu_pool())
    gpu_node(cluster.core, "n1", gpus=4)
    config = fast_config(kubeconfig, scrape_interval=SCRAPE, resync_interval=resync_interval,
                         pool_status_interval=30.0, vllm_metrics_port=fleet.port,
                         scrape_timeout=1.0)
    return OperatorThread(config).start()


@pytest.fixture()
def operator(emulator_server: EmulatorServer, kubeconfig: Path, cluster: Cluster,
             fleet: SimFleet) -> Iterator[OperatorThread]:
    thread = start_operator(emulator_server, kubeconfig, cluster, fleet)
    try:
        yield thread
    finally:
        thread.stop()
        assert_rbac_allows(emulator_server)


@pytest.fixture()
def resyncing_operator(emulator_server: EmulatorServer, kubeconfig: Path, cluster: Cluster,
                       fleet: SimFleet) -> Iterator[OperatorThread]:
    """The operator with a 1 s resync: every model is reconciled again each second."""
    thread = start_operator(emulator_server, kubeconfig, cluster, fleet, resync_interval=1.0)
    try:
        yield thread
    finally:
        thread.stop()
        assert_rbac_allows(emulator_server)


def interceptor(cluster: Cluster, fleet: SimFleet) -> dict[str, dict[str, float]]:
    """A fake interceptor pod behind the add-on's admin Service (namespace keda), as the
    EndpointSlice controller would publish it; returns its live /queue counts."""
    counts = fleet.start_interceptor(INTERCEPTOR_IP)
    DiscoveryV1Api(cluster.api).create_namespaced_endpoint_slice("keda", {
        "metadata": {"name": "keda-add-ons-http-interceptor-admin-x7k2p",
                     "labels": {"kubernetes.io/service-name": "keda-add-ons-http-interceptor-admin"}},
        "addressType": "IPv4",
        "ports": [{"name": "admin", "port": fleet.port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [INTERCEPTOR_IP], "conditions": {"ready": True}}],
    })
    return counts


def autoscaling_status(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict((cluster.md(name).get("status") or {}).get("autoscaling") or {})


def scale_writes(requests: list[LoggedRequest]) -> list[LoggedRequest]:
    return [r for r in operator_writes(requests)
            if r.resource == "deployments" and r.subresource == "scale"]


def revision(cluster: Cluster, name: str) -> str:
    return str(cluster.deployment(name).spec.template.metadata.annotations[
        "modeldeploy.dev/pod-template-hash"])


def test_a_builtin_model_at_zero_wakes_on_a_request_the_interceptor_holds(
        operator: OperatorThread, cluster: Cluster, fleet: SimFleet,
        emulator_server: EmulatorServer) -> None:
    counts = interceptor(cluster, fleet)
    cluster.create(model_deployment("m", autoscaling=TO_ZERO))
    eventually(lambda: cluster.deployment("m"), what="deployment")
    # idleSeconds is at least 60 (CRD): start from where an idle model ends, at zero replicas,
    # as the operator's own scale-down would have left it.
    cluster.apps.patch_namespaced_deployment_scale("m", cluster.ns, {"spec": {"replicas": 0}})
    mark = emulator_server.emulator.log_mark()
    route = eventually(lambda: emulator_server.emulator.peek(KEDA_HTTP_KIND, cluster.ns, "m"),
                       what="HTTPScaledObject")
    assert route["metadata"]["annotations"][SKIP_SCALED_OBJECT] == "true"  # no second owner
    assert emulator_server.emulator.peek(KEDA_KIND, cluster.ns, "m") is None
    idle = eventually(lambda: (s := autoscaling_status(cluster, "m")).get("reason") == "Idle" and s,
                      what="idle at zero")
    assert "no request waiting" in idle["message"]  # the interceptor was read: 0 held
    assert cluster.deployment("m").spec.replicas == 0
    assert scale_writes(emulator_server.emulator.requests_since(mark)) == []

    counts[f"{cluster.ns}/{names_of('m').http_scaled_object}"] = {"Concurrency": 1, "RPS": 0.2}
    eventually(lambda: cluster.deployment("m").spec.replicas == 1, timeout=10, what="woken")
    woken = eventually(lambda: (d := autoscaling_status(cluster, "m").get("lastDecision") or {})
                       .get("to") == 1 and d, what="status of the wake")
    assert (woken["from"], woken["reason"]) == (0, "ScaledFromZero")
    (write,) = scale_writes(emulator_server.emulator.requests_since(mark))
    assert write.name == "m"


def asleep_at_zero(cluster: Cluster, fleet: SimFleet) -> dict[str, dict[str, float]]:
    """A builtin scale-to-zero model idle at zero replicas, the interceptor read (0 held)."""
    counts = interceptor(cluster, fleet)
    cluster.create(model_deployment("m", autoscaling=TO_ZERO))
    eventually(lambda: cluster.deployment("m"), what="deployment")
    cluster.apps.patch_namespaced_deployment_scale("m", cluster.ns, {"spec": {"replicas": 0}})
    idle = eventually(lambda: (s := autoscaling_status(cluster, "m")).get("reason") == "Idle" and s,
                      what="idle at zero")
    assert "no request waiting" in idle["message"]
    return counts


def test_a_converged_model_at_zero_sends_no_read_but_its_watches(
        resyncing_operator: OperatorThread, cluster: Cluster, fleet: SimFleet,
        emulator_server: EmulatorServer) -> None:
    asleep_at_zero(cluster, fleet)
    settle(emulator_server)
    passes = resyncing_operator.passes()
    requests = quiet_period(emulator_server, 2.5 * resyncing_operator.config.resync_interval)
    assert resyncing_operator.passes() - passes >= 2, "the resync did run"
    assert operator_writes(requests) == []
    # The interceptor's endpoints come from a watch (its admin Service's slices only).
    assert operator_reads(requests) == []
    # One list in the whole run (the watch's first), of the admin Service's slices only.
    (listed,) = [r for r in emulator_server.emulator.log
                 if r.resource == "endpointslices" and r.verb == "list"]
    assert listed.namespace == "keda"
    assert listed.params.get("labelSelector") == \
        "kubernetes.io/service-name=keda-add-ons-http-interceptor-admin"
    assert resyncing_operator.metric('modeldeploy_interceptor_endpoints{source="watch"}') == 1


def test_with_the_watch_refused_the_endpoints_are_listed_and_a_request_still_wakes(
        resyncing_operator: OperatorThread, cluster: Cluster, fleet: SimFleet,
        emulator_server: EmulatorServer) -> None:
    # An older ClusterRole: list on endpointslices, no watch.
    emulator_server.emulator.inject(Fault(status=403, verb="watch", resource="endpointslices",
                                          times=1000))
    counts = asleep_at_zero(cluster, fleet)
    assert resyncing_operator.alive
    eventually(lambda: resyncing_operator.metric(
        'modeldeploy_interceptor_endpoints{source="list"}') == 1, what="the fallback reported")
    refused = [r for r in emulator_server.emulator.log
               if r.resource == "endpointslices" and r.verb == "watch"]
    assert [r.status for r in refused] == [403]  # asked once, never retried in a loop
    counts[f"{cluster.ns}/{names_of('m').http_scaled_object}"] = {"Concurrency": 1, "RPS": 0.2}
    eventually(lambda: cluster.deployment("m").spec.replicas == 1, timeout=10, what="woken")


def test_a_replica_still_loading_is_never_scaled_down(
        operator: OperatorThread, cluster: Cluster, fleet: SimFleet,
        emulator_server: EmulatorServer) -> None:
    spec = {"minReplicas": 2, "maxReplicas": 2, "metric": "requestsWaiting", "target": 2,
            "scaleDownStabilizationSeconds": 0}
    cluster.create(model_deployment("m", autoscaling=spec))
    eventually(lambda: (d := cluster.deployment("m")) and d.spec.replicas == 2, what="2 replicas")
    fleet.start_sim("127.0.0.2")
    gpu_pod(cluster.core, cluster.ns, "m-a", "n1", model="m", revision=revision(cluster, "m"))
    pod_running(cluster.core, cluster.ns, "m-a", "127.0.0.2")
    # The second replica is bound and running but vLLM is still loading its weights.
    fleet.start_sim("127.0.0.3", load_seconds=3.0, warmup_seconds=0.5)
    gpu_pod(cluster.core, cluster.ns, "m-b", "n1", model="m", revision=revision(cluster, "m"))
    pod_running(cluster.core, cluster.ns, "m-b", "127.0.0.3", ready=False)
    deployment_status(cluster.api, cluster.ns, "m", replicas=2, ready=1)

    mark = emulator_server.emulator.log_mark()
    cluster.patch_md("m", {"spec": {"autoscaling": {"minReplicas": 1}}})  # 1 would do: idle
    held = eventually(lambda: (s := autoscaling_status(cluster, "m")).get("reason")
                      == "LoadingReplicas" and s, what="scale-down held for the loading replica")
    assert held["desiredReplicas"] == 2
    assert "Loading safetensors checkpoint shards" in fleet.startup_log("127.0.0.3")
    assert cluster.deployment("m").spec.replicas == 2
    assert scale_writes(emulator_server.emulator.requests_since(mark)) == []

    # vLLM finishes (its API server line), the kubelet marks it Ready: now one replica goes.
    eventually(lambda: "Starting vLLM API server" in fleet.startup_log("127.0.0.3"), timeout=15,
               what="the second replica loaded")
    pod_running(cluster.core, cluster.ns, "m-b", "127.0.0.3")
    deployment_status(cluster.api, cluster.ns, "m", replicas=2, ready=2)
    eventually(lambda: cluster.deployment("m").spec.replicas == 1, timeout=10, what="scale down")


def test_with_keda_owning_the_count_the_operator_never_writes_it(
        operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer) -> None:
    emu = emulator_server.emulator
    cluster.create(model_deployment("m", autoscaling={**TO_ZERO, "mode": "keda"}))
    eventually(lambda: cluster.deployment("m"), what="deployment")
    scaled = eventually(lambda: emu.peek(KEDA_KIND, cluster.ns, "m"), what="ScaledObject")
    assert scaled["spec"]["minReplicaCount"] == 0
    assert "interceptor" in [t["name"] for t in scaled["spec"]["triggers"]]  # KEDA wakes it
    route = eventually(lambda: emu.peek(KEDA_HTTP_KIND, cluster.ns, "m"), what="HTTPScaledObject")
    assert route["metadata"]["annotations"][SKIP_SCALED_OBJECT] == "true"

    for replicas in (1, 2, 0):  # KEDA wakes the model, scales it, puts it back to sleep
        cluster.apps.patch_namespaced_deployment_scale("m", cluster.ns, {"spec": {"replicas": replicas}})
        eventually(lambda r=replicas: autoscaling_status(cluster, "m").get("currentReplicas") == r,
                   what=f"KEDA's count {replicas} reported")
        assert autoscaling_status(cluster, "m")["reason"] == "ExternalAutoscaler"
        settle(emulator_server)
        assert cluster.deployment("m").spec.replicas == replicas

    # A rollout re-applies the Deployment: the count KEDA set survives it.
    cluster.apps.patch_namespaced_deployment_scale("m", cluster.ns, {"spec": {"replicas": 2}})
    before = revision(cluster, "m")
    cluster.patch_md("m", {"spec": {"serving": {"maxModelLen": 4096}}})
    eventually(lambda: revision(cluster, "m") != before, what="the rollout's new template")
    settle(emulator_server)
    assert cluster.deployment("m").spec.replicas == 2
    assert operator_writes(quiet_period(emulator_server, 4 * SCRAPE)) == []
    assert scale_writes(emu.log) == []
