"""Status of ModelDeployment and GPUPool, written by the operator (status subresource).

kstatus polarity: conditions Ready, Reconciling, Stalled. No phase. Status is recomputed from
observed children every pass; nothing here is read back as memory.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from .base import ApiModel


class ConditionType(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    CACHE_READY = "CacheReady"  # spec.cache.mode shared: the shared claim holds the model


class CachePhase(StrEnum):
    PENDING = "Pending"  # claim not bound or download not started
    DOWNLOADING = "Downloading"
    COMPLETE = "Complete"
    FAILED = "Failed"


class Condition(ApiModel):
    type: str = Field(max_length=316, description="Condition type: Ready, Reconciling or Stalled.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", description="CamelCase reason.")
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    observed_generation: int | None = Field(default=None, ge=0, description="Generation this condition was computed for.")
    last_transition_time: str | None = Field(default=None, description="When status last changed (RFC 3339).")


class Performance(ApiModel):
    """One replica at its share of spec.serving.workload (modeldeploy.perf; docs/PERFORMANCE.md)."""

    ttft_ms: float = Field(description="Mean time to first token, ms")
    tpot_ms: float = Field(description="Mean time per output token after the first, ms")
    output_tokens_per_second: float = Field(description="Output tokens/s of one replica (Little's law on TTFT, TPOT and concurrency)")
    requests_per_second: float = Field(description="Requests/s one replica completes")
    concurrency: float = Field(description="Requests in flight on one replica")
    max_concurrency: int = Field(description="Requests of the workload's length the KV cache holds at once; beyond it requests wait")
    replicas: int = Field(description="Replicas sharing the workload in this prediction")
    cost_per_million_output_tokens: float | None = Field(default=None, description="GPUs × $/GPU-hour / (output tokens/s × 3600) × 10^6")
    cost_per_million_tokens: float | None = Field(default=None, description="Same per input + output token")
    capacity_concurrency: int | None = Field(default=None, description="Most requests in flight one replica serves within the SLO (without one: without waiting for a KV slot); 0 when not even one request in flight meets it")
    capacity_output_tokens_per_second: float | None = Field(default=None, description="Output tokens/s of one replica at that capacity")
    capacity_cost_per_million_tokens: float | None = Field(default=None, description="Cost per million input + output tokens at that capacity (full load); absent at capacity 0")
    meets_slo: bool = Field(alias="meetsSLO", description="spec.serving.slo holds (without one: no request waits for a KV slot)")


class AutoscalingTarget(ApiModel):
    """The per-replica target the autoscaler uses, and its source."""

    metric: str = Field(description="vLLM metric scaled on.")
    value: float = Field(description="Target per replica.")
    source: str = Field(description="spec (autoscaling.target), predictedCapacity (from the workload's predicted capacity) or default.")


class PlanStatus(ApiModel):
    pool: str | None = Field(default=None, description="Chosen GPUPool.")
    gpu_product: str | None = Field(default=None, alias="gpuProduct", description="GPU product of the pool.")
    tensor_parallel_size: int | None = Field(default=None, description="Tensor-parallel size.")
    pipeline_parallel_size: int | None = Field(default=None, description="Pipeline-parallel size.")
    gpus_per_replica: int | None = Field(default=None, description="GPUs per replica.")
    nodes_per_replica: int | None = Field(default=None, description="Nodes per replica.")
    memory_per_gpu_gi_b: float | None = Field(default=None, alias="memoryPerGPUGiB", description="Planned use per GPU (weights + KV + overhead), GiB.")
    weights_gi_b: float | None = Field(default=None, alias="weightsGiB", description="Weights per GPU, GiB.")
    kv_cache_gi_b: float | None = Field(default=None, alias="kvCacheGiB", description="KV cache per GPU, GiB.")
    kv_cache_tokens: int | None = Field(default=None, description="Tokens the KV cache holds per replica.")
    max_model_len: int | None = Field(default=None, description="Max model length served.")
    cost_per_hour: float | None = Field(default=None, description="Indicative cost per replica-hour (USD).")
    performance: Performance | None = Field(default=None, description="Predicted latency, throughput and cost of one replica at its share of spec.serving.workload.")
    replicas_for_workload: int | None = Field(default=None, description="Replicas spec.serving.workload needs to meet spec.serving.slo.")
    autoscaling_target: AutoscalingTarget | None = Field(default=None, description="The autoscaling target per replica and where it comes from.")
    reason: str = Field(default="", max_length=4096, description="Why this layout (or why none).")


class RolloutStatus(ApiModel):
    current_revision: str | None = Field(default=None, description="Pod-template hash serving now.")
    updated_revision: str | None = Field(default=None, description="Pod-template hash being rolled out.")
    strategy: str | None = Field(default=None, description="Surge, OneAtATime or InPlace.")
    progress: str | None = Field(default=None, description="Updated/desired replicas, e.g. 2/3.")
    reason: str | None = Field(default=None, description="Why the rollout is stuck, if it is.")
    message: str | None = Field(default=None, description="Detail for reason.")


class ScalingDecision(ApiModel):
    time: str | None = Field(default=None, description="When (RFC 3339).")
    from_replicas: int | None = Field(default=None, alias="from", description="Replicas before.")
    to_replicas: int | None = Field(default=None, alias="to", description="Replicas after.")
    reason: str | None = Field(default=None, description="Why.")


class AutoscalingStatus(ApiModel):
    metric: str | None = Field(default=None, description="Metric scaled on.")
    value: float | None = Field(default=None, description="Metric value seen (per replica average).")
    desired_replicas: int | None = Field(default=None, description="Replicas the autoscaler wants.")
    current_replicas: int | None = Field(default=None, description="Replicas now.")
    reason: str | None = Field(default=None, description="Why the autoscaler wants desiredReplicas now (e.g. WithinTolerance, MetricsUnavailable, CapacityLimited).")
    message: str | None = Field(default=None, max_length=4096, description="Detail for reason: the metric seen, or the pods that could not be read.")
    last_decision: ScalingDecision | None = Field(default=None, description="The last scaling decision.")


class CacheStatus(ApiModel):
    phase: CachePhase | None = Field(default=None, description="Pending, Downloading, Complete or Failed.")
    claim: str | None = Field(default=None, description="The shared PersistentVolumeClaim (spec.cache.mode shared).")
    bytes_done: int | None = Field(default=None, ge=0, description="Bytes of the model downloaded into the claim.")
    bytes_total: int | None = Field(default=None, ge=0, description="Bytes of the files being downloaded (config, tokenizer, safetensors).")
    reason: str | None = Field(default=None, description="Why the cache is not Complete (DownloadFailed, DownloadStalled, GatedModel, StorageUnavailable, CacheConflict).")
    message: str | None = Field(default=None, max_length=4096, description="Detail for reason.")


class ModelDeploymentStatus(ApiModel):
    observed_generation: int | None = Field(default=None, description="Generation of the spec last reconciled.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Reconciling, Stalled.")
    plan: PlanStatus | None = Field(default=None, description="The planner's summary.")
    replicas: int | None = Field(default=None, description="Replicas that exist.")
    ready_replicas: int | None = Field(default=None, description="Replicas serving.")
    updated_replicas: int | None = Field(default=None, description="Replicas on the latest revision.")
    selector: str | None = Field(default=None, description="Label selector of the serving pods (scale subresource).")
    endpoint: str | None = Field(default=None, description="In-cluster URL of the OpenAI-compatible API.")
    rollout: RolloutStatus | None = Field(default=None, description="Rollout progress.")
    autoscaling: AutoscalingStatus | None = Field(default=None, description="Autoscaler state.")
    cache: CacheStatus | None = Field(default=None, description="The shared model cache (spec.cache.mode shared).")


class GPUPoolStatus(ApiModel):
    observed_generation: int | None = Field(default=None, description="Generation of the spec last observed.")
    nodes: int = Field(default=0, ge=0, description="Nodes matching the nodeSelector.")
    allocatable_gp_us: int = Field(default=0, alias="allocatableGPUs", ge=0, description="Sum of allocatable nvidia.com/gpu.")
    requested_gp_us: int = Field(default=0, alias="requestedGPUs", ge=0, description="Sum of GPU requests of pods on those nodes.")
    free_gp_us: int = Field(default=0, alias="freeGPUs", description="allocatable - requested.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready when nodes match.")
