"""The shared model cache (spec.cache.mode shared): one claim and one download Job per
(model, revision) per namespace, and how serving pods mount it.

Every ModelDeployment in a namespace that serves the same repository at the same revision
renders the *same* claim and Job (same names, same content), so applying them twice is a no-op.
The shell adds one non-controller ownerReference per ModelDeployment (`shared_owner_reference`),
so the garbage collector removes them when the last of those ModelDeployments goes.

The name carries a digest of (repository, revision): a different revision gets a different
claim, and a claim someone created for another revision is never written over. The model and
revision are also stamped as annotations, which `decisions.cache.claim_conflict` compares.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api import ModelDeployment
from ..decisions.cache import MODEL_ANNOTATION, REVISION_ANNOTATION
from ..planner import Plan

SHARED_MOUNT = "/models"
HUB_CACHE = f"{SHARED_MOUNT}/hub"  # huggingface_hub's cache layout (HF_HUB_CACHE)
MARKER_DIR = f"{SHARED_MOUNT}/.modeldeploy"
CACHE_LABEL = "modeldeploy.dev/model-cache"  # value: the cache digest; marks a shared object
DEFAULT_REVISION = "main"  # huggingface_hub's default revision
DOWNLOAD_CONTAINER = "download"
GATE_CONTAINER = "wait-for-model-cache"
# Exit code of `modeldeploy download` for failures a retry cannot fix (gated or missing repo,
# refused token): the Job's podFailurePolicy fails the Job at once instead of retrying.
EXIT_PERMANENT = 3
DOWNLOAD_BACKOFF_LIMIT = 6
DOWNLOAD_UID = 65532  # the operator image's user (Dockerfile: USER 65532:65532)

# What vLLM reads from a safetensors checkpoint: the configs and index (*.json), the weights
# (*.safetensors), tokenizers (tokenizer.model, *.tiktoken, merges.txt/vocab.txt), chat templates
# (*.jinja) and custom model code for trust_remote_code (*.py). Source: vLLM
# model_executor/model_loader/default_loader.py `_prepare_weights` (safetensors first, *.bin
# only as a fallback) and weight_utils.py `download_weights_from_hf`.
ALLOW_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja", "*.py")
# Never needed when safetensors exist: Meta's original consolidated checkpoints (Llama repos ship
# them under original/), PyTorch pickles, GGUF, ONNX, TF/Flax weights.
IGNORE_PATTERNS = ("original/*", "*.pth", "*.pt", "*.bin", "*.gguf", "*.onnx", "*.h5", "*.msgpack",
                   "*.ckpt")

# Shell text for the init gate: no user data reaches it (the marker path is "$1").
GATE_SCRIPT = (
    'until [ -f "$1" ]; do echo "waiting for the model cache to be complete ($1)"; sleep 10;'
    " done"
)


@dataclass(frozen=True)
class CacheKey:
    """The identity of a shared cache: the repository vLLM serves and its revision."""

    model: str
    revision: str

    @property
    def digest(self) -> str:
        text = f"{self.model}@{self.revision}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def claim_name(self) -> str:
        """`model-cache-<slug>-<digest>`, at most 52 characters (room for `-download`)."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.model.lower()).strip("-")[:26].strip("-")
        return f"model-cache-{slug}-{self.digest}" if slug else f"model-cache-{self.digest}"

    @property
    def job_name(self) -> str:
        return f"{self.claim_name}-download"

    @property
    def marker(self) -> str:
        """The file the download Job writes last; serving pods start only once it exists."""
        return f"{MARKER_DIR}/{self.digest}.complete"


@dataclass(frozen=True)
class SharedMount:
    """How a serving pod uses the shared cache: the claim read-only at `mount`, and an init
    container that waits for the download Job's completion marker."""

    claim: str
    mount: str
    gate_container: str
    gate_command: list[str]


def shared_mount(key: CacheKey) -> SharedMount:
    return SharedMount(key.claim_name, SHARED_MOUNT, GATE_CONTAINER,
                       ["sh", "-c", GATE_SCRIPT, GATE_CONTAINER, key.marker])


def shared_env() -> list[tuple[str, str]]:
    """Serving pods read the claim's hub cache and never contact the hub (huggingface_hub
    constants: HF_HUB_CACHE, HF_HUB_OFFLINE; vLLM honours both)."""
    return [("HF_HUB_CACHE", HUB_CACHE), ("HF_HUB_OFFLINE", "1")]


def cache_key(md: ModelDeployment, plan: Plan) -> CacheKey:
    """The key of the repository vLLM serves (the plan's, which may be an fp8 variant)."""
    return CacheKey(plan.model, md.spec.model.revision or DEFAULT_REVISION)


def shared_labels(key: CacheKey) -> dict[str, str]:
    """Labels of the claim and Job: no ModelDeployment's name (they belong to several)."""
    return {
        "app.kubernetes.io/name": "model-cache",
        "app.kubernetes.io/component": "model-cache",
        "app.kubernetes.io/managed-by": "modeldeploy",
        CACHE_LABEL: key.digest,
    }


def shared_annotations(key: CacheKey) -> dict[str, str]:
    return {MODEL_ANNOTATION: key.model, REVISION_ANNOTATION: key.revision}


def download_args(key: CacheKey) -> list[str]:
    """argv of `modeldeploy download` in the Job (one element each, never shell text)."""
    args = ["--model", key.model, "--revision", key.revision, "--cache-dir", HUB_CACHE,
            "--marker", key.marker]
    for pattern in ALLOW_PATTERNS:
        args += ["--allow", pattern]
    for pattern in IGNORE_PATTERNS:
        args += ["--ignore", pattern]
    return args


def is_shared(obj: Mapping[str, Any]) -> bool:
    """True for the shared claim and download Job (several ModelDeployments own them)."""
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return isinstance(labels, Mapping) and CACHE_LABEL in labels
