"""`decide(snapshot, facts, options, now)`: one pure decision per ModelDeployment."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import make_pool

from modeldeploy.controller.children import ChildKinds, ChildRef, applied_view, candidate_children, ref_of
from modeldeploy.controller.decide import Actions, Snapshot, decide, names_of
from modeldeploy.controller.status import Failure, Reason
from modeldeploy.facts import ModelFacts
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.render import RenderOptions

NOW = 1_790_000_000.0
KINDS = ChildKinds(leader_worker_set=True, service_monitor=False)
POOL = make_pool("l4", "NVIDIA-L4", 22.49, 4)
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def facts(repo: str = MODEL) -> ModelFacts:
    found = load_catalog().get(repo)
    assert found is not None
    return found


def body(name: str = "m", generation: int = 1, status: dict[str, Any] | None = None,
         **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": "ns", "uid": "uid-1",
                         "generation": generation, "resourceVersion": "7"},
            "spec": {"model": {"name": MODEL}, "serving": {"maxModelLen": 8192}, **spec},
            "status": status or {}}


def snapshot(md: dict[str, Any], live: dict[ChildRef, Any] | None = None) -> Snapshot:
    refs = candidate_children("ns", names_of(md["metadata"]["name"]), KINDS)
    children = {ref: (live or {}).get(ref) for ref in refs}
    return Snapshot(body=md, children=children, pods=(), pools=(POOL,), kinds=KINDS)


def converged(md: dict[str, Any], actions: Actions) -> Snapshot:
    """The world once `actions` were written (the API server's view of our applies)."""
    first = snapshot(md)
    live = {ref_of(o): applied_view(o, first.children.get(ref_of(o))) for o in actions.applies}
    written = {**md, "status": actions.status.model_dump(by_alias=True, exclude_none=True,
                                                         mode="json")}
    return snapshot(written, live)


def test_a_new_model_deployment_applies_its_children_and_writes_a_status() -> None:
    actions = decide(snapshot(body()), facts(), RenderOptions(), NOW)
    assert sorted(o["kind"] for o in actions.applies) == ["Deployment", "Service"]
    assert actions.status_patch is not None and not actions.deletes and actions.scale is None
    assert [e.reason for e in actions.events] == ["Planned"]
    reconciling = {c.type: c for c in actions.status.conditions}["Reconciling"]
    assert reconciling.status == "True"


def test_an_unchanged_world_decides_no_write() -> None:
    md = body()
    actions = decide(snapshot(md), facts(), RenderOptions(), NOW)
    again = decide(converged(md, actions), facts(), RenderOptions(), NOW + 60)
    assert (again.applies, again.deletes, again.scale, again.status_patch, again.events) == \
        ((), (), None, None, ())


def test_the_same_snapshot_gives_the_same_actions() -> None:
    first = decide(snapshot(body()), facts(), RenderOptions(), NOW)
    second = decide(snapshot(body()), facts(), RenderOptions(), NOW)
    assert first == second


def test_a_child_edited_behind_our_back_is_applied_again() -> None:
    md = body()
    world = converged(md, decide(snapshot(md), facts(), RenderOptions(), NOW))
    ref = next(r for r, o in world.children.items() if o is not None and r.kind == "Service")
    edited = dict(world.children)
    service = edited[ref]
    assert service is not None
    edited[ref] = {**service, "spec": {**service["spec"], "ports": []}}
    actions = decide(Snapshot(body=world.body, children=edited, pods=(), pools=(POOL,),
                              kinds=KINDS), facts(), RenderOptions(), NOW)
    assert [o["kind"] for o in actions.applies] == ["Service"]


@pytest.mark.parametrize(("facts_in", "reason"), [
    (Failure(Reason.MODEL_UNRESOLVED, "hub unreachable"), "ModelUnresolved"),
    (None, "ModelUnresolved"),
])
def test_missing_facts_stall_without_writes(facts_in: Failure | None, reason: str) -> None:
    actions = decide(snapshot(body()), facts_in, RenderOptions(), NOW)
    assert not actions.applies and actions.transient
    stalled = {c.type: c for c in actions.status.conditions}["Stalled"]
    assert (stalled.status, stalled.reason) == ("True", reason)


def test_an_invalid_spec_stalls_and_deletes_nothing() -> None:
    md = body()
    world = converged(md, decide(snapshot(md), facts(), RenderOptions(), NOW))
    broken = {**world.body, "spec": {**world.body["spec"], "replicas": -3}}
    actions = decide(Snapshot(body=broken, children=world.children, pods=(), pools=(POOL,),
                              kinds=KINDS), facts(), RenderOptions(), NOW)
    assert (actions.applies, actions.deletes) == ((), ())
    stalled = {c.type: c for c in actions.status.conditions}["Stalled"]
    assert stalled.reason == "InvalidSpec" and not actions.transient


def test_a_failed_write_is_decided_again_without_writes() -> None:
    actions = decide(snapshot(body()), facts(), RenderOptions(), NOW,
                     write_failure=Failure(Reason.APPLY_FAILED, "500 InternalError"))
    assert not actions.applies and actions.transient
    stalled = {c.type: c for c in actions.status.conditions}["Stalled"]
    assert (stalled.reason, stalled.message) == ("ApplyFailed", "500 InternalError")


def test_multi_node_without_leaderworkerset_asks_for_discovery() -> None:
    md = body(model={"name": "meta-llama/Llama-3.1-405B-Instruct"})
    h100 = make_pool("h100", "NVIDIA-H100-80GB-HBM3", 79.11, 8)
    refs = candidate_children("ns", names_of("m"), KINDS)
    no_lws = ChildKinds(leader_worker_set=False, service_monitor=False)
    actions = decide(Snapshot(body=md, children=dict.fromkeys(refs), pods=(), pools=(h100,),
                              kinds=no_lws), facts("meta-llama/Llama-3.1-405B-Instruct"),
                     RenderOptions(), NOW)
    assert actions.missing_api and not actions.applies


def test_applied_view_bumps_the_generation_only_when_the_spec_changes() -> None:
    live = {"kind": "Deployment", "metadata": {"name": "m", "generation": 3},
            "spec": {"replicas": 2, "template": {"a": 1}}, "status": {"observedGeneration": 3}}
    same = applied_view({"kind": "Deployment", "metadata": {"labels": {"x": "y"}},
                         "spec": {"template": {"a": 1}}}, live)
    assert same["metadata"]["generation"] == 3 and same["metadata"]["labels"] == {"x": "y"}
    changed = applied_view({"kind": "Deployment", "metadata": {}, "spec": {"template": {"a": 2}}},
                           live)
    assert changed["metadata"]["generation"] == 4
    assert changed["spec"] == {"replicas": 2, "template": {"a": 2}}


# --- layout change: Deployment -> LeaderWorkerSet ------------------------------------------------

BIG = "meta-llama/Llama-3.3-70B-Instruct"  # TP 2 on one H100 node; TP 4 x PP 2 on 4-GPU L4 nodes


def selected_pool(name: str, product: str, memory: float, gpus: int) -> Any:
    from modeldeploy.api import GPUPool

    return GPUPool.model_validate({"metadata": {"name": name}, "spec": {
        "gpu": {"product": product, "memoryGiB": memory}, "gpusPerNode": gpus,
        "pricePerGPUHour": 1.0, "nodeSelector": {"nvidia.com/gpu.product": product}}})


H100 = selected_pool("h100", "NVIDIA-H100-80GB-HBM3", 79.11, 8)
L4 = selected_pool("l4", "NVIDIA-L4", 22.49, 4)


def node(name: str, product: str, gpus: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
            "spec": {}, "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}}}


def moved_to_l4(l4_nodes: int) -> tuple[Snapshot, ChildRef, ChildRef]:
    """A 70B model served by a Deployment on H100, whose spec now selects the L4 pool."""
    from modeldeploy.controller.pods import ClusterCapacity

    md = body(model={"name": BIG}, placement={"pools": ["h100"]})
    refs = candidate_children("ns", names_of("m"), KINDS)
    first = decide(Snapshot(body=md, children=dict.fromkeys(refs), pods=(), pools=(H100, L4),
                            kinds=KINDS), facts(BIG), RenderOptions(), NOW)
    live = {ref_of(o): applied_view(o, None) for o in first.applies}
    moved = {**md, "spec": {**md["spec"], "placement": {"pools": ["l4"]}}}
    capacity = ClusterCapacity(
        nodes=tuple(node(f"l4-{i}", "NVIDIA-L4", 4) for i in range(l4_nodes)), pods=())
    snap = Snapshot(body=moved, children={ref: live.get(ref) for ref in refs}, pods=(),
                    pools=(H100, L4), kinds=KINDS, capacity=capacity)
    deployment = next(r for r in refs if r.kind == "Deployment")
    lws = next(r for r in refs if r.kind == "LeaderWorkerSet")
    return snap, deployment, lws


def test_a_layout_change_with_spare_gpus_keeps_the_old_workload_until_the_new_is_ready() -> None:
    snap, deployment, lws = moved_to_l4(l4_nodes=2)
    actions = decide(snap, facts(BIG), RenderOptions(), NOW)
    assert lws in {ref_of(o) for o in actions.applies}
    assert actions.deletes == ()  # the Deployment serves meanwhile
    reconciling = {c.type: c for c in actions.status.conditions}["Reconciling"]
    assert reconciling.reason != "LayoutChangeWithoutSpareCapacity"
    # The new group is Ready: now the old Deployment goes.
    applied = next(o for o in actions.applies if ref_of(o) == lws)
    ready = applied_view(applied, None)
    ready = {**ready, "metadata": {**ready["metadata"], "generation": 1}, "status": {
        "observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}}
    after = Snapshot(body=snap.body, children={**snap.children, lws: ready}, pods=(),
                     pools=snap.pools, kinds=KINDS, capacity=snap.capacity)
    assert [ref for ref, _ in decide(after, facts(BIG), RenderOptions(), NOW).deletes] == [
        deployment]


def test_a_layout_change_without_spare_gpus_steps_down_and_says_so() -> None:
    snap, deployment, lws = moved_to_l4(l4_nodes=1)  # 4 free GPUs, the new group needs 8
    actions = decide(snap, facts(BIG), RenderOptions(), NOW)
    assert [ref for ref, _ in actions.deletes] == [deployment]
    assert lws in {ref_of(o) for o in actions.applies}
    reconciling = {c.type: c for c in actions.status.conditions}["Reconciling"]
    assert (reconciling.status, reconciling.reason) == ("True", "LayoutChangeWithoutSpareCapacity")
    assert "Deployment to LeaderWorkerSet" in reconciling.message


TO_ZERO = {"minReplicas": 0, "maxReplicas": 2, "scaleToZero": True}
ADD_ON = ChildKinds(leader_worker_set=True, service_monitor=False, scaled_object=True,
                    http_scaled_object=True)


def _at_zero(md: dict[str, Any], held: int | None, *, namespaced: bool = False) -> Actions:
    """A builtin scale-to-zero model whose Deployment is at zero, the interceptor holding `held`."""
    first = decide(Snapshot(body=md, children={}, pods=(), pools=(POOL,), kinds=ADD_ON),
                   facts(), RenderOptions(), NOW)
    deployment = next(o for o in first.applies if o["kind"] == "Deployment")
    live = applied_view({**deployment, "spec": {**deployment["spec"], "replicas": 0}}, None)
    refs = candidate_children("ns", names_of("m"), ADD_ON)
    children = {ref: live if ref == ref_of(deployment) else None for ref in refs}
    return decide(Snapshot(body=md, children=children, pods=(), pools=(POOL,), kinds=ADD_ON,
                           interceptor_in_flight=held, namespaced=namespaced),
                  facts(), RenderOptions(), NOW)


def test_a_request_held_at_the_interceptor_wakes_a_builtin_model_at_zero() -> None:
    md = body(autoscaling=TO_ZERO)
    woken = _at_zero(md, 1)
    assert woken.scale is not None and woken.scale.replicas == 1
    assert woken.status.autoscaling is not None and woken.status.autoscaling.reason == "ScaledFromZero"
    asleep = _at_zero(md, 0)
    assert asleep.scale is None and asleep.status.autoscaling is not None
    assert asleep.status.autoscaling.reason == "Idle"
    unread = _at_zero(md, None)  # interceptors unreadable: hold, never a made-up wake
    assert unread.scale is None


def test_a_namespaced_install_refuses_a_builtin_wake_it_cannot_read() -> None:
    actions = _at_zero(body(autoscaling=TO_ZERO), None, namespaced=True)
    stalled = {c.type: c for c in actions.status.conditions}["Stalled"]
    assert (stalled.status, stalled.reason) == ("True", "KEDAUnavailable")
    assert "autoscaling.mode: keda" in (stalled.message or "")
    keda = _at_zero(body(autoscaling={**TO_ZERO, "mode": "keda"}), None, namespaced=True)
    assert {c.type: c for c in keda.status.conditions}["Stalled"].status == "False"
