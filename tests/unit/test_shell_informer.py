"""Watch-fed stores: echoes of our writes, relists after 410 Gone and dropped streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from modeldeploy.shell.informer import PIN_SECONDS, Informer, Store
from modeldeploy.shell.kube import KubeError

pytestmark = pytest.mark.timeout(10)


def obj(name: str, rv: str, **spec: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"namespace": "ns", "name": name,
                                               "resourceVersion": rv}, "spec": spec}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_echo_of_our_write_and_anything_older_is_skipped() -> None:
    store = Store(clock=Clock())
    assert store.deliver("ADDED", obj("a", "1", replicas=1))
    store.wrote(obj("a", "3", replicas=2))  # our apply returned version 3
    assert not store.deliver("MODIFIED", obj("a", "2", replicas=5))  # in flight before ours
    assert store.get("ns", "a") == obj("a", "3", replicas=2)
    assert not store.deliver("MODIFIED", obj("a", "3", replicas=2))  # the echo
    assert store.deliver("MODIFIED", obj("a", "4", replicas=7))  # someone else, after us
    assert store.get("ns", "a") == obj("a", "4", replicas=7)


def test_an_echo_delivered_before_the_write_returns_pins_nothing() -> None:
    """Under load the watch can deliver our write (3) and the controller's next update (4)
    before the apply's response is handled: the store keeps 4 and later events still count.
    (Found by tests/cluster: a Deployment's status updates were ignored for PIN_SECONDS.)"""
    store = Store(clock=Clock())
    assert store.deliver("ADDED", obj("a", "3", replicas=1))
    assert store.deliver("MODIFIED", obj("a", "4", replicas=1, ready=1))
    store.wrote(obj("a", "3", replicas=1))  # the response of the write, handled late
    assert store.get("ns", "a") == obj("a", "4", replicas=1, ready=1)
    assert store.deliver("MODIFIED", obj("a", "5", replicas=1, ready=2))


def test_a_no_op_write_pins_nothing() -> None:
    store = Store()
    store.deliver("ADDED", obj("a", "1"))
    store.wrote(obj("a", "1"))  # the server changed nothing: no event will come
    assert store.deliver("MODIFIED", obj("a", "2", replicas=3))


def test_a_pin_whose_echo_never_comes_expires() -> None:
    clock = Clock()
    store = Store(clock=clock)
    store.wrote(obj("a", "3"))
    assert not store.deliver("MODIFIED", obj("a", "9", replicas=1))
    clock.now += PIN_SECONDS + 1
    assert store.deliver("MODIFIED", obj("a", "10", replicas=1))


def test_a_relist_reports_what_appeared_changed_or_vanished_and_clears_pins() -> None:
    store = Store()
    store.deliver("ADDED", obj("kept", "1"))
    store.deliver("ADDED", obj("changed", "1"))
    store.deliver("ADDED", obj("gone", "1"))
    store.wrote(obj("changed", "2"))
    changed = store.replace([obj("kept", "1"), obj("changed", "5", replicas=2), obj("new", "6")])
    assert sorted(o["metadata"]["name"] for o in changed) == ["changed", "gone", "new"]
    assert store.get("ns", "gone") is None
    assert store.deliver("MODIFIED", obj("changed", "7", replicas=3))  # no pin left


def test_trimmed_fields_do_not_count_as_changes() -> None:
    store = Store(trim=lambda o: {"metadata": {"name": o["metadata"]["name"]},
                                  "spec": o.get("spec")})
    assert store.deliver("ADDED", obj("a", "1", replicas=1))
    assert not store.deliver("MODIFIED", obj("a", "2", replicas=1))  # a heartbeat
    assert store.deliver("MODIFIED", obj("a", "3", replicas=2))


class FakeKube:
    """Scripted lists and watch streams; a stream item that is an exception is raised."""

    def __init__(self, lists: list[list[dict[str, Any]]], streams: list[list[Any]]) -> None:
        self.lists = lists
        self.streams = streams
        self.watched_from: list[str] = []

    async def list(self, api_version: str, kind: str, namespace: str | None = None, *,
                   label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        return self.lists.pop(0), f"list-{len(self.lists)}"

    async def watch(self, api_version: str, kind: str, namespace: str | None, *,
                    label_selector: str | None, resource_version: str,
                    timeout: int) -> AsyncIterator[dict[str, Any]]:
        self.watched_from.append(resource_version)
        if not self.streams:
            await asyncio.Event().wait()  # nothing more: wait to be cancelled
        for item in self.streams.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item


async def run(informer: Informer, until: Any) -> None:
    task = asyncio.create_task(informer.run_forever())
    try:
        for _ in range(200):
            await asyncio.sleep(0.005)
            if until():
                return
        raise AssertionError("informer did not reach the expected state")
    finally:
        task.cancel()


async def test_410_gone_relists_and_a_deletion_missed_meanwhile_is_reported() -> None:
    kube = FakeKube(
        lists=[[obj("a", "1"), obj("b", "1")], [obj("a", "4")]],
        streams=[[{"type": "MODIFIED", "object": obj("a", "2", replicas=2)},
                  KubeError(410, "Expired", "too old resource version", "WATCH")]])
    seen: list[str] = []
    store = Store()
    informer = Informer(kube, "apps/v1", "Deployment", store,  # type: ignore[arg-type]
                        on_change=lambda o: seen.append(o["metadata"]["name"]), backoff=0.001)
    await run(informer, lambda: informer.relists == 2 and len(kube.watched_from) == 2)
    assert [o["metadata"]["name"] for o in store] == ["a"]  # b vanished while we were away
    assert seen == ["a", "b", "a", "a", "b"]
    assert kube.watched_from == ["list-1", "list-0"]


async def test_a_stream_ended_by_the_server_resumes_from_the_last_version() -> None:
    kube = FakeKube(lists=[[obj("a", "1")]],
                    streams=[[{"type": "MODIFIED", "object": obj("a", "2", replicas=2)},
                              {"type": "BOOKMARK", "object": {"metadata": {
                                  "resourceVersion": "8"}}}]])
    store = Store()
    informer = Informer(kube, "apps/v1", "Deployment", store)  # type: ignore[arg-type]
    await run(informer, lambda: len(kube.watched_from) == 2)
    assert kube.watched_from == ["list-0", "8"] and informer.relists == 1


async def test_a_dropped_connection_or_5xx_relists() -> None:
    kube = FakeKube(lists=[[obj("a", "1")], [obj("a", "3", replicas=3)]],
                    streams=[[KubeError(0, "ClientPayloadError", "reset", "WATCH")]])
    store = Store()
    informer = Informer(kube, "apps/v1", "Deployment", store,  # type: ignore[arg-type]
                        backoff=0.001)
    await run(informer, lambda: informer.relists == 2)
    assert store.get("ns", "a") == obj("a", "3", replicas=3)
