"""Autoscaling objects and who owns the workload's `.spec.replicas`.

- No `spec.autoscaling`: the rendered workload carries `spec.replicas` (the user's count).
- Any autoscaling mode: the rendered workload omits it, so the operator's server-side apply never
  fights the autoscaler. `builtin`: the operator sets it through the scale subresource; `hpa`:
  the HorizontalPodAutoscaler rendered here; `keda`: KEDA, through the ScaledObject rendered here.
- Switching a live workload from a fixed count to autoscaling would make server-side apply drop
  the field (our manager owned it alone) and the API server reset it to 1. `replicas_handover`
  gives the one-field apply that a second field manager makes first, so the count stays.

PromQL: the namespace and the name land in string literals of the KEDA query; both are escaped
(`promql_string`, `re2_quote`), whatever the schema already guarantees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from ..api import ModelDeployment
from ..api.deployment import Autoscaling, AutoscalingMetric, AutoscalingMode, target_or_default
from ..decisions.metrics import KV_USAGE, KV_USAGE_OLD, RUNNING, WAITING
from ..errors import InvalidSpec
from ..planner.autoscaling_target import effective_autoscaling
from .context import Context
from .engine import render_object
from .rollout import START_SLACK_SECONDS
from .scaletozero import external_push_trigger

# The field manager that holds `.spec.replicas` across a switch to autoscaling (see
# `replicas_handover`); the main apply's manager is the shell's.
REPLICAS_FIELD_MANAGER = "modeldeploy-replicas"
# Pods of the workload: Deployment pods are `<name>-<template hash>-<suffix>`, LeaderWorkerSet
# leaders `<name>-lws-<group>`; a longer ModelDeployment name `<name>-x` always adds a segment.
_POD_SUFFIX = "-[a-z0-9]+-[a-z0-9]+"
_RE2_META = frozenset("\\.+*?()|[]{}^$")
# Scaling steps mirror the builtin decision: at most x2 up and /2 down per 15 s HPA sync.
_SYNC_S = 15
# Threshold of the in-flight trigger: so high that ceil(in flight / threshold) is 1 for any real
# load, i.e. the trigger only decides active (≥ 1 replica) or not.
IN_FLIGHT_ACTIVATION_ONLY = 1_000_000


class ReplicasOwner(StrEnum):
    SPEC = "Spec"  # the rendered workload carries spec.replicas
    OPERATOR = "Operator"  # builtin: the operator, through the scale subresource
    HPA = "HorizontalPodAutoscaler"
    KEDA = "KEDA"


def replicas_owner(md: ModelDeployment) -> ReplicasOwner:
    scaling = md.spec.autoscaling
    if scaling is None:
        return ReplicasOwner.SPEC
    return {
        AutoscalingMode.BUILTIN: ReplicasOwner.OPERATOR,
        AutoscalingMode.HPA: ReplicasOwner.HPA,
        AutoscalingMode.KEDA: ReplicasOwner.KEDA,
    }[scaling.mode]


def replicas_handover(
    md: ModelDeployment, live: Mapping[str, Any] | None, field_manager: str = "modeldeploy"
) -> dict[str, Any] | None:
    """The apply the shell makes with `REPLICAS_FIELD_MANAGER` before applying a workload that
    omits `spec.replicas`, or None when none is needed.

    Needed when the ModelDeployment is autoscaled and `field_manager` (the shell's main apply)
    still owns the live workload's `spec.replicas` by Apply: dropping the field from that apply
    would reset it to 1 (Kubernetes "transferring ownership"). The returned object restates the
    live count, so a second manager co-owns it and the value survives. Once the main apply has
    dropped the field this returns None again.
    """
    if md.spec.autoscaling is None or not isinstance(live, Mapping):
        return None
    meta = live.get("metadata")
    spec = live.get("spec")
    if not isinstance(meta, Mapping) or not isinstance(spec, Mapping):
        return None
    count = spec.get("replicas")
    if not isinstance(count, int) or isinstance(count, bool):
        return None
    owned = False
    for entry in meta.get("managedFields") or []:
        if not isinstance(entry, Mapping):
            continue
        fields = entry.get("fieldsV1")
        fspec = fields.get("f:spec") if isinstance(fields, Mapping) else None
        if (entry.get("manager") == field_manager and entry.get("operation") == "Apply"
                and isinstance(fspec, Mapping) and "f:replicas" in fspec):
            owned = True
    if not owned:
        return None
    target: dict[str, Any] = {"name": meta.get("name")}
    if meta.get("namespace") is not None:
        target["namespace"] = meta.get("namespace")
    return {"apiVersion": live.get("apiVersion"), "kind": live.get("kind"), "metadata": target,
            "spec": {"replicas": count}}


# --- PromQL -----------------------------------------------------------------------------------


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal whose value is exactly `value` (ASCII only).

    Prometheus' lexer takes Go escapes: backslash, quote and the usual control letters by name,
    every other non-printable or non-ASCII character as \\uXXXX / \\UXXXXXXXX. A surrogate is
    not a Unicode scalar value and cannot be written at all.
    """
    named = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in named:
            out.append(named[ch])
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif 0xD800 <= code < 0xE000:
            raise InvalidSpec(f"{value[:80]!r} cannot be written in a PromQL string")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def re2_quote(value: str) -> str:
    """`value` as a literal inside an RE2 regular expression (Prometheus' `=~`)."""
    return "".join("\\" + ch if ch in _RE2_META else ch for ch in value)


def _selector(md: ModelDeployment) -> str:
    namespace = md.metadata.namespace
    if namespace is None:
        raise InvalidSpec(
            "autoscaling.mode keda needs metadata.namespace: the Prometheus query must select "
            "this namespace's pods"
        )
    pods = re2_quote(md.metadata.name) + _POD_SUFFIX
    return f"namespace={promql_string(namespace)},pod=~{promql_string(pods)}"


def in_flight_query(md: ModelDeployment) -> str:
    """Requests running plus waiting over the workload's serving pods: what idleness means.

    vLLM exports both gauges from start to finish (vllm/v1/metrics/loggers.py), so the sum
    exists whenever a replica serves; with no replica there is no series at all (KEDA's
    Prometheus scaler reads an empty result as 0, `ignoreNullValues` default true).
    """
    sel = _selector(md)
    return f"sum({RUNNING}{{{sel}}}) + sum({WAITING}{{{sel}}})"


def keda_query(md: ModelDeployment, scaling: Autoscaling, wake: str | None = None) -> str:
    """The trigger's PromQL: the metric summed over the workload's serving pods (one series).

    KEDA's AverageValue divides it by the threshold, which gives the HPA's per-pod average.
    KV usage: per pod the fullest engine (`max by (pod)`), the current name winning over the
    old one (`or` keeps the left side where both exist). `wake` (`RenderOptions.keda_wake_query`)
    is or-ed in when scaling to zero: with no pod left, vLLM exports nothing.
    """
    sel = _selector(md)
    if scaling.metric == AutoscalingMetric.KV_CACHE_USAGE:
        query = f"sum(max by (pod) ({KV_USAGE}{{{sel}}}) or max by (pod) ({KV_USAGE_OLD}{{{sel}}}))"
    else:
        name = WAITING if scaling.metric == AutoscalingMetric.REQUESTS_WAITING else RUNNING
        query = f"sum({name}{{{sel}}})"
    if wake is not None and scaling.scale_to_zero:
        namespace = promql_string(md.metadata.namespace or "")[1:-1]
        service = promql_string(md.metadata.name)[1:-1]
        query += " or sum(" + wake.replace("$namespace", namespace).replace("$service", service) + ")"
    return query


# --- numbers ----------------------------------------------------------------------------------


def format_quantity(value: float) -> str:
    """A positive number as a canonical Kubernetes quantity: 5 -> "5", 0.8 -> "800m", 2000 -> "2k"."""
    exact = Decimal(repr(float(value)))
    for suffix, scale in (("", 1), ("m", 10**3), ("u", 10**6), ("n", 10**9)):
        scaled = exact * scale
        if scaled == scaled.to_integral_value():
            number = int(scaled)
            if suffix == "":
                for bigger in ("k", "M", "G", "T", "P", "E"):
                    if number % 1000:
                        break
                    number, suffix = number // 1000, bigger
            return f"{number}{suffix}"
    return f"{math.ceil(exact * 10**9)}n"


def decimal_text(value: float) -> str:
    """A number as plain decimal text (KEDA parses thresholds as strings): 5 -> "5", 0.8 -> "0.8"."""
    return format(Decimal(repr(float(value))).normalize(), "f")


# --- objects ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    api_version: str
    kind: str
    name: str


def autoscaling_target(ctx: Context) -> Target:
    if ctx.multi_node:
        return Target("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", ctx.names.leader_worker_set)
    return Target("apps/v1", "Deployment", ctx.names.deployment)


def _adapter_metric(ctx: Context, metric: AutoscalingMetric) -> str:
    names = ctx.options.adapter_metrics
    return {
        AutoscalingMetric.REQUESTS_WAITING: names.requests_waiting,
        AutoscalingMetric.REQUESTS_RUNNING: names.requests_running,
        AutoscalingMetric.KV_CACHE_USAGE: names.kv_cache_usage,
    }[metric]


def autoscaler_object(ctx: Context) -> dict[str, Any] | None:
    """The HorizontalPodAutoscaler (mode hpa) or ScaledObject (mode keda); None otherwise.

    The target is the plan's (status.plan.autoscalingTarget: spec, predicted capacity or default).
    """
    scaling = effective_autoscaling(ctx.md, ctx.plan.autoscaling_target)
    if scaling is None or scaling.mode == AutoscalingMode.BUILTIN:
        return None
    target = target_or_default(scaling)
    windows = {"scale_up_window": scaling.scale_up_stabilization_seconds,
               "scale_down_window": scaling.scale_down_stabilization_seconds, "period": _SYNC_S}
    if scaling.mode == AutoscalingMode.HPA:
        return render_object(
            "horizontalpodautoscaler.yaml.j2", meta=ctx.meta(ctx.names.horizontal_pod_autoscaler),
            target=autoscaling_target(ctx), min_replicas=max(scaling.min_replicas, 1),
            max_replicas=scaling.max_replicas, metric=_adapter_metric(ctx, scaling.metric),
            average_value=format_quantity(target), **windows,
        )
    to_zero = scaling.scale_to_zero
    opts = ctx.options
    return render_object(
        "scaledobject.yaml.j2", meta=ctx.meta(ctx.names.scaled_object), target=autoscaling_target(ctx),
        polling_interval=opts.keda_polling_interval_seconds,
        # Scale to zero only after idleSeconds without demand, and never while the first replica
        # of a new ScaledObject may still be pulling, scheduling or loading the model.
        cooldown=scaling.idle_seconds,
        initial_cooldown=ctx.sizing.startup_seconds + START_SLACK_SECONDS if to_zero else None,
        min_replicas=scaling.min_replicas if to_zero else max(scaling.min_replicas, 1),
        idle_replicas=0 if to_zero and scaling.min_replicas > 0 else None,
        max_replicas=scaling.max_replicas, triggers=keda_triggers(ctx, scaling), **windows,
    )


def _prometheus(name: str, server: str, query: str, threshold: str) -> dict[str, Any]:
    return {"type": "prometheus", "name": name, "metricType": "AverageValue",
            "metadata": {"serverAddress": server, "query": query, "threshold": threshold,
                         "activationThreshold": "0"}}


def keda_triggers(ctx: Context, scaling: Autoscaling) -> list[dict[str, Any]]:
    """The ScaledObject's triggers.

    `vllm`: the spec's metric per replica (scales between 1 and maxReplicas). With scaleToZero
    KEDA deactivates (goes to 0) only when *every* trigger is inactive, so two more keep a
    serving model awake and wake a sleeping one: `in-flight` (running + waiting in vLLM; its
    threshold is out of reach, so it never asks for more than one replica) and `interceptor`
    (the KEDA HTTP add-on's count of requests held or in flight for this model). The queue alone
    (`requestsWaiting`) is 0 while a model serves light traffic, which used to scale it away.
    """
    opts = ctx.options
    triggers = [_prometheus("vllm", opts.prometheus_address,
                            keda_query(ctx.md, scaling, opts.keda_wake_query),
                            decimal_text(target_or_default(scaling)))]
    if scaling.scale_to_zero:
        triggers.append(_prometheus("in-flight", opts.prometheus_address,
                                    in_flight_query(ctx.md), str(IN_FLIGHT_ACTIVATION_ONLY)))
        triggers.append(external_push_trigger(ctx))
    return triggers

