"""Helpers for the kind e2e suite: cluster access behind the guard, bounded waits, in-cluster
HTTP clients. Imported at collection time, so nothing here touches a cluster at import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

SKIP_REASON = "e2e needs Docker and kind"

# Set by e2e/run.sh once the cluster is up, the operator installed and the guard passed.
ENV_CLUSTER = "MODELDEPLOY_E2E_CLUSTER"
ENV_MARKER = "MODELDEPLOY_E2E_MARKER"
ENV_KUBECONFIG = "KUBECONFIG"
# Set by run.sh once the cluster exists: the suite must run, a skip would hide a broken setup.
ENV_REQUIRED = "MODELDEPLOY_E2E_REQUIRED"
ENV_WORKDIR = "MODELDEPLOY_E2E_WORKDIR"
FAILED = pytest.StashKey[bool]()  # set by e2e/conftest.py: the test's call phase failed
ENV_SIM_IMAGE = "MODELDEPLOY_E2E_SIM_IMAGE"
ENV_SIM_IMAGE_V2 = "MODELDEPLOY_E2E_SIM_IMAGE_V2"
ENV_OPERATOR_NAMESPACE = "MODELDEPLOY_E2E_OPERATOR_NAMESPACE"
# "1" when run.sh installed KEDA and its HTTP add-on (E2E_KEDA, default on).
ENV_KEDA_HTTP = "MODELDEPLOY_E2E_KEDA_HTTP"
KEDA_HTTP_SKIP_REASON = "run.sh installed no KEDA HTTP add-on (E2E_KEDA=0): scale from zero not tested"

GROUP, VERSION, PLURAL = "modeldeploy.dev", "v1alpha1", "modeldeployments"
GPU = "nvidia.com/gpu"
SUITE_LABEL = "e2e.modeldeploy.dev/suite"

T = TypeVar("T")


# ---------------------------------------------------------------- can the suite run here?

def docker_engine_available() -> bool:
    """A docker client is not enough: the engine must answer."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def kind_available() -> bool:
    return shutil.which("kind") is not None


def e2e_required() -> bool:
    """run.sh created the cluster: the tests must run (and fail) rather than skip."""
    return os.environ.get(ENV_REQUIRED) == "1"


def e2e_available() -> bool:
    """run.sh set up a cluster, and Docker and kind are really here (cheapest checks first)."""
    return bool(os.environ.get(ENV_CLUSTER)) and kind_available() and docker_engine_available()


# ---------------------------------------------------------------- waiting

class WaitTimeout(AssertionError):
    pass


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float, interval: float = 2.0
) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds.

    The failure message carries the last value (or exception) seen, for diagnosis.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except Exception as exc:  # a transient API error is retried until the deadline
            value, last = None, exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


# ---------------------------------------------------------------- status helpers (pure)

def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def is_current(md: dict[str, Any]) -> bool:
    """The operator has reconciled the latest spec."""
    status = md.get("status") or {}
    return bool(status.get("observedGeneration") == md["metadata"].get("generation"))


def is_ready(md: dict[str, Any]) -> bool:
    ready = condition(md, "Ready")
    return is_current(md) and ready is not None and ready.get("status") == "True"


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def pod_gpu_request(pod: dict[str, Any]) -> int:
    """GPUs a pod asks for: the sum over its containers (limits stand in for absent requests)."""
    total = 0
    for container in pod["spec"]["containers"]:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        total += int(requests.get(GPU) or limits.get(GPU) or 0)
    return total


def pod_ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp") or pod.get("status", {}).get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod["status"].get("conditions") or []
    )


# ---------------------------------------------------------------- specs

def tiny_model_spec(
    image: str,
    *,
    pools: list[str] | None = None,
    tensor_parallel: int | None = None,
    replicas: int = 1,
    autoscaling: dict[str, Any] | None = None,
    max_num_seqs: int | None = None,
    parameters: int = 1_200_000_000,
) -> dict[str, Any]:
    """A ModelDeployment spec with explicit model facts, so no hub access is needed."""
    placement: dict[str, Any] = {}
    if pools:
        placement["pools"] = pools
    if tensor_parallel:
        placement["tensorParallelSize"] = tensor_parallel
    serving: dict[str, Any] = {"image": image, "maxModelLen": 4096}
    if max_num_seqs:
        serving["maxNumSeqs"] = max_num_seqs
    spec: dict[str, Any] = {
        "model": {
            "name": "e2e/tiny-llm",
            "architecture": {
                "parameters": parameters,
                "layers": 16,
                "hiddenSize": 2048,
                "attentionHeads": 32,
                "kvHeads": 8,
                "headDim": 64,
                "maxContext": 8192,
            },
        },
        "serving": serving,
        "placement": placement,
        "replicas": replicas,
    }
    if autoscaling:
        spec["autoscaling"] = autoscaling
    return spec


# ---------------------------------------------------------------- in-cluster HTTP clients

# Runs inside a pod (the simulator image has Python): poll a URL, one JSON line per attempt.
PROBE_SCRIPT = textwrap.dedent("""\
    import json, sys, time, urllib.request
    url, seconds = sys.argv[1], float(sys.argv[2])
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                print(json.dumps({"ok": r.status == 200, "code": r.status}), flush=True)
        except Exception as e:
            print(json.dumps({"ok": False, "error": repr(e)[:200]}), flush=True)
        time.sleep(0.25)
""")

# A bounded load generator: N threads, each one request at a time, for at most `seconds`.
LOAD_SCRIPT = textwrap.dedent("""\
    import json, sys, threading, time, urllib.request
    url, model, workers, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    end = time.monotonic() + seconds
    body = json.dumps({"model": model, "prompt": "hello " * 64, "max_tokens": 512}).encode()
    def work():
        while time.monotonic() < end:
            headers = {"Content-Type": "application/json"}
            req = urllib.request.Request(url, data=body, headers=headers)
            try:
                urllib.request.urlopen(req, timeout=120).read()
            except Exception as e:
                print("error", repr(e)[:200], flush=True)
                time.sleep(0.5)
    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    print("load started", flush=True)
    for t in threads:
        t.join(max(0.0, end - time.monotonic()) + 130)
""")


# One completion, waited for as long as the model takes to wake (the interceptor holds it).
COMPLETION_SCRIPT = textwrap.dedent("""\
    import json, sys, time, urllib.error, urllib.request
    url, model, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    body = json.dumps({"model": model, "prompt": "hello from zero", "max_tokens": 4}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=seconds) as r:
            out = {"code": r.status, "body": json.loads(r.read())}
    except urllib.error.HTTPError as e:
        out = {"code": e.code, "error": e.read().decode()[:500]}
    except Exception as e:
        out = {"code": None, "error": repr(e)[:500]}
    out["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(out), flush=True)
""")


def parse_probe_log(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def downtime_after_first_success(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failed polls after the endpoint first answered: what a client would have seen go down."""
    first_ok = next((i for i, r in enumerate(results) if r.get("ok")), None)
    if first_ok is None:
        return results
    return [r for r in results[first_ok:] if not r.get("ok")]


# ---------------------------------------------------------------- cluster access

@dataclass
class Cluster:
    """Clients for the guarded kind cluster."""

    api: Any  # kubernetes.client.ApiClient
    sim_image: str
    sim_image_v2: str
    operator_namespace: str

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    def plain(self, obj: Any) -> Any:
        return self.api.sanitize_for_serialization(obj)

    # ModelDeployments -------------------------------------------------------------------
    def create_md(self, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
                "metadata": {"name": name, "namespace": ns}, "spec": spec}
        return dict(self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body))

    def get_md(self, ns: str, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name))

    def patch_md_spec(self, ns: str, name: str, spec_patch: dict[str, Any]) -> dict[str, Any]:
        return dict(self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, name, {"spec": spec_patch}))

    def delete_md(self, ns: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)

    def md_exists(self, ns: str, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.get_md(ns, name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def wait_ready(self, ns: str, name: str, timeout: float = 300) -> dict[str, Any]:
        return wait_for(f"{ns}/{name} Ready=True", lambda: _if(self.get_md(ns, name), is_ready),
                        timeout)

    # children ---------------------------------------------------------------------------
    def owned(self, ns: str, uid: str) -> list[dict[str, Any]]:
        """Every object in the namespace the ModelDeployment controls, of the kinds it renders."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        listers: list[Callable[[], Any]] = [
            lambda: self.apps.list_namespaced_deployment(ns),
            lambda: self.core.list_namespaced_service(ns),
            lambda: self.core.list_namespaced_persistent_volume_claim(ns),
            lambda: client.PolicyV1Api(self.api).list_namespaced_pod_disruption_budget(ns),
            lambda: client.AutoscalingV2Api(self.api).list_namespaced_horizontal_pod_autoscaler(ns),
            lambda: self.custom.list_namespaced_custom_object(
                "leaderworkerset.x-k8s.io", "v1", ns, "leaderworkersets"),
        ]
        found: list[dict[str, Any]] = []
        for lister in listers:
            try:
                listing = self.plain(lister())
            except ApiException as exc:
                if exc.status == 404:  # kind not served here (e.g. no LWS CRD)
                    continue
                raise
            for item in listing.get("items") or []:
                if owned_by(item, uid):
                    item.setdefault("kind", _kind_of(listing))
                    found.append(item)
        return found

    def owned_of_kind(self, ns: str, uid: str, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.owned(ns, uid) if o.get("kind") == kind]

    def pods(self, ns: str, selector: str) -> list[dict[str, Any]]:
        return list(self.plain(self.core.list_namespaced_pod(ns, label_selector=selector))["items"])

    def nodes_by_label(self, key: str, value: str) -> set[str]:
        listing = self.plain(self.core.list_node(label_selector=f"{key}={value}"))
        return {n["metadata"]["name"] for n in listing["items"]}

    def wake_url(self, ns: str, uid: str, path: str) -> str:
        """The model's wake Service (ExternalName to the KEDA HTTP interceptor): what clients
        call so that a request to a model at zero is held while it wakes."""
        wake = [s for s in self.owned_of_kind(ns, uid, "Service")
                if s["spec"].get("type") == "ExternalName"]
        assert len(wake) == 1, f"expected one ExternalName wake Service in {ns}, found {len(wake)}"
        port = wake[0]["spec"]["ports"][0]["port"]
        return f"http://{wake[0]['metadata']['name']}.{ns}:{port}{path}"

    def service_url(self, ns: str, uid: str, path: str) -> str:
        services = [s for s in self.owned_of_kind(ns, uid, "Service")
                    if s["spec"].get("clusterIP") not in (None, "None")]
        assert services, f"no ClusterIP Service owned by the ModelDeployment in {ns}"
        svc = sorted(services, key=lambda s: s["metadata"]["name"])[0]
        port = svc["spec"]["ports"][0]["port"]
        return f"http://{svc['metadata']['name']}.{ns}.svc.cluster.local:{port}{path}"

    # namespaces -------------------------------------------------------------------------
    @staticmethod
    def new_namespace_name(prefix: str) -> str:
        slug = "".join(c if c.isalnum() else "-" for c in prefix.lower()).strip("-")[:40]
        return f"e2e-{slug}-{uuid.uuid4().hex[:6]}"

    def create_namespace(self, name: str) -> None:
        self.core.create_namespace(
            {"metadata": {"name": name, "labels": {SUITE_LABEL: "true"}}})

    def save_diagnostics(self, ns: str, test: str) -> Path:
        """The namespace's pods, events and ModelDeployments and the operator's log, written to
        run.sh's work dir (else the current one) before the namespace is deleted."""
        out = Path(os.environ.get(ENV_WORKDIR) or ".") / f"diagnostics-{test[:80]}.txt"
        sections: list[tuple[str, Callable[[], Any]]] = [
            ("modeldeployments", lambda: self.custom.list_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL)),
            ("pods", lambda: self.plain(self.core.list_namespaced_pod(ns))),
            ("events", lambda: self.plain(self.core.list_namespaced_event(ns))),
            ("deployments", lambda: self.plain(self.apps.list_namespaced_deployment(ns))),
            ("operator log", lambda: [self.core.read_namespaced_pod_log(
                p.metadata.name, self.operator_namespace, tail_lines=300)
                for p in self.core.list_namespaced_pod(
                    self.operator_namespace,
                    label_selector="app.kubernetes.io/name=modeldeploy").items]),
        ]
        with out.open("w", encoding="utf-8") as f:
            for title, read in sections:
                try:
                    body = read()
                    text = "\n".join(body) if isinstance(body, list) and all(
                        isinstance(b, str) for b in body) else json.dumps(body, indent=1,
                                                                           default=str)
                except Exception as exc:  # diagnostics never hide the test's own failure
                    text = f"unreadable: {exc}"
                f.write(f"===== {title} ({ns})\n{text}\n")
        return out

    def delete_namespace(self, name: str, timeout: float = 240) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise

        def gone() -> bool:
            try:
                self.core.read_namespace(name)
            except ApiException as exc:
                return bool(exc.status == 404)
            return False

        wait_for(f"namespace {name} to be deleted (frees its GPUs)", gone, timeout)

    # client pods ------------------------------------------------------------------------
    def start_python_pod(self, ns: str, name: str, script: str, args: list[str]) -> None:
        """A pod running `python -c script args...` in the simulator image (it has Python)."""
        self.core.create_namespaced_pod(ns, {
            "metadata": {"name": name, "labels": {SUITE_LABEL: "client"}},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "client",
                    "image": self.sim_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", script, *args],
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False,
                                        "runAsNonRoot": True, "runAsUser": 65532},
                }],
            },
        })
        wait_for(f"client pod {ns}/{name} to start",
                 lambda: self.plain(self.core.read_namespaced_pod(name, ns))["status"].get("phase")
                 in ("Running", "Succeeded"), 120)

    def pod_log(self, ns: str, name: str) -> str:
        return str(self.core.read_namespaced_pod_log(name, ns))

    def delete_pod(self, ns: str, name: str) -> None:
        self.core.delete_namespaced_pod(name, ns, grace_period_seconds=0)

    def run_python_once(self, ns: str, name: str, script: str, args: list[str],
                        timeout: float = 120) -> str:
        """Run a client pod to completion and return its log."""
        self.start_python_pod(ns, name, script, args)
        phase = wait_for(
            f"client pod {ns}/{name} to finish",
            lambda: _in(self.plain(self.core.read_namespaced_pod(name, ns))["status"].get("phase"),
                        ("Succeeded", "Failed")),
            timeout)
        log = self.pod_log(ns, name)
        assert phase == "Succeeded", f"client pod {name} {phase}: {log}"
        return log

    def operator_pods(self) -> list[dict[str, Any]]:
        deployments = self.plain(self.apps.list_namespaced_deployment(self.operator_namespace))
        items = deployments["items"]
        assert len(items) == 1, f"expected one operator Deployment in {self.operator_namespace}"
        labels = items[0]["spec"]["selector"]["matchLabels"]
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return self.pods(self.operator_namespace, selector)


# Fetch /v1/models once the Service answers (retries inside the pod, bounded).
MODELS_SCRIPT = textwrap.dedent("""\
    import sys, time, urllib.request
    url, end = sys.argv[1], time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                print(r.read().decode()); break
        except Exception as e:
            if time.monotonic() > end:
                raise
            time.sleep(1)
""")


def _if(value: T, test: Callable[[T], bool]) -> T | None:
    return value if test(value) else None


def _in(value: T, options: tuple[T, ...]) -> T | None:
    return value if value in options else None


def _kind_of(listing: dict[str, Any]) -> str:
    kind = str(listing.get("kind") or "")
    return kind[: -len("List")] if kind.endswith("List") else kind


def connect() -> Cluster:
    """Clients for the cluster run.sh created, after the guard accepted it.

    Raises guard.GuardError for anything else; the caller aborts the session.
    """
    import yaml
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from e2e import guard

    cluster_name = os.environ[ENV_CLUSTER]
    kubeconfig_path = os.environ.get(ENV_KUBECONFIG, "")
    if not kubeconfig_path or os.pathsep in kubeconfig_path:
        raise guard.GuardError(f"{ENV_KUBECONFIG} must name the one kubeconfig run.sh wrote")
    with open(kubeconfig_path, encoding="utf-8") as fh:
        target = guard.check_kubeconfig(yaml.safe_load(fh) or {}, cluster_name)
    api = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig_path, context=target.context)
    try:
        marker = client.CoreV1Api(api).read_namespaced_config_map(
            guard.MARKER_NAME, guard.MARKER_NAMESPACE)
        observed = (marker.data or {}).get(guard.MARKER_KEY)
    except ApiException as exc:
        if exc.status != 404:
            raise
        observed = None
    guard.check_marker(os.environ.get(ENV_MARKER, ""), observed)
    return Cluster(
        api=api,
        sim_image=os.environ[ENV_SIM_IMAGE],
        sim_image_v2=os.environ[ENV_SIM_IMAGE_V2],
        operator_namespace=os.environ.get(ENV_OPERATOR_NAMESPACE, "modeldeploy-system"),
    )


def samples(seconds: float, interval: float) -> Iterator[int]:
    """Yield sample indices for `seconds`, sleeping `interval` between them."""
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        yield i
        i += 1
        time.sleep(interval)
