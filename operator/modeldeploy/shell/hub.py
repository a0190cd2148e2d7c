"""Model metadata from the Hugging Face hub: config.json, the safetensors index and counts.

Built on huggingface_hub so the endpoint, token, cache layout and URL shapes are the ones
vLLM's own download will use. Bounded by design: every file is first probed with one HEAD
request without retries (`get_hf_file_metadata(retry_on_errors=False)`), because
`hf_hub_download` on its own retries a failed HEAD with a 60 s timeout and exponential
backoff when nothing is cached. Only after the probe answers does `hf_hub_download` fetch
the file into the on-disk cache. Parsed results are kept in an in-process LRU keyed by
(repo, revision). The exact parameter counts by dtype come from the hub's model API
(`model_info(expand=["safetensors"])`, one GET, the same numbers the model page shows) and ride
along in the index mapping as `parameters` and `commit` (facts/checkpoint.Checkpoint.from_index).
"""

from __future__ import annotations

import copy
import json
import math
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from huggingface_hub import (
    HfApi,
    get_hf_file_metadata,
    get_token,
    hf_hub_download,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..facts.resolve import HubLookupError

DEFAULT_ENDPOINT = "https://huggingface.co"
CONFIG = "config.json"
INDEX = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"

Result = tuple[dict[str, Any], dict[str, Any] | None]


def _is_timeout(exc: BaseException) -> bool:
    # httpx/httpx2 TimeoutException, requests' Timeout, the builtin TimeoutError: match by name
    # so the client does not depend on which HTTP library huggingface_hub ships with.
    return any("Timeout" in cls.__name__ for cls in type(exc).__mro__)


def _is_transport(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"TransportError", "ConnectError", "NetworkError", "ConnectionError"})


class HubClient:
    """Fetch (config.json, safetensors index or None) for a repo; see `fetch`."""

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        cache_dir: Path | None = None,
        max_entries: int = 128,
    ) -> None:
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        self._token: str | bool = token or get_token() or False  # False: never read another token
        self.timeout = timeout
        self.cache_dir = cache_dir
        self._max_entries = max_entries
        self._lru: OrderedDict[tuple[str, str], Result] = OrderedDict()
        self._lock = threading.Lock()
        if "HF_HUB_DOWNLOAD_TIMEOUT" not in os.environ:
            # The GET after a successful probe reads this module-level setting (no per-call
            # argument); keep it within our bound unless the user chose one.
            hf_constants.HF_HUB_DOWNLOAD_TIMEOUT = max(1, math.ceil(timeout))

    # -- public -------------------------------------------------------------------------

    def fetch(self, repo_id: str, revision: str | None) -> Result:
        """config.json and model.safetensors.index.json (None when the repo has no index).

        A single-file checkpoint has no index; then the size of `model.safetensors` (one HEAD)
        stands in as `{"metadata": {"total_size": size}}`. Raises HubLookupError.
        """
        rev = revision or hf_constants.DEFAULT_REVISION
        key = (repo_id.lower(), rev)
        with self._lock:
            if key in self._lru:
                self._lru.move_to_end(key)
                return copy.deepcopy(self._lru[key])
        config_path, stale = self._path(repo_id, CONFIG, rev)
        if config_path is None:
            raise HubLookupError(
                f"the repository {repo_id} has no {CONFIG} (is it a transformers model?)"
            )
        config = self._load(repo_id, CONFIG, config_path)
        if stale:
            # Hub down, config.json from disk: take the index from disk too, never the network,
            # and do not memoise a degraded answer (the hub may come back).
            cached = self._cached(repo_id, INDEX, rev)
            return config, (self._load(repo_id, INDEX, cached) if cached else None)
        index_path, _ = self._path(repo_id, INDEX, rev)
        index = self._load(repo_id, INDEX, index_path) if index_path else None
        if index is None:
            size = self._size(repo_id, SINGLE_FILE, rev)
            index = {"metadata": {"total_size": size}} if size else None
        counts = self._counts(repo_id, rev)
        if counts:
            index = {**(index or {}), **counts}
        result: Result = (config, index)
        with self._lock:
            self._lru[key] = copy.deepcopy(result)
            while len(self._lru) > self._max_entries:
                self._lru.popitem(last=False)
        return result

    # -- internals ----------------------------------------------------------------------

    def _probe(self, repo_id: str, filename: str, rev: str) -> Any:
        """One HEAD, no retries. None when the file does not exist in the repo."""
        url = hf_hub_url(repo_id, filename, revision=rev, endpoint=self.endpoint)
        try:
            return get_hf_file_metadata(
                url,
                token=self._token,
                timeout=self.timeout,
                endpoint=self.endpoint,
                retry_on_errors=False,
            )
        except EntryNotFoundError:  # the repo and revision exist, the file does not
            return None

    def _path(self, repo_id: str, filename: str, rev: str) -> tuple[str | None, bool]:
        """(local path or None when the repo lacks the file, True when served stale from disk)."""
        try:
            meta = self._probe(repo_id, filename, rev)
        except Exception as exc:
            cached = self._cached(repo_id, filename, rev)
            if cached is not None and (
                _is_timeout(exc) or _is_transport(exc) or self._server_error(exc)
            ):
                return cached, True  # hub down: the copy on disk is as good as it gets
            raise self._explain(exc, repo_id, filename, rev) from exc
        if meta is None:
            return None, False
        if meta.commit_hash:
            cached = self._cached(repo_id, filename, meta.commit_hash)
            if cached is not None:
                return cached, False  # this exact commit is on disk: no download
        try:
            path = str(
                hf_hub_download(
                    repo_id,
                    filename,
                    revision=rev,
                    cache_dir=self.cache_dir,
                    endpoint=self.endpoint,
                    token=self._token,
                    etag_timeout=self.timeout,
                )
            )
        except Exception as exc:
            raise self._explain(exc, repo_id, filename, rev) from exc
        return path, False

    def _cached(self, repo_id: str, filename: str, rev: str) -> str | None:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=self.cache_dir, revision=rev)
        return found if isinstance(found, str) else None

    @staticmethod
    def _load(repo_id: str, filename: str, path: str) -> dict[str, Any]:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise HubLookupError(
                f"{filename} of {repo_id} is unreadable or not JSON ({exc})"
            ) from exc
        if not isinstance(data, dict):
            raise HubLookupError(f"{filename} of {repo_id} is not a JSON object")
        return data

    def _counts(self, repo_id: str, rev: str) -> dict[str, Any] | None:
        """{"parameters": {dtype: count}, "commit": sha} from the model API, or None.

        A refinement like the size: when the hub does not say (no safetensors, an older hub, an
        error), the facts fall back to the byte total or the estimate and the plan says so.
        """
        try:
            info = HfApi(endpoint=self.endpoint, token=self._token).model_info(
                repo_id, revision=rev, expand=["safetensors", "sha"], timeout=self.timeout
            )
        except Exception:
            return None
        counts = getattr(getattr(info, "safetensors", None), "parameters", None)
        if not isinstance(counts, dict) or not counts:
            return None
        return {"parameters": {str(k): int(v) for k, v in counts.items()}, "commit": getattr(info, "sha", None)}

    def _size(self, repo_id: str, filename: str, rev: str) -> int | None:
        try:
            meta = self._probe(repo_id, filename, rev)
        except Exception:
            return None  # the size is a refinement; config.json already answered
        size = getattr(meta, "size", None)
        return size if isinstance(size, int) and size > 0 else None

    @staticmethod
    def _server_error(exc: BaseException) -> bool:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", 0) or 0
        return isinstance(exc, HfHubHTTPError) and (status >= 500 or status == 429)

    def _explain(self, exc: BaseException, repo_id: str, filename: str, rev: str) -> HubLookupError:
        """One clause naming what failed, for "model X is not in the catalog and <clause>"."""
        where = f"the hub at {self.endpoint}"
        if isinstance(exc, HubLookupError):
            return exc
        if isinstance(exc, OfflineModeIsEnabled):
            return HubLookupError("the hub is disabled (HF_HUB_OFFLINE is set)")
        if _is_timeout(exc):
            return HubLookupError(f"{where} is unreachable (timeout after {self.timeout:g}s)")
        if isinstance(exc, GatedRepoError):
            return HubLookupError(f"{repo_id} is gated on the hub and {self._token_state()}")
        if isinstance(exc, RepositoryNotFoundError):
            return HubLookupError(
                f"the hub has no repository {repo_id} "
                f"(private and gated repos need a token; {self._token_state()})"
            )
        if isinstance(exc, RevisionNotFoundError):
            return HubLookupError(f"the hub has no revision {rev!r} of {repo_id}")
        if isinstance(exc, HfHubHTTPError):
            status = getattr(getattr(exc, "response", None), "status_code", "?")
            return HubLookupError(f"{where} answered HTTP {status} for {repo_id}/{filename}")
        if _is_transport(exc):
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return HubLookupError(f"{where} is unreachable ({reason})")
        if isinstance(exc, ValueError):  # huggingface_hub's HFValidationError for malformed ids
            return HubLookupError(f"{repo_id!r} is not a valid hub repo id ({exc})")
        return HubLookupError(
            f"{where} failed for {repo_id}/{filename} ({type(exc).__name__}: {exc})"
        )

    def _token_state(self) -> str:
        return "the token was refused" if self._token else "no HF_TOKEN is set"
