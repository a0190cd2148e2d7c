"""Scale from zero that holds requests (autoscaling.scaleToZero), through the KEDA HTTP add-on.

With zero replicas nothing answers at the model's Service. The add-on's interceptor does: a
client calls the wake Service (`<name>-wake`, an ExternalName for the interceptor), the
interceptor counts the request, holds it until a replica is Ready (`timeouts.conditionWait`,
the model's whole start budget), then forwards it to the model's Service.

Who acts on the count:
- mode `builtin`: the operator reads the interceptor's count (its admin `/queue`) as the demand
  signal at zero and as part of idleness (`decisions.autoscale.Observation.interceptor_in_flight`);
  it alone writes the replica count.
- mode `keda`: our ScaledObject has an `external-push` trigger to the add-on's scaler next to
  the Prometheus trigger on vLLM, so KEDA wakes the model; KEDA alone writes the count.
In both modes the HTTPScaledObject carries `httpscaledobject.keda.sh/skip-scaledobject-creation`,
so the add-on never creates a second ScaledObject that would fight over the count (add-on
operator/controllers/http/app.go, v0.11.0).
"""

from __future__ import annotations

import math
from typing import Any

from ..api.deployment import AutoscalingMetric, target_or_default
from ..planner.autoscaling_target import effective_autoscaling
from .argv import PORT
from .context import Context
from .engine import render_object
from .rollout import START_SLACK_SECONDS

SKIP_SCALED_OBJECT = "httpscaledobject.keda.sh/skip-scaledobject-creation"
# The interceptor's count is a wake/idle signal, not a per-replica target, unless the spec scales
# on requests running: then requests in flight per replica is the same quantity.
ACTIVATION_ONLY_TARGET = 1_000_000


def wake_hosts(ctx: Context) -> list[str]:
    """Host names the interceptor routes to this model: every way to write the wake Service's
    in-cluster DNS name (the interceptor drops the port, pkg/routing/key.go)."""
    name, namespace = ctx.names.wake_service, ctx.md.metadata.namespace
    if namespace is None:
        return [name]
    fqdn = f"{name}.{namespace}.svc"
    return [name, f"{name}.{namespace}", fqdn, f"{fqdn}.{ctx.options.cluster_domain}"]


def start_budget_seconds(ctx: Context) -> int:
    """How long the first replica may take to become Ready: the interceptor holds requests and
    KEDA leaves a new replica alone this long."""
    return ctx.sizing.startup_seconds + START_SLACK_SECONDS


def concurrency_target(ctx: Context) -> int:
    """Requests in flight per replica for the add-on's scaler: the autoscaling target (the
    spec's, else the plan's predicted one) when it counts requests running, else activation only."""
    scaling = effective_autoscaling(ctx.md, ctx.plan.autoscaling_target)
    if scaling is not None and scaling.metric == AutoscalingMetric.REQUESTS_RUNNING:
        return max(1, math.ceil(target_or_default(scaling)))
    return ACTIVATION_ONLY_TARGET


def external_push_trigger(ctx: Context) -> dict[str, Any]:
    """The ScaledObject trigger that reads the interceptor's count for this model (the form the
    add-on's own ScaledObjects use, pkg/k8s/scaledobject.go)."""
    return {"type": "external-push", "name": "interceptor",
            "metadata": {"scalerAddress": ctx.options.keda_http_scaler_address,
                         "httpScaledObject": ctx.names.http_scaled_object}}


def scale_to_zero_objects(ctx: Context, target: Any) -> list[dict[str, Any]]:
    """[wake Service, HTTPScaledObject] when autoscaling.scaleToZero; [] otherwise.

    `target` is the workload (`autoscaling.Target`): Deployment or LeaderWorkerSet.
    """
    scaling = ctx.md.spec.autoscaling
    if scaling is None or not scaling.scale_to_zero:
        return []
    opts = ctx.options
    wake = render_object(
        "wakeservice.yaml.j2", meta=ctx.meta(ctx.names.wake_service),
        external_name=opts.keda_http_interceptor, port=opts.keda_http_interceptor_port,
    )
    budget = start_budget_seconds(ctx)
    route = render_object(
        "httpscaledobject.yaml.j2",
        meta=ctx.meta(ctx.names.http_scaled_object, {SKIP_SCALED_OBJECT: "true"}),
        hosts=wake_hosts(ctx), target=target, service=ctx.names.service, port=PORT,
        max_replicas=scaling.max_replicas, scaledown_period=scaling.idle_seconds,
        initial_cooldown=budget, concurrency=concurrency_target(ctx),
        condition_wait=f"{budget}s", response_header=f"{opts.keda_http_response_header_timeout_seconds}s",
    )
    return [wake, route]
