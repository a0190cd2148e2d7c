"""The control-plane tier: real etcd, kube-apiserver, kube-controller-manager and kube-scheduler
(from KUBEBUILDER_ASSETS), started once per session; a fake kubelet; the operator as installed.

Without KUBEBUILDER_ASSETS the whole tier is skipped with the reason (never counted as passed);
without kube-scheduler or kube-controller-manager in it (plain envtest assets), the scenarios
that need them are skipped with the reason. The summary line says how many scenarios ran
against the real API server and how long the tier took.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from tests.integration.harness import GROUP, VERSION, Cluster

from .install import Operator, install_crds, install_rbac, service_account_token
from .kubelet import Behaviour, FakeKubelet
from .plane import ControlPlane, assets

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
TIER = "tests/cluster"
FAILED = pytest.StashKey[bool]()
_tier: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "seconds": 0.0,
                         "startup": None, "skip": None}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not report.nodeid.startswith(TIER):
        return
    _tier["seconds"] += report.duration
    if report.when == "call" and report.passed:
        _tier["passed"] += 1
    elif report.failed:
        _tier["failed"] += 1
    elif report.skipped:
        _tier["skipped"] += 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[FAILED] = report.failed


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not (_tier["passed"] or _tier["failed"] or _tier["skipped"]):
        return
    if _tier["skip"]:
        terminalreporter.write_line(f"control-plane tier SKIPPED: {_tier['skip']}", yellow=True)
        return
    startup = f", control plane up in {_tier['startup']:.1f} s" if _tier["startup"] else ""
    terminalreporter.write_line(
        f"control-plane tier: {_tier['passed']} scenarios passed against a real kube-apiserver, "
        f"{_tier['failed']} failed, {_tier['skipped']} skipped; {_tier['seconds']:.1f} s"
        f"{startup}")


@pytest.fixture(scope="session")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    folder, why = assets()
    if folder is None:
        _tier["skip"] = why
        pytest.skip(f"control-plane tier skipped: {why}")
    control = ControlPlane(tmp_path_factory.mktemp("control-plane"), folder)
    try:
        control.start()
        _tier["startup"] = control.started_seconds
        yield control
    finally:
        control.stop()


@pytest.fixture(scope="session")
def admin(plane: ControlPlane) -> ApiClient:
    return kubernetes.config.new_client_from_config(str(plane.admin_kubeconfig))


@pytest.fixture(scope="session")
def operator_kubeconfig(plane: ControlPlane, admin: ApiClient) -> Path:
    """The chart installed cluster-wide; a kubeconfig with its ServiceAccount's token."""
    install_crds(admin)
    namespace, account = install_rbac(admin, {}, "modeldeploy-system")
    return plane.write_kubeconfig("operator", service_account_token(admin, namespace, account))


@pytest.fixture(scope="session")
def kubelet(plane: ControlPlane, admin: ApiClient) -> Iterator[FakeKubelet]:
    fake = FakeKubelet(CoreV1Api(admin)).start()
    yield fake
    fake.stop()


@pytest.fixture
def scheduler(plane: ControlPlane) -> None:
    if not plane.has_scheduler:
        pytest.skip(f"kube-scheduler is not in KUBEBUILDER_ASSETS={plane.folder} "
                    "(plain envtest assets): scheduling scenarios need it")
    if not plane.has_controller_manager:
        pytest.skip(f"kube-controller-manager is not in KUBEBUILDER_ASSETS={plane.folder}: "
                    "Deployment / ReplicaSet / garbage-collector scenarios need it")


def pool_spec(name: str, gpus_per_node: int = 1) -> dict[str, Any]:
    """An L4 pool selected by a per-test label, tainted as GPU node groups usually are."""
    return {"gpu": {"product": "NVIDIA-L4", "memoryGiB": 22.49}, "gpusPerNode": gpus_per_node,
            "maxNodes": 8, "pricePerGPUHour": 0.8,
            "nodeSelector": {"modeldeploy.test/pool": name},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                             "effect": "NoSchedule"}]}


@dataclass
class Env:
    """One scenario's namespace, GPUPool and fake nodes, cleaned up afterwards."""

    cluster: Cluster
    kubelet: FakeKubelet
    pool: str
    spec: dict[str, Any]
    nodes: list[str] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return self.cluster.ns

    def add_nodes(self, count: int, **shape: Any) -> list[str]:
        start = len(self.nodes)
        names = [self.kubelet.add_node(_node(f"{self.pool}-{start + i}", self.spec, **shape))
                 for i in range(count)]
        self.nodes += names
        return names

    def model(self, name: str, **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": {"name": MODEL}, "serving": {"maxModelLen": 8192},
                                "placement": {"pools": [self.pool]}}
        body.update(spec)
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
                "metadata": {"name": name, "namespace": self.ns}, "spec": body}

    def pods(self, name: str) -> list[Any]:
        return [p for p in self.cluster.core.list_namespaced_pod(
            self.ns, label_selector=f"modeldeploy.dev/name={name}").items
            if not p.metadata.deletion_timestamp]


def _node(name: str, spec: dict[str, Any], **shape: Any) -> dict[str, Any]:
    from .kubelet import node_for_pool
    return node_for_pool(name, spec, **shape)


def _slug(nodeid: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", nodeid.split("::")[-1].lower()).strip("-")[-40:].strip("-")


@pytest.fixture
def env(request: pytest.FixtureRequest, admin: ApiClient, kubelet: FakeKubelet,
        operator_kubeconfig: Path) -> Iterator[Env]:
    slug = _slug(request.node.nodeid)
    ns = f"t-{slug}"[:55].strip("-")
    core = CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    spec = pool_spec(f"p-{slug}"[:63].strip("-"))
    pool = f"p-{slug}"[:63].strip("-")
    CustomObjectsApi(admin).create_cluster_custom_object(
        GROUP, VERSION, "gpupools", {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPUPool",
                                     "metadata": {"name": pool}, "spec": spec})
    kubelet.policy = lambda pod: Behaviour.READY
    scenario = Env(Cluster(admin, ns), kubelet, pool, spec)
    kubelet.errors.clear()
    try:
        yield scenario
    finally:
        kubelet.policy = lambda pod: Behaviour.READY
        if request.node.stash.get(FAILED, False):  # diagnostics before the namespace goes
            print(_diagnostics(scenario))
        _cleanup(admin, scenario)
    assert not kubelet.errors, f"the fake kubelet failed: {kubelet.errors[:3]}"


def _diagnostics(scenario: Env) -> str:
    c = scenario.cluster
    lines = [f"--- namespace {scenario.ns}: nodes {scenario.nodes}"]
    for md in c.custom.list_namespaced_custom_object(GROUP, VERSION, scenario.ns,
                                                     "modeldeployments")["items"]:
        lines.append(f"ModelDeployment {md['metadata']['name']}: {md.get('status')}")
    for dep in c.apps.list_namespaced_deployment(scenario.ns).items:
        lines.append(f"Deployment {dep.metadata.name}: {dep.status.to_dict()}")
    for pod in c.core.list_namespaced_pod(scenario.ns).items:
        conditions = [(x.type, x.status, x.message) for x in pod.status.conditions or []]
        lines.append(f"Pod {pod.metadata.name} on {pod.spec.node_name}: {pod.status.phase} "
                     f"{conditions}")
    lines.append(f"fake kubelet errors: {scenario.kubelet.errors[:5]}")
    return "\n".join(lines)


def _cleanup(admin: ApiClient, scenario: Env) -> None:
    custom = CustomObjectsApi(admin)
    for md in custom.list_namespaced_custom_object(GROUP, VERSION, scenario.ns,
                                                   "modeldeployments")["items"]:
        name = md["metadata"]["name"]
        try:  # no operator may be left to remove its finalizer
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, scenario.ns, "modeldeployments", name,
                {"metadata": {"finalizers": None}}, _content_type="application/merge-patch+json")
            custom.delete_namespaced_custom_object(GROUP, VERSION, scenario.ns,
                                                   "modeldeployments", name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    scenario.kubelet.remove_nodes(scenario.nodes)
    custom.delete_cluster_custom_object(GROUP, VERSION, "gpupools", scenario.pool)
    CoreV1Api(admin).delete_namespace(scenario.ns)


@pytest.fixture
def start_operator(request: pytest.FixtureRequest, plane: ControlPlane,
                   operator_kubeconfig: Path) -> Iterator[Any]:
    """Start `modeldeploy run` (cluster-wide, as the chart's ServiceAccount); every operator
    started is stopped afterwards, and none may have been refused by RBAC."""
    started: list[Operator] = []

    def run(*args: str, kubeconfig: Path | None = None) -> Operator:
        op = Operator(plane, kubeconfig or operator_kubeconfig, args,
                      name=f"operator-{len(started)}-{int(time.time())}")
        started.append(op)
        return op.start()

    yield run
    for op in started:
        op.stop()
        if request.node.stash.get(FAILED, False):  # diagnostics before the namespace goes
            print(f"--- {op.name} (last lines) ---\n{op.log(80)}")
    refused = [line for op in started for line in op.forbidden()]
    assert not refused, "the API server refused the operator (RBAC):\n" + "\n".join(refused[:5])


@pytest.fixture
def operator(start_operator: Any) -> Operator:
    return start_operator()  # type: ignore[no-any-return]
