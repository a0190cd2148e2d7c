"""Resolve facts and plan every input document: shared by `plan` and `render`.

Planning and rendering go through the operator's own path (`controller.target`, which
`decide()` calls): offline, every optional API counts as installed except LeaderWorkerSet
with `--no-lws`."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..api import GPUPool, ModelDeployment
from ..controller.children import ChildKinds
from ..controller.target import plan_on_cluster
from ..errors import InvalidSpec, ModelFactsUnavailable, ModelUnresolved
from ..facts import ModelFacts
from ..facts.catalog import load_catalog
from ..facts.resolve import resolve_facts
from ..planner import Plan, default_pools, unplanned
from .exits import EXIT_INFEASIBLE, EXIT_INVALID, EXIT_UNAVAILABLE
from .inputs import Inputs

Fetch = Callable[[str, str | None], tuple[dict, dict | None]]  # type: ignore[type-arg]

EXIT_FACTS_UNAVAILABLE = EXIT_UNAVAILABLE  # the hub could not be asked (down, gated, missing)


@dataclass(frozen=True)
class PlannedDeployment:
    deployment: ModelDeployment | None  # None when the document failed validation (plan.error)
    facts: ModelFacts | None  # None when the model could not be resolved
    plan: Plan
    pool: GPUPool | None


def offline_kinds(multi_node_served: bool = True) -> ChildKinds:
    """The optional APIs an offline plan assumes: all, LeaderWorkerSet as asked."""
    return ChildKinds(leader_worker_set=multi_node_served, service_monitor=True,
                      scaled_object=True, http_scaled_object=True)


def hub_fetcher(offline: bool, endpoint: str | None = None, timeout: float = 10.0) -> Fetch | None:
    """The hub is consulted only for models outside the catalog, and never when offline."""
    if offline or os.environ.get("HF_HUB_OFFLINE") == "1":
        return None
    from ..shell.hub import HubClient  # I/O lives in the shell; import only when used

    return HubClient(endpoint=endpoint, timeout=timeout).fetch


def _failure(exc: Exception) -> str:
    if isinstance(exc, ModelFactsUnavailable):
        return "ModelFactsUnavailable"
    return "ModelUnresolved" if isinstance(exc, ModelUnresolved) else "InvalidSpec"


def plan_all(inputs: Inputs, fetch: Fetch | None = None,
             multi_node_served: bool = True) -> list[PlannedDeployment]:
    """Plan each ModelDeployment on the given pools (the default catalog when none given).

    A ModelDeployment that cannot be planned (unknown model, hub down, a pin the model's rules
    refuse) becomes its own row (`feasible: false` with `error`); the others are still planned.
    multi_node_served: plan as if the LeaderWorkerSet API is served (`--no-lws`: it is not).
    A document the validation refused (inputs.refused) is its own InvalidSpec row, in file order.
    """
    pools = inputs.pools or default_pools()
    by_name = {p.name: p for p in pools}
    catalog = load_catalog()
    out: list[tuple[int, PlannedDeployment]] = []
    for loaded in inputs.deployments:
        md = loaded.deployment
        facts: ModelFacts | None = None
        try:
            facts = resolve_facts(md.spec.model, catalog, fetch)
            plan, _ = plan_on_cluster(md, facts, pools, offline_kinds(multi_node_served))
        except (InvalidSpec, ModelUnresolved) as exc:
            plan = unplanned(md.metadata.name, md.metadata.namespace, md.spec.model.name,
                             _failure(exc), f"{loaded.file}: ModelDeployment {md.metadata.name}: {exc}")
        plan = plan.model_copy(update={"file": loaded.file})
        out.append((loaded.position, PlannedDeployment(md, facts, plan, by_name.get(plan.pool or ""))))
    for refused in inputs.refused:
        row = unplanned(refused.name, refused.namespace, refused.model, "InvalidSpec", refused.error)
        out.append((refused.position, PlannedDeployment(None, None, row.model_copy(update={"file": refused.file}), None)))
    return [planned for _, planned in sorted(out, key=lambda pair: pair[0])]


def say_errors(message: str) -> None:
    """Each line of `message` as its own `error:` line on stderr (one problem per line)."""
    import typer

    for line in message.splitlines() or [message]:
        typer.echo(f"error: {line}", err=True)


def exit_code(planned: list[PlannedDeployment]) -> int:
    """0 all feasible; 2 some spec is invalid for its model; 4 some model's facts could not be
    fetched; 3 some plan is infeasible or its model unknown. The most actionable wins."""
    failures = {item.plan.failure for item in planned if not item.plan.feasible}
    if "InvalidSpec" in failures:
        return EXIT_INVALID
    if "ModelFactsUnavailable" in failures:
        return EXIT_FACTS_UNAVAILABLE
    return EXIT_INFEASIBLE if failures else 0
