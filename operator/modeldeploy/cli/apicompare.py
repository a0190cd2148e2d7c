"""`modeldeploy plan --compare-api [PRICES.yaml]`: self-hosting against hosted API prices."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from pydantic.alias_generators import to_camel
from rich.console import Console
from rich.table import Table

from ..errors import InvalidSpec
from ..planner.apicost import Comparison, PriceList, builtin_prices, compare, parse_price_list
from .planning import PlannedDeployment


def _is_price_list(path: Path) -> bool:
    """A price-list file: one YAML mapping with `prices` and no `kind` (not a Kubernetes object)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False  # load_inputs reports unreadable files with their own message
    return isinstance(data, dict) and "prices" in data and "kind" not in data


def load_prices(files: list[Path], compare: bool) -> tuple[list[Path], PriceList | None]:
    """(ModelDeployment files, price list): with --compare-api, a price-list file among the
    arguments is the list to use (`plan x.yaml --compare-api PRICES.yaml`), else the built-in one."""
    if not compare:
        return files, None
    lists = [f for f in files if _is_price_list(f)]
    if len(lists) > 1:
        raise InvalidSpec(f"--compare-api takes one price list, got {', '.join(map(str, lists))}")
    if not lists:
        return files, builtin_prices()
    return [f for f in files if f != lists[0]], parse_price_list(lists[0].read_text(encoding="utf-8"), str(lists[0]))


def _tokens(value: float | None) -> str:
    if value is None:
        return "never"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def _break_even(row: Comparison) -> str:
    """The volume, and whether the replicas can serve it within the SLO ("never": a free API)."""
    text = _tokens(row.break_even_tokens_per_day)
    return f"{text} (above capacity)" if row.break_even_above_capacity else text


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _workload_rows(item: PlannedDeployment, prices: PriceList) -> list[Comparison]:
    workload = item.deployment.spec.serving.workload if item.deployment else None
    return compare(item.plan, workload, prices) if workload else []


def comparison_wire(item: PlannedDeployment, prices: PriceList) -> dict[str, Any]:
    """`apiComparison` of one plan's JSON/YAML document: the price list's date and one object per
    API with the table's numbers (camelCase keys; null where the table says never or -)."""
    rows = [{to_camel(k): v for k, v in asdict(r).items() if k != "plan"} for r in _workload_rows(item, prices)]
    return {"pricesDate": str(prices.date), "apis": rows}


def comparison_table(planned: list[PlannedDeployment], prices: PriceList, console: Console) -> None:
    """One row per (plan, API); plans without a workload prediction are named, not priced."""
    table = Table(title=f"self-hosting vs hosted APIs (prices of {prices.date}, $ per million tokens)")
    for col in ("Name", "API", "API $/M", "Self $/M", "Self $/M at capacity", "Self $/month",
                "API $/month", "Break-even tokens/day", "Capacity tokens/day"):
        table.add_column(col, justify="left" if col in {"Name", "API"} else "right",
                         overflow="fold")  # wrap inside the cell, never cut a name or number short
    skipped, missed = [], []
    for item in planned:
        rows = _workload_rows(item, prices)
        if not rows:
            skipped.append(item.plan.name)
        elif item.plan.performance is not None and not item.plan.performance.meets_slo:
            missed.append(item.plan)
        for r in rows:
            table.add_row(r.plan, r.api, f"{r.api_per_million:.3f}", _money(r.self_per_million),
                          _money(r.self_per_million_full_load), _money(r.self_monthly), _money(r.api_monthly),
                          _break_even(r), _tokens(r.capacity_tokens_per_day))
    console.print(table)
    for plan in missed:  # Self $/M and capacity are then at different loads: say which
        replicas = plan.performance.replicas if plan.performance else 1
        console.print(f"{plan.name}: the workload misses spec.serving.slo on {replicas} replica{'s' if replicas != 1 else ''}: "
                      "Self $/M is at the workload; Self $/M at capacity, Capacity and \"above capacity\" are at "
                      "the most requests in flight that meet it (0 when not even one does)", highlight=False)
    if skipped:
        console.print(f"not compared (no spec.serving.workload, no performance prediction or no price): "
                      f"{', '.join(skipped)}", highlight=False)
