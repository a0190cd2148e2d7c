"""The startup watchdog: judge a starting vLLM replica by its progress, not by a fixed budget. Pure.

A replica is starting while its vLLM container runs and the pod is not Ready (readiness stays
vLLM's `/v1/models`). Its progress is the last of vLLM's own startup lines in its log (pods/log),
each a step that a hung start never reaches:

| Phase | Lines (vLLM source, v0.11 / v0.19 logs) |
|---|---|
| Download | huggingface_hub's `Fetching N files`, `*.safetensors: N%` (emptyDir / pvc caches) |
| Load | `Starting to load model` (v1/worker/gpu_model_runner.py), `Loading safetensors checkpoint shards: N% Completed \\| i/n` (model_loader/weight_utils.py), `Loading weights took` (model_loader/default_loader.py), `Model loading took` (gpu_model_runner.py) |
| Compile | `Dynamo bytecode transform time`, `Compiling a graph for`, `torch.compile takes` (compilation/backends.py, monitor.py) |
| KV cache | `Available KV cache memory`, `GPU KV cache size`, `Maximum concurrency for` (v1/worker/gpu_worker.py, v1/core/kv_cache_utils.py) |
| CUDA graphs | `Capturing CUDA graphs … i/n`, `Graph capturing finished in` (gpu_model_runner.py) |
| Serving | `init engine … took`, `Starting vLLM API server`, `Application startup complete` |

A start fails when its progress has not changed for `rollout.stallSeconds` (`LoadStalled`, or
`DownloadStalled` while vLLM downloads into its own cache), or at once when vLLM reports an
error the rollout classification knows (`OOMAtLoad`, `KVCacheTooSmall`). One exception to the
plain stall: container logs are split on newlines, and tqdm redraws its bar with carriage
returns, so the weight-loading bar shows up only when it ends. Between `Starting to load model`
and `Loading weights took` the allowance is therefore the larger of stallSeconds and the time
to read the checkpoint at `MIN_LOAD_BYTES_PER_S`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .progress import ProgressMark, observe
from .rollout import StuckKind, StuckReason, classify_text

# 50 MB/s: the same floor rate the default progress deadline uses (decisions/rollout.py); a
# shared network file system (EFS bursting, NFS) reads at least that.
MIN_LOAD_BYTES_PER_S = 50 * 1000**2


class StartPhase(StrEnum):
    STARTING = "Starting"
    DOWNLOAD = "Download"
    LOAD = "Load"
    LOADED = "Loaded"
    COMPILE = "Compile"
    KV_CACHE = "KVCache"
    CUDA_GRAPHS = "CUDAGraphs"
    SERVING = "Serving"


_MILESTONES: tuple[tuple[re.Pattern[str], StartPhase], ...] = tuple(
    (re.compile(pattern), phase) for pattern, phase in (
        (r"Fetching \d+ files|\.safetensors:\s+\d+%|Downloading .*\.safetensors", StartPhase.DOWNLOAD),
        (r"Starting to load model|Loading safetensors checkpoint shards", StartPhase.LOAD),
        (r"Loading weights took|Model loading took", StartPhase.LOADED),
        (r"Dynamo bytecode transform time|Compiling a graph for|torch\.compile take", StartPhase.COMPILE),
        (r"Available KV cache memory|GPU KV cache size|Maximum concurrency for", StartPhase.KV_CACHE),
        (r"Capturing CUDA graphs|Graph capturing finished", StartPhase.CUDA_GRAPHS),
        (r"init engine .*took|Starting vLLM API server|Application startup complete", StartPhase.SERVING),
    )
)
# A literal that every line matching a milestone holds: the log is searched for these (str.rfind,
# C speed) and only their lines are matched against the patterns (bench/startup_bench.py).
_KEYWORDS = (
    "Fetching ", ".safetensors", "Starting to load model", "Loading safetensors checkpoint shards",
    "Loading weights took", "Model loading took", "Dynamo bytecode transform time",
    "Compiling a graph for", "torch.compile take", "Available KV cache memory",
    "GPU KV cache size", "Maximum concurrency for", "Capturing CUDA graphs",
    "Graph capturing finished", "init engine ", "Starting vLLM API server",
    "Application startup complete",
)


@dataclass(frozen=True, slots=True)
class StartProgress:
    """The newest startup step in a log: its phase and text (None: no step seen yet)."""

    phase: StartPhase
    line: str | None


def _step_in(segment: str) -> StartProgress | None:
    text = segment.strip()
    for pattern, phase in _MILESTONES:
        if text and pattern.search(text):
            return StartProgress(phase, text[:300])
    return None


def last_step(log: str) -> StartProgress:
    """The last vLLM startup line of a log tail (a line ends at a newline or a carriage return:
    tqdm redraws its bars with carriage returns).

    Newest line first, only lines holding a milestone's keyword are matched; each keyword's
    position is searched backwards once over the whole log (linear in the log's length)."""
    where = {k: log.rfind(k) for k in _KEYWORDS}
    while True:
        index = max(where.values())
        if index < 0:
            return StartProgress(StartPhase.STARTING, None)
        start = max(log.rfind("\n", 0, index), log.rfind("\r", 0, index)) + 1
        ends = [i for i in (log.find("\n", index), log.find("\r", index)) if i >= 0]
        step = _step_in(log[start:min(ends, default=len(log))])
        if step is not None:
            return step
        for keyword, found in where.items():  # below this line only
            if found >= start:
                where[keyword] = log.rfind(keyword, 0, start)


@dataclass(frozen=True, slots=True)
class StartVerdict:
    pod: str
    progress: StartProgress
    mark: ProgressMark
    stuck: StuckReason | None  # None: still progressing


def _container(pod: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if isinstance(cs, Mapping) and cs.get("name") == name:
            return cs
    return {}


def starting(pod: Mapping[str, Any], container: str = "vllm") -> bool:
    """The vLLM container runs and the pod is not Ready: the watchdog's to judge."""
    cs = _container(pod, container)
    return bool((cs.get("state") or {}).get("running")) and not cs.get("ready")


@dataclass(frozen=True, slots=True)
class Allowance:
    """How long a start may go without progress before it counts as stalled.

    stall_seconds: `spec.rollout.stallSeconds`; checkpoint_bytes: the checkpoint's size
    (model facts), which sets the floor while vLLM loads weights (see the module docstring).
    """

    stall_seconds: float
    checkpoint_bytes: int

    def seconds(self, phase: StartPhase) -> float:
        """The allowance in `phase`, s: stallSeconds, and while loading weights at least the
        checkpoint read at `MIN_LOAD_BYTES_PER_S`."""
        allowance = float(self.stall_seconds)
        if phase == StartPhase.LOAD:
            allowance = max(allowance, math.ceil(max(0, self.checkpoint_bytes) / MIN_LOAD_BYTES_PER_S))
        return allowance


def judge_start(
    pod: Mapping[str, Any], log: str, previous: ProgressMark | None, now: float,
    allowance: Allowance, container: str = "vllm",
) -> StartVerdict:
    """One starting pod: has it moved within its allowance, and has vLLM reported an error?

    `previous` is the mark the caller kept from the last pass (None the first time); the
    returned mark replaces it. The signature includes the container's restart count, so a
    restarted container starts a fresh allowance (a crash loop is the rollout
    classification's to judge).
    """
    name = str((pod.get("metadata") or {}).get("name") or "")
    progress = last_step(log)
    restarts = _container(pod, container).get("restartCount") or 0
    mark = observe(previous, (restarts, progress.phase, progress.line), now)
    error = classify_text(log)
    if error is not None:
        kind, message, suggested = error
        return StartVerdict(name, progress, mark, StuckReason(kind, name, message, True, suggested))
    allowed = allowance.seconds(progress.phase)
    if not mark.stalled(now, allowed):
        return StartVerdict(name, progress, mark, None)
    kind = StuckKind.DOWNLOAD_STALLED if progress.phase == StartPhase.DOWNLOAD else StuckKind.LOAD_STALLED
    last = f"last: {progress.line!r}" if progress.line else "no vLLM startup line yet"
    message = (f"{name}: no startup progress for {round(mark.idle_seconds(now))}s "
               f"(allowance {allowed:.0f}s, phase {progress.phase}); {last}")
    return StartVerdict(name, progress, mark, StuckReason(kind, name, message, True))


def overall(verdicts: Sequence[StartVerdict], classified: StuckReason | None) -> StuckReason | None:
    """Combine the watchdog with the rollout classification of the same pods.

    A specific reason from the pod status (OOM, KV, image, crash loop, GPU) wins; then a
    watchdog failure; a `ProgressDeadlineExceeded` is dropped while any starting pod still
    progresses (a slow start that moves is never cut short by a fixed deadline).
    """
    if classified is not None and classified.kind != StuckKind.PROGRESS_DEADLINE_EXCEEDED:
        return classified
    stuck = [v.stuck for v in verdicts if v.stuck is not None]
    if stuck:
        return stuck[0]
    if classified is not None and any(v.stuck is None for v in verdicts):
        return None
    return classified


LWS_GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"  # set by LeaderWorkerSet


def loading_replicas(pods: Sequence[Mapping[str, Any]]) -> int:
    """Replicas that are loading: pods scheduled to a node, alive, not Ready (Pending pods hold
    no GPU and cost nothing to remove). A LeaderWorkerSet group counts once, whichever of its
    pods is still loading."""
    groups: set[str] = set()
    for pod in pods:
        meta, spec, status = (pod.get(k) or {} for k in ("metadata", "spec", "status"))
        if meta.get("deletionTimestamp") or not spec.get("nodeName") or \
                status.get("phase") in ("Succeeded", "Failed"):
            continue
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or [] if isinstance(c, Mapping))
        if not ready:
            group = (meta.get("labels") or {}).get(LWS_GROUP_INDEX_LABEL)
            groups.add(f"group/{group}" if group is not None else f"pod/{meta.get('name')}")
    return len(groups)
