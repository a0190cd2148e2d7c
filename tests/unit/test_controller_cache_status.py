"""status.cache and CacheReady from the shared claim and download Job in the snapshot."""

from __future__ import annotations

from typing import Any

from tests.unit.test_controller_decide import NOW, body, converged, facts, snapshot

from modeldeploy.controller.cache_status import CacheInputs, gated_exit, observed_cache
from modeldeploy.controller.children import ChildRef
from modeldeploy.controller.decide import Snapshot, decide
from modeldeploy.render import RenderOptions
from modeldeploy.render.cache import CacheKey

KEY = CacheKey("meta-llama/Llama-3.1-8B-Instruct", "0e9e39f")
CLAIM = ChildRef("v1", "PersistentVolumeClaim", "ns", KEY.claim_name)
JOB = ChildRef("batch/v1", "Job", "ns", KEY.job_name)
ANNOTATIONS = {"modeldeploy.dev/cache-model": KEY.model, "modeldeploy.dev/cache-revision": KEY.revision}
SHARED = {"mode": "shared", "storageClassName": "efs-sc"}


def claim(phase: str = "Bound") -> dict[str, Any]:
    return {"metadata": {"name": KEY.claim_name, "annotations": ANNOTATIONS}, "status": {"phase": phase}}


def job(*conditions: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": KEY.job_name, "annotations": ANNOTATIONS},
            "status": {"conditions": [{"status": "True", **c} for c in conditions]}}


# The Job controller's words when a podFailurePolicy FailJob rule matched (pod_failure_policy.go).
GATED = {"type": "Failed", "reason": "PodFailurePolicy",
         "message": "Container download for pod ns/x-abc failed with exit code 3 matching FailJob rule at index 0"}


def view(children: dict[ChildRef, Any], checkpoint: int | None = 16_060_522_240) -> Any:
    return observed_cache(KEY, CacheInputs("ns", children, checkpoint))


def test_a_complete_job_is_a_ready_cache_with_the_checkpoint_size_and_no_bytes_done() -> None:
    found = view({CLAIM: claim(), JOB: job({"type": "Complete"})})
    assert found.ready and not found.stalled
    assert found.status.phase == "Complete" and found.reason == "CacheComplete"
    assert found.status.bytes_total == 16_060_522_240 and found.status.bytes_done is None


def test_the_permanent_exit_code_is_a_gated_model_and_stalls() -> None:
    found = view({CLAIM: claim(), JOB: job(GATED)})
    assert gated_exit(job(GATED))
    assert not found.ready and found.stalled and found.status.phase == "Failed"
    assert found.reason == "GatedModel" and "huggingFaceToken" in (found.status.message or "")


def test_another_exit_code_or_backoff_is_a_download_failure() -> None:
    other = {**GATED, "message": GATED["message"].replace("code 3", "code 1")}
    backoff = {"type": "Failed", "reason": "BackoffLimitExceeded", "message": "Job has reached the backoff limit"}
    for cond in (other, backoff):
        found = view({CLAIM: claim(), JOB: job(cond)})
        assert not gated_exit(job(cond))
        assert found.stalled and found.reason == "DownloadFailed"


def test_a_pending_claim_or_a_running_job_waits_without_stalling() -> None:
    for children in ({CLAIM: claim("Pending"), JOB: job()}, {CLAIM: None, JOB: None}):
        found = view(children, checkpoint=None)
        assert not found.ready and not found.stalled and found.status.phase == "Pending"
        assert found.status.bytes_total is None


def _shared_snapshot(extra: dict[ChildRef, Any], status: dict[str, Any] | None = None) -> Snapshot:
    md = body(cache=SHARED, status=status)
    md["spec"]["model"]["revision"] = KEY.revision
    base = converged(md, decide(snapshot(md), facts(), RenderOptions(), NOW))
    return Snapshot(body=base.body, children={**base.children, **extra}, pods=base.pods,
                    pools=base.pools, kinds=base.kinds)


def _conditions(extra: dict[ChildRef, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    actions = decide(_shared_snapshot(extra), facts(), RenderOptions(), NOW)
    conditions = {c.type: (c.status, c.reason, c.message) for c in actions.status.conditions}
    return conditions, actions.status.wire().get("cache") or {}


def test_decide_writes_cache_ready_and_keeps_ready_false_until_the_download_completes() -> None:
    waiting, cache = _conditions({CLAIM: claim("Pending"), JOB: job()})
    assert waiting["CacheReady"][:2] == ("False", "Pending")
    assert waiting["Ready"][:2] == ("False", "WaitingForCache") and "model cache" in waiting["Ready"][2]
    assert waiting["Stalled"][0] == "False" and cache["phase"] == "Pending"
    assert cache["claim"] == KEY.claim_name and "bytesDone" not in cache
    done, cache = _conditions({CLAIM: claim(), JOB: job({"type": "Complete"})})
    assert done["CacheReady"][:2] == ("True", "CacheComplete") and cache["phase"] == "Complete"
    assert done["Ready"][1] != "WaitingForCache" and cache["bytesTotal"] > 0


def test_decide_stalls_on_a_gated_model() -> None:
    gated, cache = _conditions({CLAIM: claim(), JOB: job(GATED)})
    assert gated["CacheReady"][:2] == ("False", "GatedModel") and cache["reason"] == "GatedModel"
    assert gated["Stalled"][:2] == ("True", "CacheFailed") and "GatedModel" in gated["Stalled"][2]
    assert gated["Ready"][0] == "False"


def test_no_cache_block_without_a_shared_cache() -> None:
    actions = decide(snapshot(body()), facts(), RenderOptions(), NOW)
    assert actions.status.cache is None
    assert "CacheReady" not in {c.type for c in actions.status.conditions}


# StorageClasses as the cluster shows them (provisioners: the AWS EFS and EBS CSI drivers).
EFS = {"metadata": {"name": "efs-sc"}, "provisioner": "efs.csi.aws.com"}
GP3 = {"metadata": {"name": "gp3", "annotations": {
    "storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "ebs.csi.aws.com"}


def pending_claim(storage_class: str | None) -> dict[str, Any]:
    found = claim("Pending")
    found["spec"] = {"storageClassName": storage_class} if storage_class else {}
    return found


def test_a_claim_that_cannot_be_read_write_many_is_storage_unavailable_at_once() -> None:
    classes = {"efs-sc": EFS, "gp3": GP3}
    for storage_class, why in ((None, "gp3 (ebs.csi.aws.com) cannot provide ReadWriteMany"),
                               ("gp3", "gp3 (ebs.csi.aws.com) cannot provide ReadWriteMany"),
                               ("nfs", "StorageClass nfs does not exist")):
        found = observed_cache(KEY, CacheInputs("ns", {CLAIM: pending_claim(storage_class),
                                                      JOB: job()}, storage_classes=classes))
        assert found.stalled and found.reason == "StorageUnavailable", storage_class
        message = found.status.message or ""
        assert why in message and "spec.cache.storageClassName" in message
    usable = observed_cache(KEY, CacheInputs("ns", {CLAIM: pending_claim("efs-sc"), JOB: job()},
                                             storage_classes=classes))
    assert not usable.stalled and usable.reason == "Pending"
    no_default = observed_cache(KEY, CacheInputs("ns", {CLAIM: pending_claim(None), JOB: job()},
                                                 storage_classes={"efs-sc": EFS}))
    assert no_default.reason == "StorageUnavailable" and "no default" in (no_default.status.message or "")


def test_a_bound_claim_or_unreadable_classes_are_never_judged_by_their_class() -> None:
    bound = claim("Bound")
    bound["spec"] = {"storageClassName": "gp3"}  # bound: a volume exists, whatever the class
    found = observed_cache(KEY, CacheInputs("ns", {CLAIM: bound, JOB: job()},
                                            storage_classes={"gp3": GP3}))
    assert not found.stalled and found.reason == "Pending"
    namespaced = observed_cache(KEY, CacheInputs("ns", {CLAIM: pending_claim("gp3"), JOB: job()}))
    assert not namespaced.stalled
