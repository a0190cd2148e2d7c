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
from dataclasses import dataclass, replace

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


@dataclass(frozen=True)
class _Pass:
    """One decision's fixed inputs, and how it ends (`done`)."""

    spec: Autoscaling
    current: int
    hist: ScalingHistory
    now: float

    @property
    def bounds(self) -> tuple[int, int]:
        """[max(minReplicas, 1), maxReplicas]: where a running deployment is kept."""
        return max(self.spec.min_replicas, 1), self.spec.max_replicas

    def done(self, desired: int, reason: ScalingReason, message: str,
             value: float | None = None, rec: int | None = None,
             hist: ScalingHistory | None = None) -> Decision:
        hist = self.hist if hist is None else hist
        if desired != self.current:
            hist = replace(hist, last_change=ScalingEvent(self.now, self.current, desired, reason))
        return Decision(desired, self.current, reason, message, value, rec, hist)


@dataclass(frozen=True)
class _Steps:
    """The proportional decision's steps 4-7 (module docstring), in order."""

    raw: int  # max(proportional, concurrency need)
    rec: int  # raw clamped into the bounds, recorded in the history
    up_rec: int  # lowest recommendation of the scale-up window
    down_rec: int  # highest of the scale-down window
    stabilized: int
    stepped: int  # at most double, at most halve
    bounded: int  # stepped clamped into the bounds
    desired: int  # bounded, capped by capacity (never below the floor)
    hist: ScalingHistory


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
    hist = _prune(history, now, spec)
    if hist.since is None or hist.since > now:
        hist = replace(hist, since=now)
    run = _Pass(spec, max(0, observation.current_replicas), hist, now)
    if spec.mode != AutoscalingMode.BUILTIN:
        msg = f"mode {spec.mode}: the {spec.mode} object scales this deployment"
        return run.done(run.current, ScalingReason.EXTERNAL_AUTOSCALER, msg)
    good, bad = split(observation.scrapes)
    if run.current == 0:
        return _at_zero(run, good, _external_demand(observation), capacity_replicas)
    if bad or not good or (spec.metric == AutoscalingMetric.KV_CACHE_USAGE and any(s.kv_usage is None for s in good)):
        return _hold(run, good, bad)
    return _proportional(run, observation, good, capacity_replicas, tolerance)


def _hold(run: _Pass, good: list[PodSample], bad: list[NoSample]) -> Decision:
    """Step 1: metrics unreadable: keep the count (clamped), reset the idle clock."""
    floor, ceiling = run.bounds
    held = _clamp(run.current, floor, ceiling)
    msg = _unavailable_message(run.spec, run.current, good, bad)
    if held != run.current:
        msg += f"; moved into [{floor}, {ceiling}]"
    return run.done(held, ScalingReason.METRICS_UNAVAILABLE, msg,
                    hist=replace(run.hist, last_active=run.now))


def _proportional(run: _Pass, observation: ScalingObservation, good: list[PodSample],
                  capacity: int | None, tolerance: float) -> Decision:
    """Steps 3-8 for a running deployment with every ready pod read."""
    spec, current, now = run.spec, run.current, run.now
    total = math.fsum(_metric(spec.metric, s) for s in good)
    value = total / len(good)
    load = _in_flight(observation, good)
    hist = run.hist
    last_active = now if load > 0 or hist.last_active is None else hist.last_active
    hist = replace(hist, last_active=last_active)
    seen = f"{spec.metric} {value:.3g} per ready replica ({len(good)} of {current} ready), target {target_or_default(spec):g}"
    loading = max(0, observation.loading_replicas)

    if spec.scale_to_zero and load <= 0 and now - last_active >= spec.idle_seconds:
        msg = f"no request in flight for {now - last_active:.0f}s ≥ idleSeconds {spec.idle_seconds}"
        if loading:
            msg += f", but {loading} replica(s) still loading: holding {current}"
            return run.done(current, ScalingReason.LOADING_REPLICAS, msg, value, 0, hist)
        return run.done(0, ScalingReason.SCALED_TO_ZERO, msg, value, 0, hist)

    ratio = total / (current * target_or_default(spec))
    within = abs(ratio - 1.0) <= tolerance
    proportional = current if within else math.ceil(total / target_or_default(spec) - _EPS)
    need, learned = _concurrency_need(hist, load, now)
    if need > proportional:
        seen += f"; {load:g} requests in flight need {need} at ~{learned:.3g} per replica"
    steps = _steps(replace(run, hist=_learn_concurrency(hist, good, now)),
                   max(proportional, need), capacity)
    if steps.desired < current and loading:
        msg = f"{seen}: wanted {steps.desired}, but {loading} replica(s) still loading: holding {current}"
        return run.done(current, ScalingReason.LOADING_REPLICAS, msg, value, steps.raw, steps.hist)
    explained = _why(run, steps, capacity)
    if explained is not None:
        reason, why = explained
    elif need > proportional:
        reason, why = ScalingReason.CONCURRENCY_FLOOR, f"the metric alone recommends {proportional}"
    elif steps.raw < run.bounds[0]:
        reason, why = (
            ScalingReason.MIN_REPLICAS_LIMITED,
            f"recommended {steps.raw}, minReplicas {spec.min_replicas}",
        )
    else:
        reason, why = ScalingReason.WITHIN_TOLERANCE, f"ratio {ratio:.2f} within ±{tolerance:.0%}"
    return run.done(steps.desired, reason, f"{seen}: {why}", value, steps.raw, steps.hist)


def _steps(run: _Pass, raw: int, capacity: int | None) -> _Steps:
    """Clamp and record the recommendation, stabilize, bound the step, cap by capacity."""
    spec, current, now = run.spec, run.current, run.now
    floor, ceiling = run.bounds
    rec = _clamp(raw, floor, ceiling)
    hist = _record(run.hist, now, rec)
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
    if capacity is not None and bounded > current:
        capped = min(bounded, max(current, capacity))
    return _Steps(raw, rec, up_rec, down_rec, stabilized, stepped, bounded,
                  max(capped, floor), hist)


def _why(run: _Pass, s: _Steps, capacity: int | None) -> tuple[ScalingReason, str] | None:
    """The reason of a change, or of a hold a limit or a window explains (None: neither)."""
    spec, current = run.spec, run.current
    floor, ceiling = run.bounds
    if s.desired > current:
        if s.desired < s.bounded:
            return ScalingReason.CAPACITY_LIMITED, f"wanted {s.bounded}, the pool fits {capacity}"
        if s.desired < s.stabilized and s.bounded == s.stepped:
            return ScalingReason.SCALE_UP_LIMITED, f"wanted {s.stabilized}, at most double per step"
        if s.desired > s.stepped and s.desired == floor:
            return ScalingReason.MIN_REPLICAS_LIMITED, f"below minReplicas {spec.min_replicas}"
        return ScalingReason.SCALED_UP, f"recommended {s.rec}"
    if s.desired < current:
        if s.desired > s.stabilized and s.bounded == s.stepped:
            return ScalingReason.SCALE_DOWN_LIMITED, f"wanted {s.stabilized}, at most halve per step"
        if s.desired < s.stepped and s.desired == ceiling:
            return ScalingReason.MAX_REPLICAS_LIMITED, f"above maxReplicas {ceiling}"
        return (ScalingReason.SCALED_DOWN,
                f"recommended {s.rec}, highest in the scale-down window {s.down_rec}")
    if s.bounded > current:
        return ScalingReason.CAPACITY_LIMITED, f"wanted {s.bounded}, the pool fits {capacity}"
    if s.rec > current:
        return (ScalingReason.SCALE_UP_STABILIZED,
                f"recommended {s.rec}, lowest in the {spec.scale_up_stabilization_seconds}s "
                f"scale-up window {s.up_rec}")
    if s.rec < current:
        return (ScalingReason.SCALE_DOWN_STABILIZED,
                f"recommended {s.rec}, highest in the {spec.scale_down_stabilization_seconds}s "
                f"scale-down window {s.down_rec}")
    if s.raw > ceiling:
        return ScalingReason.MAX_REPLICAS_LIMITED, f"recommended {s.raw}, maxReplicas {ceiling}"
    return None


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


def _at_zero(run: _Pass, good: list[PodSample], external: int | None,
             capacity: int | None) -> Decision:
    """Step 2: wake on waiting requests (scaleToZero), else stay at zero."""
    spec, now = run.spec, run.now
    floor, ceiling = run.bounds
    if not spec.scale_to_zero:
        msg = f"0 replicas without scaleToZero: back to minReplicas {spec.min_replicas}"
        return run.done(floor, ScalingReason.MIN_REPLICAS_LIMITED, msg, None, floor)
    waiting = max(0, external or 0) + math.fsum(s.requests for s in good)
    if waiting <= 0:
        signal = "no request waiting" if external is not None or good else "no demand signal at zero"
        return run.done(0, ScalingReason.IDLE, f"scaled to zero, {signal}", None, 0)
    need, _ = _concurrency_need(run.hist, waiting, now)
    if need:  # the queue is all the demand there is: size it with the measured concurrency
        want = max(floor, need)
    elif spec.metric != AutoscalingMetric.KV_CACHE_USAGE:
        want = max(floor, math.ceil(waiting / target_or_default(spec) - _EPS))
    else:
        want = floor
    want = min(want, ceiling)
    hist = _record(replace(run.hist, last_active=now), now, want)
    desired, reason = want, ScalingReason.SCALED_FROM_ZERO
    msg = f"{waiting:g} requests waiting at zero replicas: waking {want}"
    if capacity is not None and want > capacity:
        desired = max(capacity, floor)
        if desired < want:
            reason = ScalingReason.CAPACITY_LIMITED
            msg += f"; the pool fits {capacity}, asking for {desired}"
    return run.done(desired, reason, msg, float(waiting), want, hist)


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
