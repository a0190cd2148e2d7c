"""Capacity-aware rollouts: which strategy, why a rollout is stuck, where to roll back to.

Pure functions over observed state. Pods are plain Kubernetes dicts (as the API returns them);
malformed ones are skipped, never raised on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from ..api.status import RolloutStatus


class StrategyKind(StrEnum):
    SURGE = "Surge"
    ONE_AT_A_TIME = "OneAtATime"
    IN_PLACE = "InPlace"


class StrategyReason(StrEnum):
    SURGE = "SurgeWithSpareCapacity"
    NO_SURGE = "RollingWithoutSpareCapacity"
    IN_PLACE = "RolloutWithoutSpareCapacity"
    WAITING = "WaitingForSpareCapacity"
    POOL_CHANGE = "PoolChange"
    POOL_CHANGE_WAITING = "PoolChangeWaitingForCapacity"
    NOTHING_TO_ROLL = "NoReplicas"
    CAPACITY_UNKNOWN = "CapacityUnknown"


@dataclass(frozen=True, slots=True)
class RolloutStrategy:
    """Concrete `RollingUpdate` parameters for the child plus what to say in status.

    `downtime` is True when the strategy takes serving capacity away (InPlace always; the
    operator sets `Reconciling` with `reason` then).
    """

    kind: StrategyKind
    max_surge: int
    max_unavailable: int
    reason: StrategyReason
    message: str

    @property
    def downtime(self) -> bool:
        return self.kind == StrategyKind.IN_PLACE


def choose_strategy(
    replicas: int,
    max_unavailable: int,
    max_surge: int | Literal["auto"],
    free_gpus: int,
    gpus_per_replica: int,
    same_pool: bool,
    *,
    spare_replicas: int | None = None,
) -> RolloutStrategy:
    """Pick the rollout strategy from the capacity free in the *target* pool.

    `free_gpus` is allocatable − requested over the target pool's nodes; `spare_replicas`, when
    given, replaces `free_gpus // gpus_per_replica` with a node-level count
    (`capacity.replicas_that_fit`), which is what multi-GPU and multi-node replicas need.

    - Same pool, a spare replica fits: Surge (maxSurge = min(user maxSurge, spare, replicas),
      maxUnavailable 0): no serving replica goes down before its successor is Ready.
    - Same pool, no spare, replicas > 1: OneAtATime (maxSurge 0, maxUnavailable =
      min(user maxUnavailable, replicas − 1)), keeping replicas − maxUnavailable serving.
    - Same pool, no spare, one replica: InPlace (maxSurge 0, maxUnavailable 1), reason
      RolloutWithoutSpareCapacity: the only replica is down while its successor loads.
    - maxUnavailable 0 and no spare: maxSurge 1, maxUnavailable 0, WaitingForSpareCapacity: the
      surge pod stays Pending until a GPU frees up (or a node is added); nothing is taken down.
    - Pool change: old replicas hold no GPU of the new pool, so all new replicas are surged there
      (maxSurge = replicas, maxUnavailable 0) and old ones go only as new ones become Ready.
    """
    replicas = max(0, replicas)
    gpr = max(1, gpus_per_replica)
    spare = max(0, spare_replicas if spare_replicas is not None else free_gpus // gpr)
    if replicas == 0:
        return RolloutStrategy(StrategyKind.SURGE, 1, 0, StrategyReason.NOTHING_TO_ROLL, "no replica to replace")
    if not same_pool:
        if spare >= replicas:
            msg = f"new pool fits all {replicas} replicas: bringing them up before the old ones go"
            return RolloutStrategy(StrategyKind.SURGE, replicas, 0, StrategyReason.POOL_CHANGE, msg)
        msg = (
            f"new pool fits {spare} of {replicas} replicas "
            f"({free_gpus} free GPUs, {gpr} per replica): "
            "old replicas keep serving until new ones are Ready"
        )
        return RolloutStrategy(StrategyKind.SURGE, replicas, 0, StrategyReason.POOL_CHANGE_WAITING, msg)
    wanted = replicas if max_surge == "auto" else max(0, max_surge)
    surge = min(wanted, spare, replicas)
    if surge >= 1:
        msg = f"{spare} spare replica(s) fit ({free_gpus} free GPUs, {gpr} per replica): surging {surge}"
        return RolloutStrategy(StrategyKind.SURGE, surge, 0, StrategyReason.SURGE, msg)
    why = "maxSurge 0" if wanted == 0 else f"no spare replica fits ({free_gpus} free GPUs, {gpr} per replica)"
    if max_unavailable <= 0:
        msg = f"{why} and maxUnavailable 0: one surge replica waits for a free GPU"
        return RolloutStrategy(StrategyKind.SURGE, 1, 0, StrategyReason.WAITING, msg)
    if replicas == 1:
        msg = f"{why}: replacing the only replica in place; it serves nothing until the new one is Ready"
        return RolloutStrategy(StrategyKind.IN_PLACE, 0, 1, StrategyReason.IN_PLACE, msg)
    down = min(max_unavailable, replicas - 1)
    msg = f"{why}: replacing {down} at a time, keeping {replicas - down} of {replicas} serving"
    return RolloutStrategy(StrategyKind.ONE_AT_A_TIME, 0, down, StrategyReason.NO_SURGE, msg)


def strategy_without_capacity(
    replicas: int, max_unavailable: int, max_surge: int | Literal["auto"]
) -> RolloutStrategy:
    """The strategy when the target pool's free GPUs were not observed: spec.rollout as written.

    maxSurge `auto` becomes 1 (one extra replica, which waits Pending if no GPU is free);
    maxUnavailable is the spec's. Both 0 (only reachable with `auto`) becomes maxSurge 1, so the
    Deployment stays valid. Reason `CapacityUnknown`.
    """
    surge = 1 if max_surge == "auto" else max(0, max_surge)
    unavailable = max(0, max_unavailable)
    if surge == 0 and unavailable == 0:
        surge = 1
    kind = StrategyKind.SURGE
    if not surge:
        kind = StrategyKind.IN_PLACE if replicas <= 1 else StrategyKind.ONE_AT_A_TIME
    msg = (
        f"free GPUs of the pool not observed: maxSurge {surge}, maxUnavailable {unavailable} "
        "from spec.rollout"
    )
    return RolloutStrategy(kind, surge, unavailable, StrategyReason.CAPACITY_UNKNOWN, msg)


# --- stuck rollouts ---------------------------------------------------------------------------


class StuckKind(StrEnum):
    KV_CACHE_TOO_SMALL = "KVCacheTooSmall"
    OOM_AT_LOAD = "OOMAtLoad"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    CONTAINER_CONFIG_ERROR = "ContainerConfigError"
    CRASH_LOOP = "CrashLoop"
    INSUFFICIENT_GPU = "InsufficientGPU"
    LOAD_STALLED = "LoadStalled"  # decisions.startup: no vLLM startup progress for stallSeconds
    DOWNLOAD_STALLED = "DownloadStalled"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


# Waiting cannot fix these: the same template fails the same way.
_TERMINAL = frozenset(
    {
        StuckKind.KV_CACHE_TOO_SMALL,
        StuckKind.OOM_AT_LOAD,
        StuckKind.IMAGE_PULL_FAILED,
        StuckKind.CONTAINER_CONFIG_ERROR,
        StuckKind.CRASH_LOOP,
        StuckKind.LOAD_STALLED,
        StuckKind.DOWNLOAD_STALLED,
    }
)
_PRIORITY = {kind: i for i, kind in enumerate(StuckKind)}


@dataclass(frozen=True, slots=True)
class StuckReason:
    kind: StuckKind
    pod: str | None
    message: str
    deadline_exceeded: bool
    suggested_max_model_len: int | None = None  # from vLLM's KV message, when it says

    @property
    def reason(self) -> str:
        return str(self.kind)

    @property
    def terminal(self) -> bool:
        """True when waiting longer cannot help: roll back (if autoRollback) and set Stalled."""
        return self.deadline_exceeded or self.kind in _TERMINAL


# vLLM's wording (V0: worker.py raise_if_cache_size_invalid; V1: kv_cache_utils.py
# check_enough_kv_cache_memory), as seen in its issue tracker.
_KV_PATTERNS = (
    "is larger than the maximum number of tokens that can be stored in kv cache",
    "kv cache is needed, which is larger than the available kv cache memory",
    "no available memory for the cache blocks",
)
_OOM_PATTERNS = (
    "cuda out of memory",
    "outofmemoryerror",
    "hip out of memory",
    "is less than desired gpu memory utilization",  # vLLM: other processes hold the GPU
)
_V1_MAX_LEN = re.compile(r"estimated maximum model length is (\d+)", re.I)
_V0_MAX_LEN = re.compile(r"stored in KV cache \((\d+)\)", re.I)
_INSUFFICIENT_GPU = re.compile(r"Insufficient [A-Za-z0-9.-]+/gpu", re.I)
_PULL = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
_CONFIG = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})


def classify_stuck(
    pods: Sequence[Mapping[str, Any]],
    started_at: float,
    deadline_s: float,
    now: float,
) -> StuckReason | None:
    """Why the pods of the updated revision are not becoming Ready, or None if nothing is wrong yet.

    Pass the pods of the new revision only. Specific reasons are reported as soon as they are
    seen (most specific first: KV, OOM, image, config, crash loop, GPU); past the deadline with
    no specific reason, ProgressDeadlineExceeded. vLLM's messages reach the pod status through
    the container's termination message: render the container with
    `terminationMessagePolicy: FallbackToLogsOnError`.
    """
    exceeded = now - started_at > deadline_s
    found: list[StuckReason] = []
    for pod in pods:
        if isinstance(pod, Mapping):
            found.extend(_pod_findings(pod, exceeded))
    if found:
        return min(found, key=lambda r: _PRIORITY[r.kind])
    if exceeded:
        elapsed = math.floor(now - started_at)
        msg = f"no progress after {elapsed}s (deadline {deadline_s:.0f}s)"
        return StuckReason(StuckKind.PROGRESS_DEADLINE_EXCEEDED, None, msg, True)
    return None


def _pod_findings(pod: Mapping[str, Any], exceeded: bool) -> Iterable[StuckReason]:
    name = _str(_map(pod.get("metadata")).get("name")) or None
    status = _map(pod.get("status"))
    for cond in _list(status.get("conditions")):
        c = _map(cond)
        msg = _str(c.get("message"))
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and _INSUFFICIENT_GPU.search(msg):
            yield StuckReason(StuckKind.INSUFFICIENT_GPU, name, _clip(msg), exceeded)
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in _list(status.get(key)):
            yield from _container_findings(name, _map(cs), exceeded)


def classify_text(text: str) -> tuple[StuckKind, str, int | None] | None:
    """vLLM's own words for a start that cannot succeed, in a termination message or a log:
    (KVCacheTooSmall or OOMAtLoad, the matching line, vLLM's suggested maxModelLen or None)."""
    low = text.lower()
    if any(p in low for p in _KV_PATTERNS):
        m = _V1_MAX_LEN.search(text) or _V0_MAX_LEN.search(text)
        return StuckKind.KV_CACHE_TOO_SMALL, _excerpt(text, _KV_PATTERNS), int(m.group(1)) if m else None
    if any(p in low for p in _OOM_PATTERNS):
        return StuckKind.OOM_AT_LOAD, _excerpt(text, _OOM_PATTERNS), None
    return None


def _container_findings(pod: str | None, cs: Mapping[str, Any], exceeded: bool) -> Iterable[StuckReason]:
    state, last = _map(cs.get("state")), _map(cs.get("lastState"))
    waiting = _map(state.get("waiting"))
    for terminated in (_map(state.get("terminated")), _map(last.get("terminated"))):
        if not terminated:
            continue
        msg, why = _str(terminated.get("message")), _str(terminated.get("reason"))
        found = classify_text(msg)
        if found is not None:
            kind, text, suggested = found
            yield StuckReason(kind, pod, text, exceeded, suggested)
        elif why == "OOMKilled":
            yield StuckReason(StuckKind.OOM_AT_LOAD, pod, "container OOMKilled (host memory) while loading", exceeded)
    wreason, wmsg = _str(waiting.get("reason")), _str(waiting.get("message"))
    if wreason in _PULL:
        yield StuckReason(StuckKind.IMAGE_PULL_FAILED, pod, _clip(f"{wreason}: {wmsg}"), exceeded)
    elif wreason in _CONFIG:
        yield StuckReason(StuckKind.CONTAINER_CONFIG_ERROR, pod, _clip(f"{wreason}: {wmsg}"), exceeded)
    elif wreason == "CrashLoopBackOff":
        term = _map(last.get("terminated"))
        code = term.get("exitCode")
        detail = _str(term.get("message")).strip().splitlines()[-1:] or [wmsg]
        yield StuckReason(StuckKind.CRASH_LOOP, pod, _clip(f"exit code {code}: {detail[0]}"), exceeded)


def _excerpt(message: str, patterns: Sequence[str]) -> str:
    """The log line that matched (termination messages carry a whole traceback tail)."""
    for line in reversed(message.splitlines()):
        if any(p in line.lower() for p in patterns):
            return _clip(line.strip())
    return _clip(message.strip())


def _map(v: object) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _list(v: object) -> list[Any]:
    return v if isinstance(v, list) else []


def _str(v: object) -> str:
    return v if isinstance(v, str) else ""


def _clip(message: str, limit: int = 1024) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


# --- deadlines and rollback -------------------------------------------------------------------

_DEADLINE_BASE_S = 600  # image pull (a vLLM image is ~10 GB), scheduling, engine start, CUDA graphs
_DEADLINE_BYTES_PER_S = 50 * 1000**2  # half of a 100 MB/s download: the 2x covers load to GPU
_DEADLINE_MIN_S, _DEADLINE_MAX_S = 600, 6 * 3600


def default_progress_deadline(checkpoint_bytes: int) -> int:
    """Default `progressDeadlineSeconds`: 600 s + checkpoint_bytes / 50 MB/s, to the minute.

    Clamped to [600 s, 6 h]. 16 GB (8B bf16) → 16 min; 141 GB (70B bf16) → 57 min;
    405 GB (405B FP8) → 2 h 25 min.
    """
    seconds = _DEADLINE_BASE_S + max(0, checkpoint_bytes) / _DEADLINE_BYTES_PER_S
    minutes = math.ceil(seconds / 60)
    return max(_DEADLINE_MIN_S, min(_DEADLINE_MAX_S, minutes * 60))


@dataclass(frozen=True, slots=True)
class RevisionRecord:
    """One pod-template revision of the child (a ReplicaSet or LWS revision).

    number: the controller's revision number (higher is newer); was_ready: all desired replicas of
    this revision were Ready at some point (the shell records it, e.g. as an annotation on the
    ReplicaSet, since status is never memory).
    """

    revision: str
    number: int
    was_ready: bool


def rollback_target(history: Iterable[RevisionRecord], failed_revision: str) -> RevisionRecord | None:
    """The newest revision, other than the failed one, that was Ready; None if there is none."""
    ready = [r for r in history if r.was_ready and r.revision != failed_revision]
    return max(ready, key=lambda r: r.number, default=None)


def rollout_status(
    strategy: RolloutStrategy,
    current_revision: str | None,
    updated_revision: str | None,
    updated_ready: int,
    desired: int,
    stuck: StuckReason | None,
) -> RolloutStatus:
    """The `status.rollout` block. A stuck reason wins over the strategy's own reason."""
    reason, message = (stuck.reason, stuck.message) if stuck else (str(strategy.reason), strategy.message)
    return RolloutStatus(
        current_revision=current_revision,
        updated_revision=updated_revision,
        strategy=str(strategy.kind),
        progress=f"{max(0, updated_ready)}/{max(0, desired)}",
        reason=reason,
        message=message,
    )
