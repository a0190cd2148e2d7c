"""A fake kubelet (as KWOK does it): fake GPU nodes and the pod lifecycle the kubelet reports.

Nodes are made from a GPUPool's spec the way GPU Feature Discovery and the device plugin would
show them: the pool's nodeSelector labels plus GFD labels, `nvidia.com/gpu` capacity, taints
that the pool's tolerations answer, Ready (the `node.kubernetes.io/not-ready` taint the API
server puts on new nodes is removed, since the node lifecycle controller is off).

Pods bound to a fake node follow `policy(pod) -> Behaviour`, re-applied every tick, so a test
changes the policy and the next tick reports the new state:
- READY: Running and Ready (the model loaded);
- LOADING: Running, not Ready (the startup probe still waits for the weights);
- OOM: the container was OOMKilled at load and is in CrashLoopBackOff;
- CRASH: CrashLoopBackOff, vLLM's own last error line in the termination message.
Pods being deleted are removed at once (no kubelet has processes to stop).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import threading
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

GPU = "nvidia.com/gpu"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
TICK_SECONDS = 0.2

# vLLM's error when the KV cache cannot hold one sequence of max_model_len (vllm/v1/core/
# kv_cache_utils.py, check_enough_kv_cache_memory), as it ends the engine core's traceback.
VLLM_KV_CACHE_ERROR = (
    "ValueError: To serve at least one request with the models's max seq len (131072), "
    "(16.00 GiB KV cache is needed, which is larger than the available KV cache memory "
    "(9.73 GiB). Based on the available memory, the estimated maximum model length is 79712. "
    "Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing "
    "the engine.")
# PyTorch's allocator error while loading weights (torch/csrc/cuda/CUDACachingAllocator.cpp).
TORCH_OOM_ERROR = ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.96 GiB. "
                   "GPU 0 has a total capacity of 22.05 GiB of which 1.12 GiB is free.")


class Behaviour(Enum):
    READY = "ready"
    LOADING = "loading"
    OOM = "oom"
    CRASH = "crash"


Policy = Callable[[Mapping[str, Any]], Behaviour]


def gfd_labels(product: str, memory_gib: float, gpus: int) -> dict[str, str]:
    """The labels NVIDIA GPU Feature Discovery puts on a GPU node (memory in MiB)."""
    return {"nvidia.com/gpu.product": product, "nvidia.com/gpu.count": str(gpus),
            "nvidia.com/gpu.memory": str(int(memory_gib * 1024)), "nvidia.com/gpu.present": "true"}


def pool_taints(pool_spec: Mapping[str, Any]) -> list[dict[str, str]]:
    """Taints a node of the pool carries: one per toleration that names a key and an effect."""
    out = []
    for tol in pool_spec.get("tolerations") or []:
        if tol.get("key") and tol.get("effect"):
            taint = {"key": tol["key"], "effect": tol["effect"]}
            if tol.get("operator", "Equal") == "Equal" and tol.get("value"):
                taint["value"] = tol["value"]
            out.append(taint)
    return out


def node_for_pool(name: str, pool_spec: Mapping[str, Any], *, cpu: str = "48",
                  memory: str = "192Gi", disk: str = "900Gi",
                  gpus: int | None = None) -> dict[str, Any]:
    """A Node of the pool: selector + GFD labels, GPU capacity, the pool's taints."""
    count = int(pool_spec["gpusPerNode"] if gpus is None else gpus)
    gpu = pool_spec["gpu"]
    resources = {"cpu": cpu, "memory": memory, "ephemeral-storage": disk, "pods": "110",
                 GPU: str(count)}
    labels = {**gfd_labels(gpu["product"], float(gpu["memoryGiB"]), count),
              **dict(pool_spec.get("nodeSelector") or {}), "kubernetes.io/hostname": name,
              "type": "fake-gpu-node"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": pool_taints(pool_spec)},
            "status": {"capacity": resources, "allocatable": resources}}


def _ready_conditions(ready: bool) -> list[dict[str, str]]:
    value = "True" if ready else "False"
    return [{"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": value},
            {"type": "Ready", "status": value}]


def pod_status(pod: Mapping[str, Any], behaviour: Behaviour, ip: str) -> dict[str, Any]:
    """The status a kubelet would report for this pod under this behaviour."""
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    running = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    if behaviour in (Behaviour.READY, Behaviour.LOADING):
        ready = behaviour is Behaviour.READY
        statuses = [{"name": c, "ready": ready, "restartCount": 0, "image": "vllm",
                     "imageID": "", "started": True, "state": running} for c in containers]
    else:
        oom = behaviour is Behaviour.OOM
        terminated = {"exitCode": 137 if oom else 1, "reason": "OOMKilled" if oom else "Error",
                      "message": TORCH_OOM_ERROR if oom else VLLM_KV_CACHE_ERROR,
                      "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:00Z"}
        statuses = [{"name": c, "ready": False, "restartCount": 3, "image": "vllm",
                     "imageID": "", "started": False,
                     "state": {"waiting": {"reason": "CrashLoopBackOff",
                                           "message": f"back-off 40s restarting failed container={c}"}},
                     "lastState": {"terminated": terminated}} for c in containers]
    return {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "10.255.0.1",
            "conditions": _ready_conditions(behaviour is Behaviour.READY),
            "containerStatuses": statuses}


def _summary(status: Mapping[str, Any] | None) -> tuple[Any, ...]:
    status = status or {}
    ready = next((c.get("status") for c in status.get("conditions") or []
                  if c.get("type") == "Ready"), None)
    reasons = tuple(str(((s.get("lastState") or {}).get("terminated") or {}).get("reason"))
                    for s in status.get("containerStatuses") or [])
    return status.get("phase"), ready, reasons, status.get("podIP")


class FakeKubelet:
    """Drives the pods bound to the fake nodes it created, in a background thread."""

    def __init__(self, core: CoreV1Api) -> None:
        self.core = core
        self.nodes: set[str] = set()
        self.policy: Policy = lambda pod: Behaviour.READY
        self._ips: dict[str, str] = {}
        self._next_ip = itertools.count(10)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fake-kubelet", daemon=True)
        self.errors: list[str] = []

    def start(self) -> FakeKubelet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    # --- nodes ---------------------------------------------------------------------------------

    def add_node(self, node: dict[str, Any]) -> str:
        """Create the node, mark it Ready and drop the not-ready taint the API server added."""
        name = str(node["metadata"]["name"])
        status = node.pop("status")
        self.core.create_node(node)
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "fake kubelet is posting ready status"}
        self.core.patch_node_status(name, {"status": {**status, "conditions": [ready]}})
        live = self.core.read_node(name)
        taints = [t for t in (live.spec.taints or []) if t.key != NOT_READY_TAINT]
        self.core.patch_node(name, {"spec": {"taints": [
            {"key": t.key, "value": t.value, "effect": t.effect} for t in taints] or None}})
        with self._lock:
            self.nodes.add(name)
        return name

    def add_pool_nodes(self, prefix: str, pool_spec: Mapping[str, Any], count: int,
                       **shape: Any) -> list[str]:
        return [self.add_node(node_for_pool(f"{prefix}-{i}", pool_spec, **shape))
                for i in range(count)]

    def remove_nodes(self, names: list[str]) -> None:
        for name in names:
            with self._lock:
                self.nodes.discard(name)
            try:
                self.core.delete_node(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    # --- pods ----------------------------------------------------------------------------------

    def _ip(self, uid: str) -> str:
        if uid not in self._ips:
            self._ips[uid] = str(ipaddress.ip_address("10.244.0.0") + next(self._next_ip))
        return self._ips[uid]

    def tick(self) -> None:
        with self._lock:
            nodes = set(self.nodes)
        if not nodes:
            return
        raw = self.core.list_pod_for_all_namespaces(_preload_content=False)
        for pod in json.loads(raw.data)["items"]:
            if (pod.get("spec") or {}).get("nodeName") in nodes:
                self._drive(pod)

    def _drive(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        try:
            if meta.get("deletionTimestamp"):
                self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
                return
            wanted = pod_status(pod, self.policy(pod), self._ip(meta["uid"]))
            if _summary(pod.get("status")) != _summary(wanted):
                self.core.patch_namespaced_pod_status(name, namespace, {"status": wanted})
        except ApiException as exc:
            if exc.status not in (404, 409):
                self.errors.append(f"{namespace}/{name}: {exc.status} {exc.reason}")

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception as exc:  # keep playing the kubelet; the test reads the errors
                self.errors.append(repr(exc))
