"""Autoscaling objects (HPA, KEDA ScaledObject) and who owns the workload's `.spec.replicas`."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.render_cases import CASES, deepseek_v3, llama_8b, llama_70b, validate, with_spec

from modeldeploy.errors import InvalidSpec
from modeldeploy.render import (
    REPLICAS_FIELD_MANAGER,
    AdapterMetricNames,
    RenderOptions,
    ReplicasOwner,
    child_names,
    render_objects,
    replicas_handover,
    replicas_owner,
)
from modeldeploy.render.autoscaling import decimal_text, format_quantity, promql_string, re2_quote
from modeldeploy.render.context import HASH_ANNOTATION

Obj = dict[str, Any]
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def by_kind(objects: list[Obj]) -> dict[str, Obj]:
    return {o["kind"]: o for o in objects}


def workload(objects: list[Obj]) -> Obj:
    return next(o for o in objects if o["kind"] in ("Deployment", "LeaderWorkerSet"))


def promql_strings(query: str) -> tuple[str, list[str]]:
    """The query with every string literal replaced by S, and the literals' decoded values
    (Prometheus' lexer takes Go escapes; for ASCII text with \\uXXXX escapes that is Python's
    unicode_escape)."""
    assert query.isascii() and "\n" not in query
    values = [body.encode("ascii").decode("unicode_escape") for body in STRING.findall(query)]
    return STRING.sub("S", query), values


def scaled(case: Any, **autoscaling: Any) -> tuple[Any, Any, Any]:
    m, p, pool = case()
    return with_spec(m, autoscaling=autoscaling), p, pool


# --- shapes per mode and metric ---------------------------------------------------------------

HPA_METRICS = {"requestsWaiting": "vllm_num_requests_waiting",
               "requestsRunning": "vllm_num_requests_running",
               "kvCacheUsage": "vllm_kv_cache_usage_perc"}
TARGETS = {"requestsWaiting": (5.0, "5", "5"), "requestsRunning": (12.5, "12500m", "12.5"),
           "kvCacheUsage": (0.8, "800m", "0.8")}


@pytest.mark.parametrize("metric", list(HPA_METRICS))
@pytest.mark.parametrize("case", [llama_8b, deepseek_v3], ids=lambda c: c.__name__)
def test_hpa_shape_per_metric(case: Any, metric: str) -> None:
    target, quantity_text, _ = TARGETS[metric]
    m, p, pool = scaled(case, mode="hpa", minReplicas=2, maxReplicas=6, metric=metric, target=target,
                        scaleUpStabilizationSeconds=30, scaleDownStabilizationSeconds=600)
    objects = render_objects(m, p, pool)
    hpa = objects[-1]
    validate(hpa)
    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert hpa["metadata"]["name"] == m.metadata.name == child_names(m).horizontal_pod_autoscaler
    assert hpa["metadata"]["namespace"] == "models"
    target_ref = workload(objects)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": target_ref["apiVersion"], "kind": target_ref["kind"],
                                             "name": target_ref["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"] == [{"type": "Pods", "pods": {
        "metric": {"name": HPA_METRICS[metric]},
        "target": {"type": "AverageValue", "averageValue": quantity_text}}}]
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleUp"] == {"stabilizationWindowSeconds": 30, "selectPolicy": "Max",
                                   "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
    assert behavior["scaleDown"] == {"stabilizationWindowSeconds": 600, "selectPolicy": "Max",
                                     "policies": [{"type": "Percent", "value": 50, "periodSeconds": 15}]}
    assert "replicas" not in target_ref["spec"]
    assert "ScaledObject" not in by_kind(objects)


VLLM_SERIES = {"requestsWaiting": ["vllm:num_requests_waiting"],
               "requestsRunning": ["vllm:num_requests_running"],
               "kvCacheUsage": ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"]}


@pytest.mark.parametrize("metric", list(VLLM_SERIES))
@pytest.mark.parametrize("case", [llama_8b, deepseek_v3], ids=lambda c: c.__name__)
def test_scaled_object_shape_per_metric(case: Any, metric: str) -> None:
    target, _, threshold = TARGETS[metric]
    m, p, pool = scaled(case, mode="keda", minReplicas=1, maxReplicas=5, metric=metric, target=target,
                        scaleUpStabilizationSeconds=0, scaleDownStabilizationSeconds=120, idleSeconds=600)
    options = RenderOptions(prometheus_address="http://prom.monitoring.svc:9090", keda_polling_interval_seconds=20)
    objects = render_objects(m, p, pool, options)
    so = objects[-1]
    validate(so)
    assert (so["apiVersion"], so["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    assert so["metadata"]["name"] == child_names(m).scaled_object
    target_ref = workload(objects)
    spec = so["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": target_ref["apiVersion"], "kind": target_ref["kind"],
                                      "name": target_ref["metadata"]["name"]}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 5)
    assert spec["pollingInterval"] == 20 and spec["cooldownPeriod"] == 600
    assert "idleReplicaCount" not in spec and "initialCooldownPeriod" not in spec
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 120
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert meta["serverAddress"] == "http://prom.monitoring.svc:9090"
    assert meta["threshold"] == threshold and meta["activationThreshold"] == "0"
    skeleton, values = promql_strings(meta["query"])
    # Every vLLM series is selected by namespace and by the ModelDeployment's pod names.
    for series in VLLM_SERIES[metric]:
        assert f"{series}{{namespace=S,pod=~S}}" in skeleton
    assert skeleton.startswith("sum(")
    name = m.metadata.name
    assert set(values) == {"models", f"{name}-[a-z0-9]+-[a-z0-9]+"}
    if metric == "kvCacheUsage":
        assert skeleton.count("max by (pod) (") == 2 and " or " in skeleton
    assert "replicas" not in target_ref["spec"]
    assert "HorizontalPodAutoscaler" not in by_kind(objects)


def test_pod_regex_selects_this_deployments_pods_and_leaders_only() -> None:
    m, p, pool = scaled(llama_8b, mode="keda", maxReplicas=3)
    _, values = promql_strings(render_objects(m, p, pool)[-1]["spec"]["triggers"][0]["metadata"]["query"])
    pods = re.compile(values[1])
    name = m.metadata.name
    assert pods.fullmatch(f"{name}-7d9f8b6c5d-x2k4q")  # Deployment pod
    assert pods.fullmatch(f"{name}-lws-0")  # LeaderWorkerSet leader (after a layout change)
    for other in (f"{name}-lws-0-1", f"{name}-b-7d9f8b6c5d-x2k4q", f"{name}x-7d9f8b6c5d-x2k4q",
                  f"{name}-7d9f8b6c5d", f"x{name}-7d9f8b6c5d-x2k4q"):
        assert not pods.fullmatch(other), other


def test_adapter_metric_names_are_an_operator_setting() -> None:
    m, p, pool = scaled(llama_8b, mode="hpa", maxReplicas=2, metric="requestsRunning")
    names = AdapterMetricNames(requests_running="vllm:num_requests_running")
    hpa = render_objects(m, p, pool, RenderOptions(adapter_metrics=names))[-1]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm:num_requests_running"
    with pytest.raises(ValueError, match="adapter_metrics"):
        RenderOptions.model_validate({"adapter_metrics": {"requests_waiting": "a b"}})
    with pytest.raises(ValueError, match="prometheus_address"):
        RenderOptions(prometheus_address='http://x"\n')


# --- scale to zero ----------------------------------------------------------------------------


@pytest.mark.parametrize(("min_replicas", "want_min", "want_idle"), [(0, 0, None), (2, 2, 0)])
def test_keda_scale_to_zero(min_replicas: int, want_min: int, want_idle: int | None) -> None:
    m, p, pool = scaled(llama_70b, mode="keda", minReplicas=min_replicas, maxReplicas=4, scaleToZero=True,
                        idleSeconds=1200)
    objects = render_objects(m, p, pool)
    so = objects[-1]
    validate(so)
    spec = so["spec"]
    assert spec["minReplicaCount"] == want_min
    assert spec.get("idleReplicaCount") == want_idle  # KEDA: idle < min; only 0 is supported
    assert spec["cooldownPeriod"] == 1200
    # A new ScaledObject does not scale a replica that is still loading to zero: the expected
    # start + 600 s (the same budget the Deployment's deadline is built from).
    # 70B: 600 + ceil(8 s x 131.48 GiB) = 1652 s of startup budget.
    assert spec["initialCooldownPeriod"] == 1652 + 600
    assert spec["triggers"][0]["metadata"]["activationThreshold"] == "0"


def test_wake_query_is_or_ed_in_only_when_scaling_to_zero() -> None:
    wake = 'gateway_pending_requests{namespace="$namespace",backend="$service"}'
    options = RenderOptions(keda_wake_query=wake)
    m, p, pool = scaled(llama_8b, mode="keda", minReplicas=0, maxReplicas=2, scaleToZero=True)
    query = render_objects(m, p, pool, options)[-1]["spec"]["triggers"][0]["metadata"]["query"]
    skeleton, values = promql_strings(query)
    assert skeleton.endswith(" or sum(gateway_pending_requests{namespace=S,backend=S})")
    assert values[-2:] == ["models", m.metadata.name]
    m2, _, _ = scaled(llama_8b, mode="keda", minReplicas=1, maxReplicas=2)
    plain = render_objects(m2, p, pool, options)[-1]["spec"]["triggers"][0]["metadata"]["query"]
    assert "gateway_pending_requests" not in plain


def test_keda_needs_a_namespace() -> None:
    m, p, pool = scaled(llama_8b, mode="keda", maxReplicas=2)
    bare = m.model_copy(update={"metadata": m.metadata.model_copy(update={"namespace": None})})
    with pytest.raises(InvalidSpec, match=r"needs metadata\.namespace"):
        render_objects(bare, p, pool)
    hpa, _, _ = scaled(llama_8b, mode="hpa", maxReplicas=2)
    hpa = hpa.model_copy(update={"metadata": hpa.metadata.model_copy(update={"namespace": None})})
    assert "namespace" not in render_objects(hpa, p, pool)[-1]["metadata"]


# --- replicas ownership -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("autoscaling", "owner", "replicas", "autoscaler"),
    [
        (None, ReplicasOwner.SPEC, 1, None),
        ({"mode": "builtin", "maxReplicas": 3}, ReplicasOwner.OPERATOR, None, None),
        ({"mode": "hpa", "maxReplicas": 3}, ReplicasOwner.HPA, None, "HorizontalPodAutoscaler"),
        ({"mode": "keda", "maxReplicas": 3}, ReplicasOwner.KEDA, None, "ScaledObject"),
    ],
)
@pytest.mark.parametrize("case", [llama_8b, deepseek_v3], ids=lambda c: c.__name__)
def test_who_owns_replicas(case: Any, autoscaling: dict[str, Any] | None, owner: ReplicasOwner,
                           replicas: int | None, autoscaler: str | None) -> None:
    m, p, pool = case()
    if autoscaling is not None:
        m = with_spec(m, autoscaling=autoscaling)
    assert replicas_owner(m) is owner
    objects = render_objects(m, p, pool)
    assert workload(objects)["spec"].get("replicas") == replicas
    kinds = {o["kind"] for o in objects}
    assert kinds & {"HorizontalPodAutoscaler", "ScaledObject"} == ({autoscaler} if autoscaler else set())


def test_autoscaling_mode_never_restarts_pods() -> None:
    """Switching between fixed replicas and any autoscaling mode changes no pod template."""
    for case in CASES.values():
        m, p, pool = case()
        digests = {workload(render_objects(mm, p, pool))["metadata"]["annotations"][HASH_ANNOTATION]
                   for mm in [m] + [with_spec(m, autoscaling={"mode": mode, "maxReplicas": 3})
                                    for mode in ("builtin", "hpa", "keda")]}
        assert len(digests) == 1


def test_pdb_follows_the_autoscaling_maximum() -> None:
    m, p, pool = llama_8b()
    assert "PodDisruptionBudget" not in by_kind(render_objects(m, p, pool))
    up = with_spec(m, autoscaling={"mode": "builtin", "maxReplicas": 2})
    assert "PodDisruptionBudget" in by_kind(render_objects(up, p, pool))
    one = with_spec(m, autoscaling={"mode": "builtin", "maxReplicas": 1})
    assert "PodDisruptionBudget" not in by_kind(render_objects(one, p, pool))


def live_deployment(manager: str = "modeldeploy", operation: str = "Apply",
                    owns_replicas: bool = True, replicas: Any = 4) -> Obj:
    fields: Obj = {"f:spec": {"f:selector": {}, **({"f:replicas": {}} if owns_replicas else {})}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "llama-3-1-8b", "namespace": "models", "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}},
                {"manager": manager, "operation": operation, "fieldsV1": fields}]},
            "spec": {"replicas": replicas}}


def test_replicas_handover_when_switching_to_autoscaling() -> None:
    m, _, _ = llama_8b()
    auto = with_spec(m, autoscaling={"mode": "hpa", "maxReplicas": 8})
    patch = replicas_handover(auto, live_deployment())
    assert patch == {"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": "llama-3-1-8b", "namespace": "models"}, "spec": {"replicas": 4}}
    assert REPLICAS_FIELD_MANAGER != "modeldeploy"


@pytest.mark.parametrize(
    ("autoscaled", "live"),
    [
        (False, live_deployment()),  # fixed replicas: our apply keeps owning the field
        (True, None),  # nothing live yet: created without replicas (defaults to 1)
        (True, live_deployment(owns_replicas=False)),  # already handed over
        (True, live_deployment(manager="kubectl")),  # someone else's apply
        (True, live_deployment(operation="Update")),  # a scale/update, not our apply
        (True, live_deployment(replicas=None)),
        (True, live_deployment(replicas=True)),
        (True, {"metadata": "x", "spec": []}),
        (True, {"metadata": {"managedFields": ["x", {"fieldsV1": 3}]}, "spec": {"replicas": 2}}),
    ],
)
def test_no_replicas_handover_needed(autoscaled: bool, live: Obj | None) -> None:
    m, _, _ = llama_8b()
    if autoscaled:
        m = with_spec(m, autoscaling={"mode": "builtin", "maxReplicas": 8})
    assert replicas_handover(m, live) is None


# --- numbers and escaping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(5.0, "5"), (1.0, "1"), (0.8, "800m"), (0.05, "50m"), (12.5, "12500m"), (0.0005, "500u"),
     (1e-07, "100n"), (1500.0, "1500"), (2000.0, "2k"), (100000.0, "100k"), (1e-10, "1n")],
)
def test_quantity(value: float, text: str) -> None:
    assert format_quantity(value) == text


@pytest.mark.parametrize(("value", "text"), [(5.0, "5"), (0.8, "0.8"), (12.5, "12.5"), (1e-05, "0.00001"),
                                             (100000.0, "100000")])
def test_decimal_text(value: float, text: str) -> None:
    assert decimal_text(value) == text


@pytest.mark.parametrize(
    ("value", "literal"),
    [("models", '"models"'), ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("a\nb", '"a\\nb"'),
     ("é", '"\\u00e9"'), ("🦙", '"\\U0001f999"'), ("\x00", '"\\u0000"'), ('"}) or vector(1e9', '"\\"}) or vector(1e9"')],
)
def test_promql_string(value: str, literal: str) -> None:
    assert promql_string(value) == literal


def test_promql_string_refuses_surrogates() -> None:
    with pytest.raises(InvalidSpec):
        promql_string("a\ud800")


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=60))
def test_promql_string_is_one_token_holding_exactly_the_value(value: str) -> None:
    literal = promql_string(value)
    assert STRING.fullmatch(literal) and literal.isascii()
    assert promql_strings(literal)[1] == [value]


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=40))
def test_re2_quote_matches_exactly_the_value(value: str) -> None:
    pattern = re2_quote(value)
    assert re.fullmatch(pattern, value, flags=re.DOTALL)
    assert not re.fullmatch(pattern, value + "x", flags=re.DOTALL)
