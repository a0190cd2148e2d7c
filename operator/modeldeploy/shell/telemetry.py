"""Prometheus metrics of the operator itself, served on `--metrics-port` (the chart's port 9090).

One registry per operator run (the tests start several in one process), served by a small
aiohttp app in kopf's event loop: `GET /metrics` in the Prometheus text format.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

logger = logging.getLogger(__name__)

_PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_API_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SCRAPE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def _code_class(status: int) -> str:
    return "error" if status == 0 else f"{status // 100}xx"


class Telemetry:
    """The counters and histograms; every update is thread-safe (API calls run in a pool)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.passes = Counter(
            "modeldeploy_reconcile_passes", "Reconcile passes by result (ok, failed, error).",
            ["result"], registry=r)
        self.pass_seconds = Histogram(
            "modeldeploy_reconcile_duration_seconds", "Duration of one reconcile pass.",
            buckets=_PASS_BUCKETS, registry=r)
        self.writes = Counter(
            "modeldeploy_writes", "Writes to the API by a reconcile pass (applies, deletes, "
            "status, scale).", registry=r)
        self.api_requests = Counter(
            "modeldeploy_api_requests", "Kubernetes API requests of the operator's client.",
            ["method", "resource", "code"], registry=r)
        self.api_seconds = Histogram(
            "modeldeploy_api_request_duration_seconds", "Duration of one API request.",
            ["method"], buckets=_API_BUCKETS, registry=r)
        self.decisions = Counter(
            "modeldeploy_autoscaling_decisions", "Autoscaling decisions by reason.",
            ["reason"], registry=r)
        self.scalings = Counter(
            "modeldeploy_autoscaling_scale_writes",
            "Replica changes written through the scale subresource.", ["direction"], registry=r)
        self.scrapes = Counter(
            "modeldeploy_vllm_scrapes", "Scrapes of vLLM pods' /metrics by result (ok or the "
            "reason it could not be read).", ["result"], registry=r)
        self.scrape_seconds = Histogram(
            "modeldeploy_vllm_scrape_duration_seconds", "Scraping the ready pods of one "
            "ModelDeployment (concurrently).", buckets=_SCRAPE_BUCKETS, registry=r)
        self.rollbacks = Counter(
            "modeldeploy_rollbacks", "Failed rollouts rolled back, by reason.", ["reason"],
            registry=r)
        self.restarts = Counter(
            "modeldeploy_stalled_starts_restarted", "Starting pods deleted because their start "
            "stalled (startup watchdog), by reason.", ["reason"], registry=r)
        self.models = Gauge(
            "modeldeploy_model_deployments", "ModelDeployments the operator serves.", registry=r)
        self.interceptor_endpoints = Gauge(
            "modeldeploy_interceptor_endpoints", "Where the KEDA HTTP add-on's interceptor "
            "endpoints are read from: 1 for the source in use (watch; list when RBAC refused "
            "the watch), 0 for the other; absent until a builtin scale-to-zero model reads them.",
            ["source"], registry=r)
        self._runner: web.AppRunner | None = None

    def api_request(self, method: str, resource: str, status: int, seconds: float) -> None:
        """`kube.RequestHook`."""
        self.api_requests.labels(method, resource, _code_class(status)).inc()
        self.api_seconds.labels(method).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def serve(self, host: str, port: int) -> int:
        """Serve `/metrics` on host:port (port 0: any free port); returns the bound port."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = port
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                bound = int(address[1])
                break
        logger.info("operator metrics on http://%s:%d/metrics", host, bound)
        return bound

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
