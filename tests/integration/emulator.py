"""A Kubernetes API emulator for the integration tier.

`kmock.KubernetesEmulator` (the kopf author's mock server) stores objects and serves
list/watch/get/create/patch/delete with plain dict merging. The operator relies on more than
that; this subclass adds exactly those semantics, each covered by tests/integration/
test_emulator.py:

- bearer-token authentication (401 without the kubeconfig's token);
- typed resources (kind, scope, subresources) and discovery of them; list `kind`,
  `resourceVersion`; a global resourceVersion on every write; `generation` that bumps on
  spec changes only; `uid`, `creationTimestamp`; `generateName`;
- PATCH by content type: merge-patch, strategic-merge (as merge; 415 on custom resources),
  server-side apply (`application/apply-patch+yaml`: create-or-merge, `fieldManager`
  required, fields the manager stopped applying are pruned); no-op writes change nothing
  (no new resourceVersion, no watch event);
- `/status` and `/scale` subresources (status ignored on the main resource and vice versa);
  `spec.replicas` of Deployments and LeaderWorkerSets defaults to 1 when a write leaves it out;
- label- and field-selector filtering for list and watch;
- watch: resume from a resourceVersion (410 Gone when it was compacted), `timeoutSeconds`;
- finalizers and deletionTimestamp; ownerReference cascade (background propagation,
  synchronous here) and `propagationPolicy: Orphan`;
- fault injection (HTTP errors, 410 on watch, dropped connections) and a request log;
- containers' logs (`pods/log`, tailLines and limitBytes) from what a test wrote
  (`pod_logs`, tests/integration/podlogs.py): there is no kubelet.

It runs on 127.0.0.1 in its own thread (see `EmulatorServer`), so tests talk to it with the
real `kubernetes` client and the operator talks to it with kopf's own HTTP stack.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import attrs
import kmock
import yaml

from .podlogs import PodLogs, is_log_request
from .semantics import (
    JSON,
    SelectorError,
    apply_patch,
    get_path,
    merge_patch,
    parse_field_selector,
    parse_label_selector,
    set_path,
    spec_of,
    strip_server_metadata,
)

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclasses.dataclass(frozen=True)
class Kind:
    """A resource the emulator serves, as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: frozenset[str] = frozenset({"status"})
    builtin: bool = True
    # Scale subresource paths (as in a CRD's `subresources.scale`).
    spec_replicas_path: str = "spec.replicas"
    status_replicas_path: str = "status.replicas"
    label_selector_path: str | None = "status.selector"
    # The API server defaults `spec.replicas` to 1 when a write leaves it out (Deployment; the
    # LeaderWorkerSet CRD's schema default).
    default_replicas: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> kmock.resource:
        return kmock.resource(self.group, self.version, self.plural)


def _kinds() -> list[Kind]:
    status, scale = frozenset({"status"}), frozenset({"status", "scale"})
    return [
        Kind("", "v1", "namespaces", "Namespace", namespaced=False),
        Kind("", "v1", "nodes", "Node", namespaced=False),
        Kind("", "v1", "pods", "Pod", subresources=frozenset({"status", "log"})),
        Kind("", "v1", "services", "Service"),
        Kind("", "v1", "configmaps", "ConfigMap", subresources=frozenset()),
        Kind("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
        Kind("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False,
             subresources=frozenset()),
        Kind("", "v1", "events", "Event", subresources=frozenset()),
        Kind("events.k8s.io", "v1", "events", "Event", subresources=frozenset()),
        Kind("apps", "v1", "deployments", "Deployment", subresources=scale,
             label_selector_path="spec.selector", default_replicas=True),
        Kind("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", subresources=status),
        Kind("batch", "v1", "jobs", "Job", subresources=status),
        Kind("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
             subresources=status),
        Kind("coordination.k8s.io", "v1", "leases", "Lease", subresources=frozenset()),
        Kind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", subresources=frozenset()),
        Kind("apiextensions.k8s.io", "v1", "customresourcedefinitions",
             "CustomResourceDefinition", namespaced=False),
        Kind("modeldeploy.dev", "v1alpha1", "modeldeployments", "ModelDeployment",
             subresources=scale, builtin=False),
        Kind("modeldeploy.dev", "v1alpha1", "gpupools", "GPUPool", namespaced=False,
             builtin=False),
    ]


LWS_KIND = Kind("leaderworkerset.x-k8s.io", "v1", "leaderworkersets", "LeaderWorkerSet",
                subresources=frozenset({"status", "scale"}), builtin=False,
                default_replicas=True)
SERVICE_MONITOR_KIND = Kind("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor",
                            subresources=frozenset(), builtin=False)
KEDA_KIND = Kind("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject",
                 subresources=frozenset({"status"}), builtin=False)
KEDA_HTTP_KIND = Kind("http.keda.sh", "v1alpha1", "httpscaledobjects", "HTTPScaledObject",
                      subresources=frozenset({"status"}), builtin=False)
PEERING_KINDS = (
    Kind("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering", namespaced=False,
         subresources=frozenset(), builtin=False),
    Kind("kopf.dev", "v1", "kopfpeerings", "KopfPeering", subresources=frozenset(),
         builtin=False),
)


@dataclasses.dataclass(frozen=True)
class LoggedRequest:
    """One request as the emulator saw it, with its RBAC-style verb."""

    method: str
    verb: str | None
    group: str | None
    version: str | None
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    params: Mapping[str, str]
    content_type: str
    user_agent: str
    status: int | None = None
    at: float = 0.0  # time.monotonic() when the response was ready

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS

    @property
    def rbac_resource(self) -> str | None:
        if self.resource is None:
            return None
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclasses.dataclass
class Fault:
    """Answer the next `times` matching requests with an error (or drop the connection).

    `status` 410 on a watch streams a 410 Gone ERROR event, as the API server does.
    """

    status: int | None = 500
    verb: str | None = None  # get, list, watch, create, patch, delete, ...
    resource: str | None = None  # plural
    subresource: str | None = None
    name: str | None = None
    times: int = 1
    drop: bool = False
    user_agent_prefix: str | None = None

    def matches(self, req: LoggedRequest) -> bool:
        return (
            (self.verb is None or self.verb == req.verb)
            and (self.resource is None or self.resource == req.resource)
            and (self.subresource is None or self.subresource == req.subresource)
            and (self.name is None or self.name == req.name)
            and (self.user_agent_prefix is None
                 or req.user_agent.startswith(self.user_agent_prefix))
        )


_STATUS_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed", 409: "Conflict",
    410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
    500: "InternalError", 503: "ServiceUnavailable",
}


def api_error(status: int, message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=status, reason=_STATUS_REASONS.get(status, "Error"),
                                 message=message, details={"causes": [{"message": message}]})


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_DROP = object()  # sentinel for watch queues: abort the connection
_END = object()  # sentinel for watch queues: end the stream cleanly


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """kmock's KubernetesEmulator with the semantics the operator relies on."""

    watch_history: int = 2000
    token: str | None = "emulator-token"  # required as "Authorization: Bearer <token>"

    _kinds: dict[tuple[str, str, str], Kind] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _applied: dict[tuple[Any, ...], JSON] = attrs.field(factory=dict, init=False)
    _events: dict[tuple[str, str, str], collections.deque[tuple[int, JSON]]] = attrs.field(
        factory=dict, init=False)
    _compacted: dict[tuple[str, str, str], int] = attrs.field(factory=dict, init=False)
    _watchers: dict[tuple[str, str, str], set[asyncio.Queue[Any]]] = attrs.field(
        factory=lambda: collections.defaultdict(set), init=False)
    _faults: list[Fault] = attrs.field(factory=list, init=False)
    _log: list[LoggedRequest] = attrs.field(factory=list, init=False)
    _guard: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    pod_logs: PodLogs = attrs.field(factory=PodLogs, init=False)  # what containers printed

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for kind in _kinds():
            self.register(kind)

    # --- resources ---------------------------------------------------------------------------

    def register(self, kind: Kind) -> None:
        """Serve a resource (like installing its CRD)."""
        self._kinds[(kind.group, kind.version, kind.plural)] = kind
        self.resources[kind.resource] = kmock.ResourceInfo(
            kind=kind.kind, singular=kind.kind.lower(), namespaced=kind.namespaced,
            verbs=set(VERBS), subresources=set(kind.subresources))

    def unregister(self, kind: Kind) -> None:
        """Stop serving a resource (like removing its CRD); its objects are dropped."""
        self._kinds.pop((kind.group, kind.version, kind.plural), None)
        if kind.resource in self.resources:
            del self.resources[kind.resource]
        for key in [k for k in self.objects if k[0] == kind.resource]:
            del self.objects[key]

    def _get_resources(self) -> list[kmock.resource]:
        # Only registered kinds are discoverable (an unregistered CRD is really gone).
        return [kind.resource for kind in self._kinds.values()]

    def kind_of(self, group: str, version: str, plural: str) -> Kind:
        kind = self._kinds.get((group, version, plural))
        if kind is None:
            raise kmock.KubernetesResourceNotFoundError()
        return kind

    # --- observability for tests -------------------------------------------------------------

    @property
    def log(self) -> list[LoggedRequest]:
        with self._guard:
            return list(self._log)

    def log_mark(self) -> int:
        with self._guard:
            return len(self._log)

    def requests_since(self, mark: int) -> list[LoggedRequest]:
        with self._guard:
            return list(self._log[mark:])

    def inject(self, fault: Fault) -> Fault:
        with self._guard:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._guard:
            self._faults.clear()

    def _take_fault(self, req: LoggedRequest) -> Fault | None:
        with self._guard:
            for fault in self._faults:
                if fault.times > 0 and fault.matches(req):
                    fault.times -= 1
                    return fault
            self._faults[:] = [f for f in self._faults if f.times > 0]
        return None

    def peek(self, kind: Kind, namespace: str | None, name: str) -> JSON | None:
        """The stored object (a deep-enough copy for reading) or None."""
        key = (kind.resource, namespace if kind.namespaced else None, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return self.objects[key].raw

    # --- request entry -----------------------------------------------------------------------

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        logged = self._describe(request)
        response: aiohttp.web.StreamResponse | None = None
        fault: Fault | None = None
        try:
            if self.token is not None and \
                    request.headers.get("Authorization") != f"Bearer {self.token}":
                response = await self._render_error(api_error(401, "Unauthorized"))
                return response
            fault = self._take_fault(logged)
            if fault is not None:
                response = await self._inject_fault(request, fault)
                return response
            if request.resource is not None and request.resource.plural:
                response = await self._dispatch(request, logged)
            elif request.resource is not None and request.resource.version:
                # "/apis/group/version" with or without the trailing slash clients send.
                response = aiohttp.web.json_response(await self._serve_version(request))
            else:  # discovery and non-API paths: kmock's scaffold serves them
                response = await kmock.KubernetesScaffold._handle(self, request)
            return response
        except kmock.KubernetesError as exc:
            response = await self._render_error(exc)
            return response
        finally:
            dropped = fault is not None and fault.drop
            status = 0 if dropped or response is None else response.status
            with self._guard:
                self._log.append(dataclasses.replace(logged, status=status, at=time.monotonic()))

    async def _dispatch(self, request: kmock.Request,
                        logged: LoggedRequest) -> aiohttp.web.StreamResponse:
        """Serve a resource request. kmock's DSL reactions are bypassed for these on purpose:
        the state machine here is the emulated API server; faults come from `inject()`."""
        self._kind_for(request)  # 404 for resources that are not served
        if logged.verb == "watch":
            return await self._stream(request, await self._serve_watch(request))
        if logged.verb == "get" and is_log_request(request):
            return await self._serve_log(request)
        handlers = {"list": self._serve_list, "get": self._serve_fetch,
                    "create": self._serve_create, "patch": self._serve_update,
                    "delete": self._serve_delete}
        handler = handlers.get(logged.verb or "")
        if handler is None:
            raise api_error(405, f"the emulator does not serve {logged.method} here")
        payload, status = await handler(request)
        return aiohttp.web.json_response(payload, status=status)

    async def _stream(self, request: kmock.Request,
                      events: AsyncIterator[JSON]) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = "application/json"
        try:
            await response.prepare(raw)  # headers now: an idle watch is still a live stream
            async for event in events:
                await response.write(json_line(event))
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away, or the connection was dropped on purpose
        finally:
            await events.aclose()
        return response

    def _describe(self, request: kmock.Request) -> LoggedRequest:
        res = request.resource
        method = request.method.value if request.method is not None else ""
        params = dict(request.params)
        if res is None:
            verb = None
        elif method == "GET":
            verb = "watch" if params.get("watch") in ("true", "1") else (
                "get" if request.name else "list")
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method)
            if method == "DELETE":
                verb = "delete" if request.name else "deletecollection"
        headers = {k.lower(): v for k, v in request.headers.items()}
        return LoggedRequest(
            method=method, verb=verb,
            group=res.group if res else None, version=res.version if res else None,
            resource=res.plural if res else None, subresource=request.subresource,
            namespace=request.namespace, name=request.name, params=params,
            content_type=headers.get("content-type", "").split(";")[0].strip(),
            user_agent=headers.get("user-agent", ""),
        )

    async def _inject_fault(self, request: kmock.Request,
                            fault: Fault) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        if fault.drop:
            if raw is not None and raw.transport is not None:
                raw.transport.abort()
            return aiohttp.web.Response(status=500)
        status = fault.status or 500
        if request.action == kmock.action.WATCH and status == 410:
            assert raw is not None
            response = aiohttp.web.StreamResponse(status=200)
            response.content_type = "application/json"
            await response.prepare(raw)
            await response.write(json_line({"type": "ERROR", "object": self._gone_status()}))
            await response.write_eof()
            return response
        return await self._render_error(api_error(status, f"injected fault ({status})"))

    @staticmethod
    def _gone_status() -> JSON:
        return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                "code": 410, "reason": "Expired",
                "message": "too old resource version"}

    # --- helpers -----------------------------------------------------------------------------

    def _kind_for(self, request: kmock.Request) -> Kind:
        res = request.resource
        assert res is not None
        return self.kind_of(res.group or "", res.version or "", res.plural or "")

    def _key(self, kind: Kind, namespace: str | None, name: str) -> tuple[Any, ...]:
        return (kind.resource, namespace if kind.namespaced else None, name)

    def _live(self, key: tuple[Any, ...]) -> JSON | None:
        if key not in self.objects or self.objects[key].deleted:
            return None
        return self.objects[key].raw

    def _iter_live(self, kind: Kind, namespace: str | None) -> Iterator[tuple[Any, JSON]]:
        for key, obj in list(self.objects.items()):
            res, ns, _ = key
            if res == kind.resource and not obj.deleted and (namespace is None or ns == namespace):
                yield key, obj.raw

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _publish(self, kind: Kind, event_type: str, obj: JSON) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        event = {"type": event_type, "object": obj}
        ident = (kind.group, kind.version, kind.plural)
        log = self._events.setdefault(ident, collections.deque())
        log.append((rv, event))
        while len(log) > self.watch_history:
            evicted_rv, _ = log.popleft()
            self._compacted[ident] = evicted_rv
        for queue in list(self._watchers[ident]):
            queue.put_nowait(event)

    def compact(self, kind: Kind) -> None:
        """Forget the watch history of a resource: watches from older versions get 410 Gone."""
        ident = (kind.group, kind.version, kind.plural)
        self._compacted[ident] = self._rv
        self._events.pop(ident, None)

    def _store(self, kind: Kind, key: tuple[Any, ...], obj: JSON, event_type: str) -> JSON:
        if key in self.objects:
            self.objects[key].create(obj)
        else:
            self.objects[key] = obj
        self._publish(kind, event_type, obj)
        return obj

    def _finish(self, kind: Kind, key: tuple[Any, ...], old: JSON, new: JSON,
                *, subresource: str | None) -> JSON:
        """Common tail of every update: server fields, generation, no-op detection, GC."""
        if subresource == "status":  # only the status changes through /status
            candidate = {k: v for k, v in old.items() if k != "status"}
            if new.get("status") is not None:
                candidate["status"] = new["status"]
            new = candidate
        elif "status" in kind.subresources:  # and the status does not change through the rest
            new = {k: v for k, v in new.items() if k != "status"}
            if "status" in old:
                new["status"] = old["status"]
        meta = dict(new.get("metadata") or {})
        old_meta = old["metadata"]
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "name", "namespace",
                      "generation", "resourceVersion"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        if old_meta.get("deletionTimestamp"):
            # Once deletion started, finalizers can be removed but not added.
            meta["finalizers"] = [f for f in meta.get("finalizers", [])
                                  if f in old_meta.get("finalizers", [])]
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        new = self._defaulted(kind, {**new, "metadata": meta, "apiVersion": kind.api_version,
                                     "kind": kind.kind})
        if spec_of(new) != spec_of(old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if new == old:
            return old  # a no-op write: no new resourceVersion, no watch event
        meta["resourceVersion"] = self._next_rv()
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(kind, key, new)
            return new
        return self._store(kind, key, new, "MODIFIED")

    @staticmethod
    def _defaulted(kind: Kind, obj: JSON) -> JSON:
        if kind.default_replicas and isinstance(obj.get("spec"), Mapping) and \
                obj["spec"].get("replicas") is None:
            return {**obj, "spec": {**obj["spec"], "replicas": 1}}
        return obj

    def _remove(self, kind: Kind, key: tuple[Any, ...], obj: JSON, *,
                orphan: bool = False) -> None:
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": self._next_rv()}}
        self.objects[key].create(obj)
        self.objects[key].delete()
        self._applied = {k: v for k, v in self._applied.items() if k[0] != key}
        self._publish(kind, "DELETED", obj)
        self._collect_dependents(obj["metadata"].get("uid"), orphan=orphan)

    def _collect_dependents(self, uid: str | None, *, orphan: bool) -> None:
        """Garbage collection: drop the owner reference; delete dependents left ownerless."""
        if not uid:
            return
        for key, obj in list(self.objects.items()):
            if obj.deleted:
                continue
            raw = obj.raw
            refs = raw.get("metadata", {}).get("ownerReferences") or []
            if not any(ref.get("uid") == uid for ref in refs):
                continue
            kind = self.kind_of(key[0].group, key[0].version, key[0].plural)
            remaining = [ref for ref in refs if ref.get("uid") != uid]
            if remaining or orphan:
                meta = {**raw["metadata"], "ownerReferences": remaining,
                        "resourceVersion": self._next_rv()}
                if not remaining:
                    meta.pop("ownerReferences")
                self._store(kind, key, {**raw, "metadata": meta}, "MODIFIED")
            else:
                self._delete(kind, key, raw, orphan=False)

    def _delete(self, kind: Kind, key: tuple[Any, ...], obj: JSON, *, orphan: bool) -> JSON:
        meta = obj["metadata"]
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return obj
            new = {**obj, "metadata": {**meta, "deletionTimestamp": _now(),
                                       "resourceVersion": self._next_rv()}}
            return self._store(kind, key, new, "MODIFIED")
        self._remove(kind, key, obj, orphan=orphan)
        return obj

    def _parse_body(self, request: kmock.Request) -> Any:
        content_type = self._describe(request).content_type
        if "yaml" in content_type:
            try:
                return yaml.safe_load(request.text) if request.text else None
            except yaml.YAMLError as exc:
                raise api_error(400, f"invalid YAML body: {exc}") from None
        return request.data

    def _selectors(self, request: kmock.Request) -> tuple[Any, Any]:
        try:
            labels = parse_label_selector(request.params.get("labelSelector", ""))
            fields = parse_field_selector(request.params.get("fieldSelector", ""))
        except SelectorError as exc:
            raise api_error(400, str(exc)) from None
        return labels, fields

    # --- verbs -------------------------------------------------------------------------------

    async def _serve_list(self, request: kmock.Request) -> tuple[JSON, int]:
        kind = self._kind_for(request)
        if request.subresource:
            raise api_error(405, "list of a subresource")
        labels, fields = self._selectors(request)
        async with self._lock:
            items = [obj for _, obj in self._iter_live(kind, request.namespace)
                     if labels(obj["metadata"].get("labels") or {}) and fields(obj)]
            rv = str(self._rv)
        items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        return {"apiVersion": kind.api_version, "kind": f"{kind.kind}List",
                "metadata": {"resourceVersion": rv}, "items": items}, 200

    async def _named(self, request: kmock.Request) -> tuple[Kind, JSON]:
        """The live object a request names (404 when there is none)."""
        kind = self._kind_for(request)
        assert request.name is not None
        async with self._lock:
            obj = self._live(self._key(kind, request.namespace, request.name))
        if obj is None:
            raise api_error(404, f'{kind.plural} "{request.name}" not found')
        return kind, obj

    async def _serve_fetch(self, request: kmock.Request) -> tuple[JSON, int]:
        kind, obj = await self._named(request)
        if request.subresource == "scale" and "scale" in kind.subresources:
            return self._scale_of(kind, obj), 200
        if request.subresource and request.subresource not in kind.subresources:
            raise api_error(404, f"subresource {request.subresource} not found")
        return obj, 200

    async def _serve_log(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        _, pod = await self._named(request)
        text = self.pod_logs.serve(pod, dict(request.params), api_error)
        return aiohttp.web.Response(text=text, content_type="text/plain")

    def _scale_of(self, kind: Kind, obj: JSON) -> JSON:
        meta = obj["metadata"]
        status: JSON = {"replicas": get_path(obj, kind.status_replicas_path) or 0}
        selector = get_path(obj, kind.label_selector_path) if kind.label_selector_path else None
        if isinstance(selector, Mapping):  # a Deployment's spec.selector object
            labels = selector.get("matchLabels") or {}
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        if selector:
            status["selector"] = selector
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": get_path(obj, kind.spec_replicas_path) or 0},
                "status": status}

    async def _serve_create(self, request: kmock.Request) -> tuple[JSON, int]:
        kind = self._kind_for(request)
        body = self._parse_body(request)
        if not isinstance(body, Mapping):
            raise api_error(400, "the body of a create must be an object")
        async with self._lock:
            obj = self._create(kind, request.namespace, body)
        return obj, 201

    def _create(self, kind: Kind, namespace: str | None, body: Mapping[str, Any]) -> JSON:
        obj = strip_server_metadata(body)
        meta = obj["metadata"]
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise api_error(422, "metadata.name or metadata.generateName is required")
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        if kind.namespaced:
            if meta.get("namespace") not in (None, namespace):
                raise api_error(400, "the namespace of the object does not match the URL")
            if namespace is None:
                raise api_error(400, "a namespaced object needs a namespace")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        key = self._key(kind, namespace, meta["name"])
        if self._live(key) is not None:
            raise api_error(409, f'{kind.plural} "{meta["name"]}" already exists')
        if "status" in kind.subresources:
            obj.pop("status", None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1,
                    resourceVersion=self._next_rv())
        obj.update(apiVersion=kind.api_version, kind=kind.kind)
        obj = self._defaulted(kind, obj)
        return self._store(kind, key, obj, "ADDED")

    async def _serve_update(self, request: kmock.Request) -> tuple[JSON, int]:
        kind = self._kind_for(request)
        assert request.name is not None
        if request.subresource and request.subresource not in kind.subresources:
            raise api_error(404, f"subresource {request.subresource} not found")
        logged = self._describe(request)
        body = self._parse_body(request)
        async with self._lock:
            key = self._key(kind, request.namespace, request.name)
            live = self._live(key)
            if logged.content_type == "application/apply-patch+yaml":
                manager = request.params.get("fieldManager")
                if not manager:
                    raise api_error(400, "fieldManager: Required value: is required for apply")
                if not isinstance(body, Mapping) or body.get("kind") != kind.kind or \
                        body.get("apiVersion") != kind.api_version:
                    raise api_error(400, "apply needs an object with the right apiVersion and kind")
                name = (body.get("metadata") or {}).get("name")
                if name != request.name:
                    raise api_error(400, "the name of the object does not match the URL")
                ident = (key, manager, request.subresource)
                if live is None:
                    if request.subresource:
                        raise api_error(404, f'{kind.plural} "{request.name}" not found')
                    created = self._create(kind, request.namespace, body)
                    self._applied[ident] = strip_server_metadata(body)
                    return created, 201
                self._check_rv(body, live)
                applied = strip_server_metadata(body)
                new = apply_patch(live, applied, self._applied.get(ident))
                self._applied[ident] = applied
            else:
                if live is None:
                    raise api_error(404, f'{kind.plural} "{request.name}" not found')
                if logged.content_type == "application/strategic-merge-patch+json" and \
                        not kind.builtin:
                    raise api_error(415, "strategic merge patch is not supported for "
                                         "custom resources")
                if logged.content_type not in ("application/merge-patch+json",
                                               "application/strategic-merge-patch+json"):
                    raise api_error(415, f"unsupported patch type {logged.content_type!r}")
                if not isinstance(body, Mapping):
                    raise api_error(400, "the body of a merge patch must be an object")
                self._check_rv(body, live)
                if request.subresource == "scale":
                    replicas = get_path(body, "spec.replicas")
                    new = set_path(live, kind.spec_replicas_path, replicas) \
                        if replicas is not None else live
                    result = self._finish(kind, key, live, new, subresource=None)
                    return self._scale_of(kind, result), 200
                new = merge_patch(live, body)
            result = self._finish(kind, key, live, new, subresource=request.subresource)
        return result, 200

    @staticmethod
    def _check_rv(body: Mapping[str, Any], live: JSON) -> None:
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and str(wanted) != live["metadata"]["resourceVersion"]:
            raise api_error(409, "the object has been modified; please apply your changes "
                                 "to the latest version and try again")

    async def _serve_delete(self, request: kmock.Request) -> tuple[JSON, int]:
        kind = self._kind_for(request)
        assert request.name is not None
        body = request.data if isinstance(request.data, Mapping) else {}
        policy = request.params.get("propagationPolicy") or body.get("propagationPolicy")
        async with self._lock:
            key = self._key(kind, request.namespace, request.name)
            live = self._live(key)
            if live is None:
                raise api_error(404, f'{kind.plural} "{request.name}" not found')
            return self._delete(kind, key, live, orphan=policy == "Orphan"), 200

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[JSON]:
        """Validate and snapshot now (errors become HTTP errors); then stream events."""
        kind = self._kind_for(request)
        labels, fields = self._selectors(request)
        since = request.params.get("resourceVersion") or "0"
        if not since.isdigit():
            raise api_error(400, f"invalid resourceVersion {since!r}")
        timeout = float(request.params.get("timeoutSeconds") or 0) or None
        ident = (kind.group, kind.version, kind.plural)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        async with self._lock:
            if since == "0":
                backlog = [{"type": "ADDED", "object": obj}
                           for _, obj in self._iter_live(kind, request.namespace)]
            elif int(since) < self._compacted.get(ident, 0):
                backlog = [{"type": "ERROR", "object": self._gone_status()}]
            else:
                backlog = [event for rv, event in self._events.get(ident, ())
                           if rv > int(since)]
            self._watchers[ident].add(queue)

        def visible(event: JSON) -> bool:
            obj = event["object"]
            meta = obj.get("metadata", {})
            if request.namespace is not None and meta.get("namespace") != request.namespace:
                return False
            if request.name is not None and meta.get("name") != request.name:
                return False
            return bool(labels(meta.get("labels") or {}) and fields(obj))

        async def events() -> AsyncIterator[JSON]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else None
            try:
                for event in backlog:
                    if event["type"] == "ERROR":
                        yield event
                        return
                    if visible(event):
                        yield event
                while True:
                    remaining = deadline - loop.time() if deadline is not None else None
                    if remaining is not None and remaining <= 0:
                        return
                    try:
                        item = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        return
                    if item is _END:
                        return
                    if item is _DROP:
                        raw = request._raw_request
                        if raw is not None and raw.transport is not None:
                            raw.transport.abort()
                        return
                    if visible(item):
                        yield item
            finally:
                self._watchers[ident].discard(queue)

        return events()

    def _broadcast(self, item: object) -> int:
        count = 0
        for queues in self._watchers.values():
            for queue in list(queues):
                queue.put_nowait(item)
                count += 1
        return count

    async def end_watches(self) -> int:
        """End every open watch stream cleanly (as the server does on its own timeout)."""
        return self._broadcast(_END)

    async def drop_watches(self) -> int:
        """Abort every open watch connection (a dropped TCP connection)."""
        return self._broadcast(_DROP)

    def open_watches(self) -> int:
        return sum(len(q) for q in self._watchers.values())


def json_line(payload: Mapping[str, Any]) -> bytes:
    """One watch event on the wire: a JSON object and a newline."""
    return json.dumps(payload).encode() + b"\n"


class EmulatorServer:
    """Runs an `Emulator` on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, emulator: Emulator | None = None, kinds: Iterable[Kind] = ()) -> None:
        self.emulator = emulator if emulator is not None else Emulator()
        for kind in kinds:
            self.emulator.register(kind)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="emulator", daemon=True)
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        async with self.emulator:
            server = aiohttp.test_utils.RawTestServer(self.emulator, host="127.0.0.1", port=0)
            await server.start_server()
            self.port = int(server.port or 0)
            self._ready.set()
            try:
                await self._stopping.wait()
                await self.emulator.end_watches()
                await asyncio.sleep(0)
            finally:
                await server.close()

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"the emulator did not start: {self._error!r}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout)

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine in the emulator's loop (e.g. `emulator.drop_watches()`)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": self.emulator.token}}],
            "contexts": [{"name": "emulator", "context": {
                "cluster": "emulator", "user": "emulator", "namespace": namespace}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
