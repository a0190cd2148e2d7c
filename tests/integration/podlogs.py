"""Container logs for the API emulator: `GET /api/v1/namespaces/{ns}/pods/{name}/log`.

The emulator has no kubelet, so a test writes what a container printed (`PodLogs.write`) and
the emulator serves it as the API server proxies a kubelet's answer: text/plain, the pod's
container named by `container` (required when the pod has several, as the API server
requires), `tailLines` (the last N lines), `limitBytes` (at most N bytes of that),
`sinceSeconds` not modelled (the operator does not send it). Errors as the API server's:
404 for an unknown pod, 400 for a container the pod does not have or that has not started.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import kmock


class PodLogs:
    """What each (namespace, pod, container) printed; thread-safe (tests write, the server reads)."""

    def __init__(self) -> None:
        self._text: dict[tuple[str, str, str], str] = {}
        self._guard = threading.Lock()

    def write(self, namespace: str, pod: str, container: str, text: str) -> None:
        """Append `text` to the container's output (no newline is added)."""
        with self._guard:
            key = (namespace, pod, container)
            self._text[key] = self._text.get(key, "") + text

    def text(self, namespace: str, pod: str, container: str) -> str:
        """What the container has printed so far, as a log request would serve it."""
        with self._guard:
            return self._text.get((namespace, pod, container), "")

    def replace(self, namespace: str, pod: str, container: str, text: str) -> None:
        """The container's whole output so far (a test mirroring a running simulator)."""
        with self._guard:
            self._text[(namespace, pod, container)] = text

    def serve(self, pod: Mapping[str, Any], params: Mapping[str, str],
              error: Any) -> str:
        """The log text for one request; `error(status, message)` builds the API error."""
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        names = [str(c.get("name")) for c in spec.get("containers") or []]
        container = params.get("container") or (names[0] if len(names) == 1 else None)
        if container is None:
            raise error(400, f"a container name must be specified for pod {meta.get('name')}, "
                             f"choose one of: {names}")
        if container not in names:
            raise error(400, f"container {container} is not valid for pod {meta.get('name')}")
        with self._guard:
            text = self._text.get((str(meta.get("namespace")), str(meta.get("name")), container))
        if text is None:
            raise error(400, f'container "{container}" in pod "{meta.get("name")}" is waiting '
                             "to start: ContainerCreating")
        if "tailLines" in params:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(params["tailLines"]):]) if int(params["tailLines"]) else ""
        if "limitBytes" in params:
            text = text.encode()[: int(params["limitBytes"])].decode("utf-8", "ignore")
        return text


def is_log_request(request: kmock.Request) -> bool:
    return request.subresource == "log" and request.resource is not None and \
        request.resource.plural == "pods"
