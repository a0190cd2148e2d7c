"""The real operator (`run_operator`, as `modeldeploy run`) against the emulated API server.

Every scenario also checks that each request the operator (and kopf for it) sent is allowed by
the declared RBAC (operator/modeldeploy/rbac.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from modeldeploy import rbac
from modeldeploy.api import GPUPool, ModelDeployment
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.planner import plan_deployment

from .emulator import LWS_KIND, EmulatorServer, Fault
from .harness import (
    Cluster,
    OperatorThread,
    assert_rbac_allows,
    closed_port,
    eventually,
    fast_config,
    gpu_pool,
    model_deployment,
    operator_reads,
    operator_writes,
    quiet_period,
    running_operator,
    settle,
)
from .test_hub_fetch import FakeHub

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HASH = "modeldeploy.dev/pod-template-hash"


@pytest.fixture()
def operator(emulator_server: EmulatorServer, kubeconfig: Path,
             cluster: Cluster) -> Iterator[OperatorThread]:
    with running_operator(emulator_server, cluster, fast_config(kubeconfig)) as thread:
        yield thread


def ready_model(cluster: Cluster, name: str = "m", **spec: Any) -> dict[str, Any]:
    cluster.create(model_deployment(name, **spec))
    eventually(lambda: cluster.deployment(name), what="deployment")
    cluster.mark_available(name)
    cluster.wait_condition(name, "Ready", "True")
    return cluster.md(name)


def events(cluster: Cluster, name: str) -> list[tuple[str, str]]:
    items = cluster.core.list_namespaced_event(cluster.ns).items
    return [(e.type, e.reason) for e in items if e.involved_object.name == name]


def test_apply_then_available_then_ready(operator: OperatorThread, cluster: Cluster) -> None:
    md = cluster.create(model_deployment("m"))
    cluster.wait_condition("m", "Reconciling", "True")
    conditions = cluster.conditions("m")
    # No Deployment controller here: the child's status is not observed yet.
    assert conditions["Ready"][:2] == ("False", "Progressing")
    assert conditions["Stalled"][0] == "False"
    dep, svc = cluster.deployment("m"), cluster.service("m")
    for child in (dep, svc):
        (ref,) = child.metadata.owner_references
        assert (ref.kind, ref.name, ref.uid, ref.controller) == (
            "ModelDeployment", "m", md["metadata"]["uid"], True)
    assert dep.spec.template.metadata.annotations[HASH]
    status = cluster.md("m")["status"]
    assert status["observedGeneration"] == 1
    assert status["plan"]["pool"] == "l4" and status["plan"]["tensorParallelSize"] == 1
    assert status["endpoint"] == f"http://m.{cluster.ns}.svc:8000/v1"
    assert status["selector"] == "modeldeploy.dev/name=m,app.kubernetes.io/component=server"

    cluster.mark_available("m")
    assert cluster.wait_condition("m", "Ready", "True")[1] == "Available"
    conditions = cluster.conditions("m")
    assert conditions["Reconciling"][0] == "False" and conditions["Stalled"][0] == "False"
    assert cluster.md("m")["status"]["readyReplicas"] == 1
    eventually(lambda: ("Normal", "Ready") in events(cluster, "m"), what="Ready event")
    assert events(cluster, "m").count(("Normal", "Planned")) == 1
    # Nothing but the status was written to the user's object: no finalizer, no annotations.
    now = cluster.md("m")
    assert now["metadata"]["generation"] == 1 and now["spec"] == md["spec"]
    assert "finalizers" not in now["metadata"] and not now["metadata"].get("annotations")
    assert not now["metadata"].get("labels")


def test_spec_change_gives_a_new_hash_and_one_apply(
        operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer) -> None:
    ready_model(cluster)
    old_hash = cluster.deployment("m").spec.template.metadata.annotations[HASH]
    mark = emulator_server.emulator.log_mark()
    cluster.patch_md("m", {"spec": {"serving": {"maxModelLen": 4096}}})

    def new_hash() -> str | None:
        value = cluster.deployment("m").spec.template.metadata.annotations[HASH]
        return value if value != old_hash else None

    eventually(new_hash, what="new pod-template hash")
    cluster.wait_condition("m", "Reconciling", "True")
    assert cluster.md("m")["status"]["observedGeneration"] == 2
    quiet_period(emulator_server, 1.5)  # let any resync pass happen
    applies = [r for r in operator_writes(emulator_server.emulator.requests_since(mark))
               if r.resource == "deployments" and r.verb == "patch" and not r.subresource]
    assert len(applies) == 1
    assert applies[0].content_type == "application/apply-patch+yaml"
    assert applies[0].params.get("fieldManager") == "modeldeploy"
    assert applies[0].params.get("force") == "true"


def test_noop_resync_issues_no_write(operator: OperatorThread, cluster: Cluster,
                                     emulator_server: EmulatorServer) -> None:
    ready_model(cluster, "a")
    ready_model(cluster, "b")
    settle(emulator_server, 0.3)  # the Ready events may still be in flight
    passes = operator.passes()
    requests = quiet_period(emulator_server, 2.5 * operator.config.resync_interval)
    assert operator.passes() - passes >= 4, "the resync did run (2 passes x 2 models)"
    assert operator_writes(requests) == []
    # Every pass read the watch-fed stores: no GET, LIST or discovery request at all.
    assert operator_reads(requests) == []


def test_deleted_child_is_restored(operator: OperatorThread, cluster: Cluster) -> None:
    ready_model(cluster)
    old = cluster.service("m").metadata.uid
    cluster.core.delete_namespaced_service("m", cluster.ns)
    restored = eventually(lambda: cluster.service("m"), what="service restored")
    assert restored.metadata.uid != old
    cluster.apps.delete_namespaced_deployment("m", cluster.ns)
    eventually(lambda: cluster.deployment("m"), what="deployment restored")


def test_edited_child_is_reverted(operator: OperatorThread, cluster: Cluster) -> None:
    ready_model(cluster)
    dep = cluster.deployment("m")
    image = dep.spec.template.spec.containers[0].image
    containers = cluster.api.sanitize_for_serialization(dep.spec.template.spec.containers)
    containers[0]["image"] = "attacker/vllm:latest"
    cluster.apps.patch_namespaced_deployment(
        "m", cluster.ns, {"spec": {"template": {"spec": {"containers": containers}}}})
    eventually(lambda: cluster.deployment("m").spec.template.spec.containers[0].image == image,
               what="image reverted")
    cluster.core.patch_namespaced_service("m", cluster.ns,
                                          {"spec": {"ports": [{"port": 9999}]}})
    eventually(lambda: cluster.service("m").spec.ports[0].port == 8000, what="port reverted")


def test_drift_on_a_quiet_model_is_repaired_from_the_watch(
        operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer) -> None:
    """Resync passes of an unchanged model skip deciding (shell.reconcile); an edit or a
    deletion behind our back is a new version in the stores, so it is repaired at once, well
    within one resync (60 s by default; 1 s here, the bound leaves room for a loaded CI)."""
    ready_model(cluster)
    settle(emulator_server, 0.3)
    passes = operator.passes()
    # Resync passes run and find nothing to do: their decision is remembered.
    assert operator_writes(quiet_period(emulator_server, 2 * operator.config.resync_interval)) \
        == []
    assert operator.passes() > passes
    bound = 5 * operator.config.resync_interval
    cluster.core.patch_namespaced_service("m", cluster.ns, {"spec": {"ports": [{"port": 9999}]}})
    eventually(lambda: cluster.service("m").spec.ports[0].port == 8000, timeout=bound,
               what="port reverted")
    old = cluster.deployment("m").metadata.uid
    cluster.apps.delete_namespaced_deployment("m", cluster.ns)

    def restored() -> bool:
        deployment = cluster.deployment("m")
        return deployment is not None and deployment.metadata.uid != old

    eventually(restored, timeout=bound, what="deployment restored")


def test_invalid_spec_stalls_without_children_or_crash(
        operator: OperatorThread, cluster: Cluster) -> None:
    bad = model_deployment("bad")
    bad["spec"]["serving"]["maxModelLen"] = 5
    cluster.create(bad)
    _, reason, message = cluster.wait_condition("bad", "Stalled", "True")
    assert reason == "InvalidSpec" and "spec.serving.maxModelLen" in message
    assert cluster.conditions("bad")["Ready"][:2] == ("False", "InvalidSpec")
    assert list(cluster.children()) == []
    eventually(lambda: ("Warning", "InvalidSpec") in events(cluster, "bad"), what="event")
    # Still serving others; and fixing the spec converges.
    cluster.create(model_deployment("good"))
    cluster.wait_condition("good", "Reconciling", "True")
    cluster.patch_md("bad", {"spec": {"serving": {"maxModelLen": 4096}}})
    cluster.wait_condition("bad", "Reconciling", "True")
    assert operator.alive


def test_unknown_model_is_unresolved(operator: OperatorThread, cluster: Cluster) -> None:
    cluster.create(model_deployment("x", model="acme/definitely-not-a-model"))
    _, reason, message = cluster.wait_condition("x", "Stalled", "True")
    assert reason == "ModelUnresolved" and "acme/definitely-not-a-model" in message
    assert list(cluster.children()) == []


def test_model_too_big_has_no_feasible_layout(operator: OperatorThread,
                                              cluster: Cluster) -> None:
    body = model_deployment("huge", model="meta-llama/Llama-3.1-405B-Instruct")
    cluster.create(body)
    _, reason, message = cluster.wait_condition("huge", "Stalled", "True")
    assert reason == "NoFeasibleLayout"
    md = ModelDeployment.model_validate({**body, "metadata": {"name": "huge",
                                                              "namespace": cluster.ns}})
    facts = load_catalog().get("meta-llama/Llama-3.1-405B-Instruct")
    assert facts is not None
    # the emulator serves no LeaderWorkerSet API
    expected = plan_deployment(md, facts, [GPUPool.model_validate(gpu_pool())], multi_node_served=False)
    assert not expected.feasible and message.startswith(expected.reason)
    assert cluster.md("huge")["status"]["plan"]["reason"] == expected.reason
    assert list(cluster.children()) == []


def test_unknown_pool(operator: OperatorThread, cluster: Cluster) -> None:
    cluster.create(model_deployment("p", placement={"pools": ["nope"]}))
    _, reason, message = cluster.wait_condition("p", "Stalled", "True")
    assert reason == "PoolNotFound" and "nope" in message


def test_deleted_model_deployment_takes_its_children(
        operator: OperatorThread, cluster: Cluster) -> None:
    ready_model(cluster)
    assert sorted(cluster.children()) == [("Deployment", "m"), ("Service", "m")]
    cluster.delete_md("m")
    eventually(lambda: list(cluster.children()) == [], what="children gone")
    md = cluster.custom.list_namespaced_custom_object("modeldeploy.dev", "v1alpha1", cluster.ns,
                                                      "modeldeployments")
    assert md["items"] == []  # no finalizer held it


def test_pdb_is_pruned_when_no_longer_needed(operator: OperatorThread,
                                             cluster: Cluster) -> None:
    cluster.create(model_deployment("r", replicas=2))
    eventually(lambda: ("PodDisruptionBudget", "r-pdb") in list(cluster.children()),
               what="pdb")
    cluster.patch_md("r", {"spec": {"replicas": 1}})
    eventually(lambda: ("PodDisruptionBudget", "r-pdb") not in list(cluster.children()),
               what="pdb pruned")
    assert cluster.deployment("r").spec.replicas == 1


def test_insufficient_gpu(operator: OperatorThread, cluster: Cluster) -> None:
    cluster.create(model_deployment("m"))
    eventually(lambda: cluster.deployment("m"), what="deployment")
    cluster.core.create_namespaced_pod(cluster.ns, {
        "metadata": {"name": "m-abc", "labels": {"modeldeploy.dev/name": "m"}},
        "spec": {"containers": [{"name": "vllm", "image": "x"}]}})
    cluster.core.patch_namespaced_pod_status("m-abc", cluster.ns, {"status": {
        "phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}]}})
    # Waiting for a node is progress (the cluster autoscaler may be adding one) ...
    _, reason, message = cluster.wait_condition("m", "Reconciling", "True",
                                                reason="WaitingForGPUs")
    assert "Insufficient nvidia.com/gpu" in message
    # ... until the pod has waited longer than the progress deadline.
    cluster.core.patch_namespaced_pod_status("m-abc", cluster.ns, {"status": {
        "phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "lastTransitionTime": "2020-01-01T00:00:00Z",
            "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}]}})
    _, reason, message = cluster.wait_condition("m", "Stalled", "True")
    assert reason == "InsufficientGPU" and "Insufficient nvidia.com/gpu" in message


def test_multi_node_needs_leaderworkerset(operator: OperatorThread, cluster: Cluster,
                                          emulator_server: EmulatorServer) -> None:
    cluster.create_pool(gpu_pool("h100", product="NVIDIA-H100-80GB-HBM3", memory=79.11,
                                 gpus=8, price=6.88))
    body = model_deployment("big", model="meta-llama/Llama-3.1-405B-Instruct",
                            placement={"pools": ["h100"]})
    cluster.create(body)
    _, reason, message = cluster.wait_condition("big", "Stalled", "True")
    assert reason == "MultiNodeUnavailable" and "LeaderWorkerSet" in message
    emulator_server.emulator.register(LWS_KIND)  # install the CRD: the resync picks it up
    cluster.wait_condition("big", "Reconciling", "True")
    lws = emulator_server.emulator.peek(LWS_KIND, cluster.ns, "big-lws")
    assert lws is not None and lws["spec"]["leaderWorkerTemplate"]["size"] >= 2
    assert cluster.deployment("big") is None


def test_pools_discovered_from_node_labels(emulator_server: EmulatorServer, kubeconfig: Path,
                                           cluster: Cluster) -> None:
    for i in range(2):
        cluster.core.create_node({"metadata": {"name": f"gpu-{i}", "labels": {
            "nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.memory": "23034",
            "nvidia.com/gpu.count": "4"}}})
    thread = OperatorThread(fast_config(kubeconfig)).start()
    try:
        cluster.create(model_deployment("m"))
        cluster.wait_condition("m", "Reconciling", "True")
        assert cluster.md("m")["status"]["plan"]["pool"] == "discovered-nvidia-l4-x4"
        selector = cluster.deployment("m").spec.template.spec.node_selector
        assert selector == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    finally:
        thread.stop()
    assert_rbac_allows(emulator_server)


def test_gpupool_status_reports_capacity(operator: OperatorThread, cluster: Cluster) -> None:
    cluster.core.create_node({"metadata": {"name": "n1", "labels": {
        "nvidia.com/gpu.product": "NVIDIA-L4"}}})
    cluster.core.patch_node_status("n1", {"status": {"allocatable": {"nvidia.com/gpu": "4"}}})
    cluster.core.create_namespaced_pod(cluster.ns, {
        "metadata": {"name": "user"}, "spec": {"nodeName": "n1", "containers": [
            {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "3"}}}]}})

    def capacity() -> dict[str, Any] | None:
        pool = cluster.custom.get_cluster_custom_object("modeldeploy.dev", "v1alpha1",
                                                        "gpupools", "l4")
        status = pool.get("status") or {}
        return status if status.get("requestedGPUs") == 3 else None

    status = eventually(capacity, what="GPUPool status")
    assert (status["nodes"], status["allocatableGPUs"], status["freeGPUs"]) == (1, 4, 1)
    assert status["conditions"][0]["reason"] == "NodesFound"


def test_restart_midway_converges_without_duplicates(
        emulator_server: EmulatorServer, kubeconfig: Path, cluster: Cluster) -> None:
    cluster.create_pool(gpu_pool())
    first = OperatorThread(fast_config(kubeconfig)).start()
    for i in range(4):
        cluster.create(model_deployment(f"m{i}"))
    eventually(lambda: cluster.deployment("m0"), what="first deployment")
    first.stop()  # mid-way: some models reconciled, maybe not all
    uids = {d.metadata.name: d.metadata.uid
            for d in cluster.apps.list_namespaced_deployment(cluster.ns).items}
    second = OperatorThread(fast_config(kubeconfig)).start()
    try:
        for i in range(4):
            cluster.wait_condition(f"m{i}", "Reconciling", "True")
        deployments = cluster.apps.list_namespaced_deployment(cluster.ns).items
        assert sorted(d.metadata.name for d in deployments) == ["m0", "m1", "m2", "m3"]
        for dep in deployments:  # nothing was recreated
            assert uids.get(dep.metadata.name, dep.metadata.uid) == dep.metadata.uid
        assert len(cluster.core.list_namespaced_service(cluster.ns).items) == 4
        for i in range(4):
            cluster.mark_available(f"m{i}")
            cluster.wait_condition(f"m{i}", "Ready", "True")
        settle(emulator_server, 0.3)  # the Ready events may still be in flight
        assert operator_writes(quiet_period(emulator_server, 1.5)) == []
    finally:
        second.stop()
    # A third start on a converged world writes nothing at all.
    mark = emulator_server.emulator.log_mark()
    third = OperatorThread(fast_config(kubeconfig)).start()
    try:
        eventually(lambda: third.alive and third.passes() >= 8, what="two passes")
    finally:
        third.stop()
    assert operator_writes(emulator_server.emulator.requests_since(mark)) == []
    assert_rbac_allows(emulator_server)


def test_converges_after_api_errors(operator: OperatorThread, cluster: Cluster,
                                    emulator_server: EmulatorServer) -> None:
    emu = emulator_server.emulator
    agent = "modeldeploy-operator"
    faults = [
        emu.inject(Fault(status=500, verb="patch", resource="deployments", times=2,
                         user_agent_prefix=agent)),
        emu.inject(Fault(status=409, verb="patch", resource="modeldeployments",
                         subresource="status", user_agent_prefix=agent)),
        emu.inject(Fault(status=500, verb="list", resource="services", user_agent_prefix=agent)),
        emu.inject(Fault(drop=True, verb="list", resource="gpupools", user_agent_prefix=agent)),
    ]
    cluster.create(model_deployment("m"))
    eventually(lambda: cluster.deployment("m"), what="deployment despite 500s")
    cluster.wait_condition("m", "Reconciling", "True")
    # Watches: the history is compacted and every stream dropped, then the next watch is
    # refused with 410 Gone: the informers must re-list and keep serving.
    emu.inject(Fault(status=410, verb="watch", resource="modeldeployments"))
    for kind in ("modeldeployments", "deployments"):
        group = "modeldeploy.dev" if kind == "modeldeployments" else "apps"
        version = "v1alpha1" if kind == "modeldeployments" else "v1"
        emu.compact(emu.kind_of(group, version, kind))
    emulator_server.call(emu.drop_watches())
    cluster.create(model_deployment("n"))  # seen only through the re-established watch
    eventually(lambda: cluster.deployment("n"), what="deployment after watch errors")
    cluster.mark_available("m")
    cluster.mark_available("n")
    cluster.wait_condition("m", "Ready", "True")
    cluster.wait_condition("n", "Ready", "True")
    assert all(f.times == 0 for f in faults), "every injected fault was hit"
    assert operator.alive  # the fixture's teardown checks RBAC and a clean stop


def test_watches_use_explicit_timeouts_and_label_selectors(
        operator: OperatorThread, emulator_server: EmulatorServer) -> None:
    emu = emulator_server.emulator
    # ModelDeployments, GPUPools, Nodes, Pods and the served child kinds: Deployments, Services,
    # PDBs, PVCs, HorizontalPodAutoscalers, Jobs (LeaderWorkerSets, ServiceMonitors,
    # ScaledObjects, HTTPScaledObjects: not served).
    required = {"modeldeployments", "gpupools", "nodes", "pods", "deployments", "services",
                "poddisruptionbudgets", "persistentvolumeclaims", "horizontalpodautoscalers", "jobs"}
    mark = emu.log_mark()

    def ended_watches() -> list[Any] | None:
        # Watches are logged when they end: end the open ones until every kind has been seen (a
        # count of open streams can be reached before the last kind's watch opens).
        emulator_server.call(emu.end_watches())
        found = [r for r in emu.requests_since(mark) if r.verb == "watch"]
        return found if required <= {r.resource for r in found} else None

    watches = eventually(ended_watches, interval=0.5, what="ended watches of every kind")
    expected = len(required)
    by_resource = {r.resource: r.params for r in watches}
    assert by_resource["modeldeployments"]["timeoutSeconds"] == "30"
    for child in ("deployments", "services", "poddisruptionbudgets", "persistentvolumeclaims",
                  "horizontalpodautoscalers", "jobs"):
        assert by_resource[child]["labelSelector"] == "app.kubernetes.io/managed-by=modeldeploy"
        assert by_resource[child]["timeoutSeconds"] == "30"
    eventually(lambda: emu.open_watches() >= expected, what="watches re-established")


def test_namespaced_mode_serves_only_its_namespaces(
        emulator_server: EmulatorServer, kubeconfig: Path, api: ApiClient) -> None:
    mine, other = Cluster(api, "team-a"), Cluster(api, "team-b")
    mine.create_pool(gpu_pool())
    # A namespaced install grants nothing cluster-scoped (modeldeploy.rbac): reads are refused.
    for resource in ("gpupools", "nodes"):
        emulator_server.emulator.inject(Fault(status=403, verb="list", resource=resource,
                                              times=1000, user_agent_prefix="modeldeploy-op"))
    thread = OperatorThread(fast_config(kubeconfig, namespaces=("team-a",),
                                        pools_namespace="ops")).start()
    try:
        other.create(model_deployment("m"))
        mine.create(model_deployment("m"))
        # Never the packaged catalog on a cluster: without the pools ConfigMap, nothing to plan on.
        _, reason, message = mine.wait_condition("m", "Stalled", "True")
        assert reason == "NoPoolsVisible" and "ConfigMap labelled modeldeploy.dev/gpu-pools" in message
        assert mine.deployment("m") is None
        pools_yaml = yaml.safe_dump(gpu_pool())
        mine.core.create_namespaced_config_map("ops", {
            "metadata": {"name": "modeldeploy-gpu-pools", "labels": {"modeldeploy.dev/gpu-pools": "true"}},
            "data": {"pools.yaml": pools_yaml}})
        mine.wait_condition("m", "Reconciling", "True")
        assert other.md("m").get("status") is None and other.deployment("m") is None
        assert mine.md("m")["status"]["plan"]["pool"] == "l4"
    finally:
        thread.stop()
    assert_rbac_allows(emulator_server, rbac.Mode.NAMESPACED)


def test_models_outside_the_catalog_come_from_the_hub(
        emulator_server: EmulatorServer, kubeconfig: Path, cluster: Cluster,
        fake_hub: FakeHub, tmp_path: Path) -> None:
    cluster.create_pool(gpu_pool())
    config = fast_config(kubeconfig, hub_endpoint=fake_hub.url, hub_cache_dir=tmp_path / "hf")
    thread = OperatorThread(config).start()
    try:
        cluster.create(model_deployment("small", model="meta-llama/Llama-3.2-1B-Instruct"))
        cluster.wait_condition("small", "Reconciling", "True")
        plan = cluster.md("small")["status"]["plan"]
        assert plan["pool"] == "l4" and plan["weightsGiB"] < 3  # 1.24B parameters in bf16
        assert fake_hub.count() > 0
    finally:
        thread.stop()
    assert_rbac_allows(emulator_server)


def test_the_cli_runs_the_operator_with_json_logs_and_liveness(
        emulator_server: EmulatorServer, kubeconfig: Path, cluster: Cluster) -> None:
    cluster.create_pool(gpu_pool())
    port = closed_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from modeldeploy.cli.main import app; app()", "run",
         "--kubeconfig", str(kubeconfig), "--liveness", f"http://127.0.0.1:{port}/healthz",
         "--hub-endpoint", f"http://127.0.0.1:{closed_port()}", "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def healthy() -> dict[str, Any] | None:
            assert proc.poll() is None, "the operator exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    return json.loads(r.read()) if r.status == 200 else None
            except OSError:
                return None

        probe = eventually(healthy, timeout=30, interval=0.2, what="liveness endpoint")
        assert "reconciles" in probe
        cluster.create(model_deployment("m"))
        cluster.wait_condition("m", "Reconciling", "True")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output[-2000:]
    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert any("operator started" in r.get("message", "") for r in records)
    assert_rbac_allows(emulator_server)


def test_without_leaderworkerset_a_single_node_layout_is_chosen(
        operator: OperatorThread, cluster: Cluster) -> None:
    # phi-4 (29.3 GiB of bf16 weights) on two 1 × L4 nodes is the cheapest layout that the policy
    # may choose with multiNode allowed, but LeaderWorkerSet is not served: one 4 × L4 node at TP 2.
    cluster.create_pool(gpu_pool("l4-x1", gpus=1, price=0.5))
    cluster.create(model_deployment("phi", model="microsoft/phi-4",
                                    placement={"multiNode": "allowed"}))
    cluster.wait_condition("phi", "Reconciling", "True")
    plan = cluster.md("phi")["status"]["plan"]
    assert (plan["pool"], plan["tensorParallelSize"], plan["nodesPerReplica"]) == ("l4", 2, 1)
    assert cluster.deployment("phi") is not None
