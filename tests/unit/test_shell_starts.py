"""The startup watchdog's shell: which logs it reads, how rarely, and what it keeps."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from modeldeploy.controller.children import ChildRef
from modeldeploy.controller.snapshot import Actions
from modeldeploy.controller.starts import Starts
from modeldeploy.decisions.progress import ProgressMark
from modeldeploy.shell.kube import KubeError
from modeldeploy.shell.starts import LogLimits, StartWatch


class FakeKube:
    """pods/log answers by pod name; every call recorded."""

    def __init__(self, logs: dict[str, str | KubeError]) -> None:
        self.logs = logs
        self.calls: list[tuple[str, str, int, int]] = []

    async def pod_log(self, namespace: str, name: str, container: str, *, tail_lines: int,
                      limit_bytes: int) -> str:
        self.calls.append((name, container, tail_lines, limit_bytes))
        answer = self.logs[name]
        if isinstance(answer, KubeError):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pod(name: str, uid: str, *, ready: bool = False, running: bool = True,
        labels: dict[str, str] | None = None, container: str = "vllm") -> dict[str, Any]:
    state = {"running": {"startedAt": "2026-11-30T09:00:00Z"}} if running else {"waiting": {"reason": "ContainerCreating"}}
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "labels": labels or {}},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": container, "ready": ready, "state": state}]}}


def watch(logs: dict[str, str | KubeError]) -> tuple[StartWatch, FakeKube, Clock]:
    kube, clock = FakeKube(logs), Clock()
    found = StartWatch(kube, LogLimits(interval=15.0, tail_lines=200, limit_bytes=4096),  # type: ignore[arg-type]
                       clock=clock)
    return found, kube, clock


def test_only_starting_pods_are_read_bounded_and_at_most_once_per_interval() -> None:
    starts, kube, clock = watch({"a": "Starting to load model x...\n", "b": "x", "c": "x"})
    pods = [pod("a", "u1"), pod("b", "u2", ready=True), pod("c", "u3", running=False)]
    seen = asyncio.run(starts.starts("md", pods))
    assert seen.logs == {"u1": "Starting to load model x...\n"} and seen.marks == {}
    assert kube.calls == [("a", "vllm", 200, 4096)]
    clock.now += 14.9
    asyncio.run(starts.starts("md", pods))
    assert len(kube.calls) == 1  # the last read is reused within the interval
    clock.now += 0.2
    asyncio.run(starts.starts("md", pods))
    assert len(kube.calls) == 2


def test_a_refused_read_leaves_the_pod_without_a_log_and_is_not_retried_at_once() -> None:
    refused = KubeError(403, "Forbidden", 'pods "a" is forbidden', "GET log")
    starts, kube, clock = watch({"a": refused})
    seen = asyncio.run(starts.starts("md", [pod("a", "u1")]))
    assert seen.logs == {}
    asyncio.run(starts.starts("md", [pod("a", "u1")]))
    assert len(kube.calls) == 1
    kube.logs["a"] = "now readable"
    clock.now += 16
    assert asyncio.run(starts.starts("md", [pod("a", "u1")])).logs == {"u1": "now readable"}


def test_marks_are_kept_for_pods_still_starting_and_forgotten_otherwise() -> None:
    starts, _, _ = watch({"a": "x", "b": "y"})
    mark = ProgressMark("sig", 5.0)
    actions = Actions(status=None, status_patch=None,  # type: ignore[arg-type]
                      starts=Starts((), {"u1": mark, "u2": mark}))
    starts.remember("md", "ns", actions)
    seen = asyncio.run(starts.starts("md", [pod("a", "u1"), pod("b", "u2", ready=True)]))
    assert seen.marks == {"u1": mark}
    starts.forget("md")
    assert asyncio.run(starts.starts("md", [pod("a", "u1")])).marks == {}


def test_download_logs_come_from_the_running_pod_of_each_unfinished_job() -> None:
    starts, kube, _ = watch({"j1-abc": "modeldeploy-progress {}\n", "j2-abc": "z"})
    job_labels = {"batch.kubernetes.io/job-name": "j1"}
    children = {ChildRef("batch/v1", "Job", "ns", "j1"): {"status": {}},
                ChildRef("batch/v1", "Job", "ns", "j2"): {"status": {"conditions": [
                    {"type": "Complete", "status": "True"}]}}}
    pods = [pod("j1-abc", "p1", labels=job_labels, container="download"),
            pod("j2-abc", "p2", labels={"job-name": "j2"}, container="download")]
    seen = asyncio.run(starts.downloads("ns", children, pods))
    assert list(seen) == ["j1"] and seen["j1"].pod == "j1-abc" and seen["j1"].mark is None
    assert kube.calls == [("j1-abc", "download", 200, 4096)]
    mark = ProgressMark(("j1-abc", 10), 7.0)
    starts.remember("md", "ns", dataclasses.replace(
        Actions(status=None, status_patch=None), cache_mark=("j1", mark)))  # type: ignore[arg-type]
    assert asyncio.run(starts.downloads("ns", children, pods))["j1"].mark == mark
    done = {ref: {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
            for ref in children}
    assert asyncio.run(starts.downloads("ns", done, pods)) == {}
    assert asyncio.run(starts.downloads("ns", children, pods))["j1"].mark is None  # forgotten
