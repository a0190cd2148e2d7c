"""The startup watchdog against the emulated API server: starts are judged by their progress
(vLLM's log lines through pods/log, the download Job's progress lines), never by a fixed budget.

The emulator has no kubelet: the test plays it (pod status, what the container printed, served
as pods/log). Stall windows are minutes long, so the operator decides on a clock the test moves
forward (`SkewedClock`) instead of the test waiting; each step waits until the operator has read
the log it just wrote. Log lines are vLLM's format strings (tests/unit/test_decisions_startup.py
has their sources in the vLLM tree).
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest

from modeldeploy.render.cache import DOWNLOAD_CONTAINER
from modeldeploy.render.sizes import STARTUP_PROBE_BACKSTOP_SECONDS

from .emulator import EmulatorServer, Fault
from .fleet import gpu_node, gpu_pod
from .harness import Cluster, OperatorThread, SkewedClock, eventually, model_deployment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

HASH = "modeldeploy.dev/pod-template-hash"
STALL = 600  # spec.rollout.stallSeconds, the default
CKPT = 16_060_522_496  # Llama 3.1 8B: total_size of its model.safetensors.index.json
# What the 8B model's startupProbe allowed before the watchdog: 600 s + 8 s/GiB x 14.96 GiB.
OLD_FIXED_BUDGET = 720
V = "(EngineCore_DP0 pid=212) INFO 11-30 09:{:02d}:00 [{}] {}\n"
LOAD_LINES = [
    V.format(1, "gpu_model_runner.py:2602", "Starting to load model meta-llama/Llama-3.1-8B-Instruct..."),
    V.format(4, "default_loader.py:267", "Loading weights took 160.21 seconds"),
    V.format(4, "gpu_model_runner.py:2653", "Model loading took 14.9889 GiB and 161.003 seconds"),
    V.format(5, "backends.py:548", "Dynamo bytecode transform time: 9.84 s"),
    V.format(6, "monitor.py:34", "torch.compile takes 31.08 s in total"),
    V.format(7, "kv_cache_utils.py:1087", "GPU KV cache size: 49,152 tokens"),
    "Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|##########| 67/67\n",
]


def read_since(server: EmulatorServer, pod: str, mark: int) -> bool:
    """The operator read the pod's log after `mark` (a pass that judged what was written)."""
    return any(r.subresource == "log" and r.name == pod and r.status == 200
               for r in server.emulator.requests_since(mark))


def printed(server: EmulatorServer, cluster: Cluster, pod: str, container: str, text: str) -> None:
    """The container prints `text`; returns once the operator has read it."""
    mark = server.emulator.log_mark()
    server.emulator.pod_logs.write(cluster.ns, pod, container, text)
    eventually(lambda: read_since(server, pod, mark), what=f"the operator reads {pod}'s log")


def passes_after(server: EmulatorServer, pod: str, count: int = 2) -> None:
    """Wait for `count` more reads of the pod's log: decisions made on the clock as it is now."""
    for _ in range(count):
        mark = server.emulator.log_mark()
        eventually(lambda m=mark: read_since(server, pod, m), what=f"a pass reading {pod}")


def starting_pod(cluster: Cluster, name: str, revision: str) -> None:
    """A serving pod bound to n1 whose vLLM container runs and is not Ready (loading)."""
    gpu_pod(cluster.core, cluster.ns, name, "n1", model="m", revision=revision)
    cluster.core.patch_namespaced_pod_status(name, cluster.ns, {"status": {
        "phase": "Running", "podIP": "127.0.0.9",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [{"name": "vllm", "ready": False, "restartCount": 0, "image": "x",
                               "imageID": "", "state": {"running": {
                                   "startedAt": "2026-11-30T09:00:00Z"}}}]}})


def loading(cluster: Cluster) -> str:
    gpu_node(cluster.core, "n1", gpus=4)
    cluster.create(model_deployment("m"))
    dep = eventually(lambda: cluster.deployment("m"), what="deployment")
    probe = dep.spec.template.spec.containers[0].startup_probe
    assert probe.failure_threshold * probe.period_seconds == STARTUP_PROBE_BACKSTOP_SECONDS
    revision = str(dep.spec.template.metadata.annotations[HASH])
    starting_pod(cluster, "m-0", revision)
    return revision


def warning_message(cluster: Cluster, reason: str) -> str:
    """The message of the Warning event with `reason` (written with the Stalled condition)."""
    def found() -> str | None:
        return next((str(e.message) for e in cluster.core.list_namespaced_event(cluster.ns).items
                     if e.reason == reason and e.type == "Warning"), None)
    return eventually(found, what=f"a {reason} warning event")


def pod_deletes(server: EmulatorServer) -> list[str]:
    return [str(r.name) for r in server.emulator.log
            if r.resource == "pods" and r.method == "DELETE" and
            not r.user_agent.startswith("modeldeploy-tests")]


def test_a_load_that_moves_past_the_old_fixed_budget_is_not_killed(
        watchdog_operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer,
        clock: SkewedClock) -> None:
    revision = loading(cluster)
    elapsed = 0
    for line in LOAD_LINES:
        printed(emulator_server, cluster, "m-0", "vllm", line)
        clock.advance(STALL - 100)  # each step takes most of stallSeconds
        elapsed += STALL - 100
    passes_after(emulator_server, "m-0")
    # 3500 s of loading: far past the old budget (720 s) and the progress deadline (1320 s).
    assert elapsed > OLD_FIXED_BUDGET + 2 * STALL
    assert pod_deletes(emulator_server) == []
    conditions = cluster.conditions("m")
    assert conditions["Stalled"][0] == "False" and conditions["Reconciling"][0] == "True"
    assert cluster.deployment("m").spec.template.metadata.annotations[HASH] == revision
    assert cluster.core.read_namespaced_pod("m-0", cluster.ns).metadata.deletion_timestamp is None


def test_a_load_that_stalls_is_load_stalled_and_its_pod_is_restarted(
        watchdog_operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer,
        clock: SkewedClock) -> None:
    loading(cluster)
    for line in LOAD_LINES[:3]:
        printed(emulator_server, cluster, "m-0", "vllm", line)
    clock.advance(STALL - 10)
    passes_after(emulator_server, "m-0")
    assert pod_deletes(emulator_server) == []
    clock.advance(20)  # nothing printed for stallSeconds + 10 s
    # Stalled=True holds only until the pod is deleted (nothing recreates it here): read what persists,
    # the deletion and the Warning event written with the condition (shell.reconcile).
    eventually(lambda: pod_deletes(emulator_server) == ["m-0"], what="the stalled pod deleted")
    message = warning_message(cluster, "LoadStalled")
    assert "no startup progress for" in message and "Model loading took" in message
    assert "no earlier revision was Ready" in message


def _download_job(cluster: Cluster) -> tuple[str, str]:
    batch = kubernetes.client.BatchV1Api(cluster.api)
    selector = "modeldeploy.dev/model-cache"
    jobs = eventually(lambda: batch.list_namespaced_job(cluster.ns, label_selector=selector).items,
                      what="the download Job")
    claims = cluster.core.list_namespaced_persistent_volume_claim(cluster.ns,
                                                                   label_selector=selector).items
    return str(jobs[0].metadata.name), str(claims[0].metadata.name)


def _download_pod(cluster: Cluster, job: str) -> str:
    """What the Job controller and the kubelet would make: the Job's pod, running."""
    name = f"{job}-x7k2p"
    labels = {"batch.kubernetes.io/job-name": job, "job-name": job}
    cluster.core.create_namespaced_pod(cluster.ns, {"metadata": {"name": name, "labels": labels},
                                                    "spec": {"containers": [{
                                                        "name": DOWNLOAD_CONTAINER, "image": "x"}]}})
    cluster.core.patch_namespaced_pod_status(name, cluster.ns, {"status": {"phase": "Running"}})
    return name


def progress(done: int) -> str:
    """`modeldeploy download`'s progress line (shell/download.py, Reporter.progress)."""
    return "modeldeploy-progress " + json.dumps({"bytesDone": done, "bytesTotal": CKPT},
                                                sort_keys=True) + "\n"


def cache(cluster: Cluster) -> dict[str, Any]:
    return dict((cluster.md("m").get("status") or {}).get("cache") or {})


def test_a_stalled_download_is_download_stalled_within_stall_seconds(
        watchdog_operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer,
        clock: SkewedClock) -> None:
    cluster.create_storage_class("efs-sc", "efs.csi.aws.com")
    body = model_deployment("m", cache={"mode": "shared", "storageClassName": "efs-sc"})
    cluster.create(body)
    job, claim = _download_job(cluster)
    cluster.core.patch_namespaced_persistent_volume_claim_status(
        claim, cluster.ns, {"status": {"phase": "Bound"}})
    pod = _download_pod(cluster, job)
    printed(emulator_server, cluster, pod, DOWNLOAD_CONTAINER, progress(1_000_000_000))
    eventually(lambda: cache(cluster).get("bytesDone") == 1_000_000_000, what="bytesDone")
    assert cache(cluster)["bytesTotal"] == CKPT and cache(cluster)["reason"] == "Downloading"
    clock.advance(STALL - 100)
    printed(emulator_server, cluster, pod, DOWNLOAD_CONTAINER, progress(9_000_000_000))
    eventually(lambda: cache(cluster).get("bytesDone") == 9_000_000_000, what="more bytes")
    clock.advance(STALL - 10)  # the bytes moved within stallSeconds: not stalled
    passes_after(emulator_server, pod)
    assert cache(cluster)["reason"] == "Downloading"
    clock.advance(20)
    _, _, message = cluster.wait_condition("m", "CacheReady", "False", "DownloadStalled")
    assert "no byte downloaded for" in message and "9000000000/16060522496" in message
    stalled = cluster.wait_condition("m", "Stalled", "True", "CacheFailed")
    assert "DownloadStalled" in stalled[2]


def test_a_claim_that_never_binds_is_storage_unavailable_after_stall_seconds(
        watchdog_operator: OperatorThread, cluster: Cluster, clock: SkewedClock) -> None:
    cluster.create_storage_class("efs-sc", "efs.csi.aws.com")
    cluster.create(model_deployment("m", cache={"mode": "shared", "storageClassName": "efs-sc"}))
    _download_job(cluster)
    cluster.wait_condition("m", "CacheReady", "False", "Pending")
    clock.advance(STALL + 5)  # no PersistentVolume ever binds the claim
    _, _, message = cluster.wait_condition("m", "CacheReady", "False", "StorageUnavailable")
    assert "is Pending after" in message and "ReadWriteMany" in message


def test_a_refused_pod_delete_still_reports_the_stall(
        watchdog_operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer,
        clock: SkewedClock) -> None:
    """An install without `delete pods` (an older chart): the stall is reported all the same."""
    emulator_server.emulator.inject(Fault(status=403, verb="delete", resource="pods", times=1000))
    loading(cluster)
    printed(emulator_server, cluster, "m-0", "vllm", LOAD_LINES[0])
    clock.advance(STALL + 10)
    cluster.wait_condition("m", "Stalled", "True", "LoadStalled")
    assert cluster.core.read_namespaced_pod("m-0", cluster.ns).metadata.deletion_timestamp is None
