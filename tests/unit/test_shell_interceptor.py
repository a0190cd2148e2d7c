"""Reading the KEDA HTTP add-on interceptors' counts: every ready endpoint of the admin Service,
summed; anything unread is None (a hold), never zero. Loopback servers only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from modeldeploy.shell.interceptor import InterceptorReader, endpoint_urls
from modeldeploy.shell.kube import KubeError
from modeldeploy.shell.scrape import Scraper
from modeldeploy.shell.telemetry import Telemetry

Serve = Callable[[web.Application], Awaitable[int]]


def endpoint_slice(port: int, *addresses: str, ready: bool | None = True) -> dict[str, Any]:
    conditions = {} if ready is None else {"ready": ready}
    # Named as the EndpointSlice controller names them: one object per slice in the store.
    return {"metadata": {"name": f"admin-{port}-{'-'.join(addresses)}-{ready}", "namespace": "keda"},
            "ports": [{"name": "admin", "port": port}],
            "endpoints": [{"addresses": [a], "conditions": conditions} for a in addresses]}


def test_urls_are_the_ready_endpoints_of_every_slice() -> None:
    slices = [endpoint_slice(9090, "10.0.0.1", "10.0.0.2"), endpoint_slice(9090, "10.0.0.3", ready=False),
              endpoint_slice(9091, "fd00::1", ready=None), {"endpoints": [{"addresses": ["10.0.0.9"]}]},
              endpoint_slice(9090, "10.0.0.1")]
    assert endpoint_urls(slices) == ["http://10.0.0.1:9090/queue", "http://10.0.0.2:9090/queue",
                                     "http://[fd00::1]:9091/queue"]


class FakeKube:
    """`Kube.list` and `Kube.watch` for EndpointSlices: the slices given (or an API error), and
    a watch that delivers what the test puts in `events` (or refuses with `watch_error`)."""

    def __init__(self, slices: list[dict[str, Any]] | KubeError,
                 watch_error: KubeError | None = None) -> None:
        self.slices = slices
        self.watch_error = watch_error
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.calls: list[tuple[str, str, str | None, str | None]] = []

    async def list(self, api_version: str, kind: str, namespace: str | None = None, *,
                   label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        self.calls.append((api_version, kind, namespace, label_selector))
        if isinstance(self.slices, KubeError):
            raise self.slices
        return self.slices, "1"

    async def watch(self, api_version: str, kind: str, namespace: str | None, *,
                    label_selector: str | None, resource_version: str,
                    timeout: int) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(("watch", kind, namespace, label_selector))
        if self.watch_error is not None:
            raise self.watch_error
        while True:
            yield await self.events.get()

    def lists(self) -> int:
        return sum(1 for call in self.calls if call[0] != "watch")


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> int:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return int(runner.addresses[0][1])

    yield start
    for r in runners:
        await r.cleanup()


def queue_app(body: Any, status: int = 200) -> web.Application:
    async def queue(_: web.Request) -> web.Response:
        return web.json_response(body, status=status)
    app = web.Application()
    app.router.add_get("/queue", queue)
    return app


ADMIN = "keda/keda-add-ons-http-interceptor-admin"
SELECTOR = "kubernetes.io/service-name=keda-add-ons-http-interceptor-admin"


@pytest.fixture
async def readers() -> AsyncIterator[list[InterceptorReader]]:
    """Readers made by a test; their watches are stopped after it."""
    made: list[InterceptorReader] = []
    yield made
    for r in made:
        await r.stop()


def make_reader(readers: list[InterceptorReader], kube: FakeKube,
                clock: Callable[[], float] = lambda: 0.0,
                telemetry: Telemetry | None = None) -> InterceptorReader:
    r = InterceptorReader(kube, Scraper(timeout=1.0), ADMIN, clock=clock,  # type: ignore[arg-type]
                          telemetry=telemetry)
    readers.append(r)
    return r


async def test_the_count_is_summed_over_every_interceptor_pod(
        serve: Serve, readers: list[InterceptorReader]) -> None:
    ports = [await serve(queue_app({"models/llama": {"Concurrency": n, "RPS": 0.1}})) for n in (2, 3)]
    # Each pod on its own port: one slice per port (a slice has one port list).
    kube = FakeKube([endpoint_slice(p, "127.0.0.1") for p in ports])
    r = make_reader(readers, kube)
    assert await r.in_flight("models", "llama") == 5
    assert await r.in_flight("models", "other") == 0  # nothing routed for it yet
    # One list of the admin Service's slices only (its namespace, its service-name label).
    assert kube.calls[0] == ("discovery.k8s.io/v1", "EndpointSlice", "keda", SELECTOR)


async def test_the_slices_are_watched_not_listed_on_each_reading(
        serve: Serve, readers: list[InterceptorReader]) -> None:
    port = await serve(queue_app({"models/llama": {"Concurrency": 1}}))
    other = await serve(queue_app({"models/llama": {"Concurrency": 2}}))
    kube, now = FakeKube([{**endpoint_slice(port, "127.0.0.1"), "metadata": {
        "name": "admin-a", "namespace": "keda", "resourceVersion": "1"}}]), [100.0]
    telemetry = Telemetry()
    r = make_reader(readers, kube, clock=lambda: now[0], telemetry=telemetry)
    assert await r.in_flight("models", "llama") == 1
    await r.in_flight("models", "qwen")  # one reading serves every model for ttl seconds
    await asyncio.sleep(0)  # the watch starts
    assert [c[0] for c in kube.calls] == ["discovery.k8s.io/v1", "watch"]
    assert kube.calls[1] == ("watch", "EndpointSlice", "keda", SELECTOR)
    # A second interceptor pod appears: the watch delivers its slice, no list is sent.
    kube.events.put_nowait({"type": "ADDED", "object": {**endpoint_slice(other, "127.0.0.1"),
                            "metadata": {"name": "admin-b", "namespace": "keda",
                                         "resourceVersion": "2"}}})
    await asyncio.sleep(0.01)
    now[0] += 2.5
    assert await r.in_flight("models", "llama") == 3
    assert kube.lists() == 1
    assert telemetry.interceptor_endpoints.labels("watch")._value.get() == 1
    assert telemetry.interceptor_endpoints.labels("list")._value.get() == 0


async def test_a_refused_watch_falls_back_to_listing_and_says_so_once(
        serve: Serve, readers: list[InterceptorReader], caplog: pytest.LogCaptureFixture) -> None:
    port = await serve(queue_app({"models/llama": {"Concurrency": 4}}))
    refused = KubeError(403, "Forbidden", 'endpointslices is forbidden: cannot "watch"',
                        "watch EndpointSlice")
    kube, now = FakeKube([endpoint_slice(port, "127.0.0.1")], watch_error=refused), [100.0]
    telemetry = Telemetry()
    r = make_reader(readers, kube, clock=lambda: now[0], telemetry=telemetry)
    with caplog.at_level(logging.WARNING, logger="modeldeploy.shell.interceptor"):
        assert await r.in_flight("models", "llama") == 4
        await asyncio.sleep(0.01)
        first = kube.lists()  # the informer's list (and this reading's, if the refusal came first)
        for _ in range(3):
            now[0] += 2.5
            assert await r.in_flight("models", "llama") == 4
            await asyncio.sleep(0.01)
    # The watch was asked for once, never retried; each later reading lists (the old way).
    assert [c[0] for c in kube.calls].count("watch") == 1
    assert kube.lists() == first + 3
    assert r.refused is not None and "forbidden" in r.refused
    assert len([m for m in caplog.messages if "cannot watch the endpoints" in m]) == 1
    assert telemetry.interceptor_endpoints.labels("list")._value.get() == 1
    assert telemetry.interceptor_endpoints.labels("watch")._value.get() == 0


async def test_a_failing_watch_relists_instead_of_falling_back(
        serve: Serve, readers: list[InterceptorReader]) -> None:
    port = await serve(queue_app({"models/llama": {"Concurrency": 1}}))
    kube = FakeKube([endpoint_slice(port, "127.0.0.1")],
                    watch_error=KubeError(500, "InternalError", "etcd timeout", "watch"))
    r = make_reader(readers, kube)
    assert r.informer is None  # nothing is watched before the first reading
    assert await r.in_flight("models", "llama") == 1
    assert r.informer is not None
    r.informer.backoff = 0.001
    while kube.lists() < 3:  # relists, as every informer does on errors
        await asyncio.sleep(0.005)
    assert r.refused is None


@pytest.mark.parametrize("case", ["no endpoints", "forbidden", "one pod fails", "not the add-on's JSON"])
async def test_anything_unread_is_none_never_zero(serve: Serve, case: str,
                                                  readers: list[InterceptorReader]) -> None:
    good = await serve(queue_app({"models/llama": {"Concurrency": 4}}))
    slices: list[dict[str, Any]] | KubeError = [endpoint_slice(good, "127.0.0.1")]
    if case == "no endpoints":
        slices = [endpoint_slice(good, "127.0.0.1", ready=False)]
    elif case == "forbidden":
        slices = KubeError(403, "Forbidden", "endpointslices is forbidden", "list EndpointSlice")
    elif case == "one pod fails":
        slices = [*slices, endpoint_slice(await serve(queue_app({}, status=500)), "127.0.0.1")]
    else:
        slices = [endpoint_slice(await serve(queue_app(["not", "a", "map"])), "127.0.0.1")]
    assert await make_reader(readers, FakeKube(slices)).in_flight("models", "llama") is None
