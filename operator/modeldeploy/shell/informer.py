"""Watch-fed caches: one informer per kind keeps a `Store` equal to what the API holds.

An informer lists once, then watches from the list's resourceVersion; when the server ends a
watch (its timeout) it resumes from the last version it saw. A 410 Gone (the version was
compacted), an ERROR event, a dropped connection or a 5xx relists: the store is replaced by
the fresh list, and every object that appeared, changed or vanished in between is reported, so
a deletion missed while disconnected is never kept (the reflector's recipe in client-go).

Echoes of our own writes: a write's response goes into the store at once (`Store.wrote`) and
its resourceVersion is pinned. Events of that object are then skipped until the watch delivers
that same version (the echo; versions are compared for equality only, never ordered): a watch
stream is ordered, so whatever it delivers before the echo is older than our write. A relist
clears every pin; a pin is dropped after `PIN_SECONDS` in case the echo is never delivered
(the object was replaced by a relist of a newer version).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .kube import Kube, KubeError

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str | None, str]  # (namespace, name)
Trim = Callable[[Mapping[str, Any]], Obj]
OnChange = Callable[[Mapping[str, Any]], None]

PIN_SECONDS = 60.0
RECENT_VERSIONS = 16  # versions of one object the watch delivered, remembered for `wrote`
DELETED, BOOKMARK = "DELETED", "BOOKMARK"


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return (str(namespace) if namespace else None), str(meta.get("name"))


def version_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _untrimmed(obj: Mapping[str, Any]) -> Obj:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


class Store:
    """The objects of one kind (trimmed to what the operator reads), by (namespace, name)."""

    def __init__(self, trim: Trim = _untrimmed, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._trim = trim
        self._clock = clock
        self._objects: dict[Key, Obj] = {}
        self._pins: dict[Key, tuple[str, float]] = {}
        # The watch may deliver our write's echo (and later versions) before the write's own
        # response is handled: a write whose version was already delivered is not pinned, or
        # every later event would be skipped as "older" until the pin expired.
        self._delivered: dict[Key, collections.deque[str]] = {}
        self.revision = 0  # bumped on every change: derived views are recomputed only then

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self._objects.get((namespace, name))

    def __iter__(self) -> Iterator[Obj]:
        return iter(list(self._objects.values()))

    def __len__(self) -> int:
        return len(self._objects)

    def wrote(self, obj: Mapping[str, Any]) -> None:
        """Our write returned `obj`: hold it and skip the watch's events until its echo."""
        key, version = key_of(obj), version_of(obj)
        current = self._objects.get(key)
        if current is not None and version_of(current) == version:
            return  # a no-op write: the server made no new version, no event will come
        if version in self._delivered.get(key, ()):
            return  # its echo came first: the store holds it or something newer
        self._objects[key] = self._trim(obj)
        self._pins[key] = (version, self._clock())
        self.revision += 1

    def removed(self, namespace: str | None, name: str) -> None:
        """We deleted it: forget it now (its DELETED event finds nothing to remove)."""
        self._objects.pop((namespace, name), None)
        self._pins.pop((namespace, name), None)
        self.revision += 1

    def deliver(self, kind: str, obj: Mapping[str, Any]) -> bool:
        """A watch event; whether the store changed (an echo of our write does not)."""
        key = key_of(obj)
        self._delivered.setdefault(key, collections.deque(maxlen=RECENT_VERSIONS)).append(
            version_of(obj))
        if kind == DELETED:
            self._delivered.pop(key, None)
        pin = self._pins.get(key)
        if pin is not None:
            if pin[0] == version_of(obj):
                del self._pins[key]
                return False
            if self._clock() - pin[1] < PIN_SECONDS:
                return False  # delivered before our write's echo: older than what we hold
            del self._pins[key]
        if kind == DELETED:
            changed = self._objects.pop(key, None) is not None
        else:
            new = self._trim(obj)
            changed = self._objects.get(key) != new
            self._objects[key] = new
        self.revision += changed
        return changed

    def replace(self, objects: Iterable[Mapping[str, Any]]) -> list[Obj]:
        """A fresh list: becomes the store; returns what appeared, changed or vanished."""
        fresh = {key_of(o): self._trim(o) for o in objects}
        changed = [obj for key, obj in fresh.items() if self._objects.get(key) != obj]
        changed += [obj for key, obj in self._objects.items() if key not in fresh]
        self._objects = fresh
        self._pins.clear()
        self._delivered.clear()
        self.revision += 1
        return changed


REFUSED = frozenset({401, 403})  # RBAC (or credentials) refuse: retrying cannot help


class Informer:
    """List, then watch one kind (in one namespace or all) into a Store; relist on errors."""

    # 10 parameters: what to watch (kind, scope, selector) and how; all but four keyword-only.
    def __init__(self, kube: Kube, api_version: str, kind: str, store: Store, *,
                 namespace: str | None = None, label_selector: str | None = None,
                 on_change: OnChange | None = None, watch_timeout: int = 300,
                 backoff: float = 1.0, stop_when_refused: bool = False) -> None:
        self.kube = kube
        self.api_version = api_version
        self.kind = kind
        self.store = store
        self.namespace = namespace
        self.label_selector = label_selector
        self.on_change = on_change
        self.watch_timeout = watch_timeout
        self.backoff = backoff
        # An optional kind: a 401/403 ends run_forever (re-raised) instead of relisting forever,
        # each retry being one more refused request.
        self.stop_when_refused = stop_when_refused
        self.synced = asyncio.Event()
        self.relists = 0

    def _changed(self, obj: Mapping[str, Any]) -> None:
        if self.on_change is not None:
            self.on_change(obj)

    async def _relist(self) -> str:
        items, version = await self.kube.list(self.api_version, self.kind, self.namespace,
                                              label_selector=self.label_selector)
        self.relists += 1
        for obj in self.store.replace(items):
            self._changed(obj)
        self.synced.set()
        return version

    async def _watch(self, version: str) -> str:
        """Follow the watch until the server ends it; the last version seen."""
        async for event in self.kube.watch(
                self.api_version, self.kind, self.namespace, label_selector=self.label_selector,
                resource_version=version, timeout=self.watch_timeout):
            obj = event.get("object") or {}
            version = version_of(obj) or version
            if event.get("type") != BOOKMARK and self.store.deliver(str(event.get("type")), obj):
                self._changed(obj)
        return version

    async def run_forever(self) -> None:
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self._relist()
                version = await self._watch(version)
                failures = 0
            except KubeError as exc:
                if self.stop_when_refused and exc.status in REFUSED:
                    raise
                version = None
                if not exc.gone:
                    failures += 1
                    logger.warning("watch of %s %s failed, relisting: %s", self.kind,
                                   self.namespace or "(all namespaces)", exc)
                    await asyncio.sleep(min(self.backoff * 2 ** min(failures, 5), 30.0))
            except (ValueError, OSError) as exc:  # a torn stream (invalid JSON, reset)
                version = None
                failures += 1
                logger.warning("watch of %s broke, relisting: %s", self.kind, exc)
                await asyncio.sleep(min(self.backoff * 2 ** min(failures, 5), 30.0))
