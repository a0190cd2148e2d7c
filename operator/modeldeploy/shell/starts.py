"""The startup watchdog's shell: read the log tails it judges, keep its memory.

What is read (pods/log), and how little:
- starting serving pods of the ModelDeployment in the pass (`controller.starts.watched`: the
  vLLM container runs, the pod is not Ready, not being deleted): vLLM's own startup lines;
- the running pod of each unfinished shared-cache download Job of the namespace: the progress
  lines `modeldeploy download` prints.
Each read is bounded (`tail_lines`, `limit_bytes`) and made at most once per `interval` per pod;
between reads a pass sees the text of the last one. A refused or failed read leaves the pod
without a log (the decision then gives it no verdict) and is logged once per pod.

The memory (progress marks, the last log texts) is process memory, never status: after an
operator restart every start gets a fresh `stallSeconds`, which errs on the side of patience.
Marks of starting pods are kept per ModelDeployment uid and replaced wholesale by each pass
(a pod that is Ready or gone is forgotten); download marks per (namespace, Job).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..controller.cache_status import CacheSeen
from ..controller.children import ChildRef
from ..controller.snapshot import Actions
from ..controller.starts import StartsSeen, pod_uid, watched
from ..decisions.cache import job_condition
from ..decisions.progress import ProgressMark
from ..render.cache import DOWNLOAD_CONTAINER
from .kube import Kube, KubeError

logger = logging.getLogger(__name__)

SERVING_CONTAINER = "vllm"
# The Job controller labels its pods with the Job's name (both keys since Kubernetes 1.27).
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


@dataclass(frozen=True)
class LogLimits:
    """How much a read may cost: lines, bytes, and the least time between two reads of a pod."""

    interval: float = 15.0  # s
    tail_lines: int = 200
    limit_bytes: int = 256 * 1024


@dataclass(frozen=True)
class _Read:
    at: float  # clock s
    text: str | None  # None: the read failed


Reads = dict[str, _Read]  # by pod uid


@dataclass
class StartWatch:
    kube: Kube
    limits: LogLimits = field(default_factory=LogLimits)
    clock: Callable[[], float] = time.monotonic
    _logs: dict[str, Reads] = field(default_factory=dict)  # md uid -> its starting pods' reads
    _job_logs: dict[str, Reads] = field(default_factory=dict)  # namespace -> download pods'
    _marks: dict[str, Mapping[str, ProgressMark]] = field(default_factory=dict)  # md uid ->
    _downloads: dict[tuple[str, str], ProgressMark] = field(default_factory=dict)

    async def _read(self, previous: Reads, pod: Mapping[str, Any], container: str) -> _Read:
        """The pod's log tail: read again only when the last read is `interval` old (a failed
        read too: a refused pods/log is not asked again on every pass)."""
        meta = pod.get("metadata") or {}
        namespace, name, uid = str(meta.get("namespace")), str(meta.get("name")), pod_uid(pod)
        now = self.clock()
        last = previous.get(uid)
        if last is not None and now - last.at < self.limits.interval:
            return last
        try:
            text = await self.kube.pod_log(namespace, name, container,
                                           tail_lines=self.limits.tail_lines,
                                           limit_bytes=self.limits.limit_bytes)
        except KubeError as exc:
            if last is None:
                logger.warning("%s/%s: log of %s not readable (its start is judged by the "
                               "deadlines only until it is): %s", namespace, name, container, exc)
            return _Read(now, last.text if last is not None else None)
        return _Read(now, text)

    async def starts(self, md_uid: str, pods: Sequence[Mapping[str, Any]]) -> StartsSeen:
        """The log tails of the starting pods and the marks kept from the previous pass."""
        previous, reads = self._logs.get(md_uid, {}), {}
        for pod in pods:
            if pod_uid(pod) and watched(pod):
                reads[pod_uid(pod)] = await self._read(previous, pod, SERVING_CONTAINER)
        self._logs[md_uid] = reads
        logs = {uid: r.text for uid, r in reads.items() if r.text is not None}
        marks = self._marks.get(md_uid, {})
        return StartsSeen(logs, {uid: marks[uid] for uid in logs if uid in marks})

    async def downloads(self, namespace: str, children: Mapping[ChildRef, Any],
                        pods: Sequence[Mapping[str, Any]]) -> dict[str, CacheSeen]:
        """What the running pod of each unfinished download Job printed, by Job name."""
        jobs = {ref.name for ref, obj in children.items() if ref.kind == "Job" and
                ref.namespace == namespace and obj is not None and
                job_condition(obj, "Complete") is None and job_condition(obj, "Failed") is None}
        previous, reads, seen = self._job_logs.get(namespace, {}), {}, {}
        for job in sorted(jobs):
            pod = _running_pod(pods, job)
            if pod is None:
                continue
            read = reads[pod_uid(pod)] = await self._read(previous, pod, DOWNLOAD_CONTAINER)
            if read.text is not None:
                seen[job] = CacheSeen(str((pod.get("metadata") or {}).get("name")), read.text,
                                      self._downloads.get((namespace, job)))
        self._job_logs[namespace] = reads
        for key in [k for k in self._downloads if k[0] == namespace and k[1] not in jobs]:
            del self._downloads[key]  # the Job finished or is gone
        return seen

    def remember(self, md_uid: str, namespace: str, actions: Actions) -> None:
        """Keep the marks the decision returned (a pod not judged this pass is forgotten)."""
        self._marks[md_uid] = dict(actions.starts.marks)
        if actions.cache_mark is not None and actions.cache_mark[1] is not None:
            self._downloads[(namespace, actions.cache_mark[0])] = actions.cache_mark[1]

    def forget(self, md_uid: str) -> None:
        """The ModelDeployment is gone."""
        self._marks.pop(md_uid, None)
        self._logs.pop(md_uid, None)


def _running_pod(pods: Sequence[Mapping[str, Any]], job: str) -> Mapping[str, Any] | None:
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if any(labels.get(k) == job for k in JOB_NAME_LABELS) and \
                (pod.get("status") or {}).get("phase") == "Running" and \
                not meta.get("deletionTimestamp"):
            return pod
    return None
