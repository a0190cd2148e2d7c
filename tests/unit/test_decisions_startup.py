"""The startup watchdog: progress from vLLM's own startup lines, stall by stallSeconds, errors at once.

The log lines follow vLLM's format strings (v1/worker/gpu_model_runner.py "Starting to load
model %s...", model_loader/default_loader.py "Loading weights took %.2f seconds",
gpu_model_runner.py "Model loading took %.4f GiB and %.6f seconds" and "Graph capturing
finished in %.0f secs, took %.2f GiB", v1/core/kv_cache_utils.py "GPU KV cache size: %s
tokens") with the EngineCore prefix vLLM ≥ 0.10 writes; tqdm bars redraw with carriage returns.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.decisions.rollout import StuckKind, StuckReason
from modeldeploy.decisions.startup import (
    MIN_LOAD_BYTES_PER_S,
    Allowance,
    StartPhase,
    judge_start,
    last_step,
    overall,
    starting,
)

P = "(EngineCore_DP0 pid=212) INFO 11-30 09:{:02d}:00 [{}] {}"
STEPS = [
    P.format(1, "gpu_model_runner.py:2602", "Starting to load model meta-llama/Llama-3.1-8B-Instruct..."),
    "Loading safetensors checkpoint shards:   0% Completed | 0/4 [00:00<?, ?it/s]\r"
    "Loading safetensors checkpoint shards:  25% Completed | 1/4 [00:40<02:00, 40.0s/it]\r"
    "Loading safetensors checkpoint shards: 100% Completed | 4/4 [02:40<00:00, 40.0s/it]",
    P.format(4, "default_loader.py:267", "Loading weights took 160.21 seconds"),
    P.format(4, "gpu_model_runner.py:2653", "Model loading took 14.9889 GiB and 161.003 seconds"),
    P.format(5, "kv_cache_utils.py:1087", "GPU KV cache size: 49,152 tokens"),
    "Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|##########| 11/11",
    P.format(6, "gpu_model_runner.py:3480", "Graph capturing finished in 8 secs, took 0.31 GiB"),
]
STALL = 600.0
CKPT = 16_060_522_496  # Llama 3.1 8B: total_size of its model.safetensors.index.json (tests/fixtures/hub)


def pod(ready: bool = False, running: bool = True, restarts: int = 0) -> dict[str, Any]:
    state = {"running": {"startedAt": "2026-11-30T09:00:00Z"}} if running else {"waiting": {"reason": "PodInitializing"}}
    return {"metadata": {"name": "llama-7d9f-abcde"},
            "status": {"containerStatuses": [{"name": "vllm", "ready": ready, "state": state,
                                              "restartCount": restarts}]}}


def test_each_phase_is_recognised_from_vllm_lines() -> None:
    phases = [last_step("\n".join(STEPS[: i + 1])).phase for i in range(len(STEPS))]
    assert phases == [StartPhase.LOAD, StartPhase.LOAD, StartPhase.LOADED, StartPhase.LOADED,
                      StartPhase.KV_CACHE, StartPhase.CUDA_GRAPHS, StartPhase.CUDA_GRAPHS]
    assert last_step("INFO starting\nnothing to see").phase == StartPhase.STARTING
    assert last_step("").line is None


def test_tqdm_redraws_count_as_the_last_step() -> None:
    step = last_step("\n".join(STEPS[:2]))
    assert step.line is not None and "4/4" in step.line


def test_a_start_that_keeps_moving_is_never_stalled_however_long() -> None:
    mark = None
    t = 0.0
    for i in range(len(STEPS)):
        t += STALL - 1  # each step takes just under stallSeconds; the whole start far more
        verdict = judge_start(pod(), "\n".join(STEPS[: i + 1]), mark, t, Allowance(STALL, CKPT))
        assert verdict.stuck is None, verdict.stuck
        mark = verdict.mark
    assert t > 3 * STALL


def test_no_new_line_for_stall_seconds_is_load_stalled() -> None:
    log = "\n".join(STEPS[:5])
    first = judge_start(pod(), log, None, 0.0, Allowance(STALL, CKPT))
    held = judge_start(pod(), log, first.mark, STALL, Allowance(STALL, CKPT))
    assert held.stuck is None
    late = judge_start(pod(), log, held.mark, STALL + 1, Allowance(STALL, CKPT))
    assert late.stuck is not None and late.stuck.kind == StuckKind.LOAD_STALLED and late.stuck.terminal
    assert "GPU KV cache size" in late.stuck.message


def test_weight_loading_gets_the_time_to_read_the_checkpoint() -> None:
    """The shards bar appears only when it ends: during Load the allowance grows with size."""
    big = 405 * 10**9  # a 405B FP8 checkpoint
    log = STEPS[0]
    allowance = big / MIN_LOAD_BYTES_PER_S
    first = judge_start(pod(), log, None, 0.0, Allowance(STALL, big))
    assert judge_start(pod(), log, first.mark, allowance - 1, Allowance(STALL, big)).stuck is None
    late = judge_start(pod(), log, first.mark, allowance + 1, Allowance(STALL, big))
    assert late.stuck is not None and late.stuck.kind == StuckKind.LOAD_STALLED


def test_download_inside_the_pod_stalls_as_download_stalled() -> None:
    log = "Fetching 4 files:   0%|          | 0/4 [00:00<?, ?it/s]"
    first = judge_start(pod(), log, None, 0.0, Allowance(STALL, CKPT))
    late = judge_start(pod(), log, first.mark, STALL + 1, Allowance(STALL, CKPT))
    assert late.stuck is not None and late.stuck.kind == StuckKind.DOWNLOAD_STALLED


def test_a_restart_starts_a_fresh_allowance() -> None:
    first = judge_start(pod(), STEPS[0], None, 0.0, Allowance(STALL, CKPT))
    again = judge_start(pod(restarts=1), STEPS[0], first.mark, STALL + 1, Allowance(STALL, CKPT))
    assert again.stuck is None


def test_vllm_errors_fail_at_once() -> None:
    log = "\n".join([*STEPS[:5], "ValueError: To serve at least one request with the models's max seq len "
                     "(131072), (16.00 GiB KV cache is needed, which is larger than the available KV cache "
                     "memory (4.12 GiB). Based on the available memory, the estimated maximum model length "
                     "is 33712."])
    verdict = judge_start(pod(), log, None, 0.0, Allowance(STALL, CKPT))
    assert verdict.stuck is not None and verdict.stuck.kind == StuckKind.KV_CACHE_TOO_SMALL
    assert verdict.stuck.suggested_max_model_len == 33712
    oom = judge_start(pod(), "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", None, 0.0,
                      Allowance(STALL, CKPT))
    assert oom.stuck is not None and oom.stuck.kind == StuckKind.OOM_AT_LOAD


def test_only_running_unready_vllm_containers_are_judged() -> None:
    assert starting(pod())
    assert not starting(pod(ready=True))
    assert not starting(pod(running=False))  # e.g. the init gate waiting for the shared cache


def test_a_progressing_start_overrides_the_fixed_deadline() -> None:
    moving = judge_start(pod(), STEPS[0], None, 0.0, Allowance(STALL, CKPT))
    deadline = StuckReason(StuckKind.PROGRESS_DEADLINE_EXCEEDED, None, "no progress after 3000s", True)
    assert overall([moving], deadline) is None
    assert overall([], deadline) is deadline  # nothing starting (e.g. Pending): the deadline holds
    oom = StuckReason(StuckKind.OOM_AT_LOAD, "p", "CUDA out of memory", False)
    assert overall([moving], oom) is oom


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_last_step_never_raises(text: str) -> None:
    assert last_step(text).phase in StartPhase


def _pod(name: str, ready: bool, node: str | None = "n1", group: str | None = None) -> dict[str, Any]:
    labels = {"leaderworkerset.sigs.k8s.io/group-index": group} if group is not None else {}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"nodeName": node},
            "status": {"phase": "Running" if ready else "Pending",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_loading_replicas_count_bound_unready_pods_and_lws_groups_once() -> None:
    from modeldeploy.decisions.startup import loading_replicas

    pods = [_pod("a", True), _pod("b", False), _pod("c", False, node=None)]
    assert loading_replicas(pods) == 1  # c holds no GPU yet
    lws = [_pod("g0-0", False, group="0"), _pod("g0-1", False, group="0"), _pod("g1-0", True, group="1"),
           _pod("g1-1", False, group="1")]
    assert loading_replicas(lws) == 2


def _reference_last_step(log: str) -> tuple[StartPhase, str | None]:
    """The plain definition: the newest line (split on newlines and carriage returns) that
    matches a milestone, its first matching milestone in table order."""
    import re

    from modeldeploy.decisions.startup import _MILESTONES

    for segment in reversed(re.split(r"[\r\n]+", log)):
        text = segment.strip()
        for pattern, phase in _MILESTONES:
            if text and pattern.search(text):
                return phase, text[:300]
    return StartPhase.STARTING, None


_PIECES = st.sampled_from([
    *STEPS, "Fetching 4 files", "Fetching files", "model-00001-of-00004.safetensors:  45%|####5",
    "x.safetensors", "Loading weights", "init engine (profile) took 3.2 seconds", "init engine",
    "INFO 11-30 09:00:00 [loggers.py:123] Engine 000: Running: 0 reqs", "Starting vLLM API server 0",
    "", " ",
])


@given(st.lists(st.tuples(_PIECES, st.sampled_from(["\n", "\r", "\r\n", ""])), max_size=30))
def test_the_keyword_search_finds_what_a_line_by_line_search_finds(parts: list[tuple[str, str]]) -> None:
    log = "".join(text + end for text, end in parts)
    step = last_step(log)
    assert (step.phase, step.line) == _reference_last_step(log)
