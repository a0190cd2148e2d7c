"""The startup watchdog within a pass: each starting pod judged by its own log. Pure.

The shell reads the log tail of every starting serving pod (pods/log, bounded and rate-limited,
`shell.starts`) and keeps one `ProgressMark` per pod in memory; a pass judges each pod with
`decisions.startup.judge_start` and hands the new marks back for the shell to keep.

What a verdict does (docs/concepts.md, "How a start is judged"):
- vLLM reported an error (OOMAtLoad, KVCacheTooSmall): the rollout classification's terminal
  reason, as when the container dies with it: roll back, or Stalled;
- no progress for `rollout.stallSeconds` (LoadStalled, DownloadStalled): the same terminal
  reason for the revision (a new revision that never got Ready is rolled back when autoRollback
  can), and the stalled pod is deleted so its controller starts a fresh one with a fresh
  allowance: a hung load holds its GPUs until something restarts it, and the kubelet no
  longer does (the startupProbe budget is only a backstop, `render.context`). A pass that
  rolls back deletes nothing: the rollback replaces those pods anyway.
A starting pod whose log was not read (not yet, or pods/log refused) gets no verdict: its
rollout keeps the progress deadline as the only limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..decisions.progress import ProgressMark
from ..decisions.rollout import StuckKind
from ..decisions.startup import Allowance, StartVerdict, judge_start, starting
from .children import ChildRef

RESTARTED_ON = frozenset({StuckKind.LOAD_STALLED, StuckKind.DOWNLOAD_STALLED})


@dataclass(frozen=True)
class StartsSeen:
    """What the shell holds for starting pods, by pod uid: the newest log tail it read and the
    mark it kept from the previous pass."""

    logs: Mapping[str, str] = field(default_factory=dict)
    marks: Mapping[str, ProgressMark] = field(default_factory=dict)


@dataclass(frozen=True)
class Starts:
    """The verdicts of one pass and the marks to keep (by pod uid; a pod absent is forgotten)."""

    verdicts: tuple[StartVerdict, ...] = ()
    marks: Mapping[str, ProgressMark] = field(default_factory=dict)


def _meta(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = pod.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def watched(pod: Mapping[str, Any]) -> bool:
    """A serving pod the watchdog follows: its vLLM container runs, it is not Ready and not
    being deleted (a LeaderWorkerSet's workers run `vllm-worker` and are not followed: the
    leader's log shows the group's load)."""
    return not _meta(pod).get("deletionTimestamp") and starting(pod)


def pod_uid(pod: Mapping[str, Any]) -> str:
    return str(_meta(pod).get("uid") or "")


def judge_starts(pods: Sequence[Mapping[str, Any]], seen: StartsSeen, now: float,
                 stall_seconds: float, checkpoint_bytes: int) -> Starts:
    """Judge every watched pod whose log the shell read.

    now: epoch s (the clock of the marks); stall_seconds: `spec.rollout.stallSeconds`;
    checkpoint_bytes: the checkpoint's size (facts), for the weight-loading allowance.
    """
    allowance = Allowance(stall_seconds, checkpoint_bytes)
    verdicts: list[StartVerdict] = []
    marks: dict[str, ProgressMark] = {}
    for pod in pods:
        uid = pod_uid(pod)
        log = seen.logs.get(uid)
        if not uid or log is None or not watched(pod):
            continue
        verdict = judge_start(pod, log, seen.marks.get(uid), now, allowance)
        verdicts.append(verdict)
        marks[uid] = verdict.mark
    return Starts(tuple(verdicts), marks)


def restarts(starts: Starts, pods: Sequence[Mapping[str, Any]],
             rolled_back: bool) -> tuple[tuple[ChildRef, str], ...]:
    """The stalled pods to delete, each with its uid as the precondition (never a namesake).

    None when the pass rolls back (the Deployment controller replaces those pods)."""
    if rolled_back:
        return ()
    stalled = {v.pod for v in starts.verdicts if v.stuck is not None and v.stuck.kind in RESTARTED_ON}
    out: list[tuple[ChildRef, str]] = []
    for pod in pods:
        meta = _meta(pod)
        if meta.get("name") in stalled and pod_uid(pod):
            out.append((ChildRef("v1", "Pod", str(meta.get("namespace")), str(meta.get("name"))),
                        pod_uid(pod)))
    return tuple(out)
