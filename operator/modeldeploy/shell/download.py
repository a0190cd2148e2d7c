"""`modeldeploy download`: fill the shared model cache (the download Job's program).

huggingface_hub does the work (`snapshot_download` into the standard hub cache layout, the one
vLLM reads with HF_HUB_OFFLINE=1). It resumes by itself: finished blobs are kept, a partial
`*.incomplete` blob continues where it stopped, so a Job retry after a crash or an evicted pod
loses nothing.

The operator follows the Job through its log (pods/log): every `interval` seconds one line
`modeldeploy-progress {"bytesDone": N, "bytesTotal": M}`, and on failure a last line
`modeldeploy-error {"reason": R, "message": ...}` (reasons in `decisions.cache.CacheReason`). The
completion marker is written last, atomically; serving pods' init gate waits for it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]  # lazily exported

from ..decisions.cache import ERROR_PREFIX, PROGRESS_PREFIX, CacheReason
from ..render.cache import EXIT_PERMANENT

EXIT_RETRY = 1  # anything else: the Job's backoff retries, resuming the partial download


@dataclass(frozen=True)
class DownloadRequest:
    model: str
    revision: str
    cache_dir: Path
    marker: Path
    allow: Sequence[str]
    ignore: Sequence[str]
    endpoint: str | None = None
    token: str | None = None


class Reporter:
    """Writes the progress and error lines the operator parses (one JSON object per line)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def progress(self, done: int, total: int) -> None:
        self._line(PROGRESS_PREFIX, {"bytesDone": done, "bytesTotal": total})

    def error(self, reason: CacheReason, message: str) -> None:
        self._line(ERROR_PREFIX, {"reason": str(reason), "message": " ".join(message.split())[:1000]})

    def _line(self, prefix: str, body: dict[str, object]) -> None:
        with self._lock:
            self._out.write(f"{prefix} {json.dumps(body, sort_keys=True)}\n")
            self._out.flush()


def bytes_on_disk(storage: Path) -> int:
    """Bytes of the repository's blobs in the hub cache, partial ones included."""
    blobs = storage / "blobs"
    if not blobs.is_dir():
        return 0
    total = 0
    for entry in os.scandir(blobs):
        try:
            total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:  # renamed from *.incomplete between scandir and stat
            continue
    return total


def _watch(stop: threading.Event, interval: float, sample: Callable[[], None]) -> None:
    while not stop.wait(interval):
        sample()


def _classify(exc: BaseException) -> tuple[CacheReason, bool]:
    """(reason, permanent) for a hub error; permanent ones fail the Job without retries."""
    if isinstance(exc, GatedRepoError):
        return CacheReason.GATED_MODEL, True
    if isinstance(exc, RepositoryNotFoundError | RevisionNotFoundError | DisabledRepoError):
        return CacheReason.DOWNLOAD_FAILED, True
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return CacheReason.DOWNLOAD_FAILED, status in (401, 403)
    return CacheReason.DOWNLOAD_FAILED, False


def _hint(reason: CacheReason, req: DownloadRequest) -> str:
    if reason == CacheReason.GATED_MODEL:
        return (f"{req.model} is gated: accept its licence on the hub with the account whose token "
                "spec.credentials.huggingFaceToken names")
    return f"{req.model}@{req.revision}"


def run_download(req: DownloadRequest, out: TextIO = sys.stdout, interval: float = 10.0) -> int:
    """Download the filtered snapshot and write the marker. Returns the process exit code:
    0 done, EXIT_PERMANENT (3) for errors a retry cannot fix, EXIT_RETRY otherwise."""
    report = Reporter(out)
    api = HfApi(endpoint=req.endpoint, token=req.token)
    try:
        commit = api.repo_info(req.model, revision=req.revision).sha or req.revision
        files = [f for f in api.list_repo_tree(req.model, revision=commit, recursive=True)
                 if isinstance(f, RepoFile)]
        wanted = set(filter_repo_objects([f.path for f in files], allow_patterns=list(req.allow),
                                         ignore_patterns=list(req.ignore)))
        total = sum(f.size for f in files if f.path in wanted)
        storage = req.cache_dir / repo_folder_name(repo_id=req.model, repo_type="model")
        report.progress(min(bytes_on_disk(storage), total), total)
        stop = threading.Event()
        watcher = threading.Thread(
            target=_watch, daemon=True,
            args=(stop, interval, lambda: report.progress(min(bytes_on_disk(storage), total), total)))
        watcher.start()
        try:
            snapshot_download(req.model, revision=req.revision, cache_dir=str(req.cache_dir),
                              allow_patterns=list(req.allow), ignore_patterns=list(req.ignore),
                              endpoint=req.endpoint, token=req.token)
        finally:
            stop.set()
            watcher.join()
    except Exception as exc:  # every failure becomes one parseable line and an exit code
        reason, permanent = _classify(exc)
        report.error(reason, f"{_hint(reason, req)}: {type(exc).__name__}: {exc}")
        return EXIT_PERMANENT if permanent else EXIT_RETRY
    report.progress(total, total)
    write_marker(req.marker, {"model": req.model, "revision": req.revision, "commit": commit,
                              "bytes": total, "files": sorted(wanted)})
    return 0


def write_marker(path: Path, body: dict[str, object]) -> None:
    """Write the completion marker atomically (readers never see a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(body, sort_keys=True) + "\n")
    os.replace(partial, path)
