"""The real operator (`run_operator`, the code path of `modeldeploy run`) in a thread, plus the
objects and polling helpers the scenarios share."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
from kubernetes.client import ApiClient, ApiException, CustomObjectsApi

from modeldeploy import rbac
from modeldeploy.shell.config import OperatorConfig
from modeldeploy.shell.runner import run_operator

from .emulator import EmulatorServer, LoggedRequest

GROUP, VERSION = "modeldeploy.dev", "v1alpha1"
OPERATOR_AGENT = "modeldeploy-operator"
KOPF_AGENT = "kopf/"
T = TypeVar("T")


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fast_config(kubeconfig: Path, **overrides: Any) -> OperatorConfig:
    """Short intervals so scenarios converge in seconds; an unreachable hub."""
    fields: dict[str, Any] = dict(
        kubeconfig=kubeconfig, resync_interval=1.0, pool_status_interval=1.0, discovery_interval=60.0,
        retry_backoff=(0.2, 0.5, 1.0), watch_server_timeout=30, connect_timeout=2.0,
        request_timeout=5.0, child_event_delay=0.05,
        hub_endpoint=f"http://127.0.0.1:{closed_port()}", hub_timeout=0.5,
        user_agent=OPERATOR_AGENT, metrics_address="127.0.0.1", metrics_port=closed_port())
    fields.update(overrides)
    return OperatorConfig(**fields)


class OperatorThread:
    """`run_operator` in a thread, stopped through kopf's stop flag."""

    def __init__(self, config: OperatorConfig, wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.wall = wall
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _run(self) -> None:
        try:
            run_operator(self.config, stop_flag=self.stop_flag, ready_flag=self.ready_flag,
                         wall=self.wall)
        except BaseException as exc:  # reported by start()/stop()
            self.error = exc

    def start(self, timeout: float = 20.0) -> OperatorThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.ready_flag.wait(0.05):
            if self.error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the operator died while starting: {self.error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("the operator did not become ready")
        return self

    def stop(self, timeout: float = 20.0) -> None:
        self.stop_flag.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the operator did not stop")
        if self.error is not None:
            raise RuntimeError(f"the operator failed: {self.error!r}") from self.error

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def metric(self, name: str) -> float:
        """Sum of one of the operator's own Prometheus series (all labels), from /metrics."""
        url = f"http://{self.config.metrics_address}:{self.config.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((f"{name} ", f"{name}{{")))

    def passes(self) -> int:
        """Reconcile passes run so far (any result)."""
        return int(self.metric("modeldeploy_reconcile_passes_total"))


class SkewedClock:
    """Wall time plus an offset a test moves forward: the operator's decisions read it (stall
    windows are minutes long; the test moves the clock instead of waiting)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


def eventually(check: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.05,
               what: str = "condition") -> T:
    """Poll until `check` returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ApiException as exc:
            last = exc
        if last and not isinstance(last, ApiException):
            return last  # type: ignore[no-any-return]
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s; last: {last!r}")


def assert_rbac_allows(server: EmulatorServer, mode: rbac.Mode = rbac.Mode.CLUSTER, *,
                       peering: bool = False) -> None:
    """Every request of the operator (and kopf) is granted; a 403 it was answered is tolerated
    only because it was refused (the operator then falls back, as in namespaced mode)."""
    denied = sorted({
        (r.group or "", r.rbac_resource or "", r.verb or "")
        for r in server.emulator.log
        if not r.user_agent.startswith("modeldeploy-tests") and r.resource and r.verb
        and r.status != 403 and not rbac.allows(r.group or "", r.rbac_resource or "", r.verb,
                                                mode=mode, peering=peering)
    })
    assert denied == [], f"requests outside the declared RBAC: {denied}"


def operator_writes(requests: list[LoggedRequest]) -> list[LoggedRequest]:
    return [r for r in requests if r.is_write and not r.user_agent.startswith("modeldeploy-tests")]


def operator_reads(requests: list[LoggedRequest]) -> list[LoggedRequest]:
    """Reads other than watches the operator (or kopf for it) sent: GET, LIST, discovery."""
    return [r for r in requests if r.method == "GET" and r.verb != "watch"
            and not r.user_agent.startswith("modeldeploy-tests")]


def quiet_period(server: EmulatorServer, seconds: float) -> list[LoggedRequest]:
    """Requests the operator sent during `seconds` (the caller waits; nothing else writes)."""
    mark = server.emulator.log_mark()
    time.sleep(seconds)
    return server.emulator.requests_since(mark)


def settle(server: EmulatorServer, window: float = 0.5, timeout: float = 15.0) -> None:
    """Wait for a `window` in which the operator wrote nothing (its last event or status write
    may still be in flight when a test sees the state it waited for); fails if it never stops."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not operator_writes(quiet_period(server, window)):
            return
    raise AssertionError(f"the operator kept writing for {timeout}s")


# --- objects ------------------------------------------------------------------------------------

def model_deployment(name: str, model: str = "meta-llama/Llama-3.1-8B-Instruct",
                     **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {"model": {"name": model}, "serving": {"maxModelLen": 8192}, **spec}}


def gpu_pool(name: str = "l4", product: str = "NVIDIA-L4", memory: float = 22.49,
             gpus: int = 4, price: float = 0.8) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPUPool", "metadata": {"name": name},
            "spec": {"gpu": {"product": product, "memoryGiB": memory}, "gpusPerNode": gpus,
                     "maxNodes": 4, "pricePerGPUHour": price,
                     "nodeSelector": {"nvidia.com/gpu.product": product}}}


class Cluster:
    """The tests' side of the API: the real client, playing user and kube-controller-manager."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.api = api
        self.ns = namespace
        self.custom = CustomObjectsApi(api)
        self.apps = kubernetes.client.AppsV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)

    def create_storage_class(self, name: str, provisioner: str) -> None:
        kubernetes.client.StorageV1Api(self.api).create_storage_class(
            {"metadata": {"name": name}, "provisioner": provisioner})

    def create_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_cluster_custom_object(GROUP, VERSION, "gpupools", body)  # type: ignore[no-any-return]

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.ns, "modeldeployments", body)

    def md(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.ns, "modeldeployments", name)

    def patch_md(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.ns, "modeldeployments", name, patch,
            _content_type="application/merge-patch+json")

    def delete_md(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, "modeldeployments",
                                                    name)

    def conditions(self, name: str) -> dict[str, tuple[str, str, str]]:
        status = self.md(name).get("status") or {}
        return {c["type"]: (c["status"], c["reason"], c.get("message", ""))
                for c in status.get("conditions") or []}

    def wait_condition(self, name: str, ctype: str, status: str, reason: str | None = None,
                       timeout: float = 20.0) -> tuple[str, str, str]:
        def check() -> tuple[str, str, str] | None:
            cond = self.conditions(name).get(ctype)
            if cond and cond[0] == status and (reason is None or cond[1] == reason):
                return cond
            return None
        return eventually(check, timeout, what=f"{name} {ctype}={status} {reason or ''}")

    def deployment(self, name: str) -> Any:
        try:
            return self.apps.read_namespaced_deployment(name, self.ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def service(self, name: str) -> Any:
        try:
            return self.core.read_namespaced_service(name, self.ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def mark_available(self, name: str) -> None:
        """What the Deployment controller would write once the pods are ready."""
        dep = self.apps.read_namespaced_deployment(name, self.ns)
        replicas = dep.spec.replicas
        self.apps.patch_namespaced_deployment_status(name, self.ns, {"status": {
            "observedGeneration": dep.metadata.generation, "replicas": replicas,
            "readyReplicas": replicas, "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicas"}],
        }})

    def children(self) -> Iterator[tuple[str, str]]:
        for dep in self.apps.list_namespaced_deployment(self.ns).items:
            yield "Deployment", dep.metadata.name
        for svc in self.core.list_namespaced_service(self.ns).items:
            yield "Service", svc.metadata.name
        policy = kubernetes.client.PolicyV1Api(self.api)
        for pdb in policy.list_namespaced_pod_disruption_budget(self.ns).items:
            yield "PodDisruptionBudget", pdb.metadata.name


@contextmanager
def running_operator(server: EmulatorServer, cluster: Cluster, config: OperatorConfig,
                     wall: Callable[[], float] = time.time) -> Iterator[OperatorThread]:
    """The operator in a thread over the default L4 pool; on exit, every request it sent is
    checked against the declared RBAC (the body of most scenario files' `operator` fixture)."""
    cluster.create_pool(gpu_pool())
    thread = OperatorThread(config, wall).start()
    try:
        yield thread
    finally:
        thread.stop()
        assert_rbac_allows(server)
