"""`modeldeploy run`: the operator (kopf) against the cluster of a kubeconfig or in-cluster.

Its flags are generated from the settings object (`shell.config.OperatorConfig`, see
`cli.flags`): every setting, the renderer's included, is a flag, an environment variable and a
chart value, declared once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Annotated, Any, NoReturn

import kopf
import typer
from pydantic import ValidationError

from ..shell.config import OperatorConfig
from ..shell.preflight import ApiServerUnavailable, StartupError, preflight
from ..shell.runner import run_operator
from .exits import EXIT_INVALID, EXIT_UNAVAILABLE
from .flags import flag_errors, nest, parameters, settings_flags
from .main import app

FLAGS = list(settings_flags(OperatorConfig))


def _configure_logging(config: OperatorConfig) -> None:
    kopf.configure(
        debug=config.verbose, verbose=config.verbose,
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL)
    logging.getLogger("kubernetes_asyncio").setLevel(logging.WARNING)
    if not config.verbose:  # kopf's per-object logs; our own logs say what changed
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


RUN_HELP = f"""Run the operator: watch ModelDeployments and keep their workloads converged.

Exit status before it starts: {EXIT_INVALID} for bad input (a flag, a missing or broken kubeconfig, an \
unknown --context), {EXIT_UNAVAILABLE} when the API server does not answer within --connect-timeout or \
refuses the credentials (retry, or check access), as for `plan`."""


def run_command(**given: Any) -> None:
    """Run the operator (RUN_HELP says the exit status)."""
    all_namespaces = bool(given.pop("all_namespaces", False))
    settings = nest(FLAGS, given)
    if settings.get("namespaces") and all_namespaces:
        _fail("--namespace and --all-namespaces exclude each other", EXIT_INVALID)
    try:
        config = OperatorConfig(**settings)
    except ValidationError as exc:
        _fail(flag_errors(FLAGS, [dict(e) for e in exc.errors()]), EXIT_INVALID)
    try:  # a missing or broken kubeconfig, an unknown context, no API server: one line each
        asyncio.run(preflight(config))
    except ApiServerUnavailable as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)
    except StartupError as exc:  # the kubeconfig or the context: the user's input
        _fail(str(exc), EXIT_INVALID)
    _configure_logging(config)
    run_operator(config)


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


run_command.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
    *parameters(FLAGS),
    inspect.Parameter(
        "all_namespaces", inspect.Parameter.KEYWORD_ONLY, default=False,
        annotation=Annotated[bool, typer.Option(
            "--all-namespaces", "-A",
            help="Serve every namespace, cluster-wide (the default without --namespace).")]),
])
app.command("run", help=RUN_HELP)(run_command)
