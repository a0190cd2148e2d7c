"""Leader election: of several operator replicas, only the Lease holder writes.

Every `retry_period` the elector reads the Lease, asks the pure `controller.leader.decide` what
to do and writes that (create, renew or take over) with the read resourceVersion as the
precondition. The replica leads only between a successful write and the next failure: a failed
renewal, a lost race (409) or another holder seen closes the write gate at once (`Kube.may_write`);
the informers keep running, so a standby takes over warm. On a clean stop the leader releases
the Lease, so a successor does not wait out the duration. docs/decisions/leader-election.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Callable

from ..controller.leader import Election, LeaseState, decide, released
from .kube import Kube, KubeError

logger = logging.getLogger(__name__)

LEASE = ("coordination.k8s.io/v1", "Lease")


def replica_identity() -> str:
    """Hostname (the pod name in a cluster) plus a random suffix, as client-go's examples do:
    two processes on one host (a restarted pod, the tests) never share an identity."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    """Hold the Lease `namespace/name` while this replica can renew it.

    `duration` is leaseDurationSeconds (s); the Lease is renewed every `retry_period` (s), which
    must be well below it (client-go defaults: 15 s duration, 2 s retry period).
    `on_started_leading` runs each time leadership is gained.
    """

    def __init__(self, kube: Kube, namespace: str, name: str, *, duration: int,
                 retry_period: float, on_started_leading: Callable[[], None]) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.duration = duration
        self.retry_period = retry_period
        self.identity = replica_identity()
        self.on_started_leading = on_started_leading
        self.leading = False
        self._renewed_at = 0.0  # time.monotonic() of the last successful write
        self.transitions = 0  # how often this replica gained leadership (metric, tests)

    def may_write(self) -> bool:
        """Leading, and renewed within the renew deadline (2/3 of the duration, client-go's
        10 s of 15): a renewal stuck in a slow request stops the writes before the Lease
        can lapse and another replica take it."""
        deadline = self._renewed_at + self.duration * 2 / 3
        return self.leading and time.monotonic() < deadline

    async def run_forever(self) -> None:
        while True:
            try:
                await self.try_acquire_or_renew()
            except KubeError as exc:
                self._step_down(f"Lease {self.namespace}/{self.name} not renewed: {exc}")
            except Exception:  # never let the election die: a dead elector would stand by forever
                logger.exception("leader election round failed")
                self._step_down("election round failed")
            await asyncio.sleep(self.retry_period)

    async def try_acquire_or_renew(self) -> bool:
        """One round; returns whether this replica leads after it."""
        started = time.monotonic()  # the Lease's term counts from before the read
        lease = await self.kube.get(*LEASE, self.namespace, self.name)
        state = LeaseState.from_object(lease) if lease is not None else None
        election = decide(state, time.time(), self.identity, self.duration)
        if not election.leading:
            self._step_down(f"Lease {self.namespace}/{self.name} held by "
                            f"{state.holder if state else None}")
            return False
        try:
            await self._write(lease, election)
        except KubeError as exc:
            if exc.status != 409:
                raise
            self._step_down(f"lost the race for Lease {self.namespace}/{self.name}")
            return False
        self._renewed_at = started
        if not self.leading:
            self.leading = True
            self.transitions += 1
            logger.info("leading as %s (Lease %s/%s, %s)", self.identity, self.namespace,
                        self.name, election.action)
            self.on_started_leading()
        return True

    async def _write(self, lease: dict[str, object] | None, election: Election) -> None:
        if lease is None:
            await self.kube.create({
                "apiVersion": LEASE[0], "kind": LEASE[1],
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": election.spec})
            return
        await self._patch(lease, election.spec or {})

    async def _patch(self, lease: dict[str, object], spec: dict[str, object]) -> None:
        meta = lease.get("metadata")
        version = str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
        await self.kube.patch_if_unchanged(*LEASE, self.namespace, self.name, version,
                                           {"spec": spec})

    def _step_down(self, why: str) -> None:
        if self.leading:
            logger.warning("stopped leading: %s", why)
        self.leading = False

    async def release(self) -> None:
        """Give the Lease up if we hold it (clean stop); errors are logged, never raised."""
        if not self.leading:
            return
        self.leading = False
        with contextlib.suppress(KubeError):
            lease = await self.kube.get(*LEASE, self.namespace, self.name)
            spec = released(LeaseState.from_object(lease), self.identity, time.time()) \
                if lease is not None else None
            if lease is not None and spec is not None:
                await self._patch(lease, spec)
                logger.info("released Lease %s/%s", self.namespace, self.name)
