"""Rollout decisions: strategy from capacity, stuck classification, deadlines, rollback."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.decisions.capacity import capacity_replicas, replicas_that_fit
from modeldeploy.decisions.rollout import (
    RevisionRecord,
    StrategyKind,
    StrategyReason,
    StuckKind,
    choose_strategy,
    classify_stuck,
    default_progress_deadline,
    rollback_target,
    rollout_status,
)

# --- strategy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "unavail", "surge", "free", "gpr", "same", "want"),
    [
        (3, 1, "auto", 8, 8, True, (StrategyKind.SURGE, 1, 0, StrategyReason.SURGE)),
        (3, 1, "auto", 17, 8, True, (StrategyKind.SURGE, 2, 0, StrategyReason.SURGE)),
        (3, 1, "auto", 100, 8, True, (StrategyKind.SURGE, 3, 0, StrategyReason.SURGE)),
        (3, 1, 1, 100, 8, True, (StrategyKind.SURGE, 1, 0, StrategyReason.SURGE)),
        (
            3,
            1,
            4,
            8,
            8,
            True,
            (StrategyKind.SURGE, 1, 0, StrategyReason.SURGE),
        ),  # no surge into nothing
        (3, 1, "auto", 7, 8, True, (StrategyKind.ONE_AT_A_TIME, 0, 1, StrategyReason.NO_SURGE)),
        (3, 2, "auto", 0, 8, True, (StrategyKind.ONE_AT_A_TIME, 0, 2, StrategyReason.NO_SURGE)),
        (3, 9, "auto", 0, 8, True, (StrategyKind.ONE_AT_A_TIME, 0, 2, StrategyReason.NO_SURGE)),
        (3, 1, 0, 100, 8, True, (StrategyKind.ONE_AT_A_TIME, 0, 1, StrategyReason.NO_SURGE)),
        (1, 1, "auto", 0, 1, True, (StrategyKind.IN_PLACE, 0, 1, StrategyReason.IN_PLACE)),
        (1, 1, "auto", 1, 1, True, (StrategyKind.SURGE, 1, 0, StrategyReason.SURGE)),
        (1, 0, "auto", 0, 1, True, (StrategyKind.SURGE, 1, 0, StrategyReason.WAITING)),
        (3, 1, "auto", 24, 8, False, (StrategyKind.SURGE, 3, 0, StrategyReason.POOL_CHANGE)),
        (3, 1, "auto", 8, 8, False, (StrategyKind.SURGE, 3, 0, StrategyReason.POOL_CHANGE_WAITING)),
        (0, 1, "auto", 0, 8, True, (StrategyKind.SURGE, 1, 0, StrategyReason.NOTHING_TO_ROLL)),
    ],
)
def test_strategy_table(
    replicas: int,
    unavail: int,
    surge: int | str,
    free: int,
    gpr: int,
    same: bool,
    want: tuple[Any, ...],
) -> None:
    s = choose_strategy(replicas, unavail, surge, free, gpr, same)  # type: ignore[arg-type]
    assert (s.kind, s.max_surge, s.max_unavailable, s.reason) == want, s.message


def test_single_replica_in_place_says_so() -> None:
    s = choose_strategy(1, 1, "auto", free_gpus=2, gpus_per_replica=4, same_pool=True)
    assert s.downtime and s.reason == "RolloutWithoutSpareCapacity"
    assert "only replica" in s.message


def test_node_level_spare_count_overrides_the_gpu_sum() -> None:
    # 8 GPUs free, but 4 + 4 on two nodes: an 8-GPU replica does not fit.
    spare = replicas_that_fit([4, 4], gpus_per_pod=8)
    s = choose_strategy(2, 1, "auto", 8, 8, True, spare_replicas=spare)
    assert (s.kind, s.max_surge) == (StrategyKind.ONE_AT_A_TIME, 0)


@pytest.mark.parametrize(
    ("free", "per_pod", "pods", "want"),
    [
        ([4, 4], 8, 1, 0),
        ([8, 8], 8, 1, 2),
        ([8, 3], 2, 2, 2),
        ([-2, 9], 4, 1, 2),
        ([8], 0, 1, 0),
        ([], 1, 1, 0),
    ],
)
def test_replicas_that_fit(free: list[int], per_pod: int, pods: int, want: int) -> None:
    assert replicas_that_fit(free, per_pod, pods) == want


def test_capacity_counts_scheduled_replicas_plus_what_fits() -> None:
    assert capacity_replicas(3, [8, 0, 4], 4) == 6
    assert capacity_replicas(-1, [], 4) == 0


@given(
    st.integers(0, 20),
    st.integers(0, 20),
    st.one_of(st.just("auto"), st.integers(0, 20)),
    st.integers(-8, 200),
    st.integers(1, 16),
    st.booleans(),
)
def test_strategy_invariants(replicas: int, unavail: int, surge: Any, free: int, gpr: int, same: bool) -> None:
    s = choose_strategy(replicas, unavail, surge, free, gpr, same)
    assert s.max_surge + s.max_unavailable >= 1  # a valid RollingUpdate
    assert s.max_surge >= 0 and s.max_unavailable >= 0
    spare = max(0, free) // gpr
    if s.max_unavailable > 0:  # taking replicas down only when nothing can surge
        assert same and s.max_surge == 0 and s.max_unavailable <= unavail
        assert spare == 0 or surge == 0
        assert s.max_unavailable <= max(1, replicas - 1)
    if same and s.max_surge > 1:
        assert s.max_surge <= spare  # never surge more than fits
    if not same:
        assert s.max_unavailable == 0  # old pool keeps serving until the new one is Ready
    assert (s.kind == StrategyKind.IN_PLACE) == (same and replicas == 1 and s.max_unavailable == 1)


# --- stuck ------------------------------------------------------------------------------------


def pod(name: str = "m-abc", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def container(state: dict[str, Any] | None = None, last: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "vllm", "ready": False, "state": state or {}, "lastState": last or {}}


UNSCHEDULABLE = pod(
    conditions=[
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available.",
        }
    ]
)
# vLLM's wording, as reported in its issue tracker (V0 worker, V1 kv_cache_utils).
KV_V0 = (
    "ValueError: The model's max seq len (4096) is larger than the maximum number of tokens "
    "that can be stored in KV cache (3664). Try increasing `gpu_memory_utilization` or "
    "decreasing `max_model_len` when initializing the engine."
)
KV_V1 = (
    "ERROR [core.py] EngineCore failed to start.\nValueError: To serve at least one request "
    "with the models's max seq len (131072), (16.00 GiB KV cache is needed, which is larger "
    "than the available KV cache memory (0.71 GiB). Based on the available memory, the "
    "estimated maximum model length is 5632. Try increasing `gpu_memory_utilization` or "
    "decreasing `max_model_len` when initializing the engine."
)
KV_BLOCKS = "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization`"
CUDA_OOM = (
    "Traceback (most recent call last):\n  ...\ntorch.OutOfMemoryError: CUDA out of memory. "
    "Tried to allocate 350.00 MiB. GPU 0 has a total capacity of 23.68 GiB of which "
    "212.81 MiB is free."
)


def crashed(message: str, reason: str = "Error", code: int = 1) -> dict[str, Any]:
    term = {"terminated": {"exitCode": code, "reason": reason, "message": message}}
    waiting = {
        "waiting": {
            "reason": "CrashLoopBackOff",
            "message": "back-off 40s restarting failed container",
        }
    }
    return pod(containerStatuses=[container(waiting, term)])


@pytest.mark.parametrize(
    ("pods", "kind", "suggested"),
    [
        ([UNSCHEDULABLE], StuckKind.INSUFFICIENT_GPU, None),
        ([crashed(KV_V0)], StuckKind.KV_CACHE_TOO_SMALL, 3664),
        ([crashed(KV_V1)], StuckKind.KV_CACHE_TOO_SMALL, 5632),
        ([crashed(KV_BLOCKS)], StuckKind.KV_CACHE_TOO_SMALL, None),
        ([crashed(CUDA_OOM)], StuckKind.OOM_AT_LOAD, None),
        ([crashed("", reason="OOMKilled", code=137)], StuckKind.OOM_AT_LOAD, None),
        (
            [
                pod(
                    containerStatuses=[
                        container({"terminated": {"exitCode": 1, "reason": "Error", "message": CUDA_OOM}})
                    ]
                )
            ],
            StuckKind.OOM_AT_LOAD,  # first crash, before any back-off: already recognised
            None,
        ),
        ([crashed("RuntimeError: something else\n")], StuckKind.CRASH_LOOP, None),
        (
            [
                pod(
                    containerStatuses=[
                        container(
                            {
                                "waiting": {
                                    "reason": "ImagePullBackOff",
                                    "message": "Back-off pulling",
                                }
                            }
                        )
                    ]
                )
            ],
            StuckKind.IMAGE_PULL_FAILED,
            None,
        ),
        (
            [pod(containerStatuses=[container({"waiting": {"reason": "ErrImagePull", "message": "not found"}})])],
            StuckKind.IMAGE_PULL_FAILED,
            None,
        ),
        (
            [
                pod(
                    containerStatuses=[
                        container(
                            {
                                "waiting": {
                                    "reason": "CreateContainerConfigError",
                                    "message": 'secret "hf" not found',
                                }
                            }
                        )
                    ]
                )
            ],
            StuckKind.CONTAINER_CONFIG_ERROR,
            None,
        ),
        (
            [pod(initContainerStatuses=[container({"waiting": {"reason": "ErrImagePull", "message": "x"}})])],
            StuckKind.IMAGE_PULL_FAILED,
            None,
        ),
        (
            [UNSCHEDULABLE, crashed(KV_V1), crashed(CUDA_OOM)],
            StuckKind.KV_CACHE_TOO_SMALL,
            5632,
        ),  # most specific
    ],
)
def test_classify(pods: list[dict[str, Any]], kind: StuckKind, suggested: int | None) -> None:
    r = classify_stuck(pods, started_at=0, deadline_s=600, now=60)
    assert r is not None and r.kind == kind and r.reason == str(kind)
    assert r.suggested_max_model_len == suggested
    assert r.pod == "m-abc" and r.message
    assert r.terminal == (kind != StuckKind.INSUFFICIENT_GPU)
    assert not r.deadline_exceeded


def test_messages_are_the_matching_line() -> None:
    r = classify_stuck([crashed(CUDA_OOM)], 0, 600, 1)
    assert r is not None and r.message.startswith("torch.OutOfMemoryError: CUDA out of memory")
    r = classify_stuck([crashed("loading\nRuntimeError: boom\n", code=3)], 0, 600, 1)
    assert r is not None and r.message == "exit code 3: RuntimeError: boom"


def test_insufficient_gpu_becomes_terminal_at_the_deadline() -> None:
    assert classify_stuck([UNSCHEDULABLE], 0, 600, 601).terminal  # type: ignore[union-attr]
    assert not classify_stuck([UNSCHEDULABLE], 0, 600, 599).terminal  # type: ignore[union-attr]


def test_loading_pods_are_fine_until_the_deadline() -> None:
    loading = pod(containerStatuses=[container({"running": {"startedAt": "2026-11-23T10:00:00Z"}})])
    assert classify_stuck([loading], 1000, 600, 1500) is None
    r = classify_stuck([loading], 1000, 600, 1601)
    assert r is not None and r.kind == StuckKind.PROGRESS_DEADLINE_EXCEEDED and r.terminal
    assert "601s" in r.message
    assert classify_stuck([], 0, 60, 61) is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20,
)
pod_like = st.fixed_dictionaries(
    {},
    optional={
        "metadata": json_values,
        "status": st.fixed_dictionaries(
            {},
            optional={
                "conditions": json_values,
                "containerStatuses": st.lists(
                    st.fixed_dictionaries({}, optional={"state": json_values, "lastState": json_values}),
                    max_size=3,
                )
                | json_values,
            },
        )
        | json_values,
    },
)


@given(st.lists(pod_like | json_values, max_size=4), st.floats(0, 2000))
def test_malformed_pods_never_raise(pods: list[Any], now: float) -> None:
    r = classify_stuck(pods, 0, 1000, now)
    assert r is None or isinstance(r.kind, StuckKind)


# --- deadline, rollback -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "want"),
    [(0, 600), (16 * 10**9, 960), (141 * 10**9, 3420), (405 * 10**9, 8700), (10**13, 21600)],
)
def test_default_progress_deadline(size: int, want: int) -> None:
    assert default_progress_deadline(size) == want


@given(st.integers(0, 10**13), st.integers(0, 10**12))
def test_deadline_monotone_and_bounded(size: int, more: int) -> None:
    a, b = default_progress_deadline(size), default_progress_deadline(size + more)
    assert 600 <= a <= b <= 21600 and a % 60 == 0


def test_rollback_target() -> None:
    h = [
        RevisionRecord("aaa", 1, True),
        RevisionRecord("bbb", 2, True),
        RevisionRecord("ccc", 3, False),
    ]
    assert rollback_target(h, "ccc") == h[1]
    assert rollback_target(h, "bbb") == h[0]  # the failed one is skipped even if it was Ready once
    assert rollback_target(reversed(h), "ccc") == h[1]  # order of the input does not matter
    assert rollback_target([RevisionRecord("x", 1, False)], "y") is None
    assert rollback_target([], "y") is None


def test_rollout_status() -> None:
    stuck = classify_stuck([crashed(CUDA_OOM)], 0, 600, 10)
    strategy = choose_strategy(1, 1, "auto", 0, 1, True)
    st_ = rollout_status(strategy, "aaa", "bbb", 0, 1, None)
    assert st_.wire() == {
        "currentRevision": "aaa",
        "updatedRevision": "bbb",
        "strategy": "InPlace",
        "progress": "0/1",
        "reason": "RolloutWithoutSpareCapacity",
        "message": strategy.message,
    }
    st_ = rollout_status(strategy, "aaa", "bbb", 0, 1, stuck)
    assert (st_.reason, st_.message) == ("OOMAtLoad", stuck.message)  # type: ignore[union-attr]
