"""autoscaling.scaleToZero: a KEDA HTTP add-on HTTPScaledObject and a wake Service, never a
second owner of the replica count; in keda mode the ScaledObject wakes on requests in flight."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.render_cases import CASES, validate, with_spec

from modeldeploy.render import RenderOptions, render_objects
from modeldeploy.render.scaletozero import ACTIVATION_ONLY_TARGET, SKIP_SCALED_OBJECT

TO_ZERO = {"minReplicas": 0, "maxReplicas": 4, "scaleToZero": True, "idleSeconds": 900}


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _render(case: str, **autoscaling: Any) -> tuple[list[dict[str, Any]], Any]:
    m, p, pool = CASES[case]()
    m = with_spec(m, autoscaling={**TO_ZERO, **autoscaling})
    return render_objects(m, p, pool), m


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", ["builtin", "keda"])
def test_scale_to_zero_renders_the_add_on_route(case: str, mode: str) -> None:
    objects, m = _render(case, mode=mode)
    [route] = _by_kind(objects, "HTTPScaledObject")
    wake = next(o for o in _by_kind(objects, "Service") if o["spec"]["type"] == "ExternalName")
    for obj in objects:
        validate(obj)
    spec = route["spec"]
    assert route["metadata"]["annotations"] == {SKIP_SCALED_OBJECT: "true"}  # never a 2nd owner
    assert spec["replicas"] == {"min": 0, "max": 4}
    assert spec["scaledownPeriod"] == 900
    workload = next(o for o in objects if o["kind"] in ("Deployment", "LeaderWorkerSet"))
    assert "replicas" not in workload["spec"]
    target = spec["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (workload["kind"], workload["metadata"]["name"])
    assert target["service"] == m.metadata.name and target["port"] == 8000
    name = wake["metadata"]["name"]
    assert spec["hosts"] == [name, f"{name}.models", f"{name}.models.svc", f"{name}.models.svc.cluster.local"]
    assert wake["spec"]["externalName"] == "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local"
    # The interceptor holds a request for the whole start, and waits for a non-streamed answer.
    assert spec["timeouts"]["conditionWait"] == f"{spec['initialCooldownPeriod']}s"
    assert spec["timeouts"]["responseHeader"] == "600s"
    scaled_objects = _by_kind(objects, "ScaledObject")
    assert len(scaled_objects) == (1 if mode == "keda" else 0)


def test_keda_mode_wakes_on_requests_in_flight_and_the_interceptor() -> None:
    objects, m = _render("llama-3.1-8b-a10g", mode="keda")
    [so] = _by_kind(objects, "ScaledObject")
    triggers = {t["name"]: t for t in so["spec"]["triggers"]}
    assert list(triggers) == ["vllm", "in-flight", "interceptor"]
    in_flight = triggers["in-flight"]["metadata"]
    assert "vllm:num_requests_running" in in_flight["query"] and "vllm:num_requests_waiting" in in_flight["query"]
    assert in_flight["activationThreshold"] == "0" and int(in_flight["threshold"]) >= 10**6
    push = triggers["interceptor"]
    assert push["type"] == "external-push"
    assert push["metadata"] == {"scalerAddress": "keda-add-ons-http-external-scaler.keda:9090",
                                "httpScaledObject": m.metadata.name}
    # The route the trigger names comes first in apply order.
    kinds = [o["kind"] for o in objects]
    assert kinds.index("HTTPScaledObject") < kinds.index("ScaledObject")


def test_keda_without_scale_to_zero_has_only_the_metric_trigger() -> None:
    m, p, pool = CASES["llama-3.1-8b-a10g"]()
    objects = render_objects(with_spec(m, autoscaling={"mode": "keda", "maxReplicas": 3}), p, pool)
    [so] = _by_kind(objects, "ScaledObject")
    assert [t["name"] for t in so["spec"]["triggers"]] == ["vllm"]
    assert not _by_kind(objects, "HTTPScaledObject")


@pytest.mark.parametrize(("metric", "target", "want"), [
    ("requestsRunning", 24, 24), ("requestsRunning", 7.5, 8),
    ("requestsWaiting", 5, ACTIVATION_ONLY_TARGET), ("kvCacheUsage", 0.8, ACTIVATION_ONLY_TARGET),
])
def test_concurrency_target_only_where_it_means_the_same(metric: str, target: float, want: int) -> None:
    objects, _ = _render("llama-3.1-8b-a10g", mode="keda", metric=metric, target=target)
    [route] = _by_kind(objects, "HTTPScaledObject")
    assert route["spec"]["scalingMetric"] == {"concurrency": {"targetValue": want}}


def test_interceptor_address_and_timeouts_are_operator_settings() -> None:
    m, p, pool = CASES["llama-3.1-8b-a10g"]()
    options = RenderOptions(keda_http_interceptor="interceptor.http-addon.svc.corp.local",
                            keda_http_interceptor_port=80, cluster_domain="corp.local",
                            keda_http_response_header_timeout_seconds=1800)
    objects = render_objects(with_spec(m, autoscaling=TO_ZERO), p, pool, options)
    [route] = _by_kind(objects, "HTTPScaledObject")
    wake = next(o for o in _by_kind(objects, "Service") if o["spec"]["type"] == "ExternalName")
    assert wake["spec"]["externalName"] == "interceptor.http-addon.svc.corp.local"
    assert wake["spec"]["ports"][0]["port"] == 80
    assert route["spec"]["hosts"][-1].endswith(".svc.corp.local")
    assert route["spec"]["timeouts"]["responseHeader"] == "1800s"
