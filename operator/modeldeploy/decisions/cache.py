"""The shared model cache as observed: claim, download Job, the Job pod's log. Pure.

`cache_view` turns what the shell observed into the `status.cache` block and the `CacheReady`
condition. Reasons are typed (`CacheReason`); a reason that waiting cannot fix is `stalled`,
which the status maps to kstatus `Stalled`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..api.status import CachePhase, CacheStatus
from .progress import ProgressMark

PROGRESS_PREFIX = "modeldeploy-progress"
ERROR_PREFIX = "modeldeploy-error"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
# Stamped on the shared claim and Job (render.cache): what the claim holds.
MODEL_ANNOTATION = "modeldeploy.dev/cache-model"
REVISION_ANNOTATION = "modeldeploy.dev/cache-revision"


class CacheReason(StrEnum):
    COMPLETE = "CacheComplete"
    DOWNLOADING = "Downloading"
    PENDING = "Pending"
    DOWNLOAD_FAILED = "DownloadFailed"
    DOWNLOAD_STALLED = "DownloadStalled"
    GATED_MODEL = "GatedModel"
    STORAGE_UNAVAILABLE = "StorageUnavailable"
    CACHE_CONFLICT = "CacheConflict"


# Provisioners whose volumes cannot be ReadWriteMany (block devices attach to one node):
# AWS EBS CSI (docs: "ReadWriteOnce" only for filesystem volumes; io2 multi-attach is Block
# mode), GCE PD CSI (ReadWriteOnce, ReadOnlyMany), Azure Disk CSI (ReadWriteOnce), their in-tree
# predecessors (Kubernetes docs, Persistent Volumes, access-modes table up to v1.26), and
# rancher local-path (README: ReadWriteOnce; kind's default class).
RWO_ONLY_PROVISIONERS = frozenset({
    "ebs.csi.aws.com", "kubernetes.io/aws-ebs",
    "pd.csi.storage.gke.io", "kubernetes.io/gce-pd",
    "disk.csi.azure.com", "kubernetes.io/azure-disk",
    "rancher.io/local-path",
})
FIX_STORAGE = (
    "set spec.cache.storageClassName (or the chart value cache.storageClassName) to a "
    "ReadWriteMany StorageClass: Amazon EFS (efs.csi.aws.com), GKE Filestore "
    "(filestore.csi.storage.gke.io), Azure Files (file.csi.azure.com), NFS (nfs.csi.k8s.io), "
    "CephFS; or use cache.mode pvc / emptyDir"
)


@dataclass(frozen=True, slots=True)
class Progress:
    bytes_done: int
    bytes_total: int


@dataclass(frozen=True, slots=True)
class LogError:
    reason: CacheReason
    message: str


def parse_log(text: str) -> tuple[Progress | None, LogError | None]:
    """The last progress line and the last error line of a download Job's log (either None)."""
    progress: Progress | None = None
    error: LogError | None = None
    for line in text.splitlines():
        prefix, _, body = line.strip().partition(" ")
        if prefix not in (PROGRESS_PREFIX, ERROR_PREFIX):
            continue
        try:
            data = json.loads(body)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        if prefix == PROGRESS_PREFIX:
            done, total = data.get("bytesDone"), data.get("bytesTotal")
            if isinstance(done, int) and isinstance(total, int) and done >= 0 and total >= 0:
                progress = Progress(done, total)
        else:
            reason = str(data.get("reason"))
            known = reason in {r.value for r in CacheReason}
            error = LogError(CacheReason(reason) if known else CacheReason.DOWNLOAD_FAILED,
                             str(data.get("message") or ""))
    return progress, error


def claim_conflict(claim: Mapping[str, Any] | None, model: str, revision: str) -> str | None:
    """Why the live claim at the cache's name is not ours to use, or None.

    A claim whose model/revision annotations name something else (another revision, or a claim
    created by hand) is never written over: the ModelDeployment stalls with CacheConflict.
    """
    if claim is None:
        return None
    annotations = _map(_map(claim.get("metadata")).get("annotations"))
    found = (annotations.get(MODEL_ANNOTATION), annotations.get(REVISION_ANNOTATION))
    if found == (model, revision):
        return None
    name = _map(claim.get("metadata")).get("name")
    return (f"claim {name} holds {found[0] or 'unknown model'}@{found[1] or 'unknown revision'}, "
            f"not {model}@{revision}; it is left untouched: delete it or serve that revision")


def storage_problem(class_name: str | None, classes: Mapping[str, Mapping[str, Any]] | None) -> str | None:
    """Why the claim's StorageClass cannot give a ReadWriteMany volume, or None if it may.

    `classes`: the cluster's StorageClasses by name (None: not observed, nothing is claimed).
    """
    if classes is None:
        return None
    if class_name is None:
        defaults = [n for n, c in classes.items()
                    if _map(_map(c.get("metadata")).get("annotations")).get(DEFAULT_CLASS_ANNOTATION) == "true"]
        if not defaults:
            return f"no StorageClass given and the cluster has no default one: {FIX_STORAGE}"
        class_name = sorted(defaults)[0]
    found = classes.get(class_name)
    if found is None:
        return f"StorageClass {class_name} does not exist: {FIX_STORAGE}"
    provisioner = found.get("provisioner")
    if provisioner in RWO_ONLY_PROVISIONERS:
        return (f"StorageClass {class_name} ({provisioner}) cannot provide ReadWriteMany "
                f"volumes: {FIX_STORAGE}")
    return None


@dataclass(frozen=True, slots=True)
class CacheObservation:
    """What the shell saw this pass. `log` is the tail of the Job's newest pod's log;
    `claim_pending_since` / `mark` come from the shell's memory (seconds, one clock with `now`)."""

    model: str
    revision: str
    claim_name: str
    claim: Mapping[str, Any] | None
    job: Mapping[str, Any] | None
    log: str = ""
    storage_class: str | None = None
    storage_classes: Mapping[str, Mapping[str, Any]] | None = None
    claim_pending_since: float | None = None
    mark: ProgressMark | None = None


@dataclass(frozen=True, slots=True)
class CacheView:
    status: CacheStatus
    ready: bool
    stalled: bool  # waiting cannot fix it
    mark: ProgressMark | None = None  # the download's progress mark, for the shell to keep

    @property
    def reason(self) -> str:
        return self.status.reason or str(CacheReason.COMPLETE)


def _view(obs: CacheObservation, phase: CachePhase, reason: CacheReason, message: str,
          progress: Progress | None = None, stalled: bool = False) -> CacheView:
    status = CacheStatus(
        phase=phase, claim=obs.claim_name,
        bytes_done=progress.bytes_done if progress else None,
        bytes_total=progress.bytes_total if progress else None,
        reason=None if reason == CacheReason.COMPLETE else str(reason), message=message[:4096],
    )
    return CacheView(status, phase == CachePhase.COMPLETE, stalled)


def job_condition(job: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    for cond in _map(_map(job).get("status")).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def cache_view(obs: CacheObservation, now: float, stall_seconds: float) -> CacheView:
    """The cache's phase, progress and reason from one observation.

    Order: a conflicting claim, then storage that cannot be ReadWriteMany, then the Job
    (Complete → Complete; Failed → the log's typed reason, else DownloadFailed), then a claim
    Pending for longer than `stall_seconds` (StorageUnavailable), then a download whose
    progress has not moved for `stall_seconds` (DownloadStalled).
    """
    conflict = claim_conflict(obs.claim, obs.model, obs.revision)
    if conflict is not None:
        return _view(obs, CachePhase.FAILED, CacheReason.CACHE_CONFLICT, conflict, stalled=True)
    progress, error = parse_log(obs.log)
    if job_condition(obs.job, "Complete") is not None:
        done = Progress(progress.bytes_total, progress.bytes_total) if progress else None
        return _view(obs, CachePhase.COMPLETE, CacheReason.COMPLETE,
                     f"{obs.model}@{obs.revision} is in claim {obs.claim_name}", done)
    storage = storage_problem(obs.storage_class, obs.storage_classes)
    if storage is not None:
        return _view(obs, CachePhase.FAILED, CacheReason.STORAGE_UNAVAILABLE, storage, stalled=True)
    failed = job_condition(obs.job, "Failed")
    if failed is not None:
        if error is not None:
            return _view(obs, CachePhase.FAILED, error.reason, error.message, progress, stalled=True)
        why = f"{failed.get('reason') or 'Failed'}: {failed.get('message') or 'the download Job failed'}"
        return _view(obs, CachePhase.FAILED, CacheReason.DOWNLOAD_FAILED, why, progress, stalled=True)
    phase = _map(_map(obs.claim).get("status")).get("phase")
    if obs.claim is not None and phase != "Bound":
        return _unbound(obs, str(phase or "Pending"), now, stall_seconds)
    if progress is None:
        return _view(obs, CachePhase.PENDING, CacheReason.PENDING, "waiting for the download Job to start")
    if obs.mark is not None and obs.mark.stalled(now, stall_seconds):
        idle = round(obs.mark.idle_seconds(now))
        msg = (f"no byte downloaded for {idle}s (stallSeconds {stall_seconds:.0f}) at "
               f"{progress.bytes_done}/{progress.bytes_total} bytes"
               + (f"; last error: {error.message}" if error else ""))
        return _view(obs, CachePhase.DOWNLOADING, CacheReason.DOWNLOAD_STALLED, msg, progress, stalled=True)
    msg = f"{progress.bytes_done}/{progress.bytes_total} bytes of {obs.model}@{obs.revision}"
    return _view(obs, CachePhase.DOWNLOADING, CacheReason.DOWNLOADING, msg, progress)


def _unbound(obs: CacheObservation, phase: str, now: float, stall_seconds: float) -> CacheView:
    since = obs.claim_pending_since
    waited = 0.0 if since is None else max(0.0, now - since)
    cls = obs.storage_class or "the cluster default"
    if phase == "Lost" or waited > stall_seconds:
        msg = (f"claim {obs.claim_name} is {phase} after {round(waited)}s with StorageClass {cls}; "
               f"if it cannot provide ReadWriteMany volumes, {FIX_STORAGE}")
        return _view(obs, CachePhase.FAILED, CacheReason.STORAGE_UNAVAILABLE, msg, stalled=True)
    return _view(obs, CachePhase.PENDING, CacheReason.PENDING,
                 f"claim {obs.claim_name} is {phase} (StorageClass {cls})")


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
