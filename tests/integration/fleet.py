"""Simulated vLLM pods for the integration tier: the emulator has no kubelet, so a test creates
the Pod objects itself and runs the vLLM simulator (`e2e/vllm-sim/sim.py`) for each on loopback.

Linux routes all of 127.0.0.0/8 to `lo`, so every fake pod gets its own podIP (127.0.0.2,
127.0.0.3, ...) and its simulator binds that IP on one shared port: the operator scrapes
`podIP:port` exactly as it does in a cluster. The simulators, the garbage servers and the
bounded load client run in one thread with its own event loop (`SimFleet`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from kubernetes.client import ApiClient, CoreV1Api

SIM_PATH = Path(__file__).resolve().parents[2] / "e2e" / "vllm-sim" / "sim.py"
HASH = "modeldeploy.dev/pod-template-hash"
L4 = {"nvidia.com/gpu.product": "NVIDIA-L4"}  # the nodeSelector of harness.gpu_pool()
T = TypeVar("T")


def load_sim() -> ModuleType:
    name = "vllm_sim"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SIM_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sim = load_sim()


def shared_port(first_ip: str = "127.0.0.2") -> int:
    with socket.socket() as sock:
        sock.bind((first_ip, 0))
        return int(sock.getsockname()[1])


class SimFleet:
    """vLLM simulators (and misbehaving /metrics servers) on 127.0.0.x:port."""

    def __init__(self) -> None:
        self.port = shared_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sim-fleet",
                                        daemon=True)
        self._thread.start()
        self._runners: dict[str, web.AppRunner] = {}
        self._apps: dict[str, web.Application] = {}
        self._load: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _serve(self, ip: str, app: web.Application) -> None:
        # handler_cancellation: a load request whose client went away leaves the queue at once.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, ip, self.port).start()
        self._runners[ip] = runner
        self._apps[ip] = app

    def start_sim(self, ip: str, **config: Any) -> None:
        """A loaded simulator: one request at a time, the rest queue (num_requests_waiting)."""
        cfg = {"max_num_seqs": 1, "token_latency_s": 0.05, "max_model_len": 10_000_000,
               "kv_capacity_tokens": 10_000_000, **config}
        self._run(self._serve(ip, sim.create_app(sim.SimConfig(**cfg))))

    def start_garbage(self, ip: str) -> None:
        """Something on the metrics port that does not speak Prometheus."""
        async def garbage(_: web.Request) -> web.Response:
            return web.Response(text="<html><body>502 Bad Gateway</body></html>\n")

        app = web.Application()
        app.router.add_get("/metrics", garbage)
        self._run(self._serve(ip, app))

    def start_interceptor(self, ip: str) -> dict[str, dict[str, float]]:
        """A KEDA HTTP add-on interceptor's admin `/queue` at ip: returns the live counts (keyed
        `namespace/httpscaledobject`), which the test changes to play requests held."""
        counts: dict[str, dict[str, float]] = {}

        async def queue(_: web.Request) -> web.Response:
            return web.json_response(counts)

        app = web.Application()
        app.router.add_get("/queue", queue)
        self._run(self._serve(ip, app))
        return counts

    def stop(self, ip: str) -> None:
        runner = self._runners.pop(ip, None)
        self._apps.pop(ip, None)
        if runner is not None:
            self._run(runner.cleanup())

    def requests(self, ip: str) -> tuple[int, int]:
        """(running, waiting) of the simulator at ip, read directly from its engine."""
        async def read() -> tuple[int, int]:
            engine = self._apps[ip][sim.ENGINE]
            return len(engine.running), len(engine.waiting)
        return self._run(read())

    def startup_log(self, ip: str) -> str:
        """The simulator's start as its container log would hold it (pods/log): vLLM's lines."""
        async def read() -> str:
            return str(self._apps[ip][sim.ENGINE].startup_log.text)
        return self._run(read())

    def load(self, ip: str, requests: int) -> None:
        """`requests` streaming completions that run until `stop_load` (bounded: at most 32)."""
        assert 0 < requests <= 32

        async def one() -> None:
            assert self._session is not None
            body = {"model": "sim/model", "prompt": "hi", "max_tokens": 1_000_000, "stream": True}
            with contextlib.suppress(aiohttp.ClientError, asyncio.CancelledError):
                async with self._session.post(f"http://{ip}:{self.port}/v1/completions",
                                              json=body) as resp:
                    async for _ in resp.content.iter_any():
                        pass

        async def start() -> None:
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(force_close=True),
                    timeout=aiohttp.ClientTimeout(total=120))
            for _ in range(requests):
                self._load.append(asyncio.create_task(one()))

        self._run(start())

    def stop_load(self) -> None:
        async def stop() -> None:
            for task in self._load:
                task.cancel()
            await asyncio.gather(*self._load, return_exceptions=True)
            self._load.clear()
        self._run(stop())

    def close(self) -> None:
        self.stop_load()
        for ip in list(self._runners):
            self.stop(ip)
        if self._session is not None:
            self._run(self._session.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# --- objects the kubelet, the scheduler and the Deployment controller would write --------------

def gpu_node(core: CoreV1Api, name: str, gpus: int, labels: dict[str, str] | None = None) -> None:
    core.create_node({"metadata": {"name": name, "labels": labels or L4}})
    core.patch_node_status(name, {"status": {"allocatable": {"nvidia.com/gpu": str(gpus)},
                                             "capacity": {"nvidia.com/gpu": str(gpus)}}})


def set_node_gpus(core: CoreV1Api, name: str, gpus: int) -> None:
    core.patch_node_status(name, {"status": {"allocatable": {"nvidia.com/gpu": str(gpus)},
                                             "capacity": {"nvidia.com/gpu": str(gpus)}}})


def gpu_pod(core: CoreV1Api, namespace: str, name: str, node: str, *, model: str | None = None,
            revision: str | None = None, gpus: int = 1,
            labels: dict[str, str] | None = None) -> None:
    """A pod bound to `node` requesting GPUs; a serving pod of `model` when given."""
    meta: dict[str, Any] = {"name": name, "labels": dict(labels or {})}
    if model is not None:
        meta["labels"].update({"modeldeploy.dev/name": model,
                               "app.kubernetes.io/component": "server"})
    if revision is not None:
        meta["annotations"] = {HASH: revision}
    resources = {"requests": {"nvidia.com/gpu": str(gpus)}, "limits": {"nvidia.com/gpu": str(gpus)}}
    core.create_namespaced_pod(namespace, {"metadata": meta, "spec": {
        "nodeName": node, "containers": [{"name": "vllm", "image": "x", "resources": resources}]}})


def pod_running(core: CoreV1Api, namespace: str, name: str, ip: str, ready: bool = True) -> None:
    core.patch_namespaced_pod_status(name, namespace, {"status": {
        "phase": "Running", "podIP": ip,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})


def pod_crashing(core: CoreV1Api, namespace: str, name: str, ip: str, exit_code: int,
                 log: str) -> None:
    """What the kubelet reports for a container that exited at start and is backing off, with
    `terminationMessagePolicy: FallbackToLogsOnError`: the log tail as the termination message."""
    core.patch_namespaced_pod_status(name, namespace, {"status": {
        "phase": "Running", "podIP": ip,
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [{
            "name": "vllm", "ready": False, "restartCount": 3, "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                                  "message": "back-off 40s restarting failed container"}},
            "lastState": {"terminated": {"exitCode": exit_code, "reason": "Error",
                                         "message": log[-2048:]}}}]}})


def deployment_status(api: ApiClient, namespace: str, name: str, *, replicas: int, ready: int,
                      updated: int | None = None) -> None:
    """What the Deployment controller writes (observedGeneration caught up)."""
    from kubernetes.client import AppsV1Api
    apps = AppsV1Api(api)
    dep = apps.read_namespaced_deployment(name, namespace)
    apps.patch_namespaced_deployment_status(name, namespace, {"status": {
        "observedGeneration": dep.metadata.generation, "replicas": replicas,
        "readyReplicas": ready, "availableReplicas": ready,
        "updatedReplicas": replicas if updated is None else updated}})


def crashed_simulator(fault: str) -> subprocess.CompletedProcess[str]:
    """Run the simulator as a process with a startup fault: vLLM's own stderr and exit code."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SIM_FAULT": fault, "SIM_LOAD_SECONDS": "0"}
    cmd = [sys.executable, str(SIM_PATH), "serve", "sim/model", "--host", "127.0.0.1",
           "--port", str(port)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
