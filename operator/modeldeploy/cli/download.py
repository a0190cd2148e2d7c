"""`modeldeploy download`: fill a model cache the way the shared cache's download Job does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .main import app

PatternOpt = Annotated[
    list[str] | None,
    typer.Option(help="Glob of repository files to fetch (repeatable); default: every file."),
]
IgnoreOpt = Annotated[
    list[str] | None, typer.Option(help="Glob of repository files to skip (repeatable).")
]


@app.command("download")
def download_command(
    model: Annotated[str, typer.Option(help="Hugging Face repo id (org/name).")],
    cache_dir: Annotated[Path, typer.Option(help="huggingface_hub cache directory (HF_HUB_CACHE).")],
    marker: Annotated[Path, typer.Option(help="File written last, when every file is in place.")],
    revision: Annotated[str, typer.Option(help="Branch, tag or commit.")] = "main",
    allow: PatternOpt = None,
    ignore: IgnoreOpt = None,
    interval: Annotated[float, typer.Option(help="Seconds between progress lines.", min=0.1)] = 10.0,
) -> None:
    """Download a model snapshot into the hub cache, printing progress lines the operator reads.

    HF_TOKEN and HF_ENDPOINT are honoured. Exit status: 0 done, 3 for an error a retry cannot
    fix (gated or missing repository, refused token), 1 otherwise (the Job retries and resumes).
    """
    from ..shell.download import DownloadRequest, run_download

    request = DownloadRequest(
        model=model, revision=revision, cache_dir=cache_dir, marker=marker,
        allow=allow or ["*"], ignore=ignore or [],
        endpoint=os.environ.get("HF_ENDPOINT") or None, token=os.environ.get("HF_TOKEN") or None,
    )
    raise typer.Exit(run_download(request, interval=interval))
