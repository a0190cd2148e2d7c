"""The operator's long-lived parts: API client, cluster view, controller, kopf settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf
from kubernetes_asyncio import client as k8s

from ..api import GROUP
from ..controller.rollout.upgrades import UpgradeSlots
from .autoscaler import Autoscaler
from .config import OperatorConfig
from .controller import Controller, PoolStatusWriter
from .hub import HubClient
from .interceptor import InterceptorReader
from .kube import Kube
from .leader import LeaderElector
from .preflight import load_client_configuration as load_client_configuration  # re-exported
from .reconcile import ReconcileContext
from .scrape import Scraper
from .sources import FactsSource
from .starts import LogLimits, StartWatch
from .telemetry import Telemetry
from .view import Callbacks, ClusterView

logger = logging.getLogger(__name__)

FINALIZER = f"{GROUP}/finalizer"
# Connections beyond the concurrent reconciles: one long-lived watch per informer.
WATCH_CONNECTIONS = 32


async def connection_info(client_config: k8s.Configuration) -> kopf.ConnectionInfo:
    """The same endpoint and credentials for kopf (peering, login) as for our own calls."""
    # The client's own view of its Authorization header ("Bearer <token>"), whichever key
    # (BearerToken, authorization) and prefix the loader used.
    bearer: Mapping[str, Any] = (await client_config.auth_settings()).get("BearerToken") or {}
    scheme, _, token = str(bearer.get("value") or "").partition(" ")
    return kopf.ConnectionInfo(
        server=str(client_config.host),
        ca_path=client_config.ssl_ca_cert or None,
        insecure=not client_config.verify_ssl,
        username=client_config.username or None,
        password=client_config.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=client_config.cert_file or None,
        private_key_path=client_config.key_file or None,
    )


def configure_kopf(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """kopf state under our own group, explicit timeouts, no kopf-side events."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.posting.enabled = False  # the operator emits its own events, one per change
    settings.scanning.disabled = True  # no CRD/namespace watching: no extra RBAC
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.client_watch_timeout
    settings.watching.connect_timeout = config.connect_timeout
    settings.networking.request_timeout = config.request_timeout
    settings.networking.connect_timeout = config.connect_timeout


class OperatorRuntime:
    """Built once per `run_operator`; kopf's activity handlers delegate to it."""

    def __init__(self, config: OperatorConfig, client_config: k8s.Configuration, *,
                 wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.wall = wall  # the clock of decisions, epoch s
        self.client_config = client_config
        self.kube: Kube | None = None
        self.view: ClusterView | None = None
        self.controller: Controller | None = None
        self.pool_status: PoolStatusWriter | None = None
        self.telemetry = Telemetry()
        self.scraper: Scraper | None = None
        self.metrics_port: int | None = None  # bound port of the operator's metrics server
        self.elector: LeaderElector | None = None  # --peering: only the Lease holder writes
        self.interceptor: InterceptorReader | None = None  # its watch starts on first reading
        self._loops: list[asyncio.Task[None]] = []

    async def login(self) -> kopf.ConnectionInfo:
        return await connection_info(self.client_config)

    async def start(self, settings: kopf.OperatorSettings) -> None:
        configure_kopf(settings, self.config)
        cfg = self.config
        if cfg.metrics_port is not None:
            self.metrics_port = await self.telemetry.serve(cfg.metrics_address, cfg.metrics_port)
        self.kube = await Kube.connect(
            self.client_config, connections=cfg.max_concurrent_reconciles + WATCH_CONNECTIONS,
            timeout=cfg.request_timeout, user_agent=cfg.user_agent,
            on_request=self.telemetry.api_request)
        self.scraper = Scraper(port=cfg.vllm_metrics_port, timeout=cfg.scrape_timeout,
                               max_bytes=cfg.scrape_max_bytes, concurrency=cfg.scrape_concurrency)
        hub = None if cfg.offline else HubClient(endpoint=cfg.hub_endpoint,
                                                 timeout=cfg.hub_timeout,
                                                 cache_dir=cfg.hub_cache_dir)
        self.view = ClusterView(self.kube, cfg.namespaces, watch_timeout=cfg.watch_server_timeout,
                                discovery_interval=cfg.discovery_interval,
                                pools_namespace=cfg.pools_namespace)
        facts = FactsSource(hub.fetch if hub else None)
        # A namespaced install cannot list the add-on's endpoints (decide stalls instead).
        self.interceptor = InterceptorReader(self.kube, self.scraper, cfg.keda_http_admin_service,
                                             telemetry=self.telemetry) if cfg.clusterwide else None
        ctx = ReconcileContext(
            kube=self.kube, view=self.view, facts=facts,
            render=cfg.render, emit_events=cfg.emit_events,
            autoscaler=Autoscaler(self.scraper, self.telemetry), telemetry=self.telemetry,
            interceptor=self.interceptor,
            rediscover_after=cfg.resync_interval, wall=self.wall,
            starts=StartWatch(self.kube, LogLimits(cfg.start_log_interval,
                                                   cfg.start_log_tail_lines,
                                                   cfg.start_log_max_bytes)),
            # Every model in flight is reconciled at least once per resync: an entry older
            # than three resyncs belongs to a model that is gone.
            upgrades=UpgradeSlots(cfg.max_concurrent_upgrades, 3 * cfg.resync_interval))
        self.controller = Controller(ctx, cfg)
        if cfg.clusterwide:
            self.pool_status = PoolStatusWriter(ctx, cfg.pool_status_interval)
        if cfg.peering:
            self.elector = self._elector(self.kube)
            ctx.leading = self.elector.may_write
        self.view.callbacks = Callbacks(model=self.controller.on_model_change,
                                        owned=self.controller.on_owned_change,
                                        cluster=self._cluster_changed)
        # The catalog is parsed in the background: start-up (and readiness) never waits for it.
        self._loops.append(asyncio.create_task(facts.warm_up(), name="catalog warm-up"))
        await self.view.start()  # discovery first: the elector resolves the Lease through it
        if self.elector is not None:
            self._loops.append(asyncio.create_task(self.elector.run_forever(), name="election"))
        self._loops.append(asyncio.create_task(self.controller.resync_forever(), name="resync"))
        self._loops.append(asyncio.create_task(self.controller.scrape_forever(), name="scrape"))
        if self.pool_status is not None:
            self._loops.append(asyncio.create_task(self.pool_status.run_forever(),
                                                   name="gpupool-status"))
        logger.info("modeldeploy operator started (%s)", "all namespaces" if cfg.clusterwide
                    else ", ".join(cfg.namespaces))

    def _elector(self, kube: Kube) -> LeaderElector:
        """The Lease lives in the operator's own namespace (POD_NAMESPACE, from the chart)."""
        cfg = self.config
        if not cfg.pools_namespace:
            raise ValueError("--peering needs the operator's namespace for its Lease: set "
                             "POD_NAMESPACE (the chart does)")
        elector = LeaderElector(kube, cfg.pools_namespace, cfg.peering_name,
                                duration=cfg.lease_duration,
                                retry_period=cfg.lease_retry_period,
                                on_started_leading=self._cluster_changed)
        kube.may_write = elector.may_write
        return elector

    def _cluster_changed(self) -> None:
        if self.controller is not None:
            self.controller.on_cluster_change()
        if self.pool_status is not None:
            self.pool_status.poke()

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
        if self.elector is not None:
            await self.elector.release()
        if self.view is not None:
            await self.view.stop()
        if self.interceptor is not None:
            await self.interceptor.stop()
        if self.controller is not None:
            await self.controller.stop()
        if self.scraper is not None:
            await self.scraper.close()
        await self.telemetry.stop()
        if self.kube is not None:
            await self.kube.close()

    def probe(self) -> dict[str, int]:
        ctl = self.controller
        return {"models": len(ctl.keys()), "passes": ctl.passes, "writes": ctl.writes} if ctl \
            else {}
