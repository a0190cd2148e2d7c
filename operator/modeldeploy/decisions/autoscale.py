"""Desired replicas from vLLM metrics: an HPA-like pure decision with GPU awareness.

`decide(spec, observation, history, now, capacity_replicas)` is a function of its inputs. The
caller keeps the returned `Decision.history` in memory and passes it to the next call; after an
operator restart an empty history is safe (windows start over, the idle clock restarts).

The algorithm, in order:

1. Hold (reason `MetricsUnavailable`) when any ready pod could not be read, no ready pod
   reported, or the KV metric is missing: the current count is kept (only clamped into
   [minReplicas, maxReplicas]) and the idle clock is reset, so an outage never looks idle.
2. At zero replicas (scaleToZero): wake up when requests wait (the KEDA HTTP add-on's
   interceptor holding them, the gateway queue, or any sample) to max(minReplicas, 1,
   ceil(waiting / c)), with c the per-replica concurrency measured earlier (see 4) or,
   unknown, the target of a request metric (KV usage: minReplicas, 1); otherwise stay at zero.
3. Scale to zero when scaleToZero is on and no request was in flight (running or waiting in
   vLLM, held or forwarded by the interceptor) for idleSeconds, and no replica is loading.
4. Proportional: total = sum of the metric over ready pods; ratio = total / (current × target).
   Within the tolerance (|ratio − 1| ≤ 10 %) the recommendation is `current`, else
   ceil(total / target) (= ceil(current × ratio)). Pods that are still loading count as zero
   load, so a scale-up that is on its way is not asked for twice.
   Concurrency floor (vLLM-aware): a replica that has requests waiting runs all it can, so its
   running count is its concurrency (max_num_seqs or, with long prompts, what the KV cache
   holds). The last such measurement (kept for an hour) gives a floor: never fewer replicas
   than ceil(in-flight requests / concurrency). It stops requestsWaiting from dropping to
   minReplicas whenever the queue is momentarily empty (the flapping an HPA on queue length
   shows), and it lets running/KV metrics, which saturate at a full batch, see the queued
   demand. The recommendation is clamped to [max(minReplicas, 1), maxReplicas] and recorded.
5. Stabilization (as the HPA): scale up only to the lowest recommendation of the scale-up
   window, scale down only to the highest of the scale-down window. A history younger than the
   scale-down window (a fresh operator) does not scale down: the recommendations that could
   justify it were not seen.
6. Step bound: at most double up, at most halve down per decision. Bounds win over the step.
7. Capacity: an increase is capped at max(current, capacity_replicas) (`CapacityLimited`);
   capacity never forces a decrease and never pushes below minReplicas (min is the user's
   guarantee; unschedulable pods then show as `InsufficientGPU` in the rollout status).
8. Loading replicas: while a replica (a pod, or a LeaderWorkerSet group) is still loading, no
   decrease at all (`LoadingReplicas`). A ReplicaSet removes not-ready pods first, so any
   scale-down would kill the replica whose download and load are already paid for.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..api.base import rfc3339
from ..api.deployment import Autoscaling, AutoscalingMetric, AutoscalingMode, target_or_default
from ..api.status import AutoscalingStatus, ScalingDecision
from .autoscale_types import (
    Decision,
    ScalingEvent,
    ScalingHistory,
    ScalingObservation,
    ScalingReason,
)
from .metrics import NoSample, PodSample, split

__all__ = ["MAX_HISTORY", "Decision", "ScalingEvent", "ScalingHistory", "ScalingObservation",
           "ScalingReason", "decide", "rfc3339", "to_status"]

TOLERANCE = 0.1
MAX_HISTORY = 4096
# How long a measured per-replica concurrency is trusted. It is re-measured whenever replicas
# queue; forgetting it lets a fleet that never queues any more (prompts got shorter, say) fall
# back to the metric alone instead of keeping a stale, too-low figure forever.
CONCURRENCY_MEMORY_S = 3600.0
_EPS = 1e-9


def decide(
    spec: Autoscaling,
    observation: ScalingObservation,
    history: ScalingHistory,
    now: float,
    capacity_replicas: int | None,
    *,
    tolerance: float = TOLERANCE,
) -> Decision:
    """Desired replicas for one autoscaling pass (see the module docstring for the rules)."""
    current = max(0, observation.current_replicas)
    hist = _prune(history, now, spec)
    if hist.since is None or hist.since > now:
        hist = replace(hist, since=now)
    if spec.mode != AutoscalingMode.BUILTIN:
        msg = f"mode {spec.mode}: the {spec.mode} object scales this deployment"
        return _done(spec, current, current, ScalingReason.EXTERNAL_AUTOSCALER, msg, None, None, hist, now)
    good, bad = split(observation.scrapes)
    external = _external_demand(observation)
    if current == 0:
        return _at_zero(spec, current, good, external, hist, now, capacity_replicas)
    floor, ceiling = max(spec.min_replicas, 1), spec.max_replicas
    if bad or not good or (spec.metric == AutoscalingMetric.KV_CACHE_USAGE and any(s.kv_usage is None for s in good)):
        held = _clamp(current, floor, ceiling)
        reason = ScalingReason.METRICS_UNAVAILABLE
        msg = _unavailable_message(spec, current, good, bad)
        if held != current:
            msg += f"; moved into [{floor}, {ceiling}]"
        return _done(spec, current, held, reason, msg, None, None, replace(hist, last_active=now), now)

    values = [_metric(spec.metric, s) for s in good]
    total = math.fsum(values)
    value = total / len(good)
    load = _in_flight(observation, good)
    last_active = now if load > 0 or hist.last_active is None else hist.last_active
    hist = replace(hist, last_active=last_active)
    seen = f"{spec.metric} {value:.3g} per ready replica ({len(good)} of {current} ready), target {target_or_default(spec):g}"
    loading = max(0, observation.loading_replicas)

    if spec.scale_to_zero and load <= 0 and now - last_active >= spec.idle_seconds:
        msg = f"no request in flight for {now - last_active:.0f}s ≥ idleSeconds {spec.idle_seconds}"
        if loading:
            msg += f", but {loading} replica(s) still loading: holding {current}"
            return _done(spec, current, current, ScalingReason.LOADING_REPLICAS, msg, value, 0, hist, now)
        return _done(spec, current, 0, ScalingReason.SCALED_TO_ZERO, msg, value, 0, hist, now)

    ratio = total / (current * target_or_default(spec))
    within = abs(ratio - 1.0) <= tolerance
    proportional = current if within else math.ceil(total / target_or_default(spec) - _EPS)
    need, learned = _concurrency_need(hist, load, now)
    raw = max(proportional, need)
    if need > proportional:
        seen += f"; {load:g} requests in flight need {need} at ~{learned:.3g} per replica"
    hist = _learn_concurrency(hist, good, now)
    rec = _clamp(raw, floor, ceiling)
    hist = _record(hist, now, rec)
    up_rec, down_rec = _stabilized(hist, now, spec, rec)
    if now - (hist.since if hist.since is not None else now) < spec.scale_down_stabilization_seconds:
        down_rec = max(down_rec, current)  # history younger than the window: no scale-down yet

    stabilized = current
    if stabilized < up_rec:
        stabilized = up_rec
    elif stabilized > down_rec:
        stabilized = down_rec
    up_limit, down_limit = 2 * current, current - current // 2
    stepped = min(max(stabilized, down_limit), up_limit)
    bounded = _clamp(stepped, floor, ceiling)
    capped = bounded
    if capacity_replicas is not None and bounded > current:
        capped = min(bounded, max(current, capacity_replicas))
    desired = max(capped, floor)
    if desired < current and loading:
        msg = f"{seen}: wanted {desired}, but {loading} replica(s) still loading: holding {current}"
        return _done(spec, current, current, ScalingReason.LOADING_REPLICAS, msg, value, raw, hist, now)

    if desired > current:
        if desired < bounded:
            reason, why = (
                ScalingReason.CAPACITY_LIMITED,
                f"wanted {bounded}, the pool fits {capacity_replicas}",
            )
        elif desired < stabilized and bounded == stepped:
            reason, why = ScalingReason.SCALE_UP_LIMITED, f"wanted {stabilized}, at most double per step"
        elif desired > stepped and desired == floor:
            reason, why = ScalingReason.MIN_REPLICAS_LIMITED, f"below minReplicas {spec.min_replicas}"
        else:
            reason, why = ScalingReason.SCALED_UP, f"recommended {rec}"
    elif desired < current:
        if desired > stabilized and bounded == stepped:
            reason, why = ScalingReason.SCALE_DOWN_LIMITED, f"wanted {stabilized}, at most halve per step"
        elif desired < stepped and desired == ceiling:
            reason, why = ScalingReason.MAX_REPLICAS_LIMITED, f"above maxReplicas {ceiling}"
        else:
            reason, why = (
                ScalingReason.SCALED_DOWN,
                f"recommended {rec}, highest in the scale-down window {down_rec}",
            )
    elif bounded > current:
        reason, why = (
            ScalingReason.CAPACITY_LIMITED,
            f"wanted {bounded}, the pool fits {capacity_replicas}",
        )
    elif rec > current:
        reason, why = (
            ScalingReason.SCALE_UP_STABILIZED,
            f"recommended {rec}, lowest in the {spec.scale_up_stabilization_seconds}s scale-up window {up_rec}",
        )
    elif rec < current:
        reason, why = (
            ScalingReason.SCALE_DOWN_STABILIZED,
            f"recommended {rec}, highest in the {spec.scale_down_stabilization_seconds}s scale-down window {down_rec}",
        )
    elif raw > ceiling:
        reason, why = ScalingReason.MAX_REPLICAS_LIMITED, f"recommended {raw}, maxReplicas {ceiling}"
    elif need > proportional:
        reason, why = ScalingReason.CONCURRENCY_FLOOR, f"the metric alone recommends {proportional}"
    elif raw < floor:
        reason, why = (
            ScalingReason.MIN_REPLICAS_LIMITED,
            f"recommended {raw}, minReplicas {spec.min_replicas}",
        )
    else:
        reason, why = ScalingReason.WITHIN_TOLERANCE, f"ratio {ratio:.2f} within ±{tolerance:.0%}"
    return _done(spec, current, desired, reason, f"{seen}: {why}", value, raw, hist, now)


def to_status(spec: Autoscaling, decision: Decision) -> AutoscalingStatus:
    """The `status.autoscaling` block: metric, value seen, desired/current, this decision's reason
    and message (a hold on unreadable metrics shows here), and the last scaling event."""
    last = decision.history.last_change
    return AutoscalingStatus(
        metric=str(spec.metric),
        value=None if decision.metric_value is None else round(decision.metric_value, 4),
        desired_replicas=decision.desired_replicas,
        current_replicas=decision.current_replicas,
        reason=str(decision.reason),
        message=decision.message[:4096],
        last_decision=None
        if last is None
        else ScalingDecision(
            time=rfc3339(last.time),
            from_replicas=last.from_replicas,
            to_replicas=last.to_replicas,
            reason=str(last.reason),
        ),
    )


# ---------------------------------------------------------------------------------------------


def _at_zero(
    spec: Autoscaling,
    current: int,
    good: list[PodSample],
    external: int | None,
    hist: ScalingHistory,
    now: float,
    capacity: int | None,
) -> Decision:
    floor, ceiling = max(spec.min_replicas, 1), spec.max_replicas
    if not spec.scale_to_zero:
        msg = f"0 replicas without scaleToZero: back to minReplicas {spec.min_replicas}"
        return _done(spec, current, floor, ScalingReason.MIN_REPLICAS_LIMITED, msg, None, floor, hist, now)
    waiting = max(0, external or 0) + math.fsum(s.requests for s in good)
    if waiting <= 0:
        signal = "no request waiting" if external is not None or good else "no demand signal at zero"
        return _done(spec, current, 0, ScalingReason.IDLE, f"scaled to zero, {signal}", None, 0, hist, now)
    need, _ = _concurrency_need(hist, waiting, now)
    if need:  # the queue is all the demand there is: size it with the measured concurrency
        want = max(floor, need)
    elif spec.metric != AutoscalingMetric.KV_CACHE_USAGE:
        want = max(floor, math.ceil(waiting / target_or_default(spec) - _EPS))
    else:
        want = floor
    want = min(want, ceiling)
    hist = _record(replace(hist, last_active=now), now, want)
    desired, reason = want, ScalingReason.SCALED_FROM_ZERO
    msg = f"{waiting:g} requests waiting at zero replicas: waking {want}"
    if capacity is not None and want > capacity:
        desired = max(capacity, floor)
        if desired < want:
            reason = ScalingReason.CAPACITY_LIMITED
            msg += f"; the pool fits {capacity}, asking for {desired}"
    return _done(spec, current, desired, reason, msg, float(waiting), want, hist, now)


def _external_demand(observation: ScalingObservation) -> int | None:
    """Requests seen outside vLLM (gateway queue + interceptor), None when nothing reports."""
    parts = [v for v in (observation.gateway_waiting, observation.interceptor_in_flight) if v is not None]
    return sum(max(0, v) for v in parts) if parts else None


def _in_flight(observation: ScalingObservation, good: list[PodSample]) -> float:
    """Requests in flight: max(vLLM running + waiting, the interceptor's count) + gateway queue."""
    in_vllm = math.fsum(s.requests for s in good)
    at_interceptor = max(0, observation.interceptor_in_flight or 0)
    return max(in_vllm, at_interceptor) + max(0, observation.gateway_waiting or 0)


def _concurrency_need(hist: ScalingHistory, in_flight: float, now: float) -> tuple[int, float]:
    """Replicas the requests in flight need at the concurrency learned earlier (0 if unknown).

    Uses the history as passed in (not this observation), so the decision stays monotone in load.
    """
    c, seen = hist.concurrency, hist.concurrency_seen_at
    if c is None or seen is None or c <= 0 or not 0 <= now - seen < CONCURRENCY_MEMORY_S:
        return 0, 0.0
    return math.ceil(in_flight / c - _EPS), c


def _learn_concurrency(hist: ScalingHistory, good: list[PodSample], now: float) -> ScalingHistory:
    """A replica with requests waiting runs all it can: its running count is its concurrency."""
    saturated = [s.running for s in good if s.waiting > 0 and s.running > 0]
    if not saturated:
        return hist
    return replace(hist, concurrency=math.fsum(saturated) / len(saturated), concurrency_seen_at=now)


def _metric(metric: str, s: PodSample) -> float:
    if metric == AutoscalingMetric.REQUESTS_RUNNING:
        return s.running
    if metric == AutoscalingMetric.KV_CACHE_USAGE:
        return s.kv_usage or 0.0
    return s.waiting


def _unavailable_message(spec: Autoscaling, current: int, good: list[PodSample], bad: list[NoSample]) -> str:
    if bad:
        shown = "; ".join(f"{b.pod}: {b.reason} ({b.message})" for b in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        return f"holding {current}: {len(bad)} pod(s) unreadable: {shown}{more}"
    if not good:
        return f"holding {current}: no ready replica to read metrics from"
    missing = [s.pod for s in good if s.kv_usage is None]
    return f"holding {current}: no KV usage metric from {', '.join(missing[:3])}"


def _clamp(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, n))


def _window(spec: Autoscaling) -> int:
    return max(spec.scale_up_stabilization_seconds, spec.scale_down_stabilization_seconds)


def _prune(h: ScalingHistory, now: float, spec: Autoscaling) -> ScalingHistory:
    w = _window(spec)
    kept = tuple((t, r) for t, r in h.recommendations if 0 <= now - t < w)[-MAX_HISTORY:]
    return h if kept == h.recommendations else replace(h, recommendations=kept)


def _record(h: ScalingHistory, now: float, rec: int) -> ScalingHistory:
    return replace(h, recommendations=(*h.recommendations, (now, rec))[-MAX_HISTORY:])


def _stabilized(h: ScalingHistory, now: float, spec: Autoscaling, rec: int) -> tuple[int, int]:
    up, down = rec, rec
    for t, r in h.recommendations:
        age = now - t
        if age < spec.scale_up_stabilization_seconds:
            up = min(up, r)
        if age < spec.scale_down_stabilization_seconds:
            down = max(down, r)
    return up, down


def _done(
    spec: Autoscaling,
    current: int,
    desired: int,
    reason: ScalingReason,
    message: str,
    value: float | None,
    rec: int | None,
    hist: ScalingHistory,
    now: float,
) -> Decision:
    if desired != current:
        hist = replace(hist, last_change=ScalingEvent(now, current, desired, reason))
    return Decision(desired, current, reason, message, value, rec, hist)
