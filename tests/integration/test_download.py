"""`modeldeploy download` (the shared cache's Job) against a fake hub on loopback: the real
huggingface_hub `repo_info`, `list_repo_tree` and `snapshot_download`, real HTTP.

The fake answers the URL shapes huggingface_hub 1.x/2.x uses: `/api/models/{repo}/revision/{rev}`,
`/api/models/{repo}/tree/{commit}` and HEAD/GET `/{repo}/resolve/{commit}/{file}` (X-Repo-Commit,
ETag, Content-Length), with `X-Error-Code: GatedRepo` on a gated repo as the hub does.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from modeldeploy.decisions.cache import CacheReason, parse_log
from modeldeploy.render.cache import ALLOW_PATTERNS, EXIT_PERMANENT, IGNORE_PATTERNS
from modeldeploy.shell.download import EXIT_RETRY, DownloadRequest, run_download

REPO = "acme/tiny-llm"
GATED = "acme/gated-llm"
COMMIT = hashlib.sha1(REPO.encode()).hexdigest()
FILES = {
    "config.json": b'{"model_type": "llama"}',
    "tokenizer.json": b'{"version": "1.0"}' * 10,
    "model-00001-of-00002.safetensors": b"\x01" * 300_000,
    "model-00002-of-00002.safetensors": b"\x02" * 200_000,
    "model.safetensors.index.json": b'{"weight_map": {}}',
    "original/consolidated.00.pth": b"\x03" * 400_000,  # Llama repos ship these: never fetched
    "pytorch_model.bin": b"\x04" * 100_000,
    "README.md": b"# tiny",
}
WANTED = {"config.json", "tokenizer.json", "model-00001-of-00002.safetensors",
          "model-00002-of-00002.safetensors", "model.safetensors.index.json"}


class FakeHub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fetched: list[str] = []  # noqa: RUF012 - per-server log, reset by the fixture
    fail_files: set[str] = set()  # noqa: RUF012

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, headers: dict[str, str], with_body: bool = True) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def _json(self, value: object) -> None:
        self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"})

    def _route(self, with_body: bool) -> None:
        path = unquote(urlparse(self.path).path)
        if GATED in path:
            msg = json.dumps({"error": "Access to model acme/gated-llm is restricted."}).encode()
            return self._send(403, msg, {"X-Error-Code": "GatedRepo", "X-Error-Message": "gated"})
        if path.startswith(f"/api/models/{REPO}/revision/"):
            return self._json({"id": REPO, "sha": COMMIT, "siblings": [{"rfilename": f} for f in FILES]})
        if path.startswith(f"/api/models/{REPO}/tree/"):
            return self._json([{"type": "file", "path": f, "size": len(b),
                                "oid": hashlib.sha1(b).hexdigest()} for f, b in FILES.items()])
        prefix = f"/{REPO}/resolve/"
        if path.startswith(prefix):
            name = path[len(prefix):].split("/", 1)[1]
            if name not in FILES or name in self.fail_files:
                return self._send(404 if name not in FILES else 500, b"", {"X-Error-Code": "EntryNotFound"})
            if with_body:
                self.fetched.append(name)
            body = FILES[name]
            etag = hashlib.sha256(body).hexdigest()
            return self._send(200, body, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'}, with_body)
        return self._send(404, b"", {"X-Error-Code": "RepoNotFound"})

    def do_GET(self) -> None:
        self._route(True)

    def do_HEAD(self) -> None:
        self._route(False)


@pytest.fixture
def hub() -> Iterator[str]:
    FakeHub.fetched = []
    FakeHub.fail_files = set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _request(tmp_path: Path, hub: str, model: str = REPO) -> DownloadRequest:
    return DownloadRequest(model=model, revision="main", cache_dir=tmp_path / "hub",
                           marker=tmp_path / ".modeldeploy" / "x.complete", allow=ALLOW_PATTERNS,
                           ignore=IGNORE_PATTERNS, endpoint=hub)


def test_downloads_only_what_vllm_reads_and_writes_the_marker_last(tmp_path: Path, hub: str) -> None:
    out = io.StringIO()
    assert run_download(_request(tmp_path, hub), out, interval=0.05) == 0
    assert set(FakeHub.fetched) == WANTED
    snapshot = tmp_path / "hub" / "models--acme--tiny-llm" / "snapshots" / COMMIT
    assert {p.name for p in snapshot.iterdir()} == WANTED
    assert (tmp_path / "hub" / "models--acme--tiny-llm" / "refs" / "main").read_text() == COMMIT
    marker = json.loads((tmp_path / ".modeldeploy" / "x.complete").read_text())
    total = sum(len(FILES[f]) for f in WANTED)
    assert marker["commit"] == COMMIT and marker["bytes"] == total
    progress, error = parse_log(out.getvalue())
    assert error is None and progress is not None
    assert (progress.bytes_done, progress.bytes_total) == (total, total)


def test_a_second_run_resumes_and_fetches_nothing_again(tmp_path: Path, hub: str) -> None:
    FakeHub.fail_files = {"model-00002-of-00002.safetensors"}
    out = io.StringIO()
    assert run_download(_request(tmp_path, hub), out, interval=0.05) == EXIT_RETRY
    assert not (tmp_path / ".modeldeploy" / "x.complete").exists()
    _, error = parse_log(out.getvalue())
    assert error is not None and error.reason == CacheReason.DOWNLOAD_FAILED
    first = list(FakeHub.fetched)
    assert "model-00002-of-00002.safetensors" not in first
    FakeHub.fail_files = set()
    FakeHub.fetched = []
    assert run_download(_request(tmp_path, hub), io.StringIO(), interval=0.05) == 0
    # Files already complete are not fetched twice.
    assert set(FakeHub.fetched) == WANTED - set(first)


def test_gated_model_is_a_permanent_typed_failure(tmp_path: Path, hub: str) -> None:
    out = io.StringIO()
    assert run_download(_request(tmp_path, hub, GATED), out, interval=0.05) == EXIT_PERMANENT
    progress, error = parse_log(out.getvalue())
    assert progress is None
    assert error is not None and error.reason == CacheReason.GATED_MODEL
    assert "accept its licence" in error.message
    assert not (tmp_path / ".modeldeploy").exists()
