"""The planner's output: a chosen layout, its memory arithmetic, and why."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..api.status import AutoscalingTarget, Performance
from .memory import GIB

GIB_DECIMALS = 2  # every memory size a plan shows, in JSON, the table and the reason


def gib(n_bytes: float) -> float:
    """Bytes → GiB rounded to GIB_DECIMALS: the one rounding of a memory size. JSON carries
    this value, the table and the reason print it with the same decimals, so the three never
    disagree (rounding 28.546 to 28.55 and then to 28.6 would contradict a reason's 28.5)."""
    return round(n_bytes / GIB, GIB_DECIMALS)


def gib_text(n_bytes: float) -> str:
    """`gib(n_bytes)` as text, every decimal kept (28.50, never 28.5)."""
    return f"{gib(n_bytes):.{GIB_DECIMALS}f}"


def show_gib(value: float) -> str:
    """A GiB value already rounded by `gib` (a plan's memoryPerGPU), as the reason prints it."""
    return f"{value:.{GIB_DECIMALS}f}"


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    def wire(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, mode="json")


class MemoryPerGPU(_Out):
    """Per-GPU memory of the most loaded GPU of a replica, in GiB."""

    weights_gib: float = Field(alias="weightsGiB")
    kv_cache_gib: float = Field(alias="kvCacheGiB", description="KV cache the layout leaves (budget - weights - overhead)")
    kv_required_gib: float = Field(alias="kvRequiredGiB", description="KV cache maxModelLen x maxNumSeqs needs")
    overhead_gib: float = Field(alias="overheadGiB", description="activations + non-torch (+ CUDA graphs where vLLM counts them in the budget)")
    activation_gib: float = Field(default=0.0, alias="activationGiB", description="peak of vLLM's profiling step (forward pass or sampler, plus the multimodal encoder cache; or the vision tower's pass)")
    non_torch_gib: float = Field(default=0.0, alias="nonTorchGiB", description="non-torch memory vLLM's profiler counts (NCCL, cuBLAS)")
    cuda_graph_gib: float = Field(default=0.0, alias="cudaGraphGiB", description="CUDA graphs inside the budget (vLLM >= 0.21), else 0")
    outside_budget_gib: float = Field(default=0.0, alias="outsideBudgetGiB", description="what must fit in GPU memory x (1 - utilization): CUDA context, NCCL, older CUDA graphs")
    budget_gib: float = Field(alias="budgetGiB", description="GPU memory x gpuMemoryUtilization")


class Rejection(_Out):
    pool: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    reason: str


class Plan(_Out):
    name: str
    namespace: str | None = None
    model: str
    feasible: bool
    failure: str | None = Field(
        default=None,
        description="When not feasible: NoFeasibleLayout, PoolNotFound, MultiNodeUnavailable, or (CLI) "
                    "InvalidSpec / ModelUnresolved / ModelFactsUnavailable with `error`")
    pool: str | None = None
    gpu_product: str | None = None
    gpu_memory_gib: float | None = Field(default=None, alias="gpuMemoryGiB")
    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    gpus_per_replica: int | None = None
    nodes_per_replica: int | None = None
    gpus_per_pod: int | None = None
    replicas: int = 1
    max_model_len: int | None = Field(default=None, description="None only when the spec could not be planned (see error)")
    max_num_seqs: int | None = Field(default=None, description="Passed as --max-num-seqs (user-set only)")
    kv_sequences: int | None = Field(default=None, description="Full-length sequences the KV cache is sized to hold")
    max_num_batched_tokens: int | None = None
    kv_cache_tokens: int | None = None
    kv_cache_dtype: str = "auto"
    quantization: str | None = Field(default=None, description=(
        "The weight quantization the plan sized: the checkpoint's own method from its quantization_config "
        "(gptq, awq, fp8, compressed-tensors, bitsandbytes, mxfp4, nvfp4, ...), fp8 when vLLM quantizes a "
        "16-bit checkpoint at load, none for 16-bit weights; None only when the spec could not be planned"))
    online_quantization: bool = Field(default=False, description=(
        "vLLM quantizes the 16-bit checkpoint at load (spec.model.quantization): the plan passes "
        "--quantization; a pre-quantized checkpoint's method vLLM reads from its config"))
    dtype: str | None = Field(default=None, description=(
        "The activation dtype the plan sized and vLLM resolves: spec.model.dtype when set, else the "
        "checkpoint's torch_dtype (bfloat16, float16 for most AWQ/GPTQ builds; float32 checkpoints run "
        "bfloat16), as vllm/config/model.py _resolve_auto_dtype does; None only when the spec could not be planned"))
    requested_dtype: str = Field(default="auto", description=(
        "spec.model.dtype as asked, the value passed as --dtype (auto leaves the choice to vLLM, which "
        "picks `dtype`)"))
    expert_parallel: bool = False
    memory_per_gpu: MemoryPerGPU | None = Field(default=None, alias="memoryPerGPU")
    checkpoint_gib: float | None = Field(default=None, alias="checkpointGiB", description="The checkpoint as stored on disk (safetensors bytes, MTP layers and 16-bit weights included; estimated without counts): the model cache holds it")
    cost_per_hour: float | None = None
    decode_tokens_per_second: float | None = Field(default=None, description="Single-stream decode tokens/s: 1000 / TPOT of the performance model at one request in flight (the workload's request shape, else 1024 in and out); absent when the GPU has no specs")
    vllm_version: str | None = Field(default=None, description="vLLM release the memory was sized for (from serving.image)")
    performance: Performance | None = Field(default=None, description="Predicted latency, throughput and cost at spec.serving.workload")
    replicas_for_workload: int | None = Field(default=None, description="Replicas the workload needs to meet the SLO (without one: to run without queueing)")
    autoscaling_target: AutoscalingTarget | None = Field(default=None, description="The autoscaling target per replica and its source (spec, predictedCapacity, default)")
    performance_note: str | None = Field(default=None, description="Why performance is absent, or how far the SLO is missed")
    policy: str = "cheapest"
    multi_node: str = Field(default="whenNeeded", description="spec.placement.multiNode as applied")
    reason: str
    error: str | None = Field(
        default=None, description="Why the ModelDeployment could not be planned at all (bad pin, unknown model, hub down)")
    file: str | None = Field(default=None, description="The file the ModelDeployment was read from (CLI)")
    rejected: list[Rejection] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="How the sizing was done where it is not exact")
    parameters_source: str | None = Field(
        default=None, description="Where the weight sizing came from: exact (safetensors metadata, with origin and commit) or estimated")


def unplanned(name: str, namespace: str | None, model: str, failure: str, error: str) -> Plan:
    """The row of a ModelDeployment that could not be planned: feasible false, with the error.

    failure: InvalidSpec (a pin breaking a rule of the model), ModelUnresolved (nothing knows
    the model) or ModelFactsUnavailable (the hub could not be asked).
    """
    return Plan(name=name, namespace=namespace, model=model, feasible=False, failure=failure,
                reason=error, error=error)
