"""`modeldeploy`: the console script. Each command lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="modeldeploy",
    help="Size, place and serve open LLMs on Kubernetes with vLLM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules register themselves on `app` when imported.
from . import crd as _crd  # noqa: E402,F401
from . import download as _download  # noqa: E402,F401
from . import models as _models  # noqa: E402,F401
from . import plan as _plan  # noqa: E402,F401
from . import render as _render  # noqa: E402,F401
from . import run as _run  # noqa: E402,F401
