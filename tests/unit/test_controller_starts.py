"""The startup watchdog in a pass: starting pods judged by their own log, stalled ones deleted,
a start that keeps moving never cut short by the progress deadline.

Log lines follow vLLM's format strings (see tests/unit/test_decisions_startup.py for their
sources in the vLLM tree)."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.unit.test_controller_decide import NOW, body, converged, facts, snapshot
from tests.unit.test_controller_rollouts import history, live, pod, view

from modeldeploy.api.base import rfc3339
from modeldeploy.controller.children import ChildRef
from modeldeploy.controller.decide import Snapshot, decide
from modeldeploy.controller.rollout.memory import ROLLOUT_STARTED
from modeldeploy.controller.rollout.revisions import READY_REVISIONS, failure_of, step
from modeldeploy.controller.starts import StartsSeen, judge_starts, restarts, watched
from modeldeploy.controller.status import Failure, Reason
from modeldeploy.decisions.progress import ProgressMark
from modeldeploy.render import RenderOptions
from modeldeploy.render.context import HASH_ANNOTATION

STALL = 600.0
CKPT = 16_060_522_496  # Llama 3.1 8B: total_size of its model.safetensors.index.json
LOADING = ("(EngineCore_DP0 pid=212) INFO 11-30 09:01:00 [gpu_model_runner.py:2602] "
           "Starting to load model meta-llama/Llama-3.1-8B-Instruct...\n"
           "(EngineCore_DP0 pid=212) INFO 11-30 09:04:00 [default_loader.py:267] "
           "Loading weights took 160.21 seconds\n")
CAPTURING = LOADING + ("(EngineCore_DP0 pid=212) INFO 11-30 09:05:00 [kv_cache_utils.py:1087] "
                       "GPU KV cache size: 49,152 tokens\n")
OOM = LOADING + "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.96 GiB.\n"


def starting(name: str, rev: str, uid: str, *, ready: bool = False,
             deleting: bool = False) -> dict[str, Any]:
    """A pod whose vLLM container runs (not Ready unless `ready`)."""
    found = pod(name, rev, ready=ready)
    found["metadata"].update(uid=uid, namespace="ns")
    if deleting:
        found["metadata"]["deletionTimestamp"] = rfc3339(NOW)
    found["status"]["containerStatuses"] = [{"name": "vllm", "ready": ready, "restartCount": 0,
                                             "state": {"running": {"startedAt": rfc3339(NOW)}}}]
    return found


def test_only_starting_pods_whose_log_was_read_are_judged() -> None:
    pods = [starting("a", "r", "u1"), starting("b", "r", "u2", ready=True),
            starting("c", "r", "u3", deleting=True), starting("d", "r", "u4")]
    assert [watched(p) for p in pods] == [True, False, False, True]
    logs = {u: LOADING for u in ("u1", "u2", "u3")}  # u4's log was not read (yet, or refused)
    starts = judge_starts(pods, StartsSeen(logs), NOW, STALL, CKPT)
    assert [v.pod for v in starts.verdicts] == ["a"] and set(starts.marks) == {"u1"}
    assert starts.verdicts[0].stuck is None and starts.marks["u1"].since == NOW


def test_a_stalled_start_is_deleted_and_an_error_is_left_to_the_rollout() -> None:
    pods = [starting("stuck", "r", "u1"), starting("oom", "r", "u2"), starting("moving", "r", "u3")]
    first = judge_starts(pods, StartsSeen({"u1": LOADING, "u2": LOADING, "u3": LOADING}), NOW,
                         STALL, CKPT)
    later = NOW + STALL + 1
    logs = {"u1": LOADING, "u2": OOM, "u3": CAPTURING}
    starts = judge_starts(pods, StartsSeen(logs, first.marks), later, STALL, CKPT)
    kinds = {v.pod: v.stuck.reason if v.stuck else None for v in starts.verdicts}
    assert kinds == {"stuck": "LoadStalled", "oom": "OOMAtLoad", "moving": None}
    assert restarts(starts, pods, rolled_back=False) == ((ChildRef("v1", "Pod", "ns", "stuck"),
                                                          "u1"),)
    assert restarts(starts, pods, rolled_back=True) == ()
    assert starts.marks["u3"].since == later and starts.marks["u1"].since == NOW


def test_a_new_revision_that_keeps_moving_outlives_its_deadline() -> None:
    """The fixed deadline (ProgressDeadlineExceeded, a rollback) does not cut a start short
    while its log moves; once it stops moving it is LoadStalled and rolled back."""
    late = live("b", ready=0, **{READY_REVISIONS: history("a"),
                                 ROLLOUT_STARTED: rfc3339(NOW - 5000)})
    pods = [pod("old", "a", ready=True), starting("new", "b", "u1")]
    deadline_only = step(view("b", late, pods, deadline=1200))
    assert deadline_only.rolled_back  # what happens without a log: the deadline decides
    moving = judge_starts(pods, StartsSeen({"u1": CAPTURING}, {"u1": ProgressMark("x", NOW - 5)}),
                          NOW, STALL, CKPT)
    decided = step(dataclasses.replace(view("b", late, pods, deadline=1200),
                                       starts=moving.verdicts))
    assert decided.stuck is None and not decided.rolled_back and decided.target.hash == "b"
    stalled = judge_starts(pods, StartsSeen({"u1": CAPTURING}, moving.marks), NOW + STALL + 1,
                           STALL, CKPT)
    rolled = step(dataclasses.replace(view("b", late, pods, deadline=1200), now=NOW + STALL + 1,
                                      starts=stalled.verdicts))
    assert rolled.rolled_back and rolled.failed is not None and rolled.failed.reason == "LoadStalled"
    failure = failure_of(rolled, True)
    assert failure is not None and "no startup progress" in failure.message


def _first_revision_loading(log: str, marks: dict[str, ProgressMark], now: float,
                            ) -> tuple[Snapshot, str]:
    md = body(rollout={"stallSeconds": int(STALL)})
    world = converged(md, decide(snapshot(md), facts(), RenderOptions(), NOW))
    deployment = next(o for r, o in world.children.items() if r.kind == "Deployment" and o)
    rev = deployment["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION]
    loading = starting("m-1", rev, "u1")
    return dataclasses.replace(world, pods=(loading,), starts=StartsSeen({"u1": log}, marks)), rev


def test_decide_returns_the_marks_and_deletes_a_first_start_that_stalled() -> None:
    snap, _ = _first_revision_loading(LOADING, {}, NOW)
    actions = decide(snap, facts(), RenderOptions(), NOW)
    assert actions.restarts == () and actions.starts.marks["u1"].since == NOW
    # A start is judged by the clock: the same snapshot is decided again on the next pass.
    assert actions.expires == NOW
    again = dataclasses.replace(snap, starts=StartsSeen({"u1": LOADING}, dict(actions.starts.marks)))
    held = decide(again, facts(), RenderOptions(), NOW + STALL)
    assert held.restarts == ()
    stalled = decide(again, facts(), RenderOptions(), NOW + STALL + 1)
    assert stalled.restarts == ((ChildRef("v1", "Pod", "ns", "m-1"), "u1"),)
    conditions = {c.type: c for c in stalled.status.conditions}
    assert conditions["Stalled"].status == "True" and conditions["Stalled"].reason == "LoadStalled"
    assert "no earlier revision was Ready" in (conditions["Stalled"].message or "")
    # A failed status write decides again without any write: no pod is deleted either.
    retry = decide(again, facts(), RenderOptions(), NOW + STALL + 1,
                   write_failure=Failure(Reason.APPLY_FAILED, "boom"))
    assert retry.restarts == ()


def test_rendered_workload_is_unchanged_by_the_watchdog() -> None:
    snap, _ = _first_revision_loading(LOADING, {}, NOW)
    quiet = dataclasses.replace(snap, starts=StartsSeen())
    assert decide(snap, facts(), RenderOptions(), NOW).applies == \
        decide(quiet, facts(), RenderOptions(), NOW).applies
