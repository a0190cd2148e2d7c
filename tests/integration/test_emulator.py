"""Each extension of the emulator, tested through the real `kubernetes` client over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import urllib3
from kubernetes.client import ApiClient, ApiException, AppsV1Api, CoreV1Api, CustomObjectsApi

from .emulator import LWS_KIND, EmulatorServer, Fault, Kind
from .semantics import apply_patch, merge_patch, parse_field_selector, parse_label_selector

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

GROUP, VERSION = "modeldeploy.dev", "v1alpha1"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


def deployment(name: str, image: str = "vllm:1", labels: dict[str, str] | None = None,
               **meta: Any) -> dict[str, Any]:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, **meta},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "vllm", "image": image}]}}},
    }


def md(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
            "metadata": {"name": name}, "spec": {"model": {"name": "org/model"}, **spec}}


def auth(api: ApiClient) -> dict[str, str]:
    return {"Authorization": api.configuration.auth_settings()["BearerToken"]["value"]}


def raw(api: ApiClient, method: str, path: str, body: Any = None,
        content_type: str = "application/json", **params: str) -> tuple[int, Any]:
    """One request with the client's HTTP stack; returns (status, decoded JSON)."""
    url = api.configuration.host + path
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    headers = {"Content-Type": content_type, **auth(api)}
    data = json.dumps(body) if body is not None else None
    resp = api.rest_client.pool_manager.request(method, url, body=data, headers=headers,
                                                retries=False, timeout=10)
    return resp.status, json.loads(resp.data or b"null")


def watch(api: ApiClient, path: str, **params: str) -> list[dict[str, Any]]:
    """Read a watch stream until the server ends it (always pass timeoutSeconds)."""
    assert "timeoutSeconds" in params
    url = api.configuration.host + path + "?watch=true&" + "&".join(
        f"{k}={v}" for k, v in params.items())
    resp = api.rest_client.pool_manager.request("GET", url, preload_content=False, retries=False,
                                                timeout=15, headers=auth(api))
    lines = b"".join(resp.stream()).splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


# --- pure semantics -----------------------------------------------------------------------------

def test_merge_patch_merges_maps_and_null_deletes() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None, "d": 3}, "l": [2]}) \
        == {"a": {"c": 2, "d": 3}, "l": [2]}


def test_apply_prunes_only_what_the_manager_stopped_applying() -> None:
    live = {"spec": {"a": 1, "b": 2, "other": 9}}
    result = apply_patch(live, {"spec": {"a": 5}}, previous={"spec": {"a": 1, "b": 2}})
    assert result == {"spec": {"a": 5, "other": 9}}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("a=b", {"a": "b"}, True), ("a==b", {"a": "c"}, False), ("a!=b", {}, True),
    ("a in (x, y),c", {"a": "y", "c": ""}, True), ("a notin (x)", {"a": "x"}, False),
    ("!a", {"a": "1"}, False), ("a", {"b": "1"}, False), ("", {"z": "1"}, True),
])
def test_label_selector(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector)(labels) is expected


def test_field_selector_supports_the_documented_fields_only() -> None:
    pred = parse_field_selector("spec.nodeName=n1,status.phase!=Succeeded")
    assert pred({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    assert not pred({"spec": {"nodeName": "n2"}, "status": {"phase": "Running"}})
    with pytest.raises(ValueError, match="not supported"):
        parse_field_selector("spec.schedulerName=x")


# --- resources, lists, versions -----------------------------------------------------------------

def test_list_has_kind_and_resource_version(api: ApiClient, namespace: str) -> None:
    apps = AppsV1Api(api)
    for name in ("b", "a"):
        apps.create_namespaced_deployment(namespace, deployment(name))
    listed = apps.list_namespaced_deployment(namespace)
    assert listed.kind == "DeploymentList"
    assert [d.metadata.name for d in listed.items] == ["a", "b"]
    assert int(listed.metadata.resource_version) >= max(
        int(d.metadata.resource_version) for d in listed.items)
    status, body = raw(api, "GET", f"/apis/{GROUP}/{VERSION}/modeldeployments")
    assert (status, body["kind"], body["apiVersion"]) == (200, "ModelDeploymentList",
                                                          f"{GROUP}/{VERSION}")


def test_generation_bumps_on_spec_changes_only(api: ApiClient, namespace: str) -> None:
    apps = AppsV1Api(api)
    created = apps.create_namespaced_deployment(namespace, deployment("d"))
    assert created.metadata.generation == 1 and created.metadata.uid
    labelled = apps.patch_namespaced_deployment("d", namespace,
                                                {"metadata": {"labels": {"x": "1"}}})
    assert labelled.metadata.generation == 1
    assert int(labelled.metadata.resource_version) > int(created.metadata.resource_version)
    status = apps.patch_namespaced_deployment_status("d", namespace,
                                                     {"status": {"readyReplicas": 1}})
    assert status.metadata.generation == 1 and status.status.ready_replicas == 1
    changed = apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 2}})
    assert changed.metadata.generation == 2


def test_status_is_a_subresource(api: ApiClient, namespace: str) -> None:
    co = CustomObjectsApi(api)
    body = {**md("m"), "status": {"observedGeneration": 7}}
    created = co.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments",
                                                 body)
    assert "status" not in created  # ignored on create
    co.patch_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "m",
                                      {"status": {"observedGeneration": 1}},
                                      _content_type=MERGE)
    obj = co.get_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "m")
    assert "status" not in obj  # ignored on the main resource
    patched = co.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "modeldeployments", "m",
        {"status": {"observedGeneration": 1}, "spec": {"replicas": 9}}, _content_type=MERGE)
    assert patched["status"] == {"observedGeneration": 1}
    assert "replicas" not in patched["spec"]  # spec ignored on /status
    assert patched["metadata"]["generation"] == 1


def test_strategic_merge_is_refused_on_custom_resources(api: ApiClient, namespace: str) -> None:
    co = CustomObjectsApi(api)
    co.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", md("m"))
    status, body = raw(api, "PATCH",
                       f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/modeldeployments/m",
                       {"spec": {"replicas": 2}},
                       content_type="application/strategic-merge-patch+json")
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")


def test_scale_subresource(api: ApiClient, namespace: str) -> None:
    apps = AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("d"))
    apps.patch_namespaced_deployment_scale("d", namespace, {"spec": {"replicas": 4}})
    scale = apps.read_namespaced_deployment_scale("d", namespace)
    assert scale.spec.replicas == 4 and scale.status.selector == "app=d"
    assert apps.read_namespaced_deployment("d", namespace).metadata.generation == 2


def test_replicas_default_to_one_and_scale_writes_survive_applies(
        api: ApiClient, namespace: str, emulator_server: EmulatorServer) -> None:
    apps = AppsV1Api(api)
    body = deployment("d")
    del body["spec"]["replicas"]  # an autoscaled workload: the applier leaves replicas out
    created = apps.patch_namespaced_deployment("d", namespace, body, field_manager="op",
                                               force=True, _content_type=APPLY)
    assert created.spec.replicas == 1  # the API server's default
    status, scale = raw(api, "PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/d/scale",
                        {"spec": {"replicas": 3}}, content_type=MERGE, fieldManager="scaler")
    assert status == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
    rv = scale["metadata"]["resourceVersion"]
    assert apps.read_namespaced_deployment("d", namespace).metadata.resource_version == rv
    # Preconditioned on an older version (a decision made before someone else scaled): 409.
    status, _ = raw(api, "PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/d/scale",
                    {"metadata": {"resourceVersion": created.metadata.resource_version},
                     "spec": {"replicas": 1}}, content_type=MERGE)
    assert status == 409 and apps.read_namespaced_deployment("d", namespace).spec.replicas == 3
    # The applier never owned replicas: applying again keeps the scaled count and writes nothing.
    again = apps.patch_namespaced_deployment("d", namespace, body, field_manager="op",
                                             force=True, _content_type=APPLY)
    assert again.spec.replicas == 3 and again.metadata.resource_version == rv
    # A manager that applied replicas and stops applying them: the field is reset to 1.
    fixed = deployment("f")
    apps.patch_namespaced_deployment("f", namespace, {**fixed, "spec": {**fixed["spec"],
                                                                        "replicas": 4}},
                                     field_manager="op", force=True, _content_type=APPLY)
    dropped = apps.patch_namespaced_deployment("f", namespace, body | {"metadata": {
        "name": "f", "labels": {"app": "d"}}}, field_manager="op", force=True,
        _content_type=APPLY)
    assert dropped.spec.replicas == 1
    lws = emulator_server.emulator
    lws.register(LWS_KIND)
    co = CustomObjectsApi(api)
    made = co.create_namespaced_custom_object("leaderworkerset.x-k8s.io", "v1", namespace,
                                              "leaderworkersets", {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": {"name": "l"}, "spec": {"leaderWorkerTemplate": {"size": 2}}})
    assert made["spec"]["replicas"] == 1
    status, scale = raw(api, "PATCH", f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{namespace}"
                                      "/leaderworkersets/l/scale", {"spec": {"replicas": 2}},
                        content_type=MERGE)
    assert status == 200 and scale["spec"]["replicas"] == 2


def test_generate_name(api: ApiClient, namespace: str) -> None:
    event = CoreV1Api(api).create_namespaced_event(namespace, {
        "metadata": {"generateName": "md-"}, "involvedObject": {"name": "x"},
        "reason": "Planned", "message": "m"})
    assert event.metadata.name.startswith("md-") and len(event.metadata.name) > 3


# --- server-side apply --------------------------------------------------------------------------

def test_apply_creates_then_merges_and_noop_changes_nothing(
        api: ApiClient, namespace: str, emulator_server: EmulatorServer) -> None:
    apps = AppsV1Api(api)
    first = apps.patch_namespaced_deployment("d", namespace, deployment("d"),
                                             field_manager="modeldeploy", force=True,
                                             _content_type=APPLY)
    assert first.metadata.generation == 1 and first.metadata.namespace == namespace
    # Another writer adds a label; apply of the same config keeps it and changes nothing.
    apps.patch_namespaced_deployment("d", namespace, {"metadata": {"labels": {"team": "ml"}}})
    rv = apps.read_namespaced_deployment("d", namespace).metadata.resource_version
    again = apps.patch_namespaced_deployment("d", namespace, deployment("d"),
                                             field_manager="modeldeploy", force=True,
                                             _content_type=APPLY)
    assert again.metadata.resource_version == rv
    assert again.metadata.labels == {"app": "d", "team": "ml"}
    # A changed image is merged in; generation bumps.
    changed = apps.patch_namespaced_deployment("d", namespace, deployment("d", image="vllm:2"),
                                               field_manager="modeldeploy", force=True,
                                               _content_type=APPLY)
    assert changed.spec.template.spec.containers[0].image == "vllm:2"
    assert changed.metadata.generation == 2


def test_apply_prunes_fields_the_manager_dropped(api: ApiClient, namespace: str) -> None:
    apps = AppsV1Api(api)
    with_note = deployment("d", annotations={"note": "x", "keep": "y"})
    apps.patch_namespaced_deployment("d", namespace, with_note, field_manager="modeldeploy",
                                     force=True, _content_type=APPLY)
    apps.patch_namespaced_deployment("d", namespace, {"metadata": {"annotations": {"o": "1"}}})
    without = deployment("d", annotations={"keep": "y"})
    result = apps.patch_namespaced_deployment("d", namespace, without,
                                              field_manager="modeldeploy", force=True,
                                              _content_type=APPLY)
    assert result.metadata.annotations == {"keep": "y", "o": "1"}


def test_apply_requires_field_manager_and_kind(api: ApiClient, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/d"
    status, _ = raw(api, "PATCH", path, deployment("d"), content_type=APPLY)
    assert status == 400
    status, _ = raw(api, "PATCH", path, {"metadata": {"name": "d"}}, content_type=APPLY,
                    fieldManager="m")
    assert status == 400


def test_optimistic_concurrency_conflict(api: ApiClient, namespace: str) -> None:
    apps = AppsV1Api(api)
    stale = apps.create_namespaced_deployment(namespace, deployment("d")).metadata
    apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 2}})
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "d", namespace, {"metadata": {"resourceVersion": stale.resource_version}})
    assert err.value.status == 409


# --- selectors ----------------------------------------------------------------------------------

def test_label_selector_filters_lists(api: ApiClient, namespace: str) -> None:
    core = CoreV1Api(api)
    for name, labels in (("p1", {"md": "a", "tier": "x"}), ("p2", {"md": "b"}), ("p3", {})):
        core.create_namespaced_pod(namespace, {"metadata": {"name": name, "labels": labels},
                                               "spec": {"containers": []}})

    def names(**kw: str) -> list[str]:
        return [p.metadata.name for p in core.list_namespaced_pod(namespace, **kw).items]

    assert names(label_selector="md=a") == ["p1"]
    assert names(label_selector="md") == ["p1", "p2"]
    assert names(label_selector="!md") == ["p3"]
    assert names(label_selector="md in (a,b),tier!=x") == ["p2"]
    assert names(field_selector="metadata.name=p3") == ["p3"]
    with pytest.raises(ApiException) as err:
        names(field_selector="spec.unknown=1")
    assert err.value.status == 400


# --- deletion, finalizers, garbage collection ---------------------------------------------------

def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def test_owner_reference_cascade(api: ApiClient, namespace: str) -> None:
    co, apps, core = CustomObjectsApi(api), AppsV1Api(api), CoreV1Api(api)
    owner = co.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments",
                                               md("m"))
    other = co.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments",
                                               md("other"))
    apps.create_namespaced_deployment(namespace,
                                      deployment("m", ownerReferences=[owner_ref(owner)]))
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "m", "ownerReferences": [owner_ref(owner), owner_ref(other)]},
        "spec": {"ports": [{"port": 8000}]}})
    co.delete_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "m")
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("m", namespace)
    assert err.value.status == 404
    svc = core.read_namespaced_service("m", namespace)  # another owner keeps it alive
    assert [ref.name for ref in svc.metadata.owner_references] == ["other"]


def test_orphan_propagation_keeps_dependents(api: ApiClient, namespace: str) -> None:
    co, apps = CustomObjectsApi(api), AppsV1Api(api)
    owner = co.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments",
                                               md("m"))
    apps.create_namespaced_deployment(namespace,
                                      deployment("m", ownerReferences=[owner_ref(owner)]))
    co.delete_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "m",
                                       propagation_policy="Orphan")
    assert apps.read_namespaced_deployment("m", namespace).metadata.owner_references is None


def test_finalizers_block_deletion_until_removed(api: ApiClient, namespace: str) -> None:
    co = CustomObjectsApi(api)
    body = md("m")
    body["metadata"]["finalizers"] = ["modeldeploy.dev/finalizer"]
    co.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", body)
    co.delete_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "m")
    obj = co.get_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "m")
    assert obj["metadata"]["deletionTimestamp"]
    co.patch_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "m",
                                      {"metadata": {"finalizers": None}}, _content_type=MERGE)
    with pytest.raises(ApiException) as err:
        co.get_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "m")
    assert err.value.status == 404


# --- watch --------------------------------------------------------------------------------------

def test_watch_resumes_from_a_resource_version(api: ApiClient, namespace: str) -> None:
    apps = AppsV1Api(api)
    created = apps.create_namespaced_deployment(namespace, deployment("d"))
    apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 3}})
    apps.delete_namespaced_deployment("d", namespace)
    events = watch(api, f"/apis/apps/v1/namespaces/{namespace}/deployments",
                   resourceVersion=created.metadata.resource_version, timeoutSeconds="1")
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"]["spec"]["replicas"] == 3


def test_watch_from_zero_lists_then_follows_with_label_filter(
        api: ApiClient, namespace: str) -> None:
    apps = AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("a", labels={"md": "x"}))
    apps.create_namespaced_deployment(namespace, deployment("b", labels={"md": "y"}))

    def later() -> None:
        time.sleep(0.3)
        apps.patch_namespaced_deployment("a", namespace, {"spec": {"replicas": 2}})
        apps.patch_namespaced_deployment("b", namespace, {"spec": {"replicas": 2}})

    writer = threading.Thread(target=later)
    writer.start()
    t0 = time.monotonic()
    events = watch(api, f"/apis/apps/v1/namespaces/{namespace}/deployments",
                   labelSelector="md=x", timeoutSeconds="1")
    writer.join()
    assert 0.9 < time.monotonic() - t0 < 5  # timeoutSeconds ends the stream
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"), ("MODIFIED", "a")]


def test_watch_from_a_compacted_version_is_gone(
        api: ApiClient, namespace: str, emulator_server: EmulatorServer) -> None:
    apps = AppsV1Api(api)
    created = apps.create_namespaced_deployment(namespace, deployment("d"))
    apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 3}})
    emulator_server.emulator.compact(emulator_server.emulator.kind_of("apps", "v1",
                                                                      "deployments"))
    events = watch(api, "/apis/apps/v1/deployments",
                   resourceVersion=created.metadata.resource_version, timeoutSeconds="1")
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410


def test_noop_write_emits_no_watch_event(api: ApiClient, namespace: str) -> None:
    apps = AppsV1Api(api)
    created = apps.patch_namespaced_deployment("d", namespace, deployment("d"),
                                               field_manager="m", _content_type=APPLY)
    apps.patch_namespaced_deployment("d", namespace, deployment("d"), field_manager="m",
                                     _content_type=APPLY)
    events = watch(api, "/apis/apps/v1/deployments",
                   resourceVersion=created.metadata.resource_version, timeoutSeconds="1")
    assert events == []


# --- faults and the request log -----------------------------------------------------------------

def test_injected_http_errors(api: ApiClient, namespace: str,
                              emulator_server: EmulatorServer) -> None:
    apps = AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("d"))
    emulator_server.emulator.inject(Fault(status=500, verb="get", resource="deployments"))
    emulator_server.emulator.inject(Fault(status=409, verb="patch", times=1))
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("d", namespace)
    assert err.value.status == 500
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 2}})
    assert err.value.status == 409
    # Faults are consumed: the API recovers.
    patched = apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 2}})
    assert patched.spec.replicas == 2


def test_dropped_connection(api: ApiClient, namespace: str,
                            emulator_server: EmulatorServer) -> None:
    apps = AppsV1Api(api)
    emulator_server.emulator.inject(Fault(drop=True, verb="list"))
    with pytest.raises(urllib3.exceptions.HTTPError):
        apps.list_namespaced_deployment(namespace, _request_timeout=5)
    assert emulator_server.emulator.log[-1].status == 0
    assert apps.list_namespaced_deployment(namespace).items == []


def test_injected_410_on_watch_and_dropped_watches(
        api: ApiClient, emulator_server: EmulatorServer) -> None:
    emulator_server.emulator.inject(Fault(status=410, verb="watch"))
    events = watch(api, "/apis/apps/v1/deployments", resourceVersion="0", timeoutSeconds="5")
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
    # A live watch is aborted when connections drop.
    result: list[Any] = []

    def watcher() -> None:
        try:
            result.append(watch(api, "/apis/apps/v1/deployments", timeoutSeconds="10"))
        except Exception as exc:  # the aborted stream surfaces as a protocol error
            result.append(exc)

    thread = threading.Thread(target=watcher)
    thread.start()
    wait_for(lambda: emulator_server.emulator.open_watches() == 1)
    t0 = time.monotonic()
    assert emulator_server.call(emulator_server.emulator.drop_watches()) == 1
    thread.join(10)
    assert time.monotonic() - t0 < 5 and result


def test_request_log_counts_writes_with_verbs(api: ApiClient, namespace: str,
                                              emulator_server: EmulatorServer) -> None:
    mark = emulator_server.emulator.log_mark()
    apps = AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("d"))
    apps.read_namespaced_deployment("d", namespace)
    apps.patch_namespaced_deployment_status("d", namespace, {"status": {"replicas": 1}})
    apps.delete_namespaced_deployment("d", namespace)
    log = emulator_server.emulator.requests_since(mark)
    assert [(r.verb, r.rbac_resource) for r in log] == [
        ("create", "deployments"), ("get", "deployments"), ("patch", "deployments/status"),
        ("delete", "deployments")]
    assert sum(r.is_write for r in log) == 3
    assert {r.user_agent for r in log} == {"modeldeploy-tests"}


def test_registering_and_unregistering_a_crd(api: ApiClient, namespace: str,
                                             emulator_server: EmulatorServer) -> None:
    path = "/apis/leaderworkerset.x-k8s.io/v1"
    assert raw(api, "GET", path)[0] == 404
    emulator_server.emulator.register(LWS_KIND)
    status, body = raw(api, "GET", path)
    assert status == 200 and "leaderworkersets" in [r["name"] for r in body["resources"]]
    emulator_server.emulator.unregister(LWS_KIND)
    assert raw(api, "GET", path)[0] == 404
    assert raw(api, "GET", f"{path}/namespaces/{namespace}/leaderworkersets")[0] == 404


def test_requests_without_the_token_are_unauthorized(api: ApiClient) -> None:
    url = api.configuration.host + "/apis/apps/v1/deployments"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        resp = api.rest_client.pool_manager.request("GET", url, headers=headers, retries=False)
        assert resp.status == 401
    assert raw(api, "GET", "/apis/apps/v1/deployments")[0] == 200


def test_kind_describes_discovery(emulator_server: EmulatorServer) -> None:
    kind = emulator_server.emulator.kind_of("apps", "v1", "deployments")
    assert isinstance(kind, Kind) and kind.api_version == "apps/v1" and kind.namespaced


def test_apply_merges_owner_references_by_uid_per_manager() -> None:
    """ObjectMeta.ownerReferences is a list-map keyed by uid: two managers each keep their own
    entry, and a manager that stops applying its entry removes only that one."""
    def ref(uid: str) -> dict[str, Any]:
        return {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment", "name": uid, "uid": uid}

    first = {"metadata": {"name": "c", "ownerReferences": [ref("a")]}, "spec": {"x": 1}}
    joined = apply_patch(first, {"metadata": {"name": "c", "ownerReferences": [ref("b")]}}, None)
    assert [r["uid"] for r in joined["metadata"]["ownerReferences"]] == ["a", "b"]
    assert joined["spec"] == {"x": 1}
    left = apply_patch(joined, {"metadata": {"name": "c"}}, {"metadata": {"name": "c", "ownerReferences": [ref("b")]}})
    assert [r["uid"] for r in left["metadata"]["ownerReferences"]] == ["a"]


def test_pods_log_serves_what_the_test_wrote_as_the_api_server_would(
        api: ApiClient, namespace: str, emulator_server: EmulatorServer) -> None:
    core = CoreV1Api(api)
    containers = [{"name": "vllm", "image": "x"}, {"name": "gate", "image": "x"}]
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p"},
                                           "spec": {"containers": containers}})
    with pytest.raises(ApiException) as waiting:
        core.read_namespaced_pod_log("p", namespace, container="vllm")
    assert waiting.value.status == 400 and "waiting to start" in str(waiting.value.body)
    emulator_server.emulator.pod_logs.write(namespace, "p", "vllm", "one\ntwo\nthree\n")
    assert core.read_namespaced_pod_log("p", namespace, container="vllm") == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log("p", namespace, container="vllm", tail_lines=2) == "two\nthree\n"
    assert core.read_namespaced_pod_log("p", namespace, container="vllm", tail_lines=2,
                                        limit_bytes=5) == "two\nt"
    for container, status in ((None, 400), ("other", 400)):  # two containers: one must be named
        with pytest.raises(ApiException) as refused:
            core.read_namespaced_pod_log("p", namespace, container=container)
        assert refused.value.status == status
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod_log("nope", namespace, container="vllm")
    assert missing.value.status == 404
