"""Model facts for a reconcile: the packaged catalog and, unless offline, the hub.

Everything else a pass needs from the cluster comes from the watch-fed stores (`shell.view`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..api import ModelSource
from ..facts import ModelFacts
from ..facts.catalog import Catalog, load_catalog
from ..facts.resolve import Fetch, resolve_facts

logger = logging.getLogger(__name__)


class FactsSource:
    """resolve_facts with the packaged catalog and, unless offline, the hub (in a thread).

    A resolved source is remembered for `ttl` seconds (s): a resync of N ModelDeployments of
    one model resolves it once, and a pass of a converged object starts no thread."""

    def __init__(self, fetch: Fetch | None, catalog: Catalog | None = None,
                 ttl: float = 600.0) -> None:
        self._catalog = catalog or load_catalog()
        self._fetch = fetch
        self._ttl = ttl
        self._memo: dict[str, tuple[float, ModelFacts]] = {}

    async def warm_up(self) -> None:
        """Parse the catalog (and import transformers' config classes, ~1 s of CPU, for it)
        while the informers list, so that the first passes do not wait for it."""
        try:
            await asyncio.to_thread(self._catalog.entries)
        except Exception:  # a pass resolving that model reports it; start-up goes on
            logger.exception("parsing the model catalog failed")

    async def resolve(self, source: ModelSource) -> ModelFacts:
        key = source.model_dump_json()
        hit = self._memo.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        facts = await asyncio.to_thread(resolve_facts, source, self._catalog, self._fetch)
        self._memo[key] = (time.monotonic(), facts)
        return facts
