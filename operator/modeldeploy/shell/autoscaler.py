"""The builtin autoscaler's shell: read vLLM's /metrics of a model's Ready pods, keep the
decision's memory. The decision itself is pure (`decisions.autoscale`, called by
`controller.decide`); its scale write is one of the pass's actions.

The memory (`ScalingHistory`) is kept here, in process memory, one per ModelDeployment uid;
never in status (an empty history after a restart is safe by construction,
`decisions.autoscale`). Replicas are only ever set through the child's `/scale` (Deployment or
LeaderWorkerSet); the user's ModelDeployment is never written.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..controller.pods import scrape_targets
from ..decisions.autoscale import Decision, ScalingHistory
from ..decisions.metrics import PodSample, Scrape
from .scrape import Scraper
from .telemetry import Telemetry

logger = logging.getLogger(__name__)


class Autoscaler:
    def __init__(self, scraper: Scraper, telemetry: Telemetry | None = None) -> None:
        self.scraper = scraper
        self.telemetry = telemetry
        self._histories: dict[str, ScalingHistory] = {}

    def forget(self, uid: str) -> None:
        self._histories.pop(uid, None)

    def history(self, uid: str) -> ScalingHistory:
        return self._histories.get(uid, ScalingHistory())

    async def scrape(self, pods: Sequence[Mapping[str, Any]], kind: str) -> tuple[Scrape, ...]:
        """One sample (or miss) per Ready serving pod of a Deployment / LeaderWorkerSet."""
        started = time.monotonic()
        scrapes = await self.scraper.scrape(scrape_targets(pods, kind))
        if self.telemetry is not None and scrapes:
            self.telemetry.scrape_seconds.observe(time.monotonic() - started)
            for sample in scrapes:
                result = "ok" if isinstance(sample, PodSample) else str(sample.reason)
                self.telemetry.scrapes.labels(result).inc()
        return scrapes

    def remember(self, uid: str, decision: Decision, *, scaled: bool | None) -> None:
        """Keep the decision's memory. `scaled`: None (no write wanted), True (written), False
        (the write failed: it must not look like a scaling event)."""
        previous = self.history(uid)
        history = decision.history
        if scaled is False:
            history = dataclasses.replace(history, last_change=previous.last_change)
        self._histories[uid] = history
        if self.telemetry is not None:
            self.telemetry.decisions.labels(str(decision.reason)).inc()
            if scaled:
                direction = "up" if decision.desired_replicas > decision.current_replicas \
                    else "down"
                self.telemetry.scalings.labels(direction).inc()
