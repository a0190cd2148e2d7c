"""The operator's long-lived parts: API client, reconcile context, controller, kopf settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf
import kubernetes

from ..api import GROUP
from ..controller.upgrades import UpgradeSlots
from .autoscaler import Autoscaler
from .config import OperatorConfig
from .controller import Controller, PoolStatusWriter
from .hub import HubClient
from .kube import Kube
from .reconcile import ReconcileContext
from .scrape import Scraper
from .sources import ApiPresence, CapacitySource, FactsSource, PoolSource
from .telemetry import Telemetry

logger = logging.getLogger(__name__)

FINALIZER = f"{GROUP}/finalizer"
MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=modeldeploy"
# Children watched (server-side label filter) so that their changes reconcile the owner at once.
CHILD_RESOURCES: tuple[tuple[str, str, str], ...] = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("", "v1", "persistentvolumeclaims"),
    ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
    ("monitoring.coreos.com", "v1", "servicemonitors"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("keda.sh", "v1alpha1", "scaledobjects"),
)


def load_client_configuration(config: OperatorConfig) -> kubernetes.client.Configuration:
    """kubeconfig when given, else in-cluster when running in a pod, else the default file."""
    client_config = kubernetes.client.Configuration()
    loaders: Any = kubernetes.config  # untyped
    if config.kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        loaders.load_incluster_config(client_configuration=client_config)
    else:
        loaders.load_kube_config(
            config_file=str(config.kubeconfig) if config.kubeconfig else None,
            context=config.context, client_configuration=client_config)
    return client_config


def connection_info(client_config: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    """The same endpoint and credentials for kopf's watches as for our own calls."""
    if client_config.refresh_api_key_hook is not None:
        client_config.refresh_api_key_hook(client_config)
    # The client's own view of its Authorization header ("Bearer <token>"), whichever key
    # (BearerToken, authorization) and prefix the loader used.
    bearer: Mapping[str, Any] = client_config.auth_settings().get("BearerToken") or {}
    scheme, _, token = str(bearer.get("value") or "").partition(" ")
    return kopf.ConnectionInfo(
        server=client_config.host,
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
    for group, _, plural in CHILD_RESOURCES:
        settings.watching.label_selectors[group, plural] = MANAGED_BY_SELECTOR


class OperatorRuntime:
    """Built once per `run_operator`; kopf handlers delegate to it."""

    def __init__(self, config: OperatorConfig,
                 client_config: kubernetes.client.Configuration) -> None:
        self.config = config
        self.client_config = client_config
        self.kube: Kube | None = None
        self.controller: Controller | None = None
        self.pool_status: PoolStatusWriter | None = None
        self.telemetry = Telemetry()
        self.scraper: Scraper | None = None
        self.metrics_port: int | None = None  # bound port of the operator's metrics server
        self._loops: list[asyncio.Task[None]] = []

    def login(self) -> kopf.ConnectionInfo:
        return connection_info(self.client_config)

    async def start(self, settings: kopf.OperatorSettings) -> None:
        configure_kopf(settings, self.config)
        cfg = self.config
        if cfg.metrics_port is not None:
            self.metrics_port = await self.telemetry.serve(cfg.metrics_address, cfg.metrics_port)
        self.kube = Kube.connect(self.client_config, workers=cfg.api_workers,
                                 timeout=cfg.request_timeout, connect_timeout=cfg.connect_timeout,
                                 user_agent=cfg.user_agent,
                                 on_request=self.telemetry.api_request)
        self.scraper = Scraper(port=cfg.vllm_metrics_port, timeout=cfg.scrape_timeout,
                               max_bytes=cfg.scrape_max_bytes, concurrency=cfg.scrape_concurrency)
        hub = None if cfg.offline else HubClient(endpoint=cfg.hub_endpoint,
                                                 timeout=cfg.hub_timeout,
                                                 cache_dir=cfg.hub_cache_dir)
        ctx = ReconcileContext(
            kube=self.kube, facts=FactsSource(hub.fetch if hub else None),
            pools=PoolSource(self.kube, cfg.cache_ttl), apis=ApiPresence(self.kube, cfg.cache_ttl),
            render=cfg.render, emit_events=cfg.emit_events,
            # Nodes and cluster-wide pods are not readable in a namespaced install.
            capacity=CapacitySource(self.kube, cfg.cache_ttl) if cfg.clusterwide else None,
            autoscaler=Autoscaler(self.scraper, self.telemetry), telemetry=self.telemetry,
            # Every model in flight is reconciled at least once per resync: an entry older
            # than three resyncs belongs to a model that is gone.
            upgrades=UpgradeSlots(cfg.max_concurrent_upgrades, 3 * cfg.resync_interval))
        self.controller = Controller(ctx, cfg)
        self._loops.append(asyncio.create_task(self.controller.resync_forever(), name="resync"))
        self._loops.append(asyncio.create_task(self.controller.scrape_forever(), name="scrape"))
        if cfg.clusterwide:
            self.pool_status = PoolStatusWriter(ctx, cfg.pool_status_interval)
            self._loops.append(asyncio.create_task(self.pool_status.run_forever(),
                                                   name="gpupool-status"))
        logger.info("modeldeploy operator started (%s)", "all namespaces" if cfg.clusterwide
                    else ", ".join(cfg.namespaces))

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
        if self.controller is not None:
            await self.controller.stop()
        if self.scraper is not None:
            await self.scraper.close()
        await self.telemetry.stop()
        if self.kube is not None:
            self.kube.close()

    async def model_event(self, event: Mapping[str, Any]) -> None:
        if self.controller is not None:
            await self.controller.on_model_event(event)

    def child_event(self, event: Mapping[str, Any]) -> None:
        if self.controller is not None:
            self.controller.on_child_event(event)

    def pool_event(self) -> None:
        if self.controller is not None:
            self.controller.on_pool_event()
        if self.pool_status is not None:
            self.pool_status.poke()

    def probe(self) -> dict[str, int]:
        ctl = self.controller
        return {"models": len(ctl.bodies), "passes": ctl.passes, "writes": ctl.writes} if ctl \
            else {}
