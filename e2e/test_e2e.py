"""End-to-end on kind with fake GPUs: the real operator, chart, CRDs, scheduler and rollouts.

Run with `make e2e` (e2e/run.sh builds the images, creates the cluster, installs the chart and
sets the environment). Anywhere else every test here is collected and skipped with the reason
"e2e needs Docker and kind" — never counted as passed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from e2e import helpers
from e2e.fake_gpu import SHAPE_LABEL, SHAPES, PoolShape
from e2e.helpers import Cluster, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not helpers.e2e_available() and not helpers.e2e_required(),
                       reason=helpers.SKIP_REASON),
]

L4, H100 = SHAPES["l4x4"], SHAPES["h100x8"]


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    from e2e import guard

    if not helpers.e2e_available():  # run.sh set the suite up: never skip silently
        pytest.fail(f"{helpers.SKIP_REASON}, but run.sh created the cluster: a prerequisite "
                    "went missing", pytrace=False)
    try:
        return helpers.connect()
    except guard.GuardError as exc:
        pytest.exit(f"guard: REFUSED: {exc}", returncode=3)


@pytest.fixture
def ns(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test; deleted (and waited for, to free its GPUs) afterwards."""
    name = Cluster.new_namespace_name(request.node.name)
    cluster.create_namespace(name)
    yield name
    if request.node.stash.get(helpers.FAILED, False):  # before the namespace and its pods go
        cluster.save_diagnostics(name, request.node.name)
    cluster.delete_namespace(name)


def _plan(md: dict[str, Any]) -> dict[str, Any]:
    plan = (md.get("status") or {}).get("plan")
    assert plan, f"Ready ModelDeployment has no status.plan: {md.get('status')}"
    return dict(plan)


def _serving_pods(cluster: Cluster, ns: str, md: dict[str, Any]) -> list[dict[str, Any]]:
    selector = md["status"].get("selector")
    assert selector, f"status.selector is empty: {md['status']}"
    return [p for p in cluster.pods(ns, selector) if not p["metadata"].get("deletionTimestamp")]


def _images(pods: list[dict[str, Any]]) -> set[str]:
    return {c["image"] for p in pods for c in p["spec"]["containers"]}


def _ready_pods(
    cluster: Cluster, ns: str, md: dict[str, Any], count: int, image: str | None = None
) -> list[dict[str, Any]]:
    """Wait until exactly `count` serving pods exist, all ready (and all on `image`)."""

    def probe() -> list[dict[str, Any]] | None:
        pods = _serving_pods(cluster, ns, cluster.get_md(ns, md["metadata"]["name"]))
        ready = [p for p in pods if helpers.pod_ready(p)]
        if image is not None and _images(pods) != {image}:
            return None
        return ready if len(ready) == count == len(pods) else None

    on = f" on {image}" if image else ""
    return wait_for(f"{count} ready serving pod(s){on} and no others in {ns}", probe, 300)


def _status_settles(cluster: Cluster, ns: str, name: str, replicas: int) -> dict[str, Any]:
    """Wait until status counts every replica as existing, ready and updated."""

    def probe() -> dict[str, Any] | None:
        md = cluster.get_md(ns, name)
        status = md.get("status") or {}
        counts = (status.get("replicas"), status.get("readyReplicas"),
                  status.get("updatedReplicas"))
        return md if helpers.is_ready(md) and counts == (replicas,) * 3 else None

    return wait_for(f"{ns}/{name} status: {replicas} replicas, all ready and updated", probe, 180)


def _replicas(cluster: Cluster, ns: str, name: str) -> int:
    return int(cluster.get_md(ns, name)["status"].get("replicas") or 0)


@pytest.mark.parametrize(
    ("shape", "tensor_parallel"), [(L4, None), (H100, 2)], ids=[L4.shape, H100.shape]
)
def test_pool_shape_places_pods_and_serves(
    cluster: Cluster, ns: str, shape: PoolShape, tensor_parallel: int | None
) -> None:
    spec = helpers.tiny_model_spec(
        cluster.sim_image, pools=[shape.pool], tensor_parallel=tensor_parallel)
    cluster.create_md(ns, "tiny", spec)
    md = cluster.wait_ready(ns, "tiny")

    plan = _plan(md)
    assert plan["pool"] == shape.pool
    if tensor_parallel:
        assert plan["tensorParallelSize"] == tensor_parallel
    gpus = plan["gpusPerReplica"]
    assert gpus == plan["tensorParallelSize"] * plan["pipelineParallelSize"]
    assert md["status"].get("endpoint"), "status.endpoint is empty"

    pods = _ready_pods(cluster, ns, md, count=1)
    pool_nodes = cluster.nodes_by_label(SHAPE_LABEL, shape.shape)
    for pod in pods:
        assert pod["spec"]["nodeName"] in pool_nodes, "pod scheduled outside the planned pool"
        assert helpers.pod_gpu_request(pod) == gpus, "pod GPU request differs from the plan"

    url = cluster.service_url(ns, md["metadata"]["uid"], "/v1/models")
    body = json.loads(cluster.run_python_once(ns, "models", helpers.MODELS_SCRIPT, [url]))
    assert spec["model"]["name"] in {m["id"] for m in body["data"]}


def test_image_change_rolls_out_without_downtime(cluster: Cluster, ns: str) -> None:
    # One 1-GPU replica on a pool of 8 GPUs: a surge replica fits, so nothing may go down.
    cluster.create_md(ns, "roll", helpers.tiny_model_spec(cluster.sim_image, pools=[L4.pool]))
    md = cluster.wait_ready(ns, "roll")
    assert _plan(md)["gpusPerReplica"] < L4.gpus_per_node * L4.nodes
    url = cluster.service_url(ns, md["metadata"]["uid"], "/v1/models")

    cluster.start_python_pod(ns, "probe", helpers.PROBE_SCRIPT, [url, "600"])
    wait_for("the probe's first successful poll",
             lambda: any(r["ok"] for r in helpers.parse_probe_log(cluster.pod_log(ns, "probe"))),
             60)

    cluster.patch_md_spec(ns, "roll", {"serving": {"image": cluster.sim_image_v2}})
    md = cluster.wait_ready(ns, "roll")
    _ready_pods(cluster, ns, md, count=1, image=cluster.sim_image_v2)
    _status_settles(cluster, ns, "roll", replicas=1)

    results = helpers.parse_probe_log(cluster.pod_log(ns, "probe"))
    cluster.delete_pod(ns, "probe")
    down = helpers.downtime_after_first_success(results)
    assert not down, f"{len(down)} of {len(results)} polls failed during the rollout: {down[:5]}"


def test_load_scales_up_and_idle_scales_down(cluster: Cluster, ns: str) -> None:
    autoscaling = {
        "minReplicas": 1, "maxReplicas": 2, "metric": "requestsWaiting", "target": 1,
        "scaleUpStabilizationSeconds": 0, "scaleDownStabilizationSeconds": 30,
    }
    spec = helpers.tiny_model_spec(
        cluster.sim_image, pools=[L4.pool], autoscaling=autoscaling, max_num_seqs=1)
    cluster.create_md(ns, "scale", spec)
    md = cluster.wait_ready(ns, "scale")
    assert _replicas(cluster, ns, "scale") == 1
    completions = cluster.service_url(ns, md["metadata"]["uid"], "/v1/completions")

    # maxNumSeqs 1 and 6 concurrent clients: ~5 requests wait per replica, target is 1.
    cluster.start_python_pod(
        ns, "load", helpers.LOAD_SCRIPT, [completions, spec["model"]["name"], "6", "300"])
    wait_for("scale up to 2 replicas under load",
             lambda: _replicas(cluster, ns, "scale") == 2, 240)
    md = cluster.wait_ready(ns, "scale")
    _ready_pods(cluster, ns, md, count=2)
    md = _status_settles(cluster, ns, "scale", replicas=2)
    decision = (md["status"].get("autoscaling") or {}).get("lastDecision") or {}
    assert decision.get("to") == 2, f"last scaling decision: {decision}"

    cluster.delete_pod(ns, "load")
    wait_for("scale down to 1 replica once the load is gone",
             lambda: _replicas(cluster, ns, "scale") == 1, 300)
    md = cluster.wait_ready(ns, "scale")
    _ready_pods(cluster, ns, md, count=1)
    _status_settles(cluster, ns, "scale", replicas=1)


def _deployment_replicas(cluster: Cluster, ns: str, uid: str) -> int:
    (deployment,) = cluster.owned_of_kind(ns, uid, "Deployment")
    return int(deployment["spec"].get("replicas", 1))


@pytest.mark.timeout(1500)  # idleSeconds, the scale-down, then a cold start behind the interceptor
def test_a_model_at_zero_answers_a_request_through_the_interceptor(cluster: Cluster, ns: str) -> None:
    """builtin + scaleToZero: idle for idleSeconds, the model goes to zero; a request sent to
    the wake Service is held by the KEDA HTTP interceptor, the operator reads the interceptor's
    count, wakes the model (its vLLM takes SIM_LOAD_SECONDS to load) and the request is answered."""
    if os.environ.get(helpers.ENV_KEDA_HTTP) != "1":
        pytest.skip(helpers.KEDA_HTTP_SKIP_REASON)
    autoscaling = {"minReplicas": 0, "maxReplicas": 1, "scaleToZero": True, "idleSeconds": 60,
                   "scaleDownStabilizationSeconds": 0}
    spec = helpers.tiny_model_spec(cluster.sim_image, pools=[L4.pool], autoscaling=autoscaling)
    spec["serving"]["env"] = [{"name": "SIM_LOAD_SECONDS", "value": "15"}]
    cluster.create_md(ns, "sleepy", spec)
    md = cluster.wait_ready(ns, "sleepy", timeout=300)
    uid = md["metadata"]["uid"]
    wake = cluster.wake_url(ns, uid, "/v1/completions")

    wait_for("the idle model to scale to zero", lambda: _deployment_replicas(cluster, ns, uid) == 0, 420)
    wait_for("its last serving pod to go", lambda: not _serving_pods(cluster, ns, cluster.get_md(ns, "sleepy")),
             180)
    log = cluster.run_python_once(ns, "from-zero", helpers.COMPLETION_SCRIPT,
                                  [wake, spec["model"]["name"], "400"], timeout=480)
    (answer,) = helpers.parse_probe_log(log)
    assert answer["code"] == 200, f"request to the model at zero: {answer}"
    assert answer["body"]["choices"][0]["text"], answer
    assert answer["seconds"] >= 15, f"answered in {answer['seconds']}s: it cannot have waited for a load"
    assert _deployment_replicas(cluster, ns, uid) == 1
    decision = (cluster.get_md(ns, "sleepy")["status"].get("autoscaling") or {}).get("lastDecision") or {}
    assert (decision.get("from"), decision.get("to"), decision.get("reason")) == (0, 1, "ScaledFromZero"), decision


def test_delete_removes_every_child(cluster: Cluster, ns: str) -> None:
    cluster.create_md(ns, "gone", helpers.tiny_model_spec(cluster.sim_image, pools=[L4.pool]))
    md = cluster.wait_ready(ns, "gone")
    uid, selector = md["metadata"]["uid"], md["status"]["selector"]
    kinds = {o["kind"] for o in cluster.owned(ns, uid)}
    assert {"Deployment", "Service"} <= kinds, f"children before delete: {kinds}"

    cluster.delete_md(ns, "gone")
    wait_for("the ModelDeployment to go", lambda: not cluster.md_exists(ns, "gone"), 120)
    wait_for("every owned child to go", lambda: not cluster.owned(ns, uid), 180)
    wait_for("every serving pod to go", lambda: not cluster.pods(ns, selector), 180)


def test_operator_killed_mid_rollout_converges_without_flapping(
    cluster: Cluster, ns: str
) -> None:
    cluster.create_md(
        ns, "crash", helpers.tiny_model_spec(cluster.sim_image, pools=[L4.pool], replicas=2))
    md = cluster.wait_ready(ns, "crash")
    uid = md["metadata"]["uid"]
    old_operator = {p["metadata"]["uid"] for p in cluster.operator_pods()}

    cluster.patch_md_spec(ns, "crash", {"serving": {"image": cluster.sim_image_v2}})
    wait_for("the rollout to start",
             lambda: any(c["spec"]["template"]["spec"]["containers"][0]["image"]
                         == cluster.sim_image_v2
                         for c in cluster.owned_of_kind(ns, uid, "Deployment")), 120)
    for pod in cluster.operator_pods():
        cluster.delete_pod(cluster.operator_namespace, pod["metadata"]["name"])
    wait_for("a new operator pod to be ready",
             lambda: [p for p in cluster.operator_pods()
                      if p["metadata"]["uid"] not in old_operator and helpers.pod_ready(p)], 180)

    md = cluster.wait_ready(ns, "crash", timeout=420)
    pods = _ready_pods(cluster, ns, md, count=2, image=cluster.sim_image_v2)
    md = _status_settles(cluster, ns, "crash", replicas=2)

    # Converged means quiet: no spec writes to the child, no pod churn, no condition flips.
    deployments = cluster.owned_of_kind(ns, uid, "Deployment")
    assert len(deployments) == 1, "duplicate Deployments after the operator restart"
    generation = deployments[0]["metadata"]["generation"]
    pod_uids = {p["metadata"]["uid"] for p in pods}
    ready_since = helpers.condition(md, "Ready")["lastTransitionTime"]  # type: ignore[index]
    for _ in helpers.samples(seconds=45, interval=3):
        now = cluster.get_md(ns, "crash")
        assert helpers.is_ready(now), f"Ready flapped: {now['status'].get('conditions')}"
        assert helpers.condition(now, "Ready")["lastTransitionTime"] == ready_since  # type: ignore[index]
        [dep] = cluster.owned_of_kind(ns, uid, "Deployment")
        assert dep["metadata"]["generation"] == generation, "Deployment spec rewritten"
        assert {p["metadata"]["uid"] for p in _serving_pods(cluster, ns, now)} == pod_uids


def test_model_that_fits_no_pool_stalls_with_no_feasible_layout(
    cluster: Cluster, ns: str
) -> None:
    # Two trillion bf16 parameters (~4 TB of weights): more than every pool holds in total.
    spec = helpers.tiny_model_spec(cluster.sim_image, parameters=2_000_000_000_000)
    md = cluster.create_md(ns, "huge", spec)

    def stalled() -> dict[str, Any] | None:
        now = cluster.get_md(ns, "huge")
        cond = helpers.condition(now, "Stalled")
        return now if helpers.is_current(now) and cond and cond["status"] == "True" else None

    md = wait_for("Stalled=True", stalled, 120)
    cond = helpers.condition(md, "Stalled")
    assert cond is not None
    assert cond["reason"] == "NoFeasibleLayout"
    assert cond["message"], "NoFeasibleLayout without a message"
    ready = helpers.condition(md, "Ready")
    assert ready is not None and ready["status"] == "False"
    workloads = [o for o in cluster.owned(ns, md["metadata"]["uid"])
                 if o["kind"] in ("Deployment", "LeaderWorkerSet")]
    assert not workloads, "a workload was created for a model that fits nowhere"
