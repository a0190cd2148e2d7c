"""The autoscaling decision: table cases for each rule, properties for the invariants."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from modeldeploy.api.base import rfc3339
from modeldeploy.api.deployment import Autoscaling
from modeldeploy.decisions.autoscale import (
    MAX_HISTORY,
    Decision,
    ScalingHistory,
    ScalingObservation,
    ScalingReason,
    decide,
    to_status,
)
from modeldeploy.decisions.metrics import MissReason, NoSample, PodSample, Scrape, unreachable

NOW = 1_800_000_000.0


def spec(**kw: Any) -> Autoscaling:
    base: dict[str, Any] = {"minReplicas": 1, "maxReplicas": 10, "target": 5}
    base.update(kw)
    return Autoscaling.model_validate(base)


def pods(*loads: tuple[float, float] | tuple[float, float, float | None]) -> tuple[Scrape, ...]:
    out: list[Scrape] = []
    for i, load in enumerate(loads):
        running, waiting = load[0], load[1]
        kv = load[2] if len(load) == 3 else min(1.0, running / 10)  # type: ignore[misc]
        out.append(PodSample(f"pod-{i}", running, waiting, kv))
    return tuple(out)


def waiting(current: int, per_pod: list[float], **kw: Any) -> ScalingObservation:
    return ScalingObservation(current, pods(*[(1.0, w) for w in per_pod]), **kw)


LONG_AGO = NOW - 86400


def run(s: Autoscaling, obs: ScalingObservation, hist: ScalingHistory | None = None, cap: int | None = None) -> Decision:
    return decide(s, obs, hist or ScalingHistory(since=LONG_AGO), NOW, cap)


# --- table ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "per_pod", "cap", "want", "reason"),
    [
        (2, [5.0, 5.5], None, 2, ScalingReason.WITHIN_TOLERANCE),  # ratio 1.05
        (2, [4.6, 4.6], None, 2, ScalingReason.WITHIN_TOLERANCE),  # ratio 0.92
        (2, [7.5, 7.5], None, 3, ScalingReason.SCALED_UP),  # ceil(15 / 5)
        (2, [15.0, 15.0], None, 4, ScalingReason.SCALE_UP_LIMITED),  # wants 6, at most double
        (8, [40.0] * 8, None, 10, ScalingReason.SCALED_UP),  # wants 64, maxReplicas 10
        (10, [40.0] * 10, None, 10, ScalingReason.MAX_REPLICAS_LIMITED),
        (2, [10.0, 10.0], 3, 3, ScalingReason.CAPACITY_LIMITED),  # wants 4, pool fits 3
        (2, [10.0, 10.0], 2, 2, ScalingReason.CAPACITY_LIMITED),  # wants 4, pool fits 2: hold
        (2, [10.0, 10.0], 1, 2, ScalingReason.CAPACITY_LIMITED),  # capacity never forces a decrease
        (1, [0.0], None, 1, ScalingReason.MIN_REPLICAS_LIMITED),  # wants 0, min 1
    ],
)
def test_proportional_table(current: int, per_pod: list[float], cap: int | None, want: int, reason: ScalingReason) -> None:
    d = run(spec(), waiting(current, per_pod), cap=cap)
    assert (d.desired_replicas, d.reason) == (want, reason), d.message
    assert d.current_replicas == current
    assert d.metric_value == pytest.approx(sum(per_pod) / len(per_pod))


def test_loading_replicas_count_as_zero_load_so_a_scale_up_is_not_asked_twice() -> None:
    # 4 replicas, 2 still loading; the 2 ready ones carry 20 waiting: 20 / (4 × 5) = 1.0 → hold.
    d = run(spec(), waiting(4, [10.0, 10.0]))
    assert (d.desired_replicas, d.reason) == (4, ScalingReason.WITHIN_TOLERANCE)
    assert d.metric_value == 10.0


def test_scale_down_waits_for_the_window_then_halves() -> None:
    s = spec(scaleDownStabilizationSeconds=300)
    hist = ScalingHistory(recommendations=((NOW - 100, 8),), since=LONG_AGO)
    d = run(s, waiting(8, [0.0] * 8), hist)
    assert (d.desired_replicas, d.reason) == (8, ScalingReason.SCALE_DOWN_STABILIZED)
    old = ScalingHistory(recommendations=((NOW - 300, 8),), since=LONG_AGO)  # just outside the window
    d = run(s, waiting(8, [0.0] * 8), old)
    assert (d.desired_replicas, d.reason) == (4, ScalingReason.SCALE_DOWN_LIMITED)
    assert d.history.recommendations == ((NOW, 1),)


def test_scale_down_goes_to_the_highest_recommendation_in_the_window() -> None:
    hist = ScalingHistory(recommendations=((NOW - 200, 3), (NOW - 100, 2)), since=LONG_AGO)
    d = run(spec(), waiting(4, [0.0] * 4), hist)
    assert (d.desired_replicas, d.reason) == (3, ScalingReason.SCALED_DOWN)


def test_scale_up_window_takes_the_lowest_recommendation() -> None:
    s = spec(scaleUpStabilizationSeconds=60)
    hist = ScalingHistory(recommendations=((NOW - 30, 2),))
    d = run(s, waiting(2, [20.0, 20.0]), hist)
    assert (d.desired_replicas, d.reason) == (2, ScalingReason.SCALE_UP_STABILIZED)
    hist = ScalingHistory(recommendations=((NOW - 30, 3),))
    assert run(s, waiting(2, [20.0, 20.0]), hist).desired_replicas == 3


def test_concurrency_is_learned_when_replicas_queue() -> None:
    d = run(spec(), ScalingObservation(2, pods((16, 3), (14, 0), (0, 0))))
    assert d.history.concurrency == 16 and d.history.concurrency_seen_at == NOW
    assert run(spec(), waiting(2, [0.0, 0.0])).history.concurrency is None


@pytest.mark.parametrize(
    ("running", "age", "want", "reason"),
    [
        (16.0, 60, 4, ScalingReason.CONCURRENCY_FLOOR),  # 64 in flight need 4 at 16 each
        (12.0, 60, 3, ScalingReason.SCALED_DOWN),  # 48 need 3: down to 3, not to minReplicas
        (1.0, 60, 2, ScalingReason.SCALE_DOWN_LIMITED),  # 4 need 1: at most halve
        (16.0, 3601, 2, ScalingReason.SCALE_DOWN_LIMITED),  # a measurement older than an hour is dropped
    ],
)
def test_concurrency_floor_keeps_what_in_flight_requests_need(
    running: float, age: float, want: int, reason: ScalingReason
) -> None:
    s = spec(scaleDownStabilizationSeconds=0, maxReplicas=8)
    hist = ScalingHistory(since=LONG_AGO, concurrency=16.0, concurrency_seen_at=NOW - age)
    d = run(s, ScalingObservation(4, pods(*[(running, 0.0)] * 4)), hist)
    assert (d.desired_replicas, d.reason) == (want, reason), d.message


def test_concurrency_floor_lets_saturated_metrics_see_the_queue() -> None:
    # requestsRunning saturates at a full batch (16): the metric alone asks for ceil(32 / 12) = 3,
    # the 100 queued requests need ceil(132 / 16) = 9.
    s = spec(metric="requestsRunning", target=12, maxReplicas=12)
    hist = ScalingHistory(since=LONG_AGO, concurrency=16.0, concurrency_seen_at=NOW - 15)
    d = run(s, ScalingObservation(2, pods((16, 50), (16, 50))), hist)
    assert d.recommendation == 9 and d.desired_replicas == 4  # at most double per step
    assert "132 requests in flight need 9" in d.message


@pytest.mark.parametrize(
    "scrapes",
    [
        (PodSample("a", 1, 9, 0.5), unreachable("b", "connection refused")),
        (NoSample("a", MissReason.MALFORMED, "ValueError"),),
        (),  # no ready pod
    ],
)
def test_holds_on_missing_metrics(scrapes: tuple[Scrape, ...]) -> None:
    hist = ScalingHistory(recommendations=((NOW - 10, 5),), last_active=NOW - 5000)
    d = run(spec(scaleToZero=True, idleSeconds=60), ScalingObservation(3, scrapes), hist)
    assert (d.desired_replicas, d.reason) == (3, ScalingReason.METRICS_UNAVAILABLE)
    assert d.history.recommendations == hist.recommendations  # nothing recorded
    assert d.history.last_active == NOW  # an outage is not idleness
    assert d.recommendation is None and d.metric_value is None


def test_kv_metric_without_kv_series_holds() -> None:
    obs = ScalingObservation(2, pods((4, 0, None), (4, 0, 0.5)))
    d = run(spec(metric="kvCacheUsage", target=0.7), obs)
    assert d.reason == ScalingReason.METRICS_UNAVAILABLE and "pod-0" in d.message


def test_hold_still_respects_bounds() -> None:
    d = run(spec(maxReplicas=4), ScalingObservation(6, (unreachable("a", "timeout"),)))
    assert (d.desired_replicas, d.reason) == (4, ScalingReason.METRICS_UNAVAILABLE)


@pytest.mark.parametrize(
    ("metric", "target", "loads", "want"),
    [
        ("requestsRunning", 8, [(16, 0), (16, 0)], 4),
        ("requestsRunning", 8, [(4, 0), (4, 0), (4, 0), (4, 0)], 2),
        ("kvCacheUsage", 0.5, [(1, 0, 0.95), (1, 0, 0.95)], 4),
        ("kvCacheUsage", 0.5, [(1, 0, 0.52), (1, 0, 0.48)], 2),
    ],
)
def test_other_metrics(metric: str, target: float, loads: list[Any], want: int) -> None:
    d = run(
        spec(metric=metric, target=target, scaleDownStabilizationSeconds=0),
        ScalingObservation(len(loads), pods(*loads)),
    )
    assert d.desired_replicas == want, d.message


def test_scale_to_zero_after_idle_seconds_only() -> None:
    s = spec(minReplicas=0, scaleToZero=True, idleSeconds=600)
    idle = ScalingObservation(1, pods((0, 0)))
    d = run(s, idle, ScalingHistory(last_active=NOW - 601))
    assert (d.desired_replicas, d.reason) == (0, ScalingReason.SCALED_TO_ZERO)
    assert d.history.last_change is not None and d.history.last_change.to_replicas == 0
    d = run(s, idle, ScalingHistory(last_active=NOW - 300))
    assert d.desired_replicas == 1
    d = run(s, idle, ScalingHistory())  # first look after a restart: the idle clock starts now
    assert d.desired_replicas == 1 and d.history.last_active == NOW
    busy = ScalingObservation(1, pods((1, 0)))
    d = run(s, busy, ScalingHistory(last_active=NOW - 10_000))
    assert d.desired_replicas == 1 and d.history.last_active == NOW


def test_no_scale_to_zero_without_the_flag() -> None:
    d = run(spec(), ScalingObservation(1, pods((0, 0))), ScalingHistory(last_active=NOW - 86400))
    assert d.desired_replicas == 1


@pytest.mark.parametrize(
    ("gateway", "cap", "want", "reason"),
    [
        (12, None, 3, ScalingReason.SCALED_FROM_ZERO),  # ceil(12 / 5)
        (1, None, 1, ScalingReason.SCALED_FROM_ZERO),
        (500, None, 10, ScalingReason.SCALED_FROM_ZERO),  # maxReplicas
        (12, 2, 2, ScalingReason.CAPACITY_LIMITED),
        (12, 0, 1, ScalingReason.CAPACITY_LIMITED),  # min is the user's guarantee: ask for 1 anyway
        (0, None, 0, ScalingReason.IDLE),
        (None, None, 0, ScalingReason.IDLE),
    ],
)
def test_scale_from_zero(gateway: int | None, cap: int | None, want: int, reason: ScalingReason) -> None:
    s = spec(minReplicas=0, scaleToZero=True)
    d = run(s, ScalingObservation(0, (), gateway_waiting=gateway), cap=cap)
    assert (d.desired_replicas, d.reason) == (want, reason), d.message


def test_scale_from_zero_uses_the_measured_concurrency() -> None:
    s = spec(minReplicas=0, scaleToZero=True)
    hist = ScalingHistory(since=LONG_AGO, concurrency=16.0, concurrency_seen_at=NOW - 1800)
    d = run(s, ScalingObservation(0, (), gateway_waiting=40), hist)
    assert (d.desired_replicas, d.reason) == (3, ScalingReason.SCALED_FROM_ZERO)  # not ceil(40 / 5) = 8
    kv = spec(minReplicas=0, scaleToZero=True, metric="kvCacheUsage", target=0.7)
    assert run(kv, ScalingObservation(0, (), gateway_waiting=40)).desired_replicas == 1
    assert run(kv, ScalingObservation(0, (), gateway_waiting=40), hist).desired_replicas == 3


def test_zero_without_scale_to_zero_returns_to_min() -> None:
    d = run(spec(minReplicas=2, maxReplicas=5), ScalingObservation(0))
    assert (d.desired_replicas, d.reason) == (2, ScalingReason.MIN_REPLICAS_LIMITED)


def test_below_min_jumps_to_min() -> None:
    d = run(spec(minReplicas=3), waiting(1, [0.0]))
    assert (d.desired_replicas, d.reason) == (3, ScalingReason.MIN_REPLICAS_LIMITED)


def test_external_modes_are_left_alone() -> None:
    d = run(spec(mode="keda", scaleToZero=True, minReplicas=0), waiting(2, [99.0, 99.0]))
    assert (d.desired_replicas, d.reason) == (2, ScalingReason.EXTERNAL_AUTOSCALER)


def test_a_fresh_history_does_not_scale_down_for_one_window() -> None:
    s = spec(scaleDownStabilizationSeconds=300)
    d = decide(s, waiting(4, [0.0] * 4), ScalingHistory(), NOW, None)
    assert (d.desired_replicas, d.reason, d.history.since) == (4, ScalingReason.SCALE_DOWN_STABILIZED, NOW)
    d = decide(s, waiting(4, [0.0] * 4), d.history, NOW + 299, None)
    assert d.desired_replicas == 4
    d = decide(s, waiting(4, [0.0] * 4), replace(d.history, recommendations=()), NOW + 300, None)
    assert d.desired_replicas == 2
    up = decide(s, waiting(4, [20.0] * 4), ScalingHistory(), NOW, None)
    assert up.desired_replicas == 8  # scale-up is not held back


def test_history_is_pruned_and_bounded() -> None:
    s = spec(scaleDownStabilizationSeconds=3600)
    old = tuple((NOW - 4000 + i, 2) for i in range(10))
    fresh = tuple((NOW - 3000 + i * 0.1, 2) for i in range(MAX_HISTORY + 50))
    d = run(s, waiting(2, [5.0, 5.0]), ScalingHistory(recommendations=old + fresh, since=LONG_AGO))
    recs = d.history.recommendations
    assert len(recs) == MAX_HISTORY and recs[-1] == (NOW, 2)
    assert all(NOW - t < 3600 for t, _ in recs)


def test_status_block() -> None:
    s = spec()
    d = run(s, waiting(2, [7.5, 7.5]))
    st_ = to_status(s, d)
    assert st_.wire() == {
        "metric": "requestsWaiting",
        "value": 7.5,
        "desiredReplicas": 3,
        "currentReplicas": 2,
        "reason": "ScaledUp",
        "message": d.message,
        "lastDecision": {"time": rfc3339(NOW), "from": 2, "to": 3, "reason": "ScaledUp"},
    }
    assert "requestsWaiting 7.5 per ready replica" in d.message
    assert rfc3339(0) == "1970-01-01T00:00:00Z"


# --- properties -------------------------------------------------------------------------------


@st.composite
def specs(draw: st.DrawFn) -> Autoscaling:
    lo = draw(st.integers(0, 6))
    hi = draw(st.integers(max(lo, 1), 12))
    metric = draw(st.sampled_from(["requestsWaiting", "requestsRunning", "kvCacheUsage"]))
    target = draw(st.floats(0.05, 1.0)) if metric == "kvCacheUsage" else draw(st.floats(0.5, 20))
    return spec(
        minReplicas=lo,
        maxReplicas=hi,
        metric=metric,
        target=target,
        scaleToZero=lo == 0 or draw(st.booleans()),
        idleSeconds=draw(st.sampled_from([60, 300])),
        scaleUpStabilizationSeconds=draw(st.sampled_from([0, 30, 120])),
        scaleDownStabilizationSeconds=draw(st.sampled_from([0, 60, 300])),
    )


loads = st.lists(
    st.tuples(st.floats(0, 50), st.floats(0, 50), st.floats(0, 1)),
    min_size=0,
    max_size=8,
)
histories = st.builds(
    ScalingHistory,
    recommendations=st.lists(st.tuples(st.floats(NOW - 400, NOW), st.integers(0, 12)), max_size=6).map(
        lambda xs: tuple(sorted(xs))
    ),
    last_active=st.one_of(st.none(), st.floats(NOW - 1000, NOW)),
    since=st.one_of(st.none(), st.floats(NOW - 1000, NOW)),
)
caps = st.one_of(st.none(), st.integers(0, 14))


@given(specs(), st.integers(0, 14), loads, histories, caps, st.one_of(st.none(), st.integers(0, 40)))
def test_replicas_within_bounds_and_capacity(
    s: Autoscaling,
    current: int,
    load: list[Any],
    hist: ScalingHistory,
    cap: int | None,
    gw: int | None,
) -> None:
    d = decide(s, ScalingObservation(current, pods(*load), gw), hist, NOW, cap)
    floor = max(s.min_replicas, 1)
    if d.desired_replicas == 0:
        assert s.scale_to_zero
    else:
        assert floor <= d.desired_replicas <= s.max_replicas
    if d.desired_replicas > current:
        assert cap is None or d.desired_replicas <= max(cap, floor)
        assert current == 0 or d.desired_replicas <= max(2 * current, floor)
    if current >= floor and current <= s.max_replicas and d.desired_replicas < current:
        assert d.desired_replicas == 0 or d.desired_replicas >= current - current // 2


@given(specs(), st.integers(1, 12), loads, histories, caps, st.integers(0, 12), st.floats(0, 200))
def test_no_change_inside_a_stabilization_window(
    s: Autoscaling,
    current: int,
    load: list[Any],
    hist: ScalingHistory,
    cap: int | None,
    r: int,
    age: float,
) -> None:
    assume(max(s.min_replicas, 1) <= current <= s.max_replicas and load)
    hist = ScalingHistory((*hist.recommendations, (NOW - age, r)), last_active=NOW, since=hist.since)
    d = decide(s, ScalingObservation(current, pods(*load)), hist, NOW, cap)
    if age < s.scale_down_stabilization_seconds and r >= current:
        assert d.desired_replicas >= current  # a recent higher recommendation blocks scale-down
    if age < s.scale_up_stabilization_seconds and r <= current:
        assert d.desired_replicas <= current  # a recent lower recommendation blocks scale-up


@given(
    specs(),
    st.integers(0, 12),
    loads,
    histories,
    caps,
    st.one_of(st.none(), st.integers(0, 40)),
    st.data(),
)
def test_monotone_in_load(
    s: Autoscaling,
    current: int,
    load: list[Any],
    hist: ScalingHistory,
    cap: int | None,
    gw: int | None,
    data: st.DataObject,
) -> None:
    more = [
        (
            r + data.draw(st.floats(0, 20)),
            w + data.draw(st.floats(0, 20)),
            min(1.0, k + data.draw(st.floats(0, 1))),
        )
        for r, w, k in load
    ]
    gw_more = None if gw is None else gw + data.draw(st.integers(0, 20))
    low = decide(s, ScalingObservation(current, pods(*load), gw), hist, NOW, cap)
    high = decide(s, ScalingObservation(current, pods(*more), gw_more), hist, NOW, cap)
    assert high.desired_replicas >= low.desired_replicas, (low.message, high.message)


@given(specs(), st.integers(0, 14), loads, histories, caps, st.integers(0, 7))
def test_holds_on_bad_metrics(
    s: Autoscaling, current: int, load: list[Any], hist: ScalingHistory, cap: int | None, where: int
) -> None:
    assume(current > 0)
    scrapes = list(pods(*load))
    scrapes.insert(min(where, len(scrapes)), NoSample("gone", MissReason.UNREACHABLE, "pod vanished"))
    d = decide(s, ScalingObservation(current, tuple(scrapes)), hist, NOW, cap)
    assert d.reason == ScalingReason.METRICS_UNAVAILABLE
    assert d.desired_replicas == min(max(current, max(s.min_replicas, 1)), s.max_replicas)


STEP_S = 15  # seconds between two autoscaling passes in the simulation below
STEADY_STEPS = 15  # passes the settled count must hold
# Doubling/halving passes a count between 1 and maxReplicas (≤ 12) can take: three phases
# (down, up, down) of at most four passes each (12 → 6 → 3 → 2 → 1 and back).
STEP_BOUND_PASSES = 12


def settle_passes(s: Autoscaling) -> int:
    """Passes after which a constant load must have settled: the longest legal path.

    A fresh history holds a scale-down for one scale-down window, the scale-up that follows the
    first queue waits one scale-up window, the scale-down to exactly what is needed waits one more
    scale-down window; an idle fleet waits idleSeconds before it goes to zero. Each phase may add
    its doubling/halving passes. The windows are the HPA's rule (lowest recommendation of the
    scale-up window, highest of the scale-down window), so settling takes them, not a fixed time.
    """
    waits = 2 * s.scale_down_stabilization_seconds + s.scale_up_stabilization_seconds + s.idle_seconds
    return math.ceil(waits / STEP_S) + STEP_BOUND_PASSES


# Two examples hypothesis found under the old fixed horizon of 60 passes (900 s). Both take the
# legal path 3 → 2 → 4 → 3 (down on an empty queue, up once replicas queue and the concurrency is
# measured, down to ceil(demand / concurrency) = 3) and change last at pass 49 (300 s fresh-history
# hold + 120 s scale-up window + 300 s scale-down window + steps): not a flap, a horizon too short
# for the windows. The horizon is now derived from the spec.
_windows = {
    "scaleToZero": True,
    "idleSeconds": 300,
    "scaleUpStabilizationSeconds": 120,
    "scaleDownStabilizationSeconds": 300,
}


@given(specs(), st.integers(1, 10), st.floats(0, 150), st.integers(1, 32), caps)
@example(spec(minReplicas=0, maxReplicas=4, target=1.0, **_windows), 3, 16.0, 6, None)
@example(spec(minReplicas=0, maxReplicas=4, target=0.5, **_windows), 3, 10.0, 4, None)
def test_constant_load_settles_without_flapping(
    s: Autoscaling, start: int, demand: float, per_replica: int, cap: int | None
) -> None:
    """A fleet under constant demand settles and stays put.

    Physical model: each replica runs up to `per_replica` requests, the rest wait. At most two
    direction changes happen on the way: the metric alone cannot tell how many requests a replica
    runs until replicas queue once (down, then up once the concurrency is measured, then down to
    exactly what is needed when a scale-up overshot). It must settle within `settle_passes` and
    then hold for STEADY_STEPS passes.
    """
    current, hist, seen = start, ScalingHistory(), [start]
    for step in range(settle_passes(s) + STEADY_STEPS):
        running = min(demand, per_replica * current)
        queued = demand - running
        one = (running / current, queued / current, 0.9 * running / current / per_replica) if current else ()
        scrapes = pods(*[one] * current)
        gateway = round(demand) if current == 0 else None
        d = decide(s, ScalingObservation(current, scrapes, gateway), hist, NOW + STEP_S * step, cap)
        current, hist = d.desired_replicas, d.history
        seen.append(current)
    deltas = [b - a for a, b in itertools.pairwise(seen) if b != a]
    changes = sum(1 for a, b in itertools.pairwise(deltas) if (a > 0) != (b > 0))
    assert changes <= 2, seen
    assert len(set(seen[-STEADY_STEPS:])) == 1, seen


# --- scale to zero through the KEDA HTTP add-on (interceptor count) and loading replicas ------


def test_interceptor_count_wakes_a_model_at_zero() -> None:
    s = spec(minReplicas=0, scaleToZero=True, metric="requestsRunning", target=8)
    d = run(s, ScalingObservation(0, (), interceptor_in_flight=3))
    assert (d.desired_replicas, d.reason) == (1, ScalingReason.SCALED_FROM_ZERO)
    d = run(s, ScalingObservation(0, (), interceptor_in_flight=20))
    assert d.desired_replicas == 3  # ceil(20 / 8)
    assert run(s, ScalingObservation(0, (), interceptor_in_flight=0)).reason == ScalingReason.IDLE


def test_requests_running_keep_a_model_awake_when_the_queue_is_empty() -> None:
    """3 requests in flight, 0 waiting: the queue alone would call this idle."""
    s = spec(minReplicas=0, scaleToZero=True, idleSeconds=600)
    d = run(s, ScalingObservation(1, pods((3, 0))), ScalingHistory(last_active=NOW - 10_000))
    assert d.desired_replicas == 1 and d.history.last_active == NOW


def test_interceptor_requests_keep_a_model_awake() -> None:
    s = spec(minReplicas=0, scaleToZero=True, idleSeconds=600)
    d = run(s, ScalingObservation(1, pods((0, 0)), interceptor_in_flight=2), ScalingHistory(last_active=NOW - 10_000))
    assert d.desired_replicas == 1 and d.history.last_active == NOW


def test_interceptor_and_vllm_counts_overlap_and_are_not_added() -> None:
    """A forwarded request is counted by the interceptor and by vLLM: demand is the larger."""
    s = spec(minReplicas=1, maxReplicas=10, metric="requestsRunning", target=4)
    hist = ScalingHistory(since=LONG_AGO, concurrency=4.0, concurrency_seen_at=NOW - 60)
    alone = run(s, ScalingObservation(2, pods((4, 0), (4, 0))), hist)
    both = run(s, ScalingObservation(2, pods((4, 0), (4, 0)), interceptor_in_flight=8), hist)
    assert both.desired_replicas == alone.desired_replicas == 2


def test_never_scales_down_while_a_replica_loads() -> None:
    s = spec(minReplicas=0, scaleToZero=True, idleSeconds=600, scaleDownStabilizationSeconds=0)
    idle = ScalingHistory(since=LONG_AGO, last_active=NOW - 10_000)
    d = run(s, ScalingObservation(2, pods((0, 0)), loading_replicas=1), idle)
    assert (d.desired_replicas, d.reason) == (2, ScalingReason.LOADING_REPLICAS), d.message
    d = run(spec(scaleDownStabilizationSeconds=0), ScalingObservation(4, pods((0, 0), (0, 0), (0, 0)), loading_replicas=1))
    assert (d.desired_replicas, d.reason) == (4, ScalingReason.LOADING_REPLICAS)
    assert "1 replica(s) still loading" in d.message
    # Once loaded, the same observation scales down.
    d = run(spec(scaleDownStabilizationSeconds=0), ScalingObservation(4, pods((0, 0), (0, 0), (0, 0), (0, 0))))
    assert d.desired_replicas < 4


def test_loading_replicas_do_not_block_scale_up() -> None:
    d = run(spec(), ScalingObservation(2, pods((1, 20)), loading_replicas=1))
    assert d.desired_replicas > 2
