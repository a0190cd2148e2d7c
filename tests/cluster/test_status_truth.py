"""Status bugs 3 and 6 on the real control plane (bugs 1, 2, 4 and 5: test_lifecycle.py).

- A LeaderWorkerSet older than v0.9 reports no status.observedGeneration: the model must still
  become Ready (its pods run the live template and are Ready).
- An operator upgrade that changes the rendered pod template must not restart every model at
  once: `--max-concurrent-upgrades` (default 2) at a time.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from tests.integration.harness import eventually

from .conftest import Env
from .install import Operator
from .kubelet import Behaviour
from .test_lifecycle import new_revisions, revision

pytestmark = pytest.mark.usefixtures("scheduler")
LWS = ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets")
LWS_NAME, LWS_GROUP_INDEX, LWS_WORKER_INDEX = (
    "leaderworkerset.sigs.k8s.io/name", "leaderworkerset.sigs.k8s.io/group-index",
    "leaderworkerset.sigs.k8s.io/worker-index")


def _play_lws_v08(env: Env, model: str, name: str) -> None:
    """What LeaderWorkerSet v0.8 does for one group of size 2: a leader and a worker pod from
    the templates, then a status without observedGeneration."""
    lws = env.cluster.custom.get_namespaced_custom_object(*LWS[:2], env.ns, LWS[2], name)
    template = lws["spec"]["leaderWorkerTemplate"]
    for index, key in enumerate(("leaderTemplate", "workerTemplate")):
        pod = copy.deepcopy(template[key])
        meta = pod.setdefault("metadata", {})
        meta["name"] = f"{name}-0" if index == 0 else f"{name}-0-{index}"
        meta.setdefault("labels", {}).update({LWS_NAME: name, LWS_GROUP_INDEX: "0",
                                              LWS_WORKER_INDEX: str(index)})
        pod["spec"]["nodeName"] = env.nodes[index]  # as the scheduler would, one node each
        env.cluster.core.create_namespaced_pod(env.ns, {"apiVersion": "v1", "kind": "Pod", **pod})
    eventually(lambda: all(p.status.phase == "Running" for p in env.pods(model))
               and len(env.pods(model)) == 2, 30, what="LWS pods running")
    env.cluster.custom.patch_namespaced_custom_object_status(
        *LWS[:2], env.ns, LWS[2], name,
        {"status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "conditions": [
            {"type": "Available", "status": "True", "reason": "AllGroupsReady",
             "message": "All replicas are ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})


def test_leaderworkerset_without_observed_generation_becomes_ready(
        env: Env, operator: Operator) -> None:
    """Status bug 3: multi-node models on LWS < v0.9 stayed Progressing forever."""
    env.spec["gpusPerNode"] = 2
    env.cluster.custom.patch_cluster_custom_object(
        "modeldeploy.dev", "v1alpha1", "gpupools", env.pool, {"spec": {"gpusPerNode": 2}})
    env.add_nodes(2)
    env.cluster.create(env.model("big", model={"name": "Qwen/Qwen3-32B"}))
    lws = eventually(lambda: env.cluster.custom.list_namespaced_custom_object(
        *LWS[:2], env.ns, LWS[2])["items"], 60, what="LeaderWorkerSet")
    plan = eventually(lambda: (env.cluster.md("big").get("status") or {}).get("plan"), 30,
                      what="status.plan")
    assert plan["nodesPerReplica"] == 2, plan
    _play_lws_v08(env, "big", lws[0]["metadata"]["name"])
    env.cluster.wait_condition("big", "Ready", "True", timeout=30)


def test_operator_upgrade_rolls_a_few_models_at_a_time(env: Env, start_operator: Any) -> None:
    """Status bug 6: a new operator renders a different template for every model (here: the
    ServiceMonitor mode drops the prometheus.io pod annotations). At most two roll at once."""
    names = ("a", "b", "c")
    env.add_nodes(len(names))
    first = start_operator()
    for name in names:
        env.cluster.create(env.model(name))
    for name in names:
        env.cluster.wait_condition(name, "Ready", "True", timeout=90)
    before = {name: revision(env.pods(name)[0]) for name in names}
    old = set(before.values())
    env.kubelet.policy = new_revisions(Behaviour.LOADING, old)
    first.stop()
    start_operator("--service-monitor")

    def changed() -> list[str]:
        return [n for n in names if env.cluster.deployment(n).spec.template.metadata.annotations[
            "modeldeploy.dev/pod-template-hash"] != before[n]]
    eventually(lambda: changed() or None, 30, what="a first model rolling")
    deadline = time.monotonic() + 6  # three resyncs: every model was reconciled meanwhile
    while time.monotonic() < deadline:
        rolling = changed()
        assert len(rolling) <= 2, f"{rolling} rolled at once"
        time.sleep(0.2)
    assert len(changed()) == 2
    env.kubelet.policy = lambda pod: Behaviour.READY
    eventually(lambda: len(changed()) == 3, 60, what="the third model rolled after a slot freed")
    for name in names:
        env.cluster.wait_condition(name, "Ready", "True", timeout=60)
