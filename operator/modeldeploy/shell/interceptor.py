"""Reading the KEDA HTTP add-on interceptors' request counts (mode builtin with scaleToZero).

At zero replicas nothing runs vLLM, so the only sign of demand is the interceptor holding the
request. Each interceptor pod serves its own counts on its admin port at `/queue`; the add-on's
scaler reads every pod behind the admin Service and sums them (kedacore/http-add-on
scaler/queue_pinger.go), and so does this reader: it lists the admin Service's EndpointSlices
(`kubernetes.io/service-name`, discovery.k8s.io/v1), reads `/queue` on each ready endpoint and
sums the model's count with `decisions.interceptor.interceptor_in_flight`.

Any failure (no endpoints, a pod that does not answer, RBAC) gives None: the decision then holds
(a model at zero stays there, a serving model is judged by vLLM alone), never a made-up zero.
One reading serves every model for `ttl` seconds: the interceptors are asked once per pass
burst, not once per model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..decisions.interceptor import interceptor_in_flight, queue_key
from .kube import Kube, KubeError
from .scrape import Scraper

logger = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # set on EndpointSlices by Kubernetes


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
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self.fetcher = fetcher
        self.namespace, self.service = service.split("/", 1)
        self.ttl = ttl
        self.clock = clock
        self._lock = asyncio.Lock()
        self._read_at: float | None = None
        self._bodies: tuple[bytes, ...] | None = None

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
            slices, _ = await self.kube.list("discovery.k8s.io/v1", "EndpointSlice", self.namespace,
                                             label_selector=f"{SERVICE_NAME_LABEL}={self.service}")
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
