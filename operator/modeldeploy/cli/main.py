"""`modeldeploy`: the console script. Each command lives in its own module."""

from __future__ import annotations

import importlib.metadata

import typer

from .usage import OneLineErrors

app = typer.Typer(
    name="modeldeploy",
    cls=OneLineErrors,  # usage errors as one line naming the flag, exit 2
    help="Size, place and serve open LLMs on Kubernetes with vLLM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(given: bool) -> None:
    if given:
        typer.echo(f"modeldeploy {importlib.metadata.version('modeldeploy')}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version of modeldeploy and exit."),
) -> None:
    """Size, place and serve open LLMs on Kubernetes with vLLM."""


# Command modules register themselves on `app` when imported.
from . import crd as _crd  # noqa: E402,F401
from . import download as _download  # noqa: E402,F401
from . import models as _models  # noqa: E402,F401
from . import plan as _plan  # noqa: E402,F401
from . import render as _render  # noqa: E402,F401
from . import run as _run  # noqa: E402,F401
