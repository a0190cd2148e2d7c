"""status.cache and the CacheReady condition from the shared cache's claim and download Job as
the watch-fed stores show them (spec.cache.mode shared). Pure.

The Job's own status is the only signal read here (no pod log in a pass): Complete, Failed, and
a Failed Job whose podFailurePolicy matched `modeldeploy download`'s permanent exit code
(`render.cache.EXIT_PERMANENT`: gated or missing repository, refused token) is GatedModel.
bytesTotal is the checkpoint's size from the model facts (safetensors total_size); bytesDone
is omitted: the Job publishes it only in its log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..api import ModelDeployment
from ..decisions.cache import CacheObservation, CacheReason, CacheView, cache_view, job_condition
from ..planner import Plan
from ..render.cache import EXIT_PERMANENT, CacheKey, cache_key
from .children import ChildRef

# The Job controller's condition when a podFailurePolicy FailJob rule matched: reason
# "PodFailurePolicy", message "Container <c> for pod <ns>/<pod> failed with exit code <n>
# matching FailJob rule at index <i>" (kubernetes pkg/controller/job/pod_failure_policy.go).
POD_FAILURE_POLICY = "PodFailurePolicy"
_EXIT_CODE = re.compile(r"exit code (\d+)")
# No claim-pending clock or progress mark reaches a pass yet: nothing is declared stalled by time.
NO_STALL_CLOCK = float("inf")


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


def observed_cache(key: CacheKey, namespace: str, children: Mapping[ChildRef, Any],
                   checkpoint_bytes: int | None) -> CacheView:
    """The cache's view from its claim and Job in `children` (absent: None, still pending).

    checkpoint_bytes: the model's safetensors total_size (facts), reported as bytesTotal.
    """
    claim = children.get(ChildRef("v1", "PersistentVolumeClaim", namespace, key.claim_name))
    job = children.get(ChildRef("batch/v1", "Job", namespace, key.job_name))
    view = cache_view(CacheObservation(key.model, key.revision, key.claim_name, claim, job),
                      0.0, NO_STALL_CLOCK)
    update: dict[str, Any] = {}
    if gated_exit(job) and view.status.reason == CacheReason.DOWNLOAD_FAILED:
        update = {"reason": str(CacheReason.GATED_MODEL), "message": _gated_message(key)}
    if checkpoint_bytes:
        update["bytes_total"] = checkpoint_bytes
    return CacheView(view.status.model_copy(update=update), view.ready, view.stalled)


def cache_of(md: ModelDeployment | None, plan: Plan | None, namespace: str,
             children: Mapping[ChildRef, Any], checkpoint_bytes: int | None) -> CacheView | None:
    """The shared cache's view for a planned spec.cache.mode shared, else None (no cache block)."""
    if md is None or plan is None or not plan.feasible or md.spec.cache.mode != "shared":
        return None
    return observed_cache(cache_key(md, plan), namespace, children, checkpoint_bytes)
