"""A pass on the inputs of a decision that wrote nothing skips deciding (shell.reconcile):
until one of them has a new version, or the decision expires (a progress deadline)."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api import ModelDeploymentStatus
from modeldeploy.controller.children import ChildKinds, ChildRef
from modeldeploy.controller.decide import Actions, Snapshot
from modeldeploy.shell import reconcile as reconcile_module
from modeldeploy.shell.reconcile import ReconcileContext, reconcile

DEPLOYMENT = ChildRef("apps/v1", "Deployment", "ns", "m")
FACTS = object()


def body(rv: str = "1") -> dict[str, Any]:
    return {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"namespace": "ns", "name": "m", "uid": "u", "resourceVersion": rv},
            "spec": {"model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}}}


class View:
    """The stores a pass reads: one Deployment, and the cluster-wide stores' revisions."""

    kinds = ChildKinds(leader_worker_set=False, service_monitor=False)
    clusterwide = True

    def __init__(self) -> None:
        self.deployment_rv: str | None = "10"
        self.revision = (1, 1, 1)

    def children(self, refs: list[ChildRef]) -> dict[ChildRef, Any]:
        live = None if self.deployment_rv is None else {
            "metadata": {"name": "m", "resourceVersion": self.deployment_rv}}
        return {ref: (live if ref == DEPLOYMENT else None) for ref in refs}

    def shared_children(self, namespace: str) -> dict[ChildRef, Any]:
        return {}

    def pods_of(self, namespace: str, name: str) -> list[Any]:
        return []

    def pools(self) -> list[Any]:
        return []

    def capacity(self) -> None:
        return None

    def cluster_revision(self) -> tuple[int, ...]:
        return self.revision

    def storage_classes(self) -> None:
        return None


class Facts:
    async def resolve(self, source: Any) -> Any:
        return FACTS


class Decide:
    """Stands in for `decide`: counts decisions; returns no write (or a status patch)."""

    def __init__(self) -> None:
        self.calls = 0
        self.expires: float | None = None
        self.patch: dict[str, Any] | None = None

    def __call__(self, snapshot: Snapshot, facts: Any, options: Any, now: float,
                 write_failure: Any = None) -> Actions:
        self.calls += 1
        return Actions(status=ModelDeploymentStatus(), status_patch=self.patch,
                       expires=self.expires)


@pytest.fixture()
def decide(monkeypatch: pytest.MonkeyPatch) -> Decide:
    fake = Decide()
    monkeypatch.setattr(reconcile_module, "decide", fake)
    return fake


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def context(view: View, clock: Clock) -> ReconcileContext:
    kube: Any = None  # a pass that writes nothing sends nothing
    return ReconcileContext(kube=kube, view=view, facts=Facts(), render=None,  # type: ignore[arg-type]
                            wall=clock)


async def test_unchanged_inputs_are_not_decided_again(decide: Decide) -> None:
    view, clock = View(), Clock()
    ctx = context(view, clock)
    for _ in range(3):
        outcome = await reconcile(ctx, body())
        clock.now += 60
    assert decide.calls == 1 and outcome.writes == 0


async def test_a_new_version_of_any_input_decides_again(decide: Decide) -> None:
    view, clock = View(), Clock()
    ctx = context(view, clock)
    await reconcile(ctx, body())
    view.deployment_rv = "11"  # the Deployment edited behind our back
    await reconcile(ctx, body())
    view.deployment_rv = None  # deleted
    await reconcile(ctx, body())
    view.revision = (2, 1, 1)  # a pod, node or pool changed
    await reconcile(ctx, body())
    await reconcile(ctx, body("2"))  # the ModelDeployment changed
    view.kinds = ChildKinds(leader_worker_set=True, service_monitor=False)  # compared by value
    await reconcile(ctx, body("2"))
    assert decide.calls == 6
    await reconcile(ctx, body("2"))
    assert decide.calls == 6


async def test_a_decision_that_expires_is_made_again_after_it(decide: Decide) -> None:
    view, clock = View(), Clock()
    ctx = context(view, clock)
    decide.expires = clock.now + 30  # the rollout's progress deadline
    await reconcile(ctx, body())
    clock.now += 29
    await reconcile(ctx, body())
    assert decide.calls == 1
    clock.now += 1
    await reconcile(ctx, body())
    assert decide.calls == 2


async def test_a_decision_that_writes_is_never_skipped(decide: Decide,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    view, clock = View(), Clock()
    ctx = context(view, clock)
    decide.patch = {"status": {"observedGeneration": 1}}

    async def write_status(ctx: Any, snapshot: Any, actions: Any) -> int:
        return 1

    monkeypatch.setattr(reconcile_module, "_write_status", write_status)
    await reconcile(ctx, body())
    await reconcile(ctx, body())
    assert decide.calls == 2 and not ctx.quiet


async def test_without_versions_nothing_is_skipped(decide: Decide) -> None:
    view, clock = View(), Clock()
    ctx = context(view, clock)
    unversioned = body()
    del unversioned["metadata"]["resourceVersion"]
    await reconcile(ctx, unversioned)
    await reconcile(ctx, unversioned)
    assert decide.calls == 2
