"""`modeldeploy render`: the Kubernetes objects for ModelDeployments, offline, as YAML or JSON."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..controller.target import Target, render_target
from ..errors import ModeldeployError
from ..render import RenderOptions, to_json, to_yaml
from .exits import EXIT_STATUS_HELP
from .inputs import load_inputs
from .main import app
from .planning import EXIT_INVALID, exit_code, hub_fetcher, plan_all, say_errors


class RenderFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"


def _fail(message: str, code: int) -> None:
    """One line per problem on stderr, then exit."""
    say_errors(message)
    raise typer.Exit(code)


FilesArg = Annotated[
    list[Path], typer.Argument(help="YAML files with ModelDeployment (and GPUPool) documents.")
]
PoolsOpt = Annotated[
    list[Path] | None,
    typer.Option("--pools", "-p", help="GPUPool YAML file(s); default: the built-in catalog."),
]
OutputOpt = Annotated[
    RenderFormat, typer.Option("--output", "-o", help="yaml (multi-document) or json (a List).")
]
MonitorOpt = Annotated[
    bool, typer.Option("--service-monitor", help="ServiceMonitor, not prometheus.io/* annotations.")
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Never contact the Hugging Face hub.")
]
NoLwsOpt = Annotated[
    bool, typer.Option("--no-lws", help="Render as if LeaderWorkerSet were not installed.")
]
HubOpt = Annotated[
    str | None,
    typer.Option("--hub-endpoint", envvar="HF_ENDPOINT", help="Hugging Face endpoint to use."),
]


@app.command("render", help=f"""Render the Deployment or LeaderWorkerSet, Service, PodDisruptionBudget (and cache PVC, \
ServiceMonitor) for each ModelDeployment, in a stable order.

Nothing is printed on stdout unless every ModelDeployment renders: objects for part of the input \
would be a partial apply.

{EXIT_STATUS_HELP}""")
def render_command(
    files: FilesArg,
    pools: PoolsOpt = None,
    output: OutputOpt = RenderFormat.YAML,
    service_monitor: MonitorOpt = False,
    offline: OfflineOpt = False,
    hub_endpoint: HubOpt = None,
    no_lws: NoLwsOpt = False,
) -> None:
    """Render every ModelDeployment or none: the CLI help above says the exit rules."""
    options = RenderOptions(service_monitor=service_monitor)
    objects = []
    try:
        inputs = load_inputs(files, pools or [])
        if inputs.refused:  # objects for only part of the input would be a partial apply
            _fail("\n".join(r.error for r in inputs.refused), EXIT_INVALID)
        if not inputs.deployments:
            _fail("no ModelDeployment documents in the given files", EXIT_INVALID)
        planned = plan_all(inputs, hub_fetcher(offline, hub_endpoint), not no_lws)
        infeasible = [item.plan for item in planned if not item.plan.feasible]
        if infeasible:
            _fail("\n".join(p.error or f"{p.file}: ModelDeployment {p.name}: no feasible layout: {p.reason}"
                            for p in infeasible), exit_code(planned))
    except ModeldeployError as exc:
        _fail(str(exc), EXIT_INVALID)
    for item in planned:
        where = f"{item.plan.file}: ModelDeployment {item.plan.name}"
        if item.pool is None or item.deployment is None:
            _fail(f"{where}: pool {item.plan.pool!r} is not given", EXIT_INVALID)
            continue
        try:
            objects += render_target(Target(item.deployment, item.plan, item.pool), options)
        except ModeldeployError as exc:
            _fail(f"{where}: {exc}", EXIT_INVALID)
    sys.stdout.write(to_json(objects) if output == RenderFormat.JSON else to_yaml(objects))
