"""Reading the KEDA HTTP add-on interceptors' counts: every ready endpoint of the admin Service,
summed; anything unread is None (a hold), never zero. Loopback servers only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from modeldeploy.shell.interceptor import InterceptorReader, endpoint_urls
from modeldeploy.shell.kube import KubeError
from modeldeploy.shell.scrape import Scraper

Serve = Callable[[web.Application], Awaitable[int]]


def endpoint_slice(port: int, *addresses: str, ready: bool | None = True) -> dict[str, Any]:
    conditions = {} if ready is None else {"ready": ready}
    return {"ports": [{"name": "admin", "port": port}],
            "endpoints": [{"addresses": [a], "conditions": conditions} for a in addresses]}


def test_urls_are_the_ready_endpoints_of_every_slice() -> None:
    slices = [endpoint_slice(9090, "10.0.0.1", "10.0.0.2"), endpoint_slice(9090, "10.0.0.3", ready=False),
              endpoint_slice(9091, "fd00::1", ready=None), {"endpoints": [{"addresses": ["10.0.0.9"]}]},
              endpoint_slice(9090, "10.0.0.1")]
    assert endpoint_urls(slices) == ["http://10.0.0.1:9090/queue", "http://10.0.0.2:9090/queue",
                                     "http://[fd00::1]:9091/queue"]


class FakeKube:
    """`Kube.list` for EndpointSlices: the slices given, or an API error."""

    def __init__(self, slices: list[dict[str, Any]] | KubeError) -> None:
        self.slices = slices
        self.calls: list[tuple[str, str, str | None, str | None]] = []

    async def list(self, api_version: str, kind: str, namespace: str | None = None, *,
                   label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        self.calls.append((api_version, kind, namespace, label_selector))
        if isinstance(self.slices, KubeError):
            raise self.slices
        return self.slices, "1"


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


def reader(kube: FakeKube, clock: Callable[[], float] = lambda: 0.0) -> InterceptorReader:
    return InterceptorReader(kube, Scraper(timeout=1.0), "keda/keda-add-ons-http-interceptor-admin",  # type: ignore[arg-type]
                             clock=clock)


async def test_the_count_is_summed_over_every_interceptor_pod(serve: Serve) -> None:
    ports = [await serve(queue_app({"models/llama": {"Concurrency": n, "RPS": 0.1}})) for n in (2, 3)]
    # Each pod on its own port: one slice per port (a slice has one port list).
    kube = FakeKube([endpoint_slice(p, "127.0.0.1") for p in ports])
    r = reader(kube)
    assert await r.in_flight("models", "llama") == 5
    assert await r.in_flight("models", "other") == 0  # nothing routed for it yet
    assert kube.calls == [("discovery.k8s.io/v1", "EndpointSlice", "keda",
                           "kubernetes.io/service-name=keda-add-ons-http-interceptor-admin")]


async def test_one_reading_serves_every_model_for_ttl_seconds(serve: Serve) -> None:
    port = await serve(queue_app({"models/llama": {"Concurrency": 1}}))
    kube, now = FakeKube([endpoint_slice(port, "127.0.0.1")]), [100.0]
    r = reader(kube, clock=lambda: now[0])
    await r.in_flight("models", "llama")
    await r.in_flight("models", "qwen")
    assert len(kube.calls) == 1
    now[0] += 2.5
    await r.in_flight("models", "llama")
    assert len(kube.calls) == 2


@pytest.mark.parametrize("case", ["no endpoints", "forbidden", "one pod fails", "not the add-on's JSON"])
async def test_anything_unread_is_none_never_zero(serve: Serve, case: str) -> None:
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
    assert await reader(FakeKube(slices)).in_flight("models", "llama") is None
