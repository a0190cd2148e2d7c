"""HubClient against a fake Hugging Face hub on loopback: real huggingface_hub, real HTTP.

The fake answers the URL shapes and headers huggingface_hub's file download uses (and the model
API's `GET /api/models/{org}/{name}[/revision/{rev}]?expand=safetensors` for parameter counts):
HEAD/GET `/{org}/{name}/resolve/{revision}/{file}` with X-Repo-Commit, ETag and
Content-Length (X-Linked-Size for LFS files), and X-Error-Code on 401/404 the way the hub
does (RepoNotFound, RevisionNotFound, EntryNotFound).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from modeldeploy.api.deployment import ModelSource
from modeldeploy.errors import ModelUnresolved
from modeldeploy.facts.catalog import Catalog
from modeldeploy.facts.hf_config import facts_from_hf
from modeldeploy.facts.resolve import HubLookupError, resolve_facts
from modeldeploy.shell.hub import HubClient

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hub"
# Llama-3.2-1B-Instruct ships one model.safetensors (no index); the fake knows only its size.
SINGLE_FILE_SIZES = {"meta-llama/Llama-3.2-1B-Instruct": 2471645608}
# What the hub's model API reports under "safetensors" (the counts its model pages show):
# Llama-3.1-8B-Instruct holds 8,030,261,248 BF16 parameters (16,060,522,496 bytes / 2).
SAFETENSORS_COUNTS = {"meta-llama/Llama-3.1-8B-Instruct": {"parameters": {"BF16": 8030261248}, "total": 8030261248}}


@dataclass
class Request:
    method: str
    path: str
    authorization: str | None


@dataclass
class FakeHub:
    url: str
    requests: list[Request] = field(default_factory=list)

    def count(self, method: str | None = None, under: str = "") -> int:
        return sum(1 for r in self.requests if method in (None, r.method) and under in r.path)


def _commit(repo: str) -> str:
    return hashlib.sha1(repo.encode()).hexdigest()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

        def _answer(self, with_body: bool) -> None:
            hub.requests.append(Request(self.command, self.path, self.headers.get("Authorization")))
            parts = unquote(self.path.split("?")[0]).lstrip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                return self._model_info("/".join(parts[2:4]))
            if len(parts) < 5 or parts[2] != "resolve":
                return self._error(404, None, None)
            repo, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            folder = FIXTURES / repo
            if not folder.is_dir():
                return self._error(401, "RepoNotFound", None)
            if revision not in ("main", _commit(repo)):
                return self._error(404, "RevisionNotFound", None)
            path = folder / filename
            if filename == "model.safetensors" and repo in SINGLE_FILE_SIZES:
                size = SINGLE_FILE_SIZES[repo]
                # LFS file: the hub answers HEAD with the linked size and etag; no body here.
                self.send_response(200)
                self.send_header("X-Repo-Commit", _commit(repo))
                self.send_header("X-Linked-Size", str(size))
                self.send_header("X-Linked-Etag", f'"{hashlib.sha256(repo.encode()).hexdigest()}"')
                self.send_header("ETag", f'"{hashlib.sha256(repo.encode()).hexdigest()}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if not path.is_file():
                return self._error(404, "EntryNotFound", _commit(repo))
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("X-Repo-Commit", _commit(repo))
            self.send_header("ETag", f'"{hashlib.sha1(body).hexdigest()}"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)
            return None

        def _model_info(self, repo: str) -> None:
            if not (FIXTURES / repo).is_dir():
                return self._error(401, "RepoNotFound", None)
            info: dict[str, object] = {"id": repo, "sha": _commit(repo)}
            if repo in SAFETENSORS_COUNTS:
                info["safetensors"] = SAFETENSORS_COUNTS[repo]
            body = json.dumps(info).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None

        def _error(self, status: int, code: str | None, commit: str | None) -> None:
            body = b'{"error": "not found"}'
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def do_GET(self) -> None:
            self._answer(with_body=True)

    return Handler


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _no_ambient_hub_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_ETAG_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fetch_reads_config_and_index_through_the_hub_urls(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    client = HubClient(endpoint=fake_hub.url, token="hf_test", timeout=2, cache_dir=tmp_path)
    config, index = client.fetch("meta-llama/Llama-3.1-8B-Instruct", None)
    assert config["num_hidden_layers"] == 32
    assert index is not None and index["metadata"]["total_size"] == 16060522496
    paths = {r.path for r in fake_hub.requests}
    assert "/meta-llama/Llama-3.1-8B-Instruct/resolve/main/config.json" in paths
    assert "/meta-llama/Llama-3.1-8B-Instruct/resolve/main/model.safetensors.index.json" in paths
    assert {r.authorization for r in fake_hub.requests} == {"Bearer hf_test"}
    facts = facts_from_hf("meta-llama/Llama-3.1-8B-Instruct", config, index)
    assert facts.parameters == 8030261248 and facts.checkpoint_bytes == 16060522496
    # Exact counts by dtype from the model API, with the commit they describe.
    assert index["parameters"] == {"BF16": 8030261248} and index["commit"] == _commit("meta-llama/Llama-3.1-8B-Instruct")
    assert "/api/models/meta-llama/Llama-3.1-8B-Instruct/revision/main?expand=safetensors&expand=sha" in paths
    assert facts.parameter_source == "safetensors" and facts.checkpoint_commit == index["commit"] and not facts.notes


def test_without_counts_the_facts_say_estimated(fake_hub: FakeHub, tmp_path: Path) -> None:
    client = HubClient(endpoint=fake_hub.url, timeout=2, cache_dir=tmp_path)
    config, index = client.fetch("Qwen/Qwen2.5-72B-Instruct", None)  # the fixture has no counts
    facts = facts_from_hf("Qwen/Qwen2.5-72B-Instruct", config, index)
    assert index is None and facts.parameter_source == "estimate"
    assert facts.notes == ("parameters estimated from config.json (no safetensors counts)",)


def test_hf_endpoint_and_hf_token_come_from_the_environment(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    config, _ = HubClient(timeout=2, cache_dir=tmp_path).fetch("microsoft/phi-4", None)
    assert config["model_type"] == "phi3"
    assert fake_hub.count() > 0
    assert {r.authorization for r in fake_hub.requests} == {"Bearer hf_from_env"}


def test_repeated_fetches_are_served_from_memory_then_from_disk(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    client = HubClient(endpoint=fake_hub.url, timeout=2, cache_dir=tmp_path)
    first = client.fetch("deepseek-ai/DeepSeek-V3", None)
    gets, total = fake_hub.count("GET", "/resolve/"), fake_hub.count()
    assert gets == 1  # config.json; the fixture repo has no index (a 404 HEAD, nothing fetched)

    assert client.fetch("deepseek-ai/DeepSeek-V3", None) == first
    assert fake_hub.count() == total  # in-process LRU: no request at all

    other = HubClient(endpoint=fake_hub.url, timeout=2, cache_dir=tmp_path)
    assert other.fetch("deepseek-ai/DeepSeek-V3", None) == first
    assert fake_hub.count("GET", "/resolve/") == gets  # disk cache: metadata HEADs only, no download

    dead = HubClient(endpoint=f"http://127.0.0.1:{_closed_port()}", timeout=1, cache_dir=tmp_path)
    assert dead.fetch("deepseek-ai/DeepSeek-V3", None)[0] == first[0]  # hub down: the disk copy


def test_results_are_copies_the_caller_may_mutate(fake_hub: FakeHub, tmp_path: Path) -> None:
    client = HubClient(endpoint=fake_hub.url, timeout=2, cache_dir=tmp_path)
    config, _ = client.fetch("microsoft/phi-4", None)
    config["num_hidden_layers"] = 1
    assert client.fetch("microsoft/phi-4", None)[0]["num_hidden_layers"] == 40


def test_single_file_checkpoint_reports_the_safetensors_size(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    repo = "meta-llama/Llama-3.2-1B-Instruct"
    config, index = HubClient(endpoint=fake_hub.url, timeout=2, cache_dir=tmp_path).fetch(
        repo, None
    )
    assert index == {"metadata": {"total_size": SINGLE_FILE_SIZES[repo]}}
    assert not any(
        r.method == "GET" and r.path.endswith("/model.safetensors") for r in fake_hub.requests
    )
    facts = facts_from_hf(repo, config, index)
    assert facts.checkpoint_bytes == SINGLE_FILE_SIZES[repo]
    assert abs(facts.parameters - 1_235_814_400) / 1_235_814_400 < 1e-4  # the header adds a few KiB


def test_repo_without_index_or_weights_has_no_index(fake_hub: FakeHub, tmp_path: Path) -> None:
    _, index = HubClient(endpoint=fake_hub.url, timeout=2, cache_dir=tmp_path).fetch(
        "microsoft/phi-4", None
    )
    assert index is None  # the fixture repo holds config.json only


def test_revision_is_sent_and_unknown_revisions_are_named(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    client = HubClient(endpoint=fake_hub.url, timeout=2, cache_dir=tmp_path)
    commit = _commit("microsoft/phi-4")
    client.fetch("microsoft/phi-4", commit)
    assert any(f"/resolve/{commit}/config.json" in r.path for r in fake_hub.requests)
    with pytest.raises(HubLookupError, match="no revision 'v9'"):
        client.fetch("microsoft/phi-4", "v9")


def test_unknown_repo_becomes_model_unresolved_naming_the_model(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    client = HubClient(endpoint=fake_hub.url, timeout=2, cache_dir=tmp_path)
    source = ModelSource(name="acme/foo")
    with pytest.raises(ModelUnresolved) as err:
        resolve_facts(source, Catalog([]), client.fetch)
    message = str(err.value)
    assert message.startswith(
        "model acme/foo is not in the catalog and the hub has no repository acme/foo"
    )
    assert message.endswith("by hand in spec.model.architecture")
    assert "spec.model.hfConfig" in message


def test_unreachable_hub_fails_fast(tmp_path: Path) -> None:
    client = HubClient(endpoint=f"http://127.0.0.1:{_closed_port()}", timeout=1, cache_dir=tmp_path)
    started = time.monotonic()
    with pytest.raises(
        ModelUnresolved,
        match=r"model acme/foo is not in the catalog and the hub at .* is unreachable",
    ):
        resolve_facts(ModelSource(name="acme/foo"), Catalog([]), client.fetch)
    assert time.monotonic() - started < 3


def test_silent_hub_times_out_within_the_bound(tmp_path: Path) -> None:
    # Accepts connections (the kernel's backlog) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = HubClient(endpoint=f"http://127.0.0.1:{port}", timeout=1, cache_dir=tmp_path)
        started = time.monotonic()
        with pytest.raises(ModelUnresolved, match=r"unreachable \(timeout after 1s\)"):
            resolve_facts(ModelSource(name="acme/foo"), Catalog([]), client.fetch)
        assert time.monotonic() - started < 4
