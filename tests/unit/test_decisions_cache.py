"""The shared cache's status from claim, Job and Job log: typed reasons, stall by progress."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.api.status import CachePhase
from modeldeploy.decisions.cache import (
    CacheObservation,
    CacheReason,
    cache_view,
    parse_log,
    storage_problem,
)
from modeldeploy.decisions.progress import ProgressMark, observe

MODEL, REVISION, CLAIM = "meta-llama/Llama-3.1-8B-Instruct", "main", "model-cache-x"
STALL = 600.0


def _claim(phase: str = "Bound", model: str = MODEL, revision: str = REVISION) -> dict[str, Any]:
    return {"metadata": {"name": CLAIM, "annotations": {"modeldeploy.dev/cache-model": model,
                                                        "modeldeploy.dev/cache-revision": revision}},
            "status": {"phase": phase}}


def _job(condition: str | None = None, reason: str = "", message: str = "") -> dict[str, Any]:
    conds = [{"type": condition, "status": "True", "reason": reason, "message": message}] if condition else []
    return {"metadata": {"name": f"{CLAIM}-download"}, "status": {"conditions": conds}}


def _progress(done: int, total: int = 1000) -> str:
    return f'Fetching 5 files\nmodeldeploy-progress {{"bytesDone": {done}, "bytesTotal": {total}}}\n'


def _obs(**kw: Any) -> CacheObservation:
    base: dict[str, Any] = {"model": MODEL, "revision": REVISION, "claim_name": CLAIM,
                            "claim": _claim(), "job": _job()}
    return CacheObservation(**{**base, **kw})


def test_downloading_reports_bytes() -> None:
    view = cache_view(_obs(log=_progress(250)), now=100, stall_seconds=STALL)
    assert view.status.phase == CachePhase.DOWNLOADING and not view.ready and not view.stalled
    assert (view.status.bytes_done, view.status.bytes_total) == (250, 1000)
    assert view.reason == CacheReason.DOWNLOADING


def test_complete_job_means_ready() -> None:
    view = cache_view(_obs(job=_job("Complete"), log=_progress(1000)), now=0, stall_seconds=STALL)
    assert view.ready and view.status.phase == CachePhase.COMPLETE and view.status.reason is None
    assert view.status.bytes_done == 1000


def test_stalled_download_only_after_stall_seconds_without_progress() -> None:
    mark = observe(None, 250, now=0)
    mark = observe(mark, 250, now=500)  # same bytes: `since` stays at 0
    moving = cache_view(_obs(log=_progress(250), mark=mark), now=STALL, stall_seconds=STALL)
    assert moving.reason == CacheReason.DOWNLOADING
    stalled = cache_view(_obs(log=_progress(250), mark=mark), now=STALL + 1, stall_seconds=STALL)
    assert stalled.reason == CacheReason.DOWNLOAD_STALLED and stalled.stalled
    assert "no byte downloaded for 601s" in (stalled.status.message or "")
    # One more byte restarts the clock.
    advanced = observe(mark, 251, now=STALL + 1)
    again = cache_view(_obs(log=_progress(251), mark=advanced), now=STALL + 2, stall_seconds=STALL)
    assert again.reason == CacheReason.DOWNLOADING


def test_gated_model_from_the_failed_jobs_log() -> None:
    log = 'modeldeploy-error {"message": "acme/x is gated: accept its licence", "reason": "GatedModel"}'
    view = cache_view(_obs(job=_job("Failed", "PodFailurePolicy"), log=log), now=0, stall_seconds=STALL)
    assert view.reason == CacheReason.GATED_MODEL and view.stalled
    assert view.status.phase == CachePhase.FAILED


def test_failed_job_without_a_log_line_is_download_failed() -> None:
    view = cache_view(_obs(job=_job("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")),
                      now=0, stall_seconds=STALL)
    assert view.reason == CacheReason.DOWNLOAD_FAILED
    assert "BackoffLimitExceeded" in (view.status.message or "")


def test_a_claim_for_another_revision_is_a_conflict_never_overwritten() -> None:
    view = cache_view(_obs(claim=_claim(revision="abc123")), now=0, stall_seconds=STALL)
    assert view.reason == CacheReason.CACHE_CONFLICT and view.stalled
    assert "abc123" in (view.status.message or "") and "left untouched" in (view.status.message or "")


@pytest.mark.parametrize(("classes", "name", "expect"), [
    ({"gp3": {"provisioner": "ebs.csi.aws.com",
              "metadata": {"annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}}},
     None, "gp3 (ebs.csi.aws.com) cannot provide ReadWriteMany"),
    ({}, None, "no StorageClass given and the cluster has no default one"),
    ({"efs-sc": {"provisioner": "efs.csi.aws.com"}}, "nfs", "StorageClass nfs does not exist"),
    ({"efs-sc": {"provisioner": "efs.csi.aws.com"}}, "efs-sc", None),
])
def test_storage_that_cannot_be_read_write_many(classes: dict[str, Any], name: str | None,
                                                expect: str | None) -> None:
    problem = storage_problem(name, classes)
    if expect is None:
        assert problem is None
        return
    assert problem is not None and expect in problem and "spec.cache.storageClassName" in problem
    view = cache_view(_obs(storage_class=name, storage_classes=classes, claim=_claim("Pending")),
                      now=0, stall_seconds=STALL)
    assert view.reason == CacheReason.STORAGE_UNAVAILABLE and view.stalled


def test_pending_claim_turns_storage_unavailable_after_stall_seconds() -> None:
    obs = _obs(claim=_claim("Pending"), job=_job(), claim_pending_since=0.0, storage_class="nfs")
    assert cache_view(obs, now=STALL, stall_seconds=STALL).reason == CacheReason.PENDING
    late = cache_view(obs, now=STALL + 1, stall_seconds=STALL)
    assert late.reason == CacheReason.STORAGE_UNAVAILABLE and "ReadWriteMany" in (late.status.message or "")


def test_unobserved_storage_classes_claim_nothing() -> None:
    assert storage_problem(None, None) is None


@given(st.text())
def test_parse_log_never_raises(text: str) -> None:
    progress, error = parse_log(text)
    assert progress is None or progress.bytes_done >= 0
    assert error is None or isinstance(error.reason, CacheReason)


@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=30))
def test_mark_since_is_the_last_change(values: list[int]) -> None:
    mark: ProgressMark | None = None
    last_change = 0
    for t, v in enumerate(values):
        if mark is None or v != mark.signature:
            last_change = t
        mark = observe(mark, v, float(t))
    assert mark is not None and mark.since == last_change
