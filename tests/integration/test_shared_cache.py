"""cache.mode shared against the emulated API server: two ModelDeployments of one model share one
claim and one download Job, each adds its own ownerReference, neither overwrites the other's,
and a claim holding another revision is left untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from .emulator import EmulatorServer
from .harness import (
    Cluster,
    OperatorThread,
    eventually,
    fast_config,
    model_deployment,
    running_operator,
    settle,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
CACHE = {"mode": "shared", "storageClassName": "efs-sc"}


def shared_model(name: str, **spec: Any) -> dict[str, Any]:
    body = model_deployment(name, cache=CACHE, **spec)
    body["spec"]["model"]["revision"] = "0e9e39f"
    return body


@pytest.fixture()
def operator(emulator_server: EmulatorServer, kubeconfig: Path,
             cluster: Cluster) -> Iterator[OperatorThread]:
    cluster.create_storage_class("efs-sc", "efs.csi.aws.com")  # Amazon EFS: ReadWriteMany
    with running_operator(emulator_server, cluster, fast_config(kubeconfig)) as thread:
        yield thread


def _shared(cluster: Cluster) -> tuple[list[Any], list[Any]]:
    batch = kubernetes.client.BatchV1Api(cluster.api)
    selector = "modeldeploy.dev/model-cache"
    claims = cluster.core.list_namespaced_persistent_volume_claim(cluster.ns, label_selector=selector).items
    jobs = batch.list_namespaced_job(cluster.ns, label_selector=selector).items
    return claims, jobs


def _owners(obj: Any) -> list[tuple[str, bool]]:
    return sorted((r.name, bool(r.controller)) for r in obj.metadata.owner_references or [])


def test_two_models_share_one_claim_and_one_download(
        operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer) -> None:
    cluster.create(shared_model("a", replicas=3))
    # One after the other: the first resolution of a catalog model imports transformers'
    # config classes lazily, and two threads doing that at once can fail (noticed, not ours).
    eventually(lambda: cluster.deployment("a"), what="deployment a")
    cluster.create(shared_model("b"))
    eventually(lambda: cluster.deployment("b"), what="deployment b")

    def both_owners() -> tuple[list[Any], list[Any]] | None:
        claims, jobs = _shared(cluster)
        owned = [o for o in claims + jobs if _owners(o) == [("a", False), ("b", False)]]
        return (claims, jobs) if len(claims) == len(jobs) == 1 and len(owned) == 2 else None

    claims, jobs = eventually(both_owners, what="one claim and one Job owned by both")
    [claim], [job] = claims, jobs
    assert claim.spec.access_modes == ["ReadWriteMany"]
    assert claim.spec.storage_class_name == "efs-sc"
    assert job.spec.template.spec.containers[0].command == ["modeldeploy", "download"]
    for name in ("a", "b"):
        volumes = cluster.deployment(name).spec.template.spec.volumes
        shared = next(v for v in volumes if v.name == "model-weights")
        assert shared.persistent_volume_claim.claim_name == claim.metadata.name
        assert shared.persistent_volume_claim.read_only is True
    settle(emulator_server)
    # Converged: no more writes to the shared objects (each owner sees its own reference).
    again_claims, again_jobs = _shared(cluster)
    assert again_claims[0].metadata.resource_version == claim.metadata.resource_version
    assert again_jobs[0].metadata.resource_version == job.metadata.resource_version


def test_a_claim_for_another_revision_is_never_overwritten(
        operator: OperatorThread, cluster: Cluster) -> None:
    cluster.create(shared_model("a"))
    eventually(lambda: cluster.deployment("a"), what="deployment a")
    claims = eventually(lambda: _shared(cluster)[0] or None, what="the shared claim")
    name = claims[0].metadata.name
    # Someone rewrites the claim's record to another revision: the operator must not take it.
    cluster.core.patch_namespaced_persistent_volume_claim(
        name, cluster.ns, {"metadata": {"annotations": {"modeldeploy.dev/cache-revision": "other"}}})
    cluster.create(shared_model("b"))
    cluster.wait_condition("b", "Stalled", "True")
    stalled = cluster.conditions("b")["Stalled"]
    assert "CacheConflict" in stalled[2] and "other" in stalled[2]
    [claim], _ = _shared(cluster)
    assert claim.metadata.annotations["modeldeploy.dev/cache-revision"] == "other"
    assert ("b", False) not in _owners(claim)


def _job_status(cluster: Cluster, conditions: list[dict[str, str]]) -> None:
    """Play the Job controller: write the download Job's terminal condition."""
    _, jobs = eventually(lambda: (lambda found: found if found[1] else None)(_shared(cluster)),
                         what="the download Job")
    stamp = "2026-01-01T00:00:00Z"
    batch = kubernetes.client.BatchV1Api(cluster.api)
    batch.patch_namespaced_job_status(jobs[0].metadata.name, cluster.ns, {"status": {"conditions": [
        {"status": "True", "lastProbeTime": stamp, "lastTransitionTime": stamp, **c} for c in conditions]}})


def test_a_completed_download_makes_the_cache_ready(operator: OperatorThread, cluster: Cluster) -> None:
    cluster.create(shared_model("a"))
    waiting = cluster.wait_condition("a", "CacheReady", "False")
    assert cluster.conditions("a")["Ready"][:2] == ("False", "WaitingForCache") and waiting[1] == "Pending"
    _job_status(cluster, [{"type": "Complete", "reason": "CompletionsReached"}])
    cluster.wait_condition("a", "CacheReady", "True", "CacheComplete")
    cache = cluster.md("a")["status"]["cache"]
    assert cache["phase"] == "Complete" and cache["bytesTotal"] > 0 and "bytesDone" not in cache


def test_a_gated_repository_stalls_with_gated_model(operator: OperatorThread, cluster: Cluster) -> None:
    cluster.create(shared_model("a"))
    cluster.wait_condition("a", "CacheReady", "False")
    # The Job controller's condition when the podFailurePolicy rule on exit code 3 matched.
    _job_status(cluster, [{"type": "Failed", "reason": "PodFailurePolicy", "message": (
        "Container download for pod x/y failed with exit code 3 matching FailJob rule at index 0")}])
    cluster.wait_condition("a", "CacheReady", "False", "GatedModel")
    stalled = cluster.wait_condition("a", "Stalled", "True", "CacheFailed")
    assert "GatedModel" in stalled[2] and cluster.md("a")["status"]["cache"]["phase"] == "Failed"


def test_a_storage_class_without_read_write_many_stalls_with_the_fix(
        operator: OperatorThread, cluster: Cluster) -> None:
    """No silent fallback to N downloads: an EBS class cannot be ReadWriteMany."""
    cluster.create_storage_class("gp3", "ebs.csi.aws.com")
    body = shared_model("a")
    body["spec"]["cache"] = {"mode": "shared", "storageClassName": "gp3"}
    cluster.create(body)
    _, _, message = cluster.wait_condition("a", "CacheReady", "False", "StorageUnavailable")
    assert "cannot provide ReadWriteMany" in message and "efs.csi.aws.com" in message
    stalled = cluster.wait_condition("a", "Stalled", "True", "CacheFailed")
    assert "StorageUnavailable" in stalled[2]
