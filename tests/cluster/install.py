"""The operator as a user installs it: the chart's CRDs and RBAC (rendered by Helm's engine),
and `modeldeploy run` as a subprocess with a token of the chart's ServiceAccount, so every
request it makes is authorized by the real RBAC authorizer against the chart's rules."""

from __future__ import annotations

import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kubernetes import dynamic
from kubernetes.client import (
    ApiClient,
    AuthenticationV1TokenRequest,
    AuthorizationV1Api,
    CoreV1Api,
    V1TokenRequestSpec,
)
from kubernetes.client.exceptions import ApiException

from modeldeploy.install.helm import chart_crds, render_objects

from .plane import ControlPlane, Process, free_port, start, wait_until

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/modeldeploy"
# What the tier installs of the chart: the operator's identity, its RBAC and the GPU pools
# ConfigMap of a namespaced install (the operator itself runs as a subprocess).
RBAC_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
              "RoleBinding", "ConfigMap")
FIELD_MANAGER = "cluster-tests"


def apply(api: ApiClient, obj: dict[str, Any]) -> Any:
    """Server-side apply one object as the admin."""
    client = dynamic.DynamicClient(api)
    resource = client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    meta = obj["metadata"]
    return resource.server_side_apply(body=obj, name=meta["name"],
                                      namespace=meta.get("namespace"),
                                      field_manager=FIELD_MANAGER, force_conflicts=True)


def install_crds(api: ApiClient) -> None:
    """The chart's CRDs, applied and Established (their CEL rules pass the real cost budget),
    and the stand-ins for LeaderWorkerSet and ServiceMonitor."""
    client = dynamic.DynamicClient(api)
    crds = client.resources.get(api_version="apiextensions.k8s.io/v1",
                                kind="CustomResourceDefinition")
    for crd in [*chart_crds(CHART), *STAND_INS]:
        apply(api, crd)

        def established(name: str = crd["metadata"]["name"]) -> bool:
            conditions = crds.get(name=name).to_dict().get("status", {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
        wait_until(established, 30, f"CRD {crd['metadata']['name']} Established")


def stand_in_crd(group: str, version: str, kind: str, plural: str) -> dict[str, Any]:
    """A schemaless CRD standing in for another project's API (LeaderWorkerSet, the Prometheus
    Operator's ServiceMonitor): the API server stores the objects; no controller acts on them
    unless a test plays it."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                           "listKind": f"{kind}List"},
                 "versions": [{"name": version, "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {
                                   "type": "object",
                                   "x-kubernetes-preserve-unknown-fields": True}}}]}}


STAND_INS = (stand_in_crd("leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet", "leaderworkersets"),
             stand_in_crd("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"))


def install_rbac(api: ApiClient, values: dict[str, Any], namespace: str,
                 release: str = "modeldeploy") -> tuple[str, str]:
    """The chart's ServiceAccount and (Cluster)Roles/Bindings; returns (namespace, SA name)."""
    objects = render_objects(CHART, values, release=release, namespace=namespace)
    apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for ns in values.get("watchNamespaces") or []:
        apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    account = ""
    for obj in objects:
        if obj["kind"] not in RBAC_KINDS:
            continue
        if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding", "ConfigMap"):
            obj["metadata"].setdefault("namespace", namespace)
        apply(api, obj)
        if obj["kind"] == "ServiceAccount":
            account = obj["metadata"]["name"]
    for ns in values.get("watchNamespaces") or [None]:
        wait_authorized(api, f"system:serviceaccount:{namespace}:{account}", ns)
    return namespace, account


def wait_authorized(api: ApiClient, user: str, namespace: str | None) -> None:
    """Until the authorizer's RBAC cache has the new bindings (it follows them with informers):
    an operator started earlier is refused its first watches."""
    authz = AuthorizationV1Api(api)
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": user, "groups": ["system:serviceaccounts"],
                       "resourceAttributes": {"group": "modeldeploy.dev", "verb": "watch",
                                              "resource": "modeldeployments",
                                              "namespace": namespace or ""}}}
    wait_until(lambda: bool(authz.create_subject_access_review(review).status.allowed), 30,
               f"RBAC allows {user} to watch ModelDeployments")


def service_account_token(api: ApiClient, namespace: str, name: str) -> str:
    """A bound token of the ServiceAccount (TokenRequest API), valid for the whole session."""
    request = AuthenticationV1TokenRequest(spec=V1TokenRequestSpec(audiences=[], expiration_seconds=6 * 3600))
    return str(CoreV1Api(api).create_namespaced_service_account_token(
        name, namespace, request).status.token)


def operator_command() -> list[str]:
    """`modeldeploy` as installed beside this interpreter (the CLI users run)."""
    script = Path(sys.executable).parent / "modeldeploy"
    if script.exists():
        return [str(script)]
    found = shutil.which("modeldeploy")
    if found is None:
        raise RuntimeError("the modeldeploy CLI is not installed (make install)")
    return [found]


class Operator:
    """`modeldeploy run` in a subprocess: started, probed through its liveness endpoint, stopped
    with SIGTERM then SIGKILL."""

    def __init__(self, plane: ControlPlane, kubeconfig: Path, args: Iterable[str] = (),
                 name: str = "operator") -> None:
        self.plane = plane
        self.kubeconfig = kubeconfig
        self.args = list(args)
        self.name = name
        self.process: Process | None = None
        self.port = 0

    def start(self, timeout: float = 60.0) -> Operator:
        self.port = free_port()
        env = dict(os.environ)
        extra = env.get("MODELDEPLOY_CLUSTER_PYTHONPATH")  # run another tree (before-fix checks)
        if extra:
            env["PYTHONPATH"] = extra + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("KUBECONFIG", None)
        argv = [*operator_command(), "run", f"--kubeconfig={self.kubeconfig}", "--offline",
                "--standalone", "--log-format=plain", f"--liveness=http://127.0.0.1:{self.port}/healthz",
                "--resync-interval=2", "--pool-status-interval=2", *self.args]
        self.process = start(self.name, argv, self.plane.workdir, env)
        wait_until(self.healthy, timeout, f"{self.name} liveness", self.process)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                return int(r.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def log(self, lines: int = 60) -> str:
        return self.process.tail(lines) if self.process else ""

    def forbidden(self) -> list[str]:
        """Log lines where the API server refused the operator (RBAC gaps)."""
        if self.process is None or not self.process.log.exists():
            return []
        text = self.process.log.read_text(errors="replace")
        return [line for line in text.splitlines() if "403" in line and "orbidden" in line]

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def alive(self) -> bool:
        return self.process is not None and self.process.popen.poll() is None


def wait_deleted(read: Any, timeout: float = 30.0) -> None:
    """Poll `read()` until it raises 404."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            read()
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.2)
    raise AssertionError(f"still present after {timeout}s")
