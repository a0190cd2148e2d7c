"""The operator's one view of the cluster: watch-fed stores of every kind it reads.

- ModelDeployments (all namespaces, or each served namespace);
- owned children (label `app.kubernetes.io/managed-by=modeldeploy`), one store per kind;
  the optional kinds (LeaderWorkerSet, ServiceMonitor, KEDA ScaledObject, HTTPScaledObject)
  only while API discovery lists them; discovery is re-read every `discovery_interval` and on
  demand;
- pods: cluster-wide (GPU capacity counts every pod bound to a GPU node) or, in a namespaced
  install, ours only (serving pods and the shared cache's download pods, both labelled
  managed-by modeldeploy); trimmed to what the operator reads;
- StorageClasses (cluster-wide installs only): whether the shared cache's claim can be
  ReadWriteMany (`decisions.cache.storage_problem`);
- nodes and GPUPools: cluster-wide installs only (cluster-scoped reads need cluster rights);
  a namespaced install reads its pools from the ConfigMap labelled `modeldeploy.dev/gpu-pools`
  in the operator's own namespace (controller.pools.config), never the packaged catalog.

Reconcile passes read these stores only: after the initial lists, a converged operator sends
no read but its watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from ..api import API_VERSION, GPUPool
from ..controller.children import NAME_LABEL, ChildKinds, ChildRef
from ..controller.pods import ClusterCapacity
from ..controller.pools.config import POOLS_SELECTOR, pools_from_config_maps
from ..controller.pools.discovery import discover_pools
from ..errors import InvalidSpec
from ..render.cache import is_shared
from ..validation import validate_gpu_pool
from .informer import Informer, OnChange, Store
from .kube import Kube, KubeError

T = TypeVar("T")
logger = logging.getLogger(__name__)

Obj = dict[str, Any]
Kind = tuple[str, str]  # (apiVersion, kind)

MODEL_DEPLOYMENT: Kind = (API_VERSION, "ModelDeployment")
GPU_POOL: Kind = (API_VERSION, "GPUPool")
POD: Kind = ("v1", "Pod")
NODE: Kind = ("v1", "Node")
CONFIG_MAP: Kind = ("v1", "ConfigMap")
LEADER_WORKER_SET: Kind = ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
SERVICE_MONITOR: Kind = ("monitoring.coreos.com/v1", "ServiceMonitor")
SCALED_OBJECT: Kind = ("keda.sh/v1alpha1", "ScaledObject")
HTTP_SCALED_OBJECT: Kind = ("http.keda.sh/v1alpha1", "HTTPScaledObject")
STORAGE_CLASS: Kind = ("storage.k8s.io/v1", "StorageClass")
# Children every cluster serves, then the optional ones (watched while discovery lists them).
CORE_CHILDREN: tuple[Kind, ...] = (
    ("apps/v1", "Deployment"), ("v1", "Service"), ("policy/v1", "PodDisruptionBudget"),
    ("v1", "PersistentVolumeClaim"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("batch/v1", "Job"))
OPTIONAL_CHILDREN: tuple[Kind, ...] = (LEADER_WORKER_SET, SERVICE_MONITOR, SCALED_OBJECT,
                                       HTTP_SCALED_OBJECT)
MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=modeldeploy"


def trim_pod(pod: Mapping[str, Any]) -> Obj:
    """What rollouts, the autoscaler and capacity read of a pod (not volumes, env, ...)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}

    def containers(key: str) -> list[Obj]:
        return [{"name": c.get("name"), "resources": c.get("resources") or {}}
                for c in spec.get(key) or []]

    return {"metadata": {k: meta[k] for k in ("name", "namespace", "uid", "labels",
                                              "annotations", "deletionTimestamp",
                                              "resourceVersion") if k in meta},
            "spec": {"nodeName": spec.get("nodeName"), "containers": containers("containers"),
                     "initContainers": containers("initContainers")},
            "status": pod.get("status") or {}}


def trim_node(node: Mapping[str, Any]) -> Obj:
    """Labels, schedulability and GPUs of a node (not its heartbeats: they change every few
    seconds and would make every node event look like a capacity change)."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    spec = node.get("spec") or {}
    return {"metadata": {"name": meta.get("name"), "labels": meta.get("labels") or {}},
            "spec": {"unschedulable": bool(spec.get("unschedulable")),
                     "taints": spec.get("taints") or []},  # discovered pools tolerate them
            "status": {"allocatable": status.get("allocatable") or {},
                       "capacity": status.get("capacity") or {}}}


def trim_storage_class(obj: Mapping[str, Any]) -> Obj:
    """Name, annotations (the default-class one) and provisioner: what the cache check reads."""
    meta = obj.get("metadata") or {}
    return {"metadata": {"name": meta.get("name"), "annotations": meta.get("annotations") or {}},
            "provisioner": obj.get("provisioner")}


def trim_model(obj: Mapping[str, Any]) -> Obj:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


@dataclass
class Callbacks:
    """Who hears about changes: a ModelDeployment, one of its children or pods, the cluster."""

    model: OnChange = lambda obj: None
    owned: Callable[[str, str], None] = lambda namespace, name: None
    cluster: Callable[[], None] = lambda: None


@dataclass
class ClusterView:
    """Stores, their informers and the installed optional APIs; see the module docstring."""

    kube: Kube
    namespaces: tuple[str, ...]  # empty: all namespaces
    pools_namespace: str | None = None  # namespaced install: where the pools ConfigMap lives
    watch_timeout: int = 300
    discovery_interval: float = 300.0
    callbacks: Callbacks = field(default_factory=Callbacks)
    stores: dict[Kind, Store] = field(default_factory=dict)
    kinds: ChildKinds = field(
        default_factory=lambda: ChildKinds(leader_worker_set=False, service_monitor=False))
    _informers: dict[Kind, list[Informer]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _discovered_at: float = 0.0
    _discovering: asyncio.Task[None] | None = None
    # Views derived from whole stores (capacity, pools), kept until one of their stores changes.
    _derived: dict[str, tuple[tuple[int, ...], Any]] = field(default_factory=dict)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    # --- start / stop ----------------------------------------------------------------------

    def _watch(self, kind: Kind, on_change: OnChange, store: Store,
               label_selector: str | None = None, cluster_scoped: bool = False,
               scopes: tuple[str | None, ...] | None = None) -> None:
        if scopes is None:
            scopes = (None,) if self.clusterwide or cluster_scoped else self.namespaces
        informers = [Informer(self.kube, kind[0], kind[1], store, namespace=ns,
                              label_selector=label_selector, on_change=on_change,
                              watch_timeout=self.watch_timeout) for ns in scopes]
        self.stores[kind] = store
        self._informers[kind] = informers
        for informer in informers:
            self._tasks.append(asyncio.create_task(informer.run_forever(),
                                                   name=f"watch {kind[1]} {informer.namespace}"))

    async def start(self) -> None:
        """Discover the optional APIs, start every informer, wait for their first lists."""
        self.kinds = await self._discover()
        self._watch(MODEL_DEPLOYMENT, self.callbacks.model, Store(trim_model))
        for kind in CORE_CHILDREN + self._optional(self.kinds):
            self._watch(kind, self._child_changed, Store(), MANAGED_BY_SELECTOR)
        if self.clusterwide:
            self._watch(POD, self._pod_changed, Store(trim_pod))
            self._watch(NODE, self._cluster_changed, Store(trim_node), cluster_scoped=True)
            self._watch(GPU_POOL, self._cluster_changed, Store(trim_model), cluster_scoped=True)
            self._watch(STORAGE_CLASS, self._cluster_changed, Store(trim_storage_class),
                        cluster_scoped=True)
        else:
            self._watch(POD, self._pod_changed, Store(trim_pod), MANAGED_BY_SELECTOR)
            if self.pools_namespace:  # the GPU pools ConfigMap, in the operator's namespace
                self._watch(CONFIG_MAP, self._cluster_changed, Store(), POOLS_SELECTOR,
                            scopes=(self.pools_namespace,))
        self._tasks.append(asyncio.create_task(self._rediscover_forever(), name="discovery"))
        await self.synced()

    async def synced(self) -> None:
        for informers in list(self._informers.values()):
            for informer in informers:
                await informer.synced.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # --- discovery -------------------------------------------------------------------------

    @staticmethod
    def _optional(kinds: ChildKinds) -> tuple[Kind, ...]:
        served = (kinds.leader_worker_set, kinds.service_monitor, kinds.scaled_object,
                  kinds.http_scaled_object)
        return tuple(k for k, on in zip(OPTIONAL_CHILDREN, served, strict=True) if on)

    async def _discover(self) -> ChildKinds:
        self._discovered_at = time.monotonic()
        lws, monitors, keda, keda_http = [await self.kube.served(*kind) for kind in OPTIONAL_CHILDREN]
        return ChildKinds(leader_worker_set=lws, service_monitor=monitors, scaled_object=keda,
                          http_scaled_object=keda_http)

    async def rediscover(self) -> None:
        """Re-read discovery; start watching an optional kind installed since."""
        await self.kube.refresh_discovery()
        kinds = await self._discover()
        for kind in self._optional(kinds):
            if kind not in self._informers:
                self._watch(kind, self._child_changed, Store(), MANAGED_BY_SELECTOR)
        for informers in self._informers.values():
            for informer in informers:
                await informer.synced.wait()
        if kinds != self.kinds:
            logger.info("installed APIs changed: %s", kinds)
            self.kinds = kinds
            self.callbacks.cluster()

    def rediscover_soon(self, min_age: float) -> None:
        """A ModelDeployment needs an API discovery did not list: look again, in the background,
        unless discovery ran less than `min_age` seconds ago."""
        if time.monotonic() - self._discovered_at < min_age or \
                (self._discovering is not None and not self._discovering.done()):
            return
        self._discovering = asyncio.create_task(self._rediscover_logged(), name="discovery now")
        self._tasks.append(self._discovering)

    async def _rediscover_logged(self) -> None:
        try:
            await self.rediscover()
        except KubeError as exc:
            logger.warning("API discovery failed: %s", exc)

    async def _rediscover_forever(self) -> None:
        while True:
            await asyncio.sleep(self.discovery_interval)
            try:
                await self.rediscover()
            except KubeError as exc:
                logger.warning("API discovery failed: %s", exc)

    # --- change routing --------------------------------------------------------------------

    def _child_changed(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        shared = is_shared(obj)  # every owner of the shared model cache hears of it
        for ref in meta.get("ownerReferences") or []:
            if (ref.get("controller") or shared) and ref.get("kind") == MODEL_DEPLOYMENT[1] and \
                    ref.get("apiVersion") == API_VERSION:
                self.callbacks.owned(str(meta.get("namespace")), str(ref.get("name")))

    def _pod_changed(self, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(NAME_LABEL)
        if owner:
            self.callbacks.owned(str(meta.get("namespace")), str(owner))

    def _cluster_changed(self, obj: Mapping[str, Any]) -> None:
        self.callbacks.cluster()

    # --- reads (from the stores only) ------------------------------------------------------

    def model(self, namespace: str, name: str) -> Obj | None:
        return self.stores[MODEL_DEPLOYMENT].get(namespace, name)

    def store_of(self, api_version: str, kind: str) -> Store | None:
        return self.stores.get((api_version, kind))

    def children(self, refs: list[ChildRef]) -> dict[ChildRef, Obj | None]:
        """What exists at each candidate child name (None: absent or not watched)."""
        out: dict[ChildRef, Obj | None] = {}
        for ref in refs:
            store = self.store_of(ref.api_version, ref.kind)
            out[ref] = store.get(ref.namespace, ref.name) if store is not None else None
        return out

    def shared_children(self, namespace: str) -> dict[ChildRef, Obj | None]:
        """The shared model caches' claims and Jobs of a namespace (their names come from the
        plan, so they are not among the candidate children)."""
        out: dict[ChildRef, Obj | None] = {}
        for kind in (("v1", "PersistentVolumeClaim"), ("batch/v1", "Job")):
            for obj in self.stores.get(kind) or ():
                meta = obj.get("metadata") or {}
                if meta.get("namespace") == namespace and is_shared(obj):
                    out[ChildRef(kind[0], kind[1], namespace, str(meta.get("name")))] = obj
        return out

    def pods_of(self, namespace: str, name: str) -> list[Obj]:
        return [p for p in self.stores[POD]
                if (p.get("metadata") or {}).get("namespace") == namespace
                and ((p.get("metadata") or {}).get("labels") or {}).get(NAME_LABEL) == name]

    def cluster_revision(self) -> tuple[int, ...]:
        """Changes whenever a pod, a node, a GPUPool, the pools ConfigMap or a StorageClass
        changes (what a decision reads besides the ModelDeployment and its children)."""
        return tuple(self.stores[kind].revision for kind in (POD, NODE, GPU_POOL, CONFIG_MAP,
                                                             STORAGE_CLASS)
                     if kind in self.stores)

    def _derive(self, name: str, kinds: tuple[Kind, ...], compute: Callable[[], T]) -> T:
        """`compute()`, remembered until one of the stores of `kinds` changes (a pass reads
        these views; a resync of N objects would otherwise rebuild them N times)."""
        revisions = tuple(self.stores[k].revision for k in kinds if k in self.stores)
        held = self._derived.get(name)
        if held is not None and held[0] == revisions:
            return cast(T, held[1])
        value = compute()
        self._derived[name] = (revisions, value)
        return value
    def storage_classes(self) -> dict[str, Obj] | None:
        """StorageClasses by name; None in a namespaced install (not readable there)."""
        store = self.stores.get(STORAGE_CLASS)
        if store is None:
            return None
        return {str((c.get("metadata") or {}).get("name")): c for c in store}

    def pods_in(self, namespace: str) -> list[Obj]:
        return [p for p in self.stores[POD] if (p.get("metadata") or {}).get("namespace") == namespace]

    def capacity(self) -> ClusterCapacity | None:
        """Nodes and unfinished pods; None in a namespaced install (capacity unknown)."""
        if not self.clusterwide:
            return None
        return self._derive("capacity", (NODE, POD), lambda: ClusterCapacity(
            tuple(self.stores[NODE]),
            tuple(p for p in self.stores[POD]
                  if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))))

    def pools(self) -> list[GPUPool]:
        """GPUPool objects; else pools discovered from Node labels; in a namespaced install the
        pools of the pools ConfigMap (none without it: the packaged catalog is for offline
        planning only). Validated once per change of those stores."""
        return list(self._derive("pools", (GPU_POOL, NODE, CONFIG_MAP), self._pools))

    def _pools(self) -> list[GPUPool]:
        if not self.clusterwide:
            pools, problems = pools_from_config_maps(list(self.stores.get(CONFIG_MAP) or []))
            for problem in problems:
                logger.warning("pools ConfigMap: %s (ignored)", problem)
            return pools
        pools = []
        for obj in self.stores[GPU_POOL]:
            try:
                pools.append(validate_gpu_pool(obj))
            except InvalidSpec as exc:
                logger.warning("GPUPool %s is invalid and ignored: %s",
                               (obj.get("metadata") or {}).get("name"), exc)
        if pools:
            return sorted(pools, key=lambda p: p.name)
        return discover_pools(list(self.stores[NODE]))
