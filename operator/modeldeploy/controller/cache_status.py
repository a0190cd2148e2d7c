"""status.cache and the CacheReady condition from the shared cache's claim, its download Job and
the Job pod's log (spec.cache.mode shared). Pure.

- The Job's status: Complete, Failed, and a Failed Job whose podFailurePolicy matched
  `modeldeploy download`'s permanent exit code (`render.cache.EXIT_PERMANENT`: gated or missing
  repository, refused token) is GatedModel.
- The log of the Job's running pod, read by the shell (`shell.starts`, bounded and
  rate-limited): `modeldeploy download`'s progress lines give bytesDone / bytesTotal, and a
  download whose bytes have not moved for `rollout.stallSeconds` is DownloadStalled. The
  progress mark lives in the shell's memory, keyed by the Job; a new pod (the Job's retry)
  starts a fresh allowance.
- A claim not Bound whose StorageClass does not exist, or whose provisioner cannot make
  ReadWriteMany volumes (`decisions.cache.RWO_ONLY_PROVISIONERS`), or, without a class, a
  cluster with no default class, is StorageUnavailable at once; any claim still not Bound
  `rollout.stallSeconds` after its creationTimestamp is StorageUnavailable too. The fix is in
  the message. StorageClasses are read only by cluster-wide installs; PVC events
  (`ProvisioningFailed`) are not read (an Event watch of every namespace costs more than the
  claim's phase and age tell).
bytesTotal without a log is the checkpoint's size from the model facts (safetensors total_size).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api import ModelDeployment
from ..decisions.cache import (
    CacheObservation,
    CacheReason,
    CacheView,
    cache_view,
    job_condition,
    parse_log,
)
from ..decisions.progress import ProgressMark, observe
from ..planner import Plan
from ..render.cache import EXIT_PERMANENT, CacheKey, cache_key
from .children import ChildRef

# The Job controller's condition when a podFailurePolicy FailJob rule matched: reason
# "PodFailurePolicy", message "Container <c> for pod <ns>/<pod> failed with exit code <n>
# matching FailJob rule at index <i>" (kubernetes pkg/controller/job/pod_failure_policy.go).
POD_FAILURE_POLICY = "PodFailurePolicy"
_EXIT_CODE = re.compile(r"exit code (\d+)")


@dataclass(frozen=True)
class CacheSeen:
    """What the shell read of one download Job: its running pod, that pod's log tail, and the
    progress mark kept from the previous pass."""

    pod: str
    log: str
    mark: ProgressMark | None = None


@dataclass(frozen=True)
class CacheInputs:
    """What a pass knows of the namespace's shared caches: its claims and Jobs (`children`,
    absent: None), what the shell read of the download Jobs (`seen`, by Job name), the model's
    safetensors total_size (bytesTotal before a progress line), the clock (epoch s; None:
    nothing stalls by time) and the StorageClasses by name (None: not readable)."""

    namespace: str
    children: Mapping[ChildRef, Any]
    checkpoint_bytes: int | None = None
    seen: Mapping[str, CacheSeen] = field(default_factory=dict)
    now: float | None = None
    storage_classes: Mapping[str, Mapping[str, Any]] | None = None


def claim_storage(claim: Mapping[str, Any] | None,
                  classes: Mapping[str, Mapping[str, Any]] | None,
                  ) -> tuple[str | None, Mapping[str, Mapping[str, Any]] | None]:
    """(the claim's StorageClass, the classes to check it against): none once it is Bound (a
    volume exists, whatever the class says) or before it exists."""
    if claim is None or ((claim.get("status") or {}).get("phase")) == "Bound":
        return None, None
    name = (claim.get("spec") or {}).get("storageClassName")
    return (str(name) if name else None), classes


def gated_exit(job: Mapping[str, Any] | None) -> bool:
    """True when the Job failed through its podFailurePolicy on exit code EXIT_PERMANENT (3)."""
    failed = job_condition(job, "Failed")
    if failed is None or failed.get("reason") != POD_FAILURE_POLICY:
        return False
    found = _EXIT_CODE.search(str(failed.get("message") or ""))
    return found is not None and int(found.group(1)) == EXIT_PERMANENT


def _gated_message(key: CacheKey) -> str:
    return (f"{key.model}@{key.revision} is gated, missing or refused the token (the download "
            f"exited {EXIT_PERMANENT}); accept the licence on the hub or set "
            "spec.credentials.huggingFaceToken")


def created_at(obj: Mapping[str, Any] | None) -> float | None:
    """metadata.creationTimestamp as epoch s (None: absent or not RFC 3339)."""
    raw = ((obj or {}).get("metadata") or {}).get("creationTimestamp")
    try:
        stamp = datetime.datetime.strptime(str(raw), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return stamp.replace(tzinfo=datetime.UTC).timestamp()


def progress_mark(seen: CacheSeen | None, now: float) -> ProgressMark | None:
    """The download's mark after this pass: it moves when the pod or its bytes change."""
    if seen is None:
        return None
    progress, _ = parse_log(seen.log)
    if progress is None:
        return seen.mark
    return observe(seen.mark, (seen.pod, progress.bytes_done), now)


def observed_cache(key: CacheKey, inputs: CacheInputs,
                   stall_seconds: float = float("inf")) -> CacheView:
    """The view of one cache (`key`) from its claim, its Job and its Job pod's log."""
    claim = inputs.children.get(ChildRef("v1", "PersistentVolumeClaim", inputs.namespace,
                                         key.claim_name))
    job = inputs.children.get(ChildRef("batch/v1", "Job", inputs.namespace, key.job_name))
    seen = inputs.seen.get(key.job_name)
    now = inputs.now if inputs.now is not None else 0.0
    stall = stall_seconds if inputs.now is not None else float("inf")
    mark = progress_mark(seen, now)
    storage_class, classes = claim_storage(claim, inputs.storage_classes)
    view = cache_view(CacheObservation(
        key.model, key.revision, key.claim_name, claim, job, log=seen.log if seen else "",
        storage_class=storage_class, storage_classes=classes,
        claim_pending_since=created_at(claim), mark=mark), now, stall)
    update: dict[str, Any] = {}
    if gated_exit(job) and view.status.reason == CacheReason.DOWNLOAD_FAILED:
        update = {"reason": str(CacheReason.GATED_MODEL), "message": _gated_message(key)}
    if inputs.checkpoint_bytes and view.status.bytes_total is None:
        update["bytes_total"] = inputs.checkpoint_bytes
    return CacheView(view.status.model_copy(update=update), view.ready, view.stalled, mark)


def cache_of(md: ModelDeployment | None, plan: Plan | None,
             inputs: CacheInputs) -> CacheView | None:
    """The shared cache's view for a planned spec.cache.mode shared, else None (no cache
    block); time stalls by `spec.rollout.stallSeconds`."""
    if md is None or plan is None or not plan.feasible or md.spec.cache.mode != "shared":
        return None
    return observed_cache(cache_key(md, plan), inputs, md.spec.rollout.stall_seconds)


def cache_memory(md: ModelDeployment | None, plan: Plan | None,
                 view: CacheView | None) -> tuple[str, ProgressMark | None] | None:
    """(download Job name, its progress mark): what the shell keeps for the next pass."""
    if md is None or plan is None or view is None:
        return None
    return cache_key(md, plan).job_name, view.mark
