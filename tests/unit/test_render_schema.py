"""Every rendered object validates: Kubernetes 1.31 OpenAPI schemas (kubernetes-validate, strict)
for built-in kinds, the vendored CRD schemas (tests/schemas/) for LeaderWorkerSet,
ServiceMonitor and ScaledObject."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from tests.unit.render_cases import CASES, K8S_VERSION, validate, with_spec

from modeldeploy.render import ALLOWED_KINDS, RenderOptions, render_objects

VARIANTS = {
    "defaults": ({}, RenderOptions()),
    "service-monitor": ({}, RenderOptions(service_monitor=True, service_monitor_labels={"release": "prom"})),
    "non-root": ({}, RenderOptions(run_as_user=1000)),
    "pvc-cache": ({"cache": {"mode": "pvc", "size": "300Gi"}}, RenderOptions()),
    "shared-cache": ({"cache": {"mode": "shared"}},
                     RenderOptions(cache_storage_class_name="efs-sc", hub_endpoint="http://hub-mirror:8080")),
    "extras": ({"serving": {"extraArgs": ["--enforce-eager", "--max-loras", "2"],
                            "env": [{"name": "NCCL_DEBUG", "value": "INFO"}]},
                "rollout": {"maxSurge": 0, "maxUnavailable": 1}}, RenderOptions()),
    "hpa": ({"autoscaling": {"mode": "hpa", "minReplicas": 2, "maxReplicas": 8, "metric": "kvCacheUsage",
                             "target": 0.75}}, RenderOptions()),
    "keda-to-zero": ({"autoscaling": {"mode": "keda", "minReplicas": 0, "maxReplicas": 4, "scaleToZero": True}},
                     RenderOptions(keda_wake_query='sum(gw_queue{namespace="$namespace"})')),
    "builtin-to-zero": ({"autoscaling": {"minReplicas": 0, "maxReplicas": 3, "scaleToZero": True,
                                         "metric": "requestsRunning", "target": 32}}, RenderOptions()),
    "keda-idle": ({"autoscaling": {"mode": "keda", "minReplicas": 2, "maxReplicas": 4, "scaleToZero": True,
                                   "metric": "requestsRunning", "target": 12.5}}, RenderOptions()),
}


@pytest.mark.parametrize(("case", "variant"), list(itertools.product(CASES, VARIANTS)))
def test_every_rendered_object_validates(case: str, variant: str) -> None:
    m, p, pool = CASES[case]()
    spec, options = VARIANTS[variant]
    if spec:
        m = with_spec(m, **spec)
    for replicas in (1, 3):
        objects = render_objects(m, p.model_copy(update={"replicas": replicas}), pool, options)
        for obj in objects:
            assert (obj["apiVersion"], obj["kind"]) in ALLOWED_KINDS
            validate(obj)


def test_kubernetes_version_is_pinned_and_available() -> None:
    assert K8S_VERSION == "1.31"
    m, p, pool = CASES["llama-3.1-8b-a10g"]()
    assert kubernetes_validate.validate(render_objects(m, p, pool)[0], K8S_VERSION, strict=True) == "1.31"


def _broken(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Each object with one field the schema must reject."""
    out = []
    for obj in objects:
        bad = copy.deepcopy(obj)
        if obj["kind"] == "Deployment":
            bad["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = {"x": 1}
        elif obj["kind"] == "LeaderWorkerSet":
            bad["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["imagePullPolicy"] = 3
        elif obj["kind"] == "ServiceMonitor":
            bad["spec"]["endpoints"][0]["interval"] = "thirty seconds"
        elif obj["kind"] == "HorizontalPodAutoscaler":
            bad["spec"]["metrics"][0]["pods"]["target"]["averageValue"] = {"x": 1}
        elif obj["kind"] == "ScaledObject":
            bad["spec"]["triggers"][0]["metadata"]["threshold"] = 5
        else:
            bad["spec"]["unexpectedField"] = True
        out.append((obj["kind"], bad))
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_validation_is_not_vacuous(case: str) -> None:
    m, p, pool = CASES[case]()
    m = with_spec(m, cache={"mode": "pvc"})
    objects = render_objects(m, p.model_copy(update={"replicas": 2}), pool, RenderOptions(service_monitor=True))
    assert len(objects) == 5
    for kind, bad in _broken(objects):
        with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
            validate(bad)
        assert kind


@pytest.mark.parametrize("mode", ["hpa", "keda"])
@pytest.mark.parametrize("case", list(CASES))
def test_autoscaler_validation_is_not_vacuous(case: str, mode: str) -> None:
    m, p, pool = CASES[case]()
    m = with_spec(m, autoscaling={"mode": mode, "maxReplicas": 3})
    autoscaler = render_objects(m, p, pool)[-1]
    validate(autoscaler)
    [(kind, bad)] = _broken([autoscaler])
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(bad)
    unknown = copy.deepcopy(autoscaler)
    unknown["spec"]["scaleTargetRef"]["replicas"] = 3
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(unknown)
    assert kind == autoscaler["kind"]
