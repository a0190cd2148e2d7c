"""The autoscaling target per replica when spec.autoscaling.target is not set. Pure.

With spec.serving.workload the plan knows one replica's capacity at the request shape (the
most requests in flight it serves within the SLO; `performance.capacityConcurrency`), so:

- requestsRunning: that capacity — scale out before a replica runs more than it serves well.
- kvCacheUsage: the KV share that capacity occupies (capacity × tokens per request / KV tokens).
- requestsWaiting: the queue a replica can absorb within the TTFT target: each waiting request
  delays the next first token by 1 / (requests per second at capacity) (Little's law), so
  (ttftMs target − predicted TTFT) × that rate. Without a TTFT target: the default.

Otherwise the metric's default (5 requests, 0.8 KV usage). status.plan.autoscalingTarget says
which source was used.
"""

from __future__ import annotations

import math

from ..api import Autoscaling, AutoscalingMetric, ModelDeployment
from ..api.deployment import target_or_default
from ..api.status import AutoscalingTarget, Performance

SPEC, PREDICTED, DEFAULT = "spec", "predictedCapacity", "default"
KV_USAGE_BOUNDS = (0.05, 0.95)  # a usage target outside this leaves no room or never scales


def _predicted(metric: AutoscalingMetric, perf: Performance, md: ModelDeployment,
               kv_tokens: int | None) -> float | None:
    capacity = perf.capacity_concurrency
    workload = md.spec.serving.workload
    if not capacity or workload is None:
        return None
    if metric == AutoscalingMetric.REQUESTS_RUNNING:
        return float(capacity)
    if metric == AutoscalingMetric.KV_CACHE_USAGE:
        if not kv_tokens:
            return None
        share = capacity * workload.tokens_per_request / kv_tokens
        return round(min(max(share, KV_USAGE_BOUNDS[0]), KV_USAGE_BOUNDS[1]), 3)
    slo = md.spec.serving.slo
    if slo is None or slo.ttft_ms is None or not perf.capacity_output_tokens_per_second:
        return None
    rate = perf.capacity_output_tokens_per_second / workload.output_tokens  # requests/s at capacity
    slack_s = (slo.ttft_ms - perf.ttft_ms) / 1e3
    return float(max(1, math.floor(slack_s * rate))) if slack_s > 0 else 1.0


def autoscaling_target(md: ModelDeployment, perf: Performance | None, kv_tokens: int | None) -> AutoscalingTarget | None:
    """The target the autoscaler uses and where it comes from; None without autoscaling."""
    scaling = md.spec.autoscaling
    if scaling is None:
        return None
    metric = AutoscalingMetric(scaling.metric)
    if scaling.target is not None:
        return AutoscalingTarget(metric=metric, value=scaling.target, source=SPEC)
    value = _predicted(metric, perf, md, kv_tokens) if perf is not None else None
    if value is not None:
        return AutoscalingTarget(metric=metric, value=value, source=PREDICTED)
    return AutoscalingTarget(metric=metric, value=target_or_default(scaling), source=DEFAULT)


def effective_autoscaling(md: ModelDeployment, target: AutoscalingTarget | None) -> Autoscaling | None:
    """spec.autoscaling with the resolved target filled in (what the autoscalers run with)."""
    scaling = md.spec.autoscaling
    if scaling is None or target is None or scaling.target is not None:
        return scaling
    return scaling.model_copy(update={"target": target.value})
