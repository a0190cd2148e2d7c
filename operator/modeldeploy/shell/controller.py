"""When to reconcile what: changes in the watch-fed stores, retries and the periodic resync.

- A ModelDeployment that changed reconciles at once; a change of one of its children or pods
  schedules it, coalesced over `child_event_delay`; a change of nodes, GPUPools or installed
  APIs schedules every ModelDeployment.
- Echoes of our own writes never arrive here: the stores hold what we wrote and skip the
  watch's copy of it (`shell.informer`).
- Transient failures (API errors, the hub unreachable) are retried with a backoff.
- Every `resync_interval`, every ModelDeployment is re-derived from the stores (drift, capacity);
  an unchanged world costs no request.

One lock per ModelDeployment keeps its passes sequential; a semaphore bounds how many run at
once. A pass waiting to start covers every poke that arrives meanwhile (it reads the stores
when it starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from ..api import GPUPool, GPUPoolStatus
from ..controller.pools.status import pool_status, requested_by_node
from ..controller.status import condition
from .config import OperatorConfig
from .informer import key_of
from .kube import KubeError
from .reconcile import ReconcileContext, reconcile, utc_now
from .view import GPU_POOL, NODE, POD
from .view import MODEL_DEPLOYMENT as MODEL_KIND

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


def builtin_autoscaling(body: Mapping[str, Any]) -> bool:
    """Whether the (unvalidated) body asks for the builtin autoscaler."""
    scaling = (body.get("spec") or {}).get("autoscaling")
    return isinstance(scaling, Mapping) and scaling.get("mode", "builtin") == "builtin"


class Controller:
    def __init__(self, ctx: ReconcileContext, config: OperatorConfig) -> None:
        self.ctx = ctx
        self.config = config
        self._queued: set[Key] = set()  # a pass is waiting for its lock or a slot
        self._locks: dict[Key, asyncio.Lock] = {}
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._semaphore = asyncio.Semaphore(config.max_concurrent_reconciles)
        self.passes = 0
        self.writes = 0

    def keys(self) -> list[Key]:
        return [(str(ns), name) for ns, name in
                (key_of(body) for body in self.ctx.view.stores[MODEL_KIND])]

    # --- inputs (store callbacks) ------------------------------------------------------------

    def on_model_change(self, body: Mapping[str, Any]) -> None:
        namespace, name = key_of(body)
        key = (str(namespace), name)
        if self.ctx.view.model(*key) is None:
            self.forget(key, str((body.get("metadata") or {}).get("uid")))
            return
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return  # the garbage collector removes the children
        self.poke(key)

    def on_owned_change(self, namespace: str, name: str) -> None:
        self.poke((namespace, name), self.config.child_event_delay)

    def on_cluster_change(self) -> None:
        for key in self.keys():
            self.poke(key, self.config.child_event_delay)

    def forget(self, key: Key, uid: str) -> None:
        if self.ctx.autoscaler is not None:
            self.ctx.autoscaler.forget(uid)
        self.ctx.quiet.pop(uid, None)
        if self.ctx.starts is not None:
            self.ctx.starts.forget(uid)
        self._queued.discard(key)
        self._failures.pop(key, None)
        self._locks.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()

    # --- scheduling --------------------------------------------------------------------------

    def poke(self, key: Key, delay: float = 0.0) -> None:
        """Reconcile `key` after `delay` unless a pass is already due sooner."""
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        current = self._timers.get(key)
        if current is not None:
            if current[0] <= due:
                return
            current[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._start, key))

    def _start(self, key: Key) -> None:
        self._timers.pop(key, None)
        if key in self._queued:
            return  # a pass not started yet reads the stores when it starts: it covers this
        self._queued.add(key)
        task = asyncio.create_task(self.reconcile_key(key), name=f"reconcile {key[0]}/{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reconcile_key(self, key: Key) -> None:
        await self.ctx.view.synced()  # decide on a whole picture: every store listed once
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock, self._semaphore:
            self._queued.discard(key)  # from here on, new pokes need a pass of their own
            await self._pass(key)

    async def _pass(self, key: Key) -> None:
        body = self.ctx.view.model(*key)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return
        if not self.ctx.leading():
            return  # a standby replica: the leader reconciles; gaining the Lease pokes all
        self.passes += 1
        started = time.monotonic()
        try:
            outcome = await reconcile(self.ctx, body)
        except KubeError as exc:
            logger.warning("%s/%s: reconcile failed, retrying: %s", *key, exc)
            self._count("error", started)
            self._retry(key)
            return
        except Exception:
            logger.exception("%s/%s: reconcile crashed, retrying", *key)
            self._count("error", started)
            self._retry(key)
            return
        self._count("failed" if outcome.transient else "ok", started)
        if self.ctx.telemetry is not None:
            self.ctx.telemetry.writes.inc(outcome.writes)
        self.writes += outcome.writes
        if outcome.transient:
            stalled = condition(outcome.status, "Stalled")
            logger.info("%s/%s: %s, retrying", *key, stalled.message if stalled else "")
            self._retry(key)
        else:
            self._failures.pop(key, None)

    def _count(self, result: str, started: float) -> None:
        telemetry = self.ctx.telemetry
        if telemetry is not None:
            telemetry.passes.labels(result).inc()
            telemetry.pass_seconds.observe(time.monotonic() - started)
            telemetry.models.set(len(self.ctx.view.stores[MODEL_KIND]))

    def _retry(self, key: Key) -> None:
        count = self._failures.get(key, 0)
        self._failures[key] = count + 1
        backoff = self.config.retry_backoff
        self.poke(key, min(backoff[min(count, len(backoff) - 1)], self.config.resync_interval))

    async def resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.resync_interval)
            for key in self.keys():
                self.poke(key)

    async def scrape_forever(self) -> None:
        """Every `scrape_interval`, a pass of each ModelDeployment the builtin autoscaler scales
        (it scrapes its pods and decides): load is followed between resyncs."""
        while True:
            await asyncio.sleep(self.config.scrape_interval)
            for body in self.ctx.view.stores[MODEL_KIND]:
                if builtin_autoscaling(body):
                    namespace, name = key_of(body)
                    self.poke((str(namespace), name))

    async def stop(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class PoolStatusWriter:
    """Keep every GPUPool's status (nodes, allocatable / requested / free GPUs) true, from the
    stores: written when a node, pod or pool changed, and checked every `interval`."""

    def __init__(self, ctx: ReconcileContext, interval: float) -> None:
        self.ctx = ctx
        self.interval = interval
        self._wake = asyncio.Event()

    def poke(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except KubeError as exc:
                logger.warning("GPUPool status not refreshed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def refresh(self) -> int:
        view = self.ctx.view
        pools = list(view.stores[GPU_POOL])
        if not pools or not self.ctx.leading():
            return 0
        nodes = list(view.stores[NODE])
        requested = requested_by_node(list(view.stores[POD]))
        writes = 0
        for raw in pools:
            meta = raw.get("metadata") or {}
            try:
                pool = GPUPool.model_validate(raw)
            except ValueError:
                continue  # the view logs invalid pools
            try:
                previous: GPUPoolStatus | None = GPUPoolStatus.model_validate(
                    raw.get("status") or {})
            except ValueError:
                previous = None
            status = pool_status(pool, nodes, requested, previous, meta.get("generation"),
                                 utc_now())
            wanted = status.wire()
            if (raw.get("status") or {}) != wanted:
                written = await self.ctx.kube.patch_status(*GPU_POOL, None, pool.name, wanted)
                view.stores[GPU_POOL].wrote(written)
                writes += 1
        return writes
