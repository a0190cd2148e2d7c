"""A ModelDeployment's life on a real control plane: the real scheduler places its pods on the
planned pool's fake GPU nodes, the real Deployment controller rolls spec changes, the real
garbage collector removes its children; the operator runs as the chart's ServiceAccount."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tests.integration.harness import eventually

from .conftest import Env
from .install import Operator, wait_deleted
from .kubelet import Behaviour, Policy

pytestmark = pytest.mark.usefixtures("scheduler")
IMAGE_V2 = "vllm/vllm-openai:v0.30.1"


def revision(pod: Any) -> str:
    """The revision a pod runs: a V1Pod (tests) or the raw pod (the fake kubelet's policy)."""
    annotations = pod["metadata"].get("annotations") if isinstance(pod, dict) else \
        pod.metadata.annotations
    return str((annotations or {}).get("modeldeploy.dev/pod-template-hash"))


def ready_model(env: Env, name: str = "m", timeout: float = 60, **spec: Any) -> None:
    env.cluster.create(env.model(name, **spec))
    env.cluster.wait_condition(name, "Ready", "True", timeout=timeout)


def new_revisions(behaviour: Behaviour, old: set[str]) -> Policy:
    """The fake kubelet's policy: pods of the `old` revisions Ready, any newer one `behaviour`."""
    return lambda pod: Behaviour.READY if revision(pod) in old else behaviour


def roll_image_to_v2(env: Env, behaviour: Behaviour) -> Any:
    """Two one-GPU nodes, model `m` Ready, then an image change whose new pods `behaviour`;
    the pod of the old revision."""
    env.add_nodes(2)
    ready_model(env)
    (old,) = env.pods("m")
    env.kubelet.policy = new_revisions(behaviour, {revision(old)})
    env.cluster.patch_md("m", {"spec": {"serving": {"image": IMAGE_V2}}})
    return old


def snapshot(env: Env, name: str) -> dict[str, str]:
    """resourceVersions of the ModelDeployment and its children (what a write would change)."""
    c = env.cluster
    return {"md": c.md(name)["metadata"]["resourceVersion"],
            "deployment": c.deployment(name).metadata.resource_version,
            "service": c.service(name).metadata.resource_version}


def test_create_places_pods_on_the_planned_pool_and_becomes_ready(
        env: Env, operator: Operator) -> None:
    env.add_nodes(2)
    ready_model(env)
    md = env.cluster.md("m")
    assert md["status"]["plan"]["pool"] == env.pool
    (pod,) = env.pods("m")
    assert pod.spec.node_name in env.nodes
    assert pod.spec.node_selector == env.spec["nodeSelector"]
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    assert md["status"]["endpoint"] == f"http://m.{env.ns}.svc:8000/v1"


def test_spec_change_surges_when_capacity_allows_and_is_ready_only_when_done(
        env: Env, operator: Operator) -> None:
    """Status bug 1: with a surge pod loading beside the old Ready one (replicas 2, updated 1,
    ready 1), the model must not report Ready: the new image does not serve yet."""
    old = roll_image_to_v2(env, Behaviour.LOADING)

    def surging() -> bool:
        status = env.cluster.deployment("m").status
        return status.replicas == 2 and status.updated_replicas == 1 and \
            status.ready_replicas == 1 and \
            status.observed_generation == env.cluster.deployment("m").metadata.generation
    eventually(surging, 30, what="surge pod beside the old one")
    assert env.cluster.deployment("m").spec.strategy.rolling_update.max_surge == 1
    deadline = time.monotonic() + 5  # > two resyncs and the child events of the surge
    while time.monotonic() < deadline:
        md = env.cluster.md("m")
        ready = {c["type"]: c for c in md["status"]["conditions"]}["Ready"]
        if md["status"].get("observedGeneration") == md["metadata"]["generation"]:
            assert ready["status"] == "False", f"Ready during the surge: {ready}"
        time.sleep(0.2)
    assert env.cluster.conditions("m")["Reconciling"][0] == "True"
    env.kubelet.policy = lambda pod: Behaviour.READY
    env.cluster.wait_condition("m", "Ready", "True", timeout=60)
    (new,) = env.pods("m")
    assert new.spec.containers[0].image == IMAGE_V2 and revision(new) != revision(old)


def test_spec_change_steps_down_without_spare_capacity(env: Env, operator: Operator) -> None:
    env.add_nodes(1)
    ready_model(env)
    env.cluster.patch_md("m", {"spec": {"serving": {"image": IMAGE_V2}}})
    env.cluster.wait_condition("m", "Reconciling", "True", reason="RolloutWithoutSpareCapacity")
    strategy = env.cluster.deployment("m").spec.strategy.rolling_update
    assert (strategy.max_surge, strategy.max_unavailable) == (0, 1)
    env.cluster.wait_condition("m", "Ready", "True", timeout=60)
    (pod,) = env.pods("m")
    assert pod.spec.containers[0].image == IMAGE_V2


def test_more_replicas_than_gpus_waits_for_capacity_then_serves(
        env: Env, operator: Operator) -> None:
    """Status bug 2: a replica Pending on "Insufficient nvidia.com/gpu" while one serves is a
    wait for capacity (Reconciling, the scheduler's message), not Stalled; a node arriving (the
    cluster autoscaler) completes it."""
    env.add_nodes(1)
    env.cluster.create(env.model("m", replicas=2))
    _, _, message = env.cluster.wait_condition("m", "Reconciling", "True",
                                               reason="WaitingForGPUs", timeout=60)
    assert "Insufficient nvidia.com/gpu" in message
    assert env.cluster.conditions("m")["Stalled"][0] == "False"
    env.add_nodes(1)
    env.cluster.wait_condition("m", "Ready", "True", timeout=60)
    assert sorted(p.spec.node_name for p in env.pods("m")) == sorted(env.nodes)


def test_first_deploy_on_a_pool_scaled_to_zero(env: Env, operator: Operator) -> None:
    """Status bugs 2 and 5: an empty pool is a valid, Ready GPUPool (Argo CD Healthy); a model
    on it waits (Reconciling), and serves once a node joins."""
    from tests.install.test_argocd_health import BASE, run_health

    pool = eventually(lambda: _pool_ready(env), 30, what="GPUPool status")
    assert pool["status"]["nodes"] == 0
    health = run_health((BASE / "GPUPool" / "health.lua").read_text(), pool)
    assert health["status"] == "Healthy", health
    env.cluster.create(env.model("m"))
    env.cluster.wait_condition("m", "Reconciling", "True", reason="WaitingForGPUs", timeout=60)
    assert env.cluster.conditions("m")["Stalled"][0] == "False"
    env.add_nodes(1)
    env.cluster.wait_condition("m", "Ready", "True", timeout=60)


def _pool_ready(env: Env) -> dict[str, Any] | None:
    pool = env.cluster.custom.get_cluster_custom_object("modeldeploy.dev", "v1alpha1",
                                                        "gpupools", env.pool)
    conditions = (pool.get("status") or {}).get("conditions") or []
    return pool if conditions else None


def test_label_edit_does_not_restart_the_model(env: Env, operator: Operator) -> None:
    """Status bug 4: `helm.sh/chart: models-0.1.0` → `0.1.1` relabels the children; the pod
    template (and the running replica) stays."""
    env.add_nodes(1)
    body = env.model("m")
    body["metadata"]["labels"] = {"helm.sh/chart": "models-0.1.0"}
    env.cluster.create(body)
    env.cluster.wait_condition("m", "Ready", "True", timeout=60)
    (pod,) = env.pods("m")
    template = env.cluster.deployment("m").spec.template
    env.cluster.patch_md("m", {"metadata": {"labels": {"helm.sh/chart": "models-0.1.1"}}})
    eventually(lambda: env.cluster.deployment("m").metadata.labels.get("helm.sh/chart")
               == "models-0.1.1", 30, what="labels on the Deployment")
    time.sleep(2)
    assert env.cluster.deployment("m").spec.template == template
    assert [p.metadata.uid for p in env.pods("m")] == [pod.metadata.uid]
    assert len(env.cluster.apps.list_namespaced_replica_set(env.ns).items) == 1
    assert "helm.sh/chart" not in (pod.metadata.labels or {})


def test_failed_rollout_is_rolled_back_with_vllms_error(env: Env, operator: Operator) -> None:
    """The new revision crash-loops with vLLM's KV-cache error: classified, rolled back to the
    revision that was Ready, Stalled with the reason; the old replica keeps serving."""
    old = roll_image_to_v2(env, Behaviour.CRASH)
    _, reason, message = env.cluster.wait_condition("m", "Stalled", "True", timeout=60)
    assert reason == "KVCacheTooSmall", message
    assert "max seq len" in message or "KV cache" in message
    eventually(lambda: [revision(p) for p in env.pods("m")] == [revision(old)], 60,
               what="only the old revision left")


def test_oom_at_load_is_reported(env: Env, operator: Operator) -> None:
    env.add_nodes(1)
    env.kubelet.policy = lambda pod: Behaviour.OOM
    env.cluster.create(env.model("m"))
    _, reason, message = env.cluster.wait_condition("m", "Stalled", "True", timeout=60)
    assert reason == "OOMAtLoad", message


def test_restart_makes_no_duplicates_and_no_writes_at_rest(
        env: Env, start_operator: Any) -> None:
    env.add_nodes(1)
    first = start_operator()
    ready_model(env)
    time.sleep(2)
    before = snapshot(env, "m")
    (pod,) = env.pods("m")
    time.sleep(5)  # two resyncs at rest
    assert snapshot(env, "m") == before, "writes at rest"
    first.stop()
    start_operator()
    time.sleep(6)  # the new operator's first full pass and two resyncs
    assert snapshot(env, "m") == before, "the restarted operator rewrote converged objects"
    assert [p.metadata.uid for p in env.pods("m")] == [pod.metadata.uid]
    sets = env.cluster.apps.list_namespaced_replica_set(env.ns).items
    assert len(sets) == 1 and len(env.cluster.apps.list_namespaced_deployment(env.ns).items) == 1


def test_delete_garbage_collects_the_children(env: Env, operator: Operator) -> None:
    env.add_nodes(1)
    ready_model(env)
    env.cluster.delete_md("m")
    wait_deleted(lambda: env.cluster.md("m"))
    wait_deleted(lambda: env.cluster.apps.read_namespaced_deployment("m", env.ns), 60)
    wait_deleted(lambda: env.cluster.core.read_namespaced_service("m", env.ns), 60)
    eventually(lambda: not env.pods("m") or None, 60, what="pods collected")
