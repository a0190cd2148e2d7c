"""The controller's scheduling: coalesced pokes, retries, deletions; passes read the stores."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from modeldeploy.api import ModelDeploymentStatus
from modeldeploy.shell import controller as controller_module
from modeldeploy.shell.config import OperatorConfig
from modeldeploy.shell.controller import Controller
from modeldeploy.shell.informer import Store
from modeldeploy.shell.kube import KubeError
from modeldeploy.shell.reconcile import Outcome, ReconcileContext
from modeldeploy.shell.view import MODEL_DEPLOYMENT

pytestmark = pytest.mark.timeout(10)

KEY = ("ns", "m")


def body(rv: str = "1", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"namespace": "ns", "name": "m", "uid": "u", "resourceVersion": rv,
                         **meta}}


class FakeView:
    """The stores a pass reads; synced at once."""

    def __init__(self) -> None:
        self.stores = {MODEL_DEPLOYMENT: Store()}

    def model(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.stores[MODEL_DEPLOYMENT].get(namespace, name)

    async def synced(self) -> None:
        return None


class Fake:
    """Stands in for `reconcile`: counts passes and the versions they saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.fail_times = 0

    @property
    def calls(self) -> int:
        return len(self.seen)

    async def __call__(self, ctx: ReconcileContext, md: Mapping[str, Any]) -> Outcome:
        self.seen.append(str(md["metadata"]["resourceVersion"]))
        await asyncio.sleep(0)
        if self.fail_times:
            self.fail_times -= 1
            raise KubeError(500, "InternalError", "boom", "PATCH x")
        return Outcome(status=ModelDeploymentStatus(), writes=0, transient=False)


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> Fake:
    fake = Fake()
    monkeypatch.setattr(controller_module, "reconcile", fake)
    return fake


def make() -> tuple[Controller, Store]:
    config = OperatorConfig(child_event_delay=0.01, retry_backoff=(0.01,), resync_interval=0.05)
    view: Any = FakeView()
    ctx = ReconcileContext(kube=None, view=view, facts=None, render=None)  # type: ignore[arg-type]
    return Controller(ctx, config), view.stores[MODEL_DEPLOYMENT]


def deliver(ctl: Controller, store: Store, kind: str, obj: dict[str, Any]) -> None:
    """What an informer does with a watch event."""
    if store.deliver(kind, obj):
        ctl.on_model_change(obj)


async def settle(ctl: Controller) -> None:
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not ctl._timers and not ctl._tasks:
            return


async def test_a_change_runs_one_pass_on_the_newest_body(fake: Fake) -> None:
    ctl, store = make()
    deliver(ctl, store, "ADDED", body("1"))
    deliver(ctl, store, "MODIFIED", body("2"))  # before the pass started: it covers both
    await settle(ctl)
    assert fake.seen == ["2"]


async def test_the_echo_of_our_status_write_runs_no_pass(fake: Fake) -> None:
    ctl, store = make()
    deliver(ctl, store, "ADDED", body("1"))
    await settle(ctl)
    store.wrote(body("2"))  # the status patch returned version 2
    deliver(ctl, store, "MODIFIED", body("2"))  # its echo
    await settle(ctl)
    assert fake.seen == ["1"]
    deliver(ctl, store, "MODIFIED", body("3"))  # someone else's edit
    await settle(ctl)
    assert fake.seen == ["1", "3"]


async def test_owned_changes_coalesce(fake: Fake) -> None:
    ctl, store = make()
    deliver(ctl, store, "ADDED", body())
    await settle(ctl)
    for _ in range(3):
        ctl.on_owned_change(*KEY)  # a child edited out of band, three times
    await settle(ctl)
    assert fake.calls == 2


async def test_failures_are_retried_then_succeed(fake: Fake) -> None:
    ctl, store = make()
    fake.fail_times = 2
    deliver(ctl, store, "ADDED", body())
    await settle(ctl)
    assert fake.calls == 3 and not ctl._failures


async def test_resync_rounds_never_stack_passes(fake: Fake) -> None:
    ctl, store = make()
    deliver(ctl, store, "ADDED", body())
    await settle(ctl)
    async with ctl._locks[KEY]:  # a long pass holds the object
        for _ in range(5):
            ctl.poke(KEY)
            await asyncio.sleep(0.01)
        assert len(ctl._tasks) <= 1
    await settle(ctl)
    assert fake.calls <= 2


async def test_deleted_model_is_forgotten(fake: Fake) -> None:
    ctl, store = make()
    deliver(ctl, store, "ADDED", body())
    await settle(ctl)
    deliver(ctl, store, "DELETED", body())
    ctl.poke(KEY)
    ctl.on_owned_change(*KEY)
    await settle(ctl)
    assert fake.calls == 1 and ctl.keys() == []


async def test_a_model_being_deleted_is_left_to_the_garbage_collector(fake: Fake) -> None:
    ctl, store = make()
    deliver(ctl, store, "ADDED", body("1", deletionTimestamp="2026-11-30T10:00:00Z"))
    ctl.poke(KEY)
    await settle(ctl)
    assert fake.calls == 0
