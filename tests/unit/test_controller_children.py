"""Desired vs observed children: no-op detection, drift, ownership, pruning."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.controller.children import (
    APPLIED_HASH,
    ChildKinds,
    ChildRef,
    Owner,
    candidate_children,
    contains,
    content_hash,
    controller_uid,
    diff_children,
    owned,
    quantity,
    ref_of,
)
from modeldeploy.render import ChildNames

OWNER = Owner("m", "ns", "uid-1")


def deployment(image: str = "vllm:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "m", "namespace": "ns", "labels": {
            "app.kubernetes.io/managed-by": "modeldeploy", "modeldeploy.dev/name": "m"}},
        "spec": {"replicas": 1, "template": {"spec": {
            "containers": [{"name": "vllm", "image": image, "args": ["--a", "1"],
                            "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "16Gi"}}}],
            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}]}}},
    }


def service() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "m", "namespace": "ns"},
            "spec": {"ports": [{"port": 8000}]}}


def as_served(obj: dict[str, Any], uid: str = "child-uid") -> dict[str, Any]:
    """What the API server returns: defaults and server metadata added."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid=uid, resourceVersion="7", generation=1)
    live["status"] = {"replicas": 1}
    if live["kind"] == "Deployment":
        container = live["spec"]["template"]["spec"]["containers"][0]
        container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/x")
        container["resources"]["limits"]["memory"] = "16384Mi"  # same quantity, other spelling
        live["spec"]["strategy"] = {"type": "RollingUpdate"}
    return live


def test_owned_adds_controller_reference_and_stable_hash() -> None:
    obj = owned(deployment(), OWNER)
    assert controller_uid(obj) == "uid-1"
    (ref,) = obj["metadata"]["ownerReferences"]
    assert ref["kind"] == "ModelDeployment" and ref["controller"] and ref["blockOwnerDeletion"]
    assert obj["metadata"]["annotations"][APPLIED_HASH] == content_hash(obj)
    assert owned(deployment(), OWNER) == obj
    assert owned(deployment("vllm:2"), OWNER)["metadata"]["annotations"][APPLIED_HASH] != \
        obj["metadata"]["annotations"][APPLIED_HASH]


def test_unchanged_world_needs_no_write() -> None:
    desired = [owned(deployment(), OWNER), owned(service(), OWNER)]
    observed = {ref_of(d): as_served(d) for d in desired}
    diff = diff_children(desired, observed, OWNER)
    assert diff.writes == 0 and len(diff.unchanged) == 2 and not diff.conflicts


def test_missing_and_changed_children_are_applied() -> None:
    old = owned(deployment("vllm:1"), OWNER)
    desired = [owned(deployment("vllm:2"), OWNER), owned(service(), OWNER)]
    diff = diff_children(desired, {ref_of(old): as_served(old)}, OWNER)
    assert [ref_of(o).kind for o in diff.apply] == ["Deployment", "Service"]


def test_out_of_band_edit_is_detected_even_with_the_same_hash() -> None:
    desired = owned(deployment(), OWNER)
    live = as_served(desired)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    assert diff_children([desired], {ref_of(desired): live}, OWNER).apply == [desired]
    live = as_served(desired)
    live["spec"]["template"]["spec"]["containers"][0]["args"] = ["--a", "1", "--b"]
    assert diff_children([desired], {ref_of(desired): live}, OWNER).apply == [desired]


def test_additions_by_others_to_named_lists_are_tolerated() -> None:
    desired = owned(deployment(), OWNER)
    live = as_served(desired)
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x"})
    assert diff_children([desired], {ref_of(desired): live}, OWNER).writes == 0


def test_children_no_longer_wanted_are_deleted_only_if_controlled() -> None:
    ours = as_served(owned({**service(), "metadata": {"name": "m-pdb", "namespace": "ns"},
                            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget"}, OWNER),
                     uid="pdb-uid")
    theirs = as_served({**service(), "metadata": {"name": "m-cache", "namespace": "ns"},
                        "kind": "PersistentVolumeClaim"})
    desired = [owned(service(), OWNER)]
    observed = {ref_of(ours): ours, ref_of(theirs): theirs, ref_of(desired[0]): None}
    diff = diff_children(desired, observed, OWNER)
    assert diff.delete == [(ref_of(ours), "pdb-uid")]
    assert [ref_of(o) for o in diff.apply] == [ref_of(desired[0])]


def test_object_controlled_by_someone_else_is_a_conflict() -> None:
    desired = owned(service(), OWNER)
    live = as_served(owned(service(), Owner("m", "ns", "another-uid")))
    diff = diff_children([desired], {ref_of(desired): live}, OWNER)
    assert diff.writes == 0 and diff.conflicts[0][0] == ref_of(desired)
    unlabeled = as_served(service())  # a user's own Service with the same name
    assert diff_children([desired], {ref_of(desired): unlabeled}, OWNER).conflicts


def test_orphan_with_our_labels_is_adopted() -> None:
    orphan = as_served(deployment())  # left by --cascade=orphan: our labels, no owner
    desired = owned(deployment(), OWNER)
    diff = diff_children([desired], {ref_of(desired): orphan}, OWNER)
    assert diff.apply == [desired] and not diff.conflicts


def test_quantities_and_empty_values() -> None:
    assert quantity("16Gi") == quantity("16384Mi") == quantity(17179869184)
    assert quantity("1500m") == quantity("1.5")
    assert quantity("abc") is None and quantity(True) is None
    assert contains({"a": "1"}, {"a": 1})
    assert contains({}, {"emptyDir": {}, "flag": False, "items": []})
    assert not contains({"a": True}, {"a": 1})
    assert not contains({"l": [1, 2]}, {"l": [1]})


@given(st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=10))
def test_every_value_contains_itself(value: Any) -> None:
    assert contains(value, value)


def test_candidate_children_follow_installed_apis() -> None:
    names = ChildNames("m", "m-lws", "m", "m-pdb", "m-cache", "m")
    plain = candidate_children("ns", names, ChildKinds(False, False))
    # The wake Service of scaleToZero is observed always, so turning scaleToZero off prunes it.
    assert [r.kind for r in plain] == ["PersistentVolumeClaim", "Deployment", "Service",
                                       "PodDisruptionBudget", "HorizontalPodAutoscaler", "Service"]
    assert plain[-1] == ChildRef("v1", "Service", "ns", "m-wake")
    full = candidate_children("ns", names, ChildKinds(True, True, True, True))
    assert ChildRef("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "ns", "m-lws") in full
    assert ChildRef("monitoring.coreos.com/v1", "ServiceMonitor", "ns", "m") in full
    assert ChildRef("keda.sh/v1alpha1", "ScaledObject", "ns", "m") in full
    assert full[-1] == ChildRef("http.keda.sh/v1alpha1", "HTTPScaledObject", "ns", "m")


def _scalar_rule(observed: Any, desired: Any) -> bool:
    """contains' rule for a scalar field, as its general path states it."""
    if isinstance(desired, bool) or isinstance(observed, bool):
        return observed is desired or (observed is None and desired is False)
    if observed == desired or (observed is None and desired in ("", 0, None)):
        return True
    left, right = quantity(observed), quantity(desired)
    return left is not None and left == right


_QUANTITY_TEXT = st.sampled_from(["1", "1Gi", "1024Mi", "0.5", "500m", "", "0", "1e3", "true"])


@given(_QUANTITY_TEXT | st.text(max_size=4),
       st.none() | st.booleans() | st.integers(-2, 2000) | st.floats(allow_nan=False)
       | _QUANTITY_TEXT | st.text(max_size=4) | st.lists(st.text(max_size=2), max_size=2))
def test_a_string_field_follows_the_scalar_rule(desired: str, observed: Any) -> None:
    assert contains(observed, desired) is _scalar_rule(observed, desired)
