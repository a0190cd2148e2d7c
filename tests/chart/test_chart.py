"""The Helm chart rendered by Helm's own engine (helm-python-sdk), in every supported mode.

Every object is validated against Kubernetes 1.31's OpenAPI schemas (kubernetes-validate,
strict: unknown fields fail), GPUPools against our CRD, and the RBAC against modeldeploy.rbac.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from tests.crdcheck import CRDValidator

import modeldeploy
from modeldeploy import crd, rbac
from modeldeploy.controller.pools.config import POOLS_LABEL, pools_from_config_maps
from modeldeploy.install.helm import NAMESPACE, chart_crds, load_all, render_objects

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/modeldeploy"
CRDS_CHART = ROOT / "charts/modeldeploy-crds"
Obj = dict[str, Any]

POOLS = [
    {"name": d["metadata"]["name"], "spec": d["spec"]}
    for d in yaml.safe_load_all((ROOT / "examples/pools.yaml").read_text()) if d
]

MODES: dict[str, Obj] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "service-monitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "gpu-pools": {"gpuPools": POOLS},
    "peering": {"peering": {"enabled": True}, "replicas": 2},
    "namespaced-peering": {"watchNamespaces": ["team-a"], "peering": {"enabled": True}},
}

POOL_CRD = CRDValidator(crd.crd(crd.GPU_POOL))


def objects(values: Obj) -> list[Obj]:
    return render_objects(CHART, copy.deepcopy(values))


def by_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[Obj], kind: str) -> Obj:
    found = by_kind(objs, kind)
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


RENDERED = {mode: objects(values) for mode, values in MODES.items()}


# --- every object is a valid Kubernetes 1.31 object -------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_object_validates_for_kubernetes_1_31(mode: str) -> None:
    for obj in RENDERED[mode]:
        if obj["kind"] == "GPUPool":
            assert POOL_CRD.violations(obj) == [], obj["metadata"]["name"]
        elif obj["kind"] == "ServiceMonitor":
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        else:
            kubernetes_validate.validate(copy.deepcopy(obj), "1.31", strict=True)


def test_validation_is_strict() -> None:
    deployment = copy.deepcopy(one(RENDERED["default"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.31", strict=True)


def test_default_render_has_the_operator_objects() -> None:
    kinds = sorted(o["kind"] for o in RENDERED["default"])
    assert kinds == ["ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "Deployment",
                     "Service", "ServiceAccount"]
    for obj in RENDERED["default"]:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE


# --- RBAC equals modeldeploy.rbac -------------------------------------------------------------


def _operator_roles(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in by_kind(objs, kind) if "aggregate-to-edit" not in str(o["metadata"]["labels"])
            and "aggregate-to-view" not in str(o["metadata"]["labels"])]


def test_cluster_mode_rbac_equals_the_declared_list() -> None:
    objs = RENDERED["default"]
    (role,) = _operator_roles(objs, "ClusterRole")
    assert role["rules"] == rbac.rules(rbac.Mode.CLUSTER, peering=False)
    binding = one(objs, "ClusterRoleBinding")
    sa = one(objs, "ServiceAccount")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": NAMESPACE}]
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_namespaced_mode_renders_roles_in_each_namespace_only() -> None:
    objs = RENDERED["namespaced"]
    assert not by_kind(objs, "ClusterRole") and not by_kind(objs, "ClusterRoleBinding")
    roles = {r["metadata"]["namespace"]: r for r in by_kind(objs, "Role")}
    # the watched namespaces, and the operator's own for its pools ConfigMap only
    assert sorted(roles) == sorted(["team-a", "team-b", NAMESPACE])
    for ns in ("team-a", "team-b"):
        assert roles[ns]["rules"] == rbac.rules(rbac.Mode.NAMESPACED, peering=False)
    assert roles[NAMESPACE]["rules"] == [rbac.POOLS_CONFIG_MAP.rule()]
    bindings = by_kind(objs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(["team-a", "team-b", NAMESPACE])
    for binding in bindings:
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


def test_gpu_pools_value_is_a_configmap_in_namespaced_mode() -> None:
    pool = {"name": "h100-x8", "spec": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3", "memoryGiB": 79.11},
                                        "gpusPerNode": 8}}
    cluster = objects({"gpuPools": [pool]})
    assert [p["metadata"]["name"] for p in by_kind(cluster, "GPUPool")] == ["h100-x8"]
    assert not [c for c in by_kind(cluster, "ConfigMap") if "gpu-pools" in c["metadata"]["name"]]
    namespaced = objects({"watchNamespaces": ["team-a"], "gpuPools": [pool]})
    assert not by_kind(namespaced, "GPUPool")
    (cm,) = [c for c in by_kind(namespaced, "ConfigMap") if "gpu-pools" in c["metadata"]["name"]]
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["metadata"]["labels"][POOLS_LABEL] == "true"
    pools, problems = pools_from_config_maps([cm])
    assert not problems and [p.name for p in pools] == ["h100-x8"] and pools[0].spec.gpus_per_node == 8


def test_pod_resources_upgrade_slots_and_readiness_probe() -> None:
    """Serving pods' CPU / memory requests come from chart values (kind-sized in e2e/run.sh),
    operator upgrades roll a few models at a time, and the operator has a readiness probe."""
    small = {"models": {"maxConcurrentUpgrades": 3, "podResources": {
        "cpuPerGPU": 0.25, "memoryBaseGiB": 1, "memoryPerGPUGiB": 0}}}
    container = one(objects(small), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert {"--max-concurrent-upgrades=3", "--cpu-request-per-gpu=0.25",
            "--memory-request-base-gib=1", "--memory-request-per-gpu-gib=0"} <= set(args)
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    default = one(RENDERED["default"], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"--max-concurrent-upgrades=2", "--cpu-request-per-gpu=3"} <= set(default["args"])


def test_peering_adds_the_lease_role_and_allows_replicas() -> None:
    (role,) = _operator_roles(RENDERED["peering"], "ClusterRole")
    assert role["rules"] == rbac.rules(rbac.Mode.CLUSTER, peering=True)
    deployment = one(RENDERED["peering"], "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    at = args.index("--peering")
    assert args[at:at + 2] == ["--peering", "--peering-name=modeldeploy"]
    # The Lease's Role: in the operator's own namespace only, in both install modes.
    for case in ("peering", "namespaced-peering"):
        (lease_role,) = [r for r in by_kind(RENDERED[case], "Role")
                         if r["metadata"]["name"].endswith("-leader-election")]
        assert lease_role["metadata"]["namespace"] == NAMESPACE
        assert lease_role["rules"] == [rbac.LEADER_LEASE.rule()]
        binding = [b for b in by_kind(RENDERED[case], "RoleBinding")
                   if b["roleRef"]["name"] == lease_role["metadata"]["name"]]
        assert len(binding) == 1
    assert not [r for r in by_kind(RENDERED["default"], "Role")
                if r["metadata"]["name"].endswith("-leader-election")]


def test_user_roles_aggregate_into_edit_and_view() -> None:
    roles = {r["metadata"]["name"]: r for r in by_kind(RENDERED["default"], "ClusterRole")}
    edit, view = roles["modeldeploy-edit"], roles["modeldeploy-view"]
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["rules"] == [p.rule() for p in rbac.USER_ROLES["edit"]]
    assert view["rules"] == [p.rule() for p in rbac.USER_ROLES["view"]]
    off = objects({"rbac": {"aggregateToDefaultRoles": False}})
    assert len(by_kind(off, "ClusterRole")) == 1


def test_every_rendered_rule_carries_its_reason() -> None:
    with helm.Chart.load(str(CHART)) as chart:
        text = chart.render({}, name="modeldeploy", namespace=NAMESPACE)["modeldeploy/templates/rbac.yaml"]
    for perm in rbac.permissions(rbac.Mode.CLUSTER, peering=False):
        assert f"  # {perm.why}\n" in text


# --- the operator pod -------------------------------------------------------------------------


def test_operator_pod_meets_the_restricted_pod_security_standard() -> None:
    deployment = one(RENDERED["default"], "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key)
    assert all("hostPath" not in v for v in pod["volumes"])
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert not sc.get("privileged")
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_operator_container_runs_modeldeploy_with_kopf_liveness() -> None:
    deployment = one(RENDERED["default"], "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"ghcr.io/modeldeploy/modeldeploy:{modeldeploy.__version__}"
    assert container["command"] == ["modeldeploy", "run"]
    # The shared cache's download Job runs the operator's own image (digest or tag as pinned).
    assert container["args"] == [
        "--liveness=http://0.0.0.0:8080/healthz", "--max-concurrent-upgrades=2",
        "--cpu-request-per-gpu=3", "--memory-request-base-gib=8",
        "--memory-request-per-gpu-gib=4", f"--download-image={container['image']}",
        "--keda-http-interceptor=keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local",
        "--keda-http-interceptor-port=8080", "--keda-http-scaler=keda-add-ons-http-external-scaler.keda:9090",
        "--keda-http-admin=keda/keda-add-ons-http-interceptor-admin",
        "--keda-http-response-timeout=600", "--cluster-domain=cluster.local"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["replicas"] == 1


ARGS_MODES: dict[str, Obj] = {
    **MODES,
    "everything": {
        "watchNamespaces": ["a", "b"], "peering": {"enabled": True},
        "models": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "huggingFace": {"offline": True, "endpoint": "https://hub.example",
                        "tokenSecret": {"name": "hf-token"}},
        "extraArgs": ["--resync-interval=120", "--log-format=plain"],
    },
}


@pytest.mark.parametrize("mode", ARGS_MODES)
def test_operator_arguments_are_accepted_by_modeldeploy_run(mode: str) -> None:
    """The chart's command line parses with the real `modeldeploy run` (not executed)."""
    import typer.main

    from modeldeploy.cli.main import app

    container = one(objects(ARGS_MODES[mode]), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["modeldeploy", "run"]
    group = typer.main.get_command(app)
    run = group.commands["run"]  # type: ignore[attr-defined]
    ctx = run.make_context("run", list(container["args"]))
    assert ctx.params["liveness"] == "http://0.0.0.0:8080/healthz"
    assert tuple(ctx.params["namespaces"] or ()) == tuple(ARGS_MODES[mode].get("watchNamespaces", ()))
    assert bool(ctx.params["peering"]) is ARGS_MODES[mode].get("peering", {}).get("enabled", False)


def test_operator_values_reach_the_settings_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """`operator:` values become MODELDEPLOY_CONFIG, which the settings object reads."""
    from modeldeploy.shell.config import OperatorConfig

    values = {"operator": {"resyncInterval": 30, "render": {
        "prometheusAddress": "http://prom.obs.svc:9090", "runAsUser": 1000,
        "adapterMetrics": {"requestsWaiting": "waiting"}}}}
    env = one(objects(values), "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    config_json = next(e["value"] for e in env if e["name"] == "MODELDEPLOY_CONFIG")
    monkeypatch.setenv("MODELDEPLOY_CONFIG", config_json)
    config = OperatorConfig()
    assert config.resync_interval == 30
    assert config.render.prometheus_address == "http://prom.obs.svc:9090"
    assert (config.render.run_as_user, config.render.adapter_metrics.requests_waiting) == (
        1000, "waiting")


def test_hugging_face_token_comes_from_a_secret_reference() -> None:
    values = {"huggingFace": {"tokenSecret": {"name": "hf-token", "key": "token"},
                              "endpoint": "https://hub.example"}}
    env = one(objects(values), "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}} in env
    assert {"name": "HF_ENDPOINT", "value": "https://hub.example"} in env


def test_image_digest_wins_over_tag() -> None:
    digest = "sha256:" + "a" * 64
    deployment = one(objects({"image": {"tag": "9.9.9", "digest": digest}}), "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/modeldeploy/modeldeploy@{digest}"


def test_metrics_service_and_service_monitor_select_the_operator() -> None:
    objs = RENDERED["service-monitor"]
    service = one(objs, "Service")
    monitor = one(objs, "ServiceMonitor")
    pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert not by_kind(RENDERED["default"], "ServiceMonitor")


def test_gpu_pools_from_values_are_valid_gpu_pools() -> None:
    pools = by_kind(RENDERED["gpu-pools"], "GPUPool")
    assert [p["metadata"]["name"] for p in pools] == sorted(p["name"] for p in POOLS)
    by_name = {p["name"]: p["spec"] for p in POOLS}
    for obj in pools:
        assert obj["spec"] == by_name[obj["metadata"]["name"]]
        assert "namespace" not in obj["metadata"], "GPUPool is cluster-scoped"
        assert POOL_CRD.violations(obj) == []


# --- values are checked before anything renders ----------------------------------------------


@pytest.mark.parametrize("values", [
    {"watchNamespace": ["a"]},
    {"watchNamespaces": ["Team_A"]},
    {"gpuPools": [{"name": "h100", "spec": {"gpu": {"product": "H100", "memoryGiB": 80}, "gpusPerNode": 0}}]},
    {"gpuPools": [{"name": "h100\nkind: Secret", "spec": POOLS[0]["spec"]}]},
    {"gpuPools": [{"name": "x", "spec": {**POOLS[0]["spec"], "nodeSelector": {"a": "b c"}}}]},
    {"image": {"digest": "latest"}},
    {"serviceMonitor": {"enabled": True, "interval": "often"}},
], ids=["typo", "bad-namespace", "zero-gpus", "name-injection", "bad-label-value", "bad-digest",
        "bad-interval"])
def test_values_schema_rejects(values: Obj) -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError, match="schema"):
        chart.render(values, name="modeldeploy", namespace=NAMESPACE)


def test_replicas_without_peering_are_refused() -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmError, match="peering"):
        chart.render({"replicas": 2}, name="modeldeploy", namespace=NAMESPACE)


def test_user_strings_cannot_inject_keys() -> None:
    hostile = "x\nserviceAccountName: admin"
    deployment = one(objects({"podAnnotations": {"note": hostile}, "podLabels": {"team": "no"}}),
                     "Deployment")
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"] == {"note": hostile}
    assert template["metadata"]["labels"]["team"] == "no"
    assert template["spec"]["serviceAccountName"] == "modeldeploy"


# --- lint, CRDs, versions ---------------------------------------------------------------------


@pytest.mark.parametrize(("chart", "values"), [
    (CHART, {}), (CHART, MODES["namespaced"]), (CHART, MODES["service-monitor"]),
    (CHART, MODES["gpu-pools"]), (CRDS_CHART, {}),
], ids=["default", "namespaced", "service-monitor", "gpu-pools", "crds-chart"])
def test_helm_lint_is_clean(chart: Path, values: Obj) -> None:
    report = helm.lint(str(chart), values, strict=True, kube_version="v1.31.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_crds_are_the_generated_crds() -> None:
    key = lambda o: o["metadata"]["name"]  # noqa: E731
    assert sorted(chart_crds(CHART), key=key) == sorted(crd.crds(), key=key)


def test_crds_chart_renders_the_crds_and_keeps_them_on_uninstall() -> None:
    with helm.Chart.load(str(CRDS_CHART)) as chart:
        rendered = chart.render({}, name="modeldeploy-crds", namespace=NAMESPACE)
    objs = [o for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")
            for o in load_all(text)]
    assert sorted(o["metadata"]["name"] for o in objs) == sorted(k.name for k in crd.KINDS)
    for obj in objs:
        assert obj["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}
        kubernetes_validate.validate(copy.deepcopy(obj), "1.31", strict=True)
    assert sorted(objs, key=lambda o: o["metadata"]["name"]) == \
        sorted(crd.crds(), key=lambda o: o["metadata"]["name"])


def test_chart_versions_follow_the_package() -> None:
    for path in (CHART, CRDS_CHART):
        meta = yaml.safe_load((path / "Chart.yaml").read_text())
        assert meta["apiVersion"] == "v2"
        assert meta["appVersion"] == modeldeploy.__version__


def test_cache_values_reach_the_operator() -> None:
    default_args = one(RENDERED["default"], "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    image = one(RENDERED["default"], "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert f"--download-image={image}" in default_args
    assert not any(a.startswith("--cache-storage-class") for a in default_args)
    values = {"cache": {"storageClassName": "efs-sc", "downloadImage": "registry.local/md:1"}}
    args = one(objects(values), "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--cache-storage-class=efs-sc" in args and "--download-image=registry.local/md:1" in args
