"""The one module that talks to the Kubernetes API (besides kopf's peering and login).

Built on `kubernetes_asyncio` (docs/decisions/kubernetes-client.md): its aiohttp transport
(the same HTTP stack as kopf, one connection pool, no thread pool capping concurrency), its
kubeconfig/in-cluster loaders and its dynamic client, which resolves every kind through API
discovery instead of a resource table of our own. Objects stay plain dicts: the operator renders
and reads raw JSON, so one generic path serves Deployments, LeaderWorkerSets and any other kind.

Writes:
- children: server-side apply (`application/apply-patch+yaml`, fieldManager `modeldeploy`;
  forced once the child is known to be ours, unforced when it is created, so that a foreign
  object at the child's name answers 409 instead of being taken over);
- deletions: background propagation with a uid precondition (never a re-created namesake);
- status: JSON merge patch of the `status` subresource, only the fields that changed.
Reads: the initial LIST of each informer, its WATCH, and API discovery (`shell.informer`);
the log tails of starting pods and download Jobs (`pod_log`, `shell.starts`: bounded by lines
and bytes, rate-limited per pod).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.dynamic import DynamicClient
from kubernetes_asyncio.dynamic.exceptions import ResourceNotFoundError
from yarl import URL

from ..api.base import rfc3339
from ..controller.children import ChildRef
from ..controller.events import EventSpec

logger = logging.getLogger(__name__)

FIELD_MANAGER = "modeldeploy"
MERGE = "application/merge-patch+json"
JSON_CONTENT = "application/json"
# kubernetes_asyncio's read buffer: one watch event may hold an object up to etcd's 1.5 MiB.
WATCH_READ_BUFFER = 2**21

Obj = dict[str, Any]
# Called after every API request: (HTTP method, resource plural, status code (0: no answer),
# seconds). `shell.telemetry` counts them.
RequestHook = Callable[[str, str, int, float], None]


class KubeError(Exception):
    """An API call that failed: HTTP status (0 when the connection failed), reason, message."""

    def __init__(self, status: int, reason: str, message: str, call: str) -> None:
        super().__init__(f"{call}: {status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message
        self.call = call

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def gone(self) -> bool:
        return self.status == 410


def _error(exc: ApiException, call: str) -> KubeError:
    reason, message = str(exc.reason or ""), ""
    try:
        body = json.loads(exc.body or "{}")
        reason = str(body.get("reason") or reason)
        message = str(body.get("message") or "")
    except (TypeError, ValueError):
        message = str(exc.body or "")[:200]
    return KubeError(int(exc.status or 0), reason, message[:1000], call)


def _with_body(status: int, reason: str | None, body: str) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = body.encode()
    return exc


def _now() -> str:
    return rfc3339(time.time())


def _read_environment_once(api: k8s.ApiClient, host: str) -> None:
    """Resolve the HTTPS_PROXY / NO_PROXY environment for the API server once, as client-go
    does, instead of per request.

    kubernetes_asyncio's session trusts the environment, so aiohttp looked up the proxy
    variables and ~/.netrc in a worker thread on every request: two thread round trips, ~0.2
    ms of CPU per request (measured 2026-11-30, aiohttp 3.14, docs/PERFORMANCE.md "Reconcile").
    The proxy (and its credentials) found now is passed explicitly; netrc is not read (the
    API server authenticates with the kubeconfig's token or certificate, never netrc)."""
    rest = api.rest_client
    if not rest.proxy:
        with contextlib.suppress(LookupError):
            proxy, auth = get_env_proxy_for_url(URL(host))
            rest.proxy = str(proxy)
            if auth is not None:
                rest.proxy_headers = {**(rest.proxy_headers or {}),
                                      "Proxy-Authorization": auth.encode()}
    session = rest.pool_manager
    connector = session.connector
    session.detach()  # the connector (pool size, TLS context) carries over
    rest.pool_manager = aiohttp.ClientSession(connector=connector, trust_env=False,
                                              read_bufsize=WATCH_READ_BUFFER)


class Kube:
    """Async API access on one aiohttp connection pool; every response is a plain dict."""

    def __init__(self, api: k8s.ApiClient, dynamic: DynamicClient, *, timeout: float,
                 on_request: RequestHook | None = None) -> None:
        self._api = api
        self._dynamic = dynamic
        self._timeout = timeout
        self._on_request = on_request
        self._resources: dict[tuple[str, str], Any] = {}
        self.identity = socket.gethostname()
        # Leader election (`shell.leader`) closes this gate on a standby replica: every write
        # below except the Lease's own is refused before it is sent.
        self.may_write: Callable[[], bool] = lambda: True

    @classmethod
    async def connect(cls, configuration: k8s.Configuration, *, connections: int,
                      timeout: float = 30.0, user_agent: str = "modeldeploy-operator",
                      on_request: RequestHook | None = None) -> Kube:
        """A client whose pool holds `connections` (the watches plus concurrent reconciles)."""
        configuration.connection_pool_maxsize = max(connections, 1)
        api = k8s.ApiClient(configuration)
        api.user_agent = user_agent
        _read_environment_once(api, str(configuration.host))
        # A discovery cache file of this process only: another operator (or test) on the same
        # server address must not hand us its view of which APIs are installed.
        cache = Path(tempfile.mkdtemp(prefix="modeldeploy-discovery-")) / "discovery.json"
        started = time.monotonic()
        try:
            dynamic = await DynamicClient(api, cache_file=str(cache))
        except ApiException as exc:
            await api.close()
            raise _error(exc, "discovery") from exc
        except (aiohttp.ClientError, OSError) as exc:
            await api.close()
            raise KubeError(0, type(exc).__name__, str(exc)[:300], "discovery") from exc
        if on_request is not None:
            on_request("GET", "discovery", 200, time.monotonic() - started)
        return cls(api, dynamic, timeout=timeout, on_request=on_request)

    async def close(self) -> None:
        await self._api.close()

    # --- discovery -------------------------------------------------------------------------

    async def resource(self, api_version: str, kind: str) -> Any:
        """The discovered resource of a kind; KubeError 404 when the cluster does not serve it."""
        key = (api_version, kind)
        if key not in self._resources:
            try:
                self._resources[key] = await self._dynamic.resources.get(
                    api_version=api_version, kind=kind)
            except ResourceNotFoundError as exc:
                raise KubeError(404, "NotFound", f"{api_version} {kind} is not served",
                                "discovery") from exc
            except ApiException as exc:
                raise _error(exc, "discovery") from exc
        return self._resources[key]

    async def served(self, api_version: str, kind: str) -> bool:
        """Whether discovery lists the kind (e.g. the LeaderWorkerSet CRD is installed)."""
        try:
            await self.resource(api_version, kind)
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def refresh_discovery(self) -> None:
        """Forget what discovery said (a CRD installed or removed since): re-read on next use."""
        self._resources.clear()
        await self._dynamic.resources.invalidate_cache()

    # --- transport -------------------------------------------------------------------------

    # 7 parameters: one request's parts, keyword-only past the kind; `params` go to the client.
    async def _call(self, method: str, api_version: str, kind: str, *, namespace: str | None,
                    name: str | None = None, subresource: str | None = None,
                    body: Any = None, **params: Any) -> Any:
        res = await self.resource(api_version, kind)
        path = res.path(name=name, namespace=namespace)
        if subresource:
            path = f"{path}/{subresource}"
        label = f"{res.name}/{subresource}" if subresource else res.name
        started, status = time.monotonic(), 0
        call = f"{method} {path}"
        params.setdefault("_request_timeout", self._timeout)
        try:
            response = await self._dynamic.request(method.lower(), path, body=body,
                                                   serialize=False, **params)
            status = int(response.status)
            if not 200 <= status <= 299:
                text = (await response.read()).decode("utf-8", "replace")
                response.release()
                raise _error(_with_body(status, response.reason, text), call)
            if params.get("watch"):
                return response
            data = await response.read()
            if subresource == "log":  # text/plain, the container's own output
                return data.decode("utf-8", "replace")
            return json.loads(data) if data else None
        except ApiException as exc:
            status = int(exc.status or 0)
            raise _error(exc, call) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise KubeError(0, type(exc).__name__, str(exc)[:300], call) from exc
        finally:
            if self._on_request is not None:
                self._on_request(method, label, status, time.monotonic() - started)

    # --- reads (informers only) ------------------------------------------------------------

    async def list(self, api_version: str, kind: str, namespace: str | None = None, *,
                   label_selector: str | None = None) -> tuple[list[Obj], str]:
        """Every object and the list's resourceVersion (where a watch resumes)."""
        result = await self._call("GET", api_version, kind, namespace=namespace,
                                  label_selector=label_selector)
        items: list[Obj] = list(result.get("items") or [])
        return items, str((result.get("metadata") or {}).get("resourceVersion") or "")

    async def watch(self, api_version: str, kind: str, namespace: str | None, *,
                    label_selector: str | None, resource_version: str,
                    timeout: int) -> AsyncIterator[Obj]:
        """Watch events ({type, object}) from `resource_version` until the server ends the
        stream (`timeout` seconds); an ERROR event raises KubeError (410: relist)."""
        response = await self._call(
            "GET", api_version, kind, namespace=namespace, label_selector=label_selector,
            resource_version=resource_version, timeout_seconds=timeout, watch="true",
            query_params=[("allowWatchBookmarks", "true")], _request_timeout=timeout + 30)
        call = f"WATCH {api_version} {kind}"
        try:
            while True:
                try:
                    line = await response.content.readline()
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    raise KubeError(0, type(exc).__name__, str(exc)[:300], call) from exc
                if not line:
                    return
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise KubeError(int(status.get("code") or 0), str(status.get("reason")),
                                    str(status.get("message"))[:300], call)
                yield event
        finally:
            response.release()

    async def pod_log(self, namespace: str, name: str, container: str, *, tail_lines: int,
                      limit_bytes: int) -> str:
        """The last `tail_lines` lines of a container's log, at most `limit_bytes` bytes
        (pods/log; KubeError when the pod or container is gone or not started yet)."""
        text: str = await self._call(
            "GET", "v1", "Pod", namespace=namespace, name=name, subresource="log",
            query_params=[("container", container), ("tailLines", str(tail_lines)),
                          ("limitBytes", str(limit_bytes))],
            header_params={"Accept": "text/plain, */*"})
        return text

    # --- the leader-election Lease (shell.leader; not gated) --------------------------------

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        """One object, or None when it does not exist."""
        try:
            result: Obj = await self._call("GET", api_version, kind, namespace=namespace,
                                           name=name)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        return result

    async def create(self, obj: Mapping[str, Any]) -> Obj:
        """POST; KubeError 409 when the name is taken."""
        meta = obj.get("metadata") or {}
        result: Obj = await self._call(
            "POST", str(obj.get("apiVersion")), str(obj.get("kind")),
            namespace=meta.get("namespace"), body=dict(obj), content_type=JSON_CONTENT)
        return result

    async def patch_if_unchanged(self, api_version: str, kind: str, namespace: str, name: str,
                                 resource_version: str, body: Mapping[str, Any]) -> Obj:
        """Merge patch with `resource_version` as precondition (KubeError 409 when the object
        changed since it was read): optimistic concurrency, as an update would have."""
        patch = {**body, "metadata": {"resourceVersion": resource_version}}
        result: Obj = await self._call("PATCH", api_version, kind, namespace=namespace,
                                       name=name, body=patch, content_type=MERGE)
        return result

    # --- writes ----------------------------------------------------------------------------

    def _check_leading(self, call: str) -> None:
        if not self.may_write():
            raise KubeError(0, "NotLeader", "this replica is on standby", call)

    async def apply(self, obj: Mapping[str, Any], field_manager: str = FIELD_MANAGER, *,
                    force: bool = True) -> Obj:
        """Server-side apply; `force` takes over fields another manager set (ours to own)."""
        meta = obj.get("metadata") or {}
        self._check_leading("apply")
        result: Obj = await self._call(
            "PATCH", str(obj.get("apiVersion")), str(obj.get("kind")),
            namespace=meta.get("namespace"), name=meta.get("name"), body=dict(obj),
            content_type="application/apply-patch+yaml", field_manager=field_manager,
            force_conflicts="true" if force else None)
        return result

    async def scale(self, ref: ChildRef, replicas: int, field_manager: str,
                    resource_version: str | None = None) -> Obj:
        """Set `spec.replicas` through the scale subresource (merge patch); returns the Scale.

        With `resource_version`, only if the object is still that version (409 otherwise): a
        decision made on a count someone changed meanwhile is not written."""
        self._check_leading("scale")
        body: Obj = {"spec": {"replicas": int(replicas)}}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        result: Obj = await self._call(
            "PATCH", ref.api_version, ref.kind, namespace=ref.namespace, name=ref.name,
            subresource="scale", body=body, content_type=MERGE, field_manager=field_manager)
        return result

    async def delete(self, ref: ChildRef, uid: str) -> None:
        self._check_leading("delete")
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                "preconditions": {"uid": uid}}
        try:
            await self._call("DELETE", ref.api_version, ref.kind, namespace=ref.namespace,
                             name=ref.name, body=body, content_type=JSON_CONTENT)
        except KubeError as exc:
            if not exc.not_found:
                raise

    async def patch_status(self, api_version: str, kind: str, namespace: str | None, name: str,
                           status: Mapping[str, Any]) -> Obj:
        self._check_leading("patch status")
        result: Obj = await self._call(
            "PATCH", api_version, kind, namespace=namespace, name=name, subresource="status",
            body={"status": dict(status)}, content_type=MERGE)
        return result

    async def emit(self, involved: Mapping[str, Any], event: EventSpec) -> None:
        """A core/v1 Event on a ModelDeployment (errors are logged, never raised)."""
        meta = involved.get("metadata") or {}
        if not self.may_write():
            return  # a standby replica reports nothing
        now = _now()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
            "involvedObject": {"apiVersion": involved.get("apiVersion"),
                               "kind": involved.get("kind"), "name": meta.get("name"),
                               "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "type": event.type, "reason": event.reason, "message": event.message,
            "source": {"component": FIELD_MANAGER}, "reportingComponent": FIELD_MANAGER,
            "reportingInstance": self.identity, "firstTimestamp": now, "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._call("POST", "v1", "Event", namespace=meta.get("namespace"), body=body,
                             content_type=JSON_CONTENT)
        except KubeError as exc:
            logger.warning("could not emit event %s on %s: %s", event.reason, meta.get("name"),
                           exc)
