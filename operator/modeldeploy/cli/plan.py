"""`modeldeploy plan`: choose GPU pool and vLLM layout for ModelDeployments, offline."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from ..errors import ModeldeployError
from ..planner.plan import show_gib
from .apicompare import comparison_table, comparison_wire, load_prices
from .exits import DOCUMENTS_HELP, EXIT_STATUS_HELP
from .inputs import load_inputs
from .main import app
from .planning import EXIT_INVALID, PlannedDeployment, exit_code, hub_fetcher, plan_all, say_errors


class PlanFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def fail(message: str) -> None:
    """One line per problem on stderr, exit 2: the contract for every bad input."""
    say_errors(message)
    raise typer.Exit(EXIT_INVALID)


def _table(planned: list[PlannedDeployment], console: Console) -> None:
    table = Table(title="modeldeploy plan", show_lines=False)
    for col in ("Name", "Model", "Fits", "Pool", "GPU", "TP", "PP", "GPUs", "Nodes",
                "Weights/GPU", "KV/GPU", "Budget", "KV tokens", "$/h"):
        table.add_column(col, justify="right" if col in {"TP", "PP", "GPUs", "Nodes", "KV tokens", "$/h"} else "left",
                         overflow="fold")  # wrap inside the cell, never cut a name short
    for item in planned:
        p = item.plan
        m = p.memory_per_gpu
        table.add_row(
            p.name, p.model, "yes" if p.feasible else "[red]no[/red]", p.pool or "-", p.gpu_product or "-",
            str(p.tensor_parallel_size or "-"), str(p.pipeline_parallel_size or "-"),
            str(p.gpus_per_replica or "-"), str(p.nodes_per_replica or "-"),
            f"{show_gib(m.weights_gib)} GiB" if m else "-", f"{show_gib(m.kv_cache_gib)} GiB" if m else "-",
            f"{show_gib(m.budget_gib)} GiB" if m else "-", str(p.kv_cache_tokens or "-"),
            f"{p.cost_per_hour:.2f}" if p.cost_per_hour is not None else "-",
        )
    console.print(table)
    _performance_table(planned, console)
    for item in planned:
        p = item.plan
        if p.error:
            continue  # said on stderr
        console.print(f"{p.file}: ModelDeployment [bold]{p.name}[/bold]: {p.reason}", highlight=False)
        for s in p.suggestions:
            console.print(f"  would fit: {s}", highlight=False)
        if p.parameters_source:
            console.print(f"  weights: {p.parameters_source}", highlight=False)
        for note in p.notes:
            console.print(f"  note: {note}", highlight=False)


def _money(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def load_share(replicas: int) -> str:
    """The part of the workload one replica serves, for the Share column."""
    return "whole load" if replicas <= 1 else f"1/{replicas} of it"


def _performance_table(planned: list[PlannedDeployment], console: Console) -> None:
    """Predicted latency, throughput and cost of one replica at spec.serving.workload. The
    Share column says which part of the workload that replica serves: the whole of it with one
    replica (no spec.replicas or autoscaling), 1/N with N replicas."""
    rows = [item.plan for item in planned if item.plan.performance is not None]
    if not rows:
        return
    table = Table(title="predicted for one replica at spec.serving.workload (Share: the part of the load it serves)",
                  show_lines=False)
    for col in ("Name", "Replicas needed", "Replicas", "Share", "In flight", "TTFT ms", "TPOT ms", "Out tok/s",
                "Req/s", "Max in flight", "$/M out", "$/M tokens", "SLO"):
        table.add_column(col, justify="left" if col in {"Name", "SLO"} else "right")
    for p in rows:
        perf = p.performance
        assert perf is not None
        table.add_row(
            p.name, str(p.replicas_for_workload or "-"), str(perf.replicas), load_share(perf.replicas),
            f"{perf.concurrency:.1f}",
            f"{perf.ttft_ms:.0f}", f"{perf.tpot_ms:.1f}", f"{perf.output_tokens_per_second:.0f}",
            f"{perf.requests_per_second:.2f}", str(perf.max_concurrency),
            _money(perf.cost_per_million_output_tokens), _money(perf.cost_per_million_tokens),
            "met" if perf.meets_slo else "[red]missed[/red]",
        )
    console.print(table)


@app.command("plan", help=f"""Plan GPU pool, tensor/pipeline parallelism and memory for each ModelDeployment.

{DOCUMENTS_HELP}

{EXIT_STATUS_HELP}""")
def plan_command(
    files: list[Path] = typer.Argument(..., help="YAML files with ModelDeployment (and GPUPool) documents."),
    pools: list[Path] = typer.Option([], "--pools", "-p", help="YAML file(s) of GPUPool documents; default: the built-in pool catalog."),
    output: PlanFormat = typer.Option(PlanFormat.TABLE, "--output", "-o", help="table (for people), json or yaml."),
    offline: bool = typer.Option(False, "--offline", help="Never contact the Hugging Face hub (catalog and spec facts only)."),
    hub_endpoint: str | None = typer.Option(None, "--hub-endpoint", envvar="HF_ENDPOINT", help="Hugging Face endpoint for models outside the catalog."),
    no_lws: bool = typer.Option(False, "--no-lws", help="Plan as if LeaderWorkerSet were not installed: one node per replica."),
    compare_api: bool = typer.Option(False, "--compare-api", help="Compare the cost with hosted APIs (needs spec.serving.workload): the built-in dated price list, or a price-list YAML given among the files (`--compare-api PRICES.yaml`)."),
) -> None:
    """Plan each ModelDeployment: the CLI help above says the documents and exit rules."""
    try:
        files, prices = load_prices(files, compare_api)
        inputs = load_inputs(files, pools)
        if not inputs.deployments and not inputs.refused:
            fail("no ModelDeployment documents in the given files")
        planned = plan_all(inputs, hub_fetcher(offline, hub_endpoint), not no_lws)
    except ModeldeployError as exc:
        fail(str(exc))
    for item in planned:
        if item.plan.error:
            say_errors(item.plan.error)
    docs = [item.plan.wire() for item in planned]
    if prices is not None:  # machine formats carry the comparison in each document, not a table
        for doc, item in zip(docs, planned, strict=True):
            doc["apiComparison"] = comparison_wire(item, prices)
    if output == PlanFormat.JSON:
        sys.stdout.write(json.dumps(docs, indent=2, sort_keys=False) + "\n")
    elif output == PlanFormat.YAML:
        sys.stdout.write(yaml.safe_dump(docs, sort_keys=False, allow_unicode=True))
    else:
        # A terminal's own width (cells wrap to fit); a pipe or file gets whole lines.
        console = Console() if sys.stdout.isatty() else Console(width=200)
        _table(planned, console)
        if prices is not None:
            comparison_table(planned, prices, console)
    code = exit_code(planned)
    if code:
        raise typer.Exit(code)
