"""Reading the KEDA HTTP add-on interceptors' request counts (mode builtin with scaleToZero).

At zero replicas nothing runs vLLM, so the only sign of demand is the interceptor holding the
request. Each interceptor pod serves its own counts on its admin port at `/queue`; the add-on's
scaler reads every pod behind the admin Service and sums them (kedacore/http-add-on
scaler/queue_pinger.go), and so does this reader: it follows the admin Service's EndpointSlices
(`kubernetes.io/service-name`, discovery.k8s.io/v1), reads `/queue` on each ready endpoint and
sums the model's count with `decisions.interceptor.interceptor_in_flight`.

The slices come from a watch-fed store (`informer.Informer`: list once, then watch, relist on
410 Gone or errors), scoped to the admin Service's namespace and `service-name` label: a pass
sends no API read. The watch starts lazily, on the first reading (only a builtin model with
scaleToZero asks), never at start-up. If RBAC refuses it (403, e.g. a ClusterRole from before
`watch` was granted), the refusal is logged once and each reading lists the slices instead
(`modeldeploy_interceptor_endpoints{source="list"}` says so).

Any failure (no endpoints, a pod that does not answer, RBAC) gives None: the decision then holds
(a model at zero stays there, a serving model is judged by vLLM alone), never a made-up zero.
One reading serves every model for `ttl` seconds: the interceptors are asked once per pass
burst, not once per model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..decisions.interceptor import interceptor_in_flight, queue_key
from .informer import Informer, Store
from .kube import Kube, KubeError
from .scrape import Scraper
from .telemetry import Telemetry

logger = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # set on EndpointSlices by Kubernetes
ENDPOINT_SLICE = ("discovery.k8s.io/v1", "EndpointSlice")
SYNC_SECONDS = 5.0  # a first reading waits this long for the watch's initial list


def endpoint_urls(slices: Sequence[Mapping[str, Any]], path: str = "/queue") -> list[str]:
    """`http://address:port/path` for every ready endpoint of the slices (the first port of
    each slice: the admin Service has one). Endpoints without `conditions.ready` count as
    ready, as the EndpointSlice API defines."""
    urls: list[str] = []
    for item in slices:
        ports = [p.get("port") for p in item.get("ports") or [] if isinstance(p, Mapping)]
        port = next((p for p in ports if isinstance(p, int)), None)
        if port is None:
            continue
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in str(address) else str(address)
                urls.append(f"http://{host}:{port}{path}")
    return sorted(set(urls))


class InterceptorReader:
    """The add-on's count of requests held or forwarded for one HTTPScaledObject."""

    def __init__(self, kube: Kube, fetcher: Scraper, service: str, *, ttl: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 telemetry: Telemetry | None = None) -> None:
        self.kube = kube
        self.fetcher = fetcher
        self.namespace, self.service = service.split("/", 1)
        self.ttl = ttl
        self.clock = clock
        self.telemetry = telemetry
        self.slices = Store()
        self.informer: Informer | None = None  # started by the first reading
        self.refused: str | None = None  # why the watch was refused (then: LIST each reading)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._read_at: float | None = None
        self._bodies: tuple[bytes, ...] | None = None

    @property
    def selector(self) -> str:
        return f"{SERVICE_NAME_LABEL}={self.service}"

    def _source(self, source: str) -> None:
        if self.telemetry is not None:
            for name in ("watch", "list"):
                self.telemetry.interceptor_endpoints.labels(name).set(name == source)

    def _start(self) -> asyncio.Task[None]:
        self.informer = Informer(self.kube, *ENDPOINT_SLICE, self.slices, namespace=self.namespace,
                                 label_selector=self.selector, stop_when_refused=True)
        self._task = asyncio.create_task(self._follow(self.informer),
                                         name=f"watch EndpointSlice {self.namespace}")
        self._source("watch")
        return self._task

    async def _follow(self, informer: Informer) -> None:
        try:
            await informer.run_forever()
        except KubeError as exc:  # only a refusal ends run_forever (stop_when_refused)
            self.refused = str(exc)
            self._source("list")
            logger.warning("cannot watch the endpoints of %s/%s (%s): listing them on each "
                           "reading instead; grant watch on discovery.k8s.io endpointslices",
                           self.namespace, self.service, exc)

    async def stop(self) -> None:
        """Stop the watch (operator shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _slices(self) -> list[dict[str, Any]]:
        """The admin Service's slices: from the watch-fed store once it has listed, else (RBAC
        refused the watch, or its first list is slow) from one LIST. Raises KubeError."""
        task = self._task if self._task is not None else self._start()
        synced = self.informer.synced if self.informer is not None else asyncio.Event()
        if not task.done() and not synced.is_set():
            waiting = asyncio.create_task(synced.wait())
            await asyncio.wait({task, waiting}, timeout=SYNC_SECONDS,
                               return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
        if not task.done() and synced.is_set():
            return list(self.slices)
        slices, _ = await self.kube.list(*ENDPOINT_SLICE, self.namespace,
                                         label_selector=self.selector)
        return slices

    async def in_flight(self, namespace: str, http_scaled_object: str) -> int | None:
        """Requests the interceptors hold or forward for `namespace/http_scaled_object`; None
        when they could not all be read."""
        bodies = await self._read()
        if bodies is None:
            return None
        return interceptor_in_flight(bodies, queue_key(namespace, http_scaled_object))

    async def _read(self) -> tuple[bytes, ...] | None:
        async with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl:
                self._bodies = await self._read_all()
                self._read_at = self.clock()
            return self._bodies

    async def _read_all(self) -> tuple[bytes, ...] | None:
        try:
            slices = await self._slices()
        except KubeError as exc:
            logger.warning("cannot list the endpoints of %s/%s: %s", self.namespace, self.service, exc)
            return None
        urls = endpoint_urls(slices)
        if not urls:
            logger.warning("no ready endpoint behind %s/%s: a model at zero cannot be woken",
                           self.namespace, self.service)
            return None
        answers = await asyncio.gather(*(self.fetcher.fetch(url) for url in urls))
        failed = [a for a in answers if isinstance(a, str)]
        if failed:
            logger.warning("interceptor count not read: %s", "; ".join(failed))
            return None
        return tuple(a for a in answers if isinstance(a, bytes))
