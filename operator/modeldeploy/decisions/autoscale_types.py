"""The autoscaling decision's inputs, memory and output (`decisions.autoscale`). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .metrics import Scrape


class ScalingReason(StrEnum):
    SCALED_UP = "ScaledUp"
    SCALED_DOWN = "ScaledDown"
    WITHIN_TOLERANCE = "WithinTolerance"
    SCALE_UP_STABILIZED = "ScaleUpStabilized"
    SCALE_DOWN_STABILIZED = "ScaleDownStabilized"
    SCALE_UP_LIMITED = "ScaleUpLimited"
    SCALE_DOWN_LIMITED = "ScaleDownLimited"
    MAX_REPLICAS_LIMITED = "MaxReplicasLimited"
    MIN_REPLICAS_LIMITED = "MinReplicasLimited"
    CAPACITY_LIMITED = "CapacityLimited"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    SCALED_TO_ZERO = "ScaledToZero"
    SCALED_FROM_ZERO = "ScaledFromZero"
    IDLE = "Idle"
    EXTERNAL_AUTOSCALER = "ExternalAutoscaler"
    CONCURRENCY_FLOOR = "ConcurrencyFloor"
    LOADING_REPLICAS = "LoadingReplicas"


@dataclass(frozen=True, slots=True)
class ScalingObservation:
    """What the shell saw this pass.

    current_replicas: the child's replicas (scale subresource `spec.replicas`).
    scrapes: one entry per *ready* vLLM pod (loading pods are not scraped).
    gateway_waiting: requests queued in front of the Service, when something (a gateway, an
    activator) reports it.
    interceptor_in_flight: the KEDA HTTP add-on interceptor's count for this model (requests it
    holds or is forwarding; autoscaling.scaleToZero), None when not read. It overlaps vLLM's
    own running + waiting (a forwarded request is in both), so in-flight demand is the larger
    of the two, never their sum. At zero replicas it is the demand signal.
    loading_replicas: replicas (pods, or LeaderWorkerSet groups) alive but not yet Ready.
    """

    current_replicas: int
    scrapes: tuple[Scrape, ...] = ()
    gateway_waiting: int | None = None
    interceptor_in_flight: int | None = None
    loading_replicas: int = 0


@dataclass(frozen=True, slots=True)
class ScalingEvent:
    time: float
    from_replicas: int
    to_replicas: int
    reason: ScalingReason


@dataclass(frozen=True, slots=True)
class ScalingHistory:
    """Memory the decision needs, owned by the caller (in-process, not in `status`)."""

    recommendations: tuple[tuple[float, int], ...] = ()
    last_active: float | None = None  # last time a request ran or waited (or metrics were unknown)
    last_change: ScalingEvent | None = None
    since: float | None = None  # first decision of this history (process start)
    # Requests one replica runs at once, measured when replicas had requests waiting.
    concurrency: float | None = None
    concurrency_seen_at: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    desired_replicas: int
    current_replicas: int
    reason: ScalingReason
    message: str
    metric_value: float | None  # per-ready-replica average of the metric; None when unknown
    recommendation: int | None  # metric + concurrency floor, before bounds and stabilization
    history: ScalingHistory

    @property
    def changed(self) -> bool:
        return self.desired_replicas != self.current_replicas
