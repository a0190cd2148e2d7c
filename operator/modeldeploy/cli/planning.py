"""Resolve facts and plan every input document: shared by `plan` and `render`."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..api import GPUPool, ModelDeployment
from ..facts import ModelFacts
from ..facts.catalog import load_catalog
from ..facts.resolve import resolve_facts
from ..planner import Plan, default_pools, plan_deployment
from .inputs import Inputs

Fetch = Callable[[str, str | None], tuple[dict, dict | None]]  # type: ignore[type-arg]


@dataclass(frozen=True)
class PlannedDeployment:
    deployment: ModelDeployment
    facts: ModelFacts
    plan: Plan
    pool: GPUPool | None


def hub_fetcher(offline: bool, endpoint: str | None = None, timeout: float = 10.0) -> Fetch | None:
    """The hub is consulted only for models outside the catalog, and never when offline."""
    if offline or os.environ.get("HF_HUB_OFFLINE") == "1":
        return None
    from ..shell.hub import HubClient  # I/O lives in the shell; import only when used

    return HubClient(endpoint=endpoint, timeout=timeout).fetch


def plan_all(inputs: Inputs, fetch: Fetch | None = None,
             multi_node_served: bool = True) -> list[PlannedDeployment]:
    """Plan each ModelDeployment on the given pools (the default catalog when none given).

    multi_node_served: plan as if the LeaderWorkerSet API is served (`--no-lws`: it is not).
    """
    pools = inputs.pools or default_pools()
    by_name = {p.name: p for p in pools}
    catalog = load_catalog()
    out = []
    for md in inputs.deployments:
        facts = resolve_facts(md.spec.model, catalog, fetch)
        plan = plan_deployment(md, facts, pools, multi_node_served)
        out.append(PlannedDeployment(md, facts, plan, by_name.get(plan.pool or "")))
    return out
