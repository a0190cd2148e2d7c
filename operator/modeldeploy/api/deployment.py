"""The ModelDeployment API (`modeldeploy.dev/v1alpha1`, namespaced).

These models are the single source of truth: the CRD schema is generated from them, the CLI
and the operator parse user input with them. Every field carries a description and bounds.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import DNS_LABEL, DNS_SUBDOMAIN, ApiModel
from .metadata import ObjectMeta
from .workload import Slo, Workload

# A Hugging Face repo id ("org/name") or a bare catalog id. No spaces, no "..", no URL.
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$"
REVISION = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$"
IMAGE = r"^[a-z0-9]+([._/:@-][A-Za-z0-9_.-]+)*$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"

MAX_NAME = 52  # a ModelDeployment's name, leaving room for the suffixes of its objects

DEFAULT_IMAGE = "vllm/vllm-openai:v0.30.0"  # docs/decisions/default-vllm-image.md
# Ten minutes without a downloaded byte or a new vLLM startup line. Between two of vLLM's
# startup lines little time passes (CUDA graph capture "usually takes 5~20 seconds",
# vllm/v1/worker/gpu_model_runner.py; torch.compile logs each compiled graph,
# vllm/compilation/backends.py); the one long silent phase, reading the weights, gets its own
# allowance from the checkpoint size (decisions/startup.py).
DEFAULT_STALL_SECONDS = 600


class Quantization(StrEnum):
    NONE = "none"
    FP8 = "fp8"
    AWQ = "awq"
    GPTQ = "gptq"


class QuantizationMethod(StrEnum):
    """Pre-quantized checkpoint formats the planner sizes (spec.model.architecture.quantization)."""

    FP8 = "fp8"
    AWQ = "awq"
    GPTQ = "gptq"
    COMPRESSED_TENSORS = "compressed-tensors"
    BITSANDBYTES = "bitsandbytes"
    MXFP4 = "mxfp4"
    NVFP4 = "nvfp4"


# Largest config.json accepted inline (bytes of its JSON form). The biggest published configs
# (multimodal models with per-layer lists) stay under 16 KiB; etcd objects are capped at 1.5 MiB.
HF_CONFIG_MAX_BYTES = 65536
HF_CONFIG_MAX_KEYS = 512


class Dtype(StrEnum):
    AUTO = "auto"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FLOAT32 = "float32"


class KvCacheDtype(StrEnum):
    AUTO = "auto"
    FP8 = "fp8"


class Policy(StrEnum):
    CHEAPEST = "cheapest"
    FEWEST_GPUS = "fewestGPUs"
    FASTEST = "fastest"


class MultiNode(StrEnum):
    """When a replica may span several nodes (a LeaderWorkerSet running vLLM over Ray)."""

    WHEN_NEEDED = "whenNeeded"  # only when no single node of any allowed pool holds the model
    ALLOWED = "allowed"  # the policy may choose across nodes even when one node would do
    NEVER = "never"  # one node per replica, or infeasible


class AutoscalingMetric(StrEnum):
    REQUESTS_WAITING = "requestsWaiting"
    REQUESTS_RUNNING = "requestsRunning"
    KV_CACHE_USAGE = "kvCacheUsage"


class AutoscalingMode(StrEnum):
    BUILTIN = "builtin"
    HPA = "hpa"
    KEDA = "keda"


class CacheMode(StrEnum):
    EMPTY_DIR = "emptyDir"
    PVC = "pvc"
    SHARED = "shared"


class ArchitectureQuantization(ApiModel):
    """How a hand-described checkpoint is quantized (what its quantization_config would say)."""

    method: QuantizationMethod = Field(description="Checkpoint format: fp8, awq, gptq, compressed-tensors, bitsandbytes, mxfp4 or nvfp4.")
    bits: int | None = Field(default=None, ge=2, le=8, description="Bits per quantized weight; default: the method's usual width (4, or 8 for fp8).")
    group_size: int | None = Field(default=None, ge=-1, le=4096, description="Weights sharing one scale along the input dimension; -1 per channel. Default 128 for AWQ/GPTQ.")


class Architecture(ApiModel):
    """Model facts for a model that is neither in the catalog nor reachable on the hub."""

    parameters: int = Field(ge=1_000_000, le=10**13, description="Total parameter count (all experts for MoE).")
    layers: int = Field(ge=1, le=1024, description="Number of transformer layers (num_hidden_layers).")
    hidden_size: int = Field(ge=64, le=131072, description="Hidden size (d_model).")
    attention_heads: int = Field(ge=1, le=1024, description="Number of attention (query) heads.")
    kv_heads: int | None = Field(default=None, ge=1, le=1024, description="Number of key/value heads (GQA); defaults to attentionHeads.")
    head_dim: int | None = Field(default=None, ge=8, le=1024, description="Dimension of one attention head; defaults to hiddenSize / attentionHeads.")
    intermediate_size: int | None = Field(default=None, ge=1, le=1_000_000, description="Dense MLP width; used for the activation estimate.")
    vocab_size: int | None = Field(default=None, ge=1, le=4_000_000, description="Vocabulary size.")
    max_context: int | None = Field(default=None, ge=128, le=100_000_000, description="Longest context the model supports (max_position_embeddings).")
    experts: int | None = Field(default=None, ge=1, le=4096, description="MoE: routed experts per MoE layer.")
    experts_per_token: int | None = Field(default=None, ge=1, le=64, description="MoE: experts activated per token.")
    moe_intermediate_size: int | None = Field(default=None, ge=1, le=1_000_000, description="MoE: width of one expert's MLP.")
    kv_lora_rank: int | None = Field(default=None, ge=1, le=65536, description="MLA: compressed KV latent rank (DeepSeek kv_lora_rank).")
    qk_rope_head_dim: int | None = Field(default=None, ge=0, le=4096, description="MLA: rotary part of the key head (DeepSeek qk_rope_head_dim).")
    supports_pipeline_parallel: bool = Field(default=True, description="Whether vLLM's model class for this architecture supports pipeline parallelism (multi-node layouts need it).")
    quantization: ArchitectureQuantization | None = Field(default=None, description="Pre-quantized checkpoint: method, bits and group size. Unset: 16-bit weights.")

    @model_validator(mode="after")
    def _consistent(self) -> Architecture:
        kv = self.kv_heads or self.attention_heads
        if kv > self.attention_heads:
            raise ValueError("kvHeads cannot exceed attentionHeads")
        if self.attention_heads % kv:
            raise ValueError("attentionHeads must be a multiple of kvHeads")
        if (self.kv_lora_rank is None) != (self.qk_rope_head_dim is None):
            raise ValueError("kvLoraRank and qkRopeHeadDim go together (MLA)")
        if self.experts_per_token and not self.experts:
            raise ValueError("expertsPerToken needs experts")
        if self.experts and self.experts_per_token and self.experts_per_token > self.experts:
            raise ValueError("expertsPerToken cannot exceed experts")
        return self


class ModelSource(ApiModel):
    name: str = Field(max_length=193, pattern=MODEL_NAME, description="Hugging Face repo id (org/name) or a catalog id.")
    revision: str | None = Field(default=None, max_length=128, pattern=REVISION, description="Hub revision (branch, tag or commit) to serve.")
    quantization: Quantization | None = Field(default=None, description="Weight quantization; default: the checkpoint's own.")
    dtype: Dtype = Field(default=Dtype.AUTO, description="Activation/weight dtype passed to vLLM (--dtype).")
    architecture: Architecture | None = Field(default=None, description="Explicit model facts; override the catalog and the hub.")
    hf_config: dict[str, Any] | None = Field(default=None, description="The checkpoint's config.json, verbatim, for private, air-gapped or unpublished checkpoints; parsed exactly as a config.json read from the hub. Overrides the catalog and the hub.")
    checkpoint_bytes: int | None = Field(default=None, ge=1, le=10**14, description="Total size of the checkpoint's safetensors tensors in bytes (the index's metadata.total_size); makes the weight size exact. Only with hfConfig.")

    @field_validator("hf_config")
    @classmethod
    def _config_size(cls, config: dict[str, Any] | None) -> dict[str, Any] | None:
        import json

        if config is None:
            return None
        if len(config) > HF_CONFIG_MAX_KEYS:
            raise ValueError(f"at most {HF_CONFIG_MAX_KEYS} top-level keys")
        size = len(json.dumps(config, separators=(",", ":")))
        if size > HF_CONFIG_MAX_BYTES:
            raise ValueError(f"{size} bytes as JSON; at most {HF_CONFIG_MAX_BYTES}")
        return config

    @model_validator(mode="after")
    def _one_description(self) -> ModelSource:
        if self.hf_config is not None and self.architecture is not None:
            raise ValueError("give hfConfig or architecture, not both")
        if self.checkpoint_bytes is not None and self.hf_config is None:
            raise ValueError("checkpointBytes needs hfConfig")
        return self


class EnvVar(ApiModel):
    name: str = Field(max_length=128, pattern=ENV_NAME, description="Environment variable name.")
    value: str = Field(default="", max_length=32768, description="Literal value (use credentials for secrets).")


class Serving(ApiModel):
    max_model_len: int | None = Field(default=None, ge=128, le=100_000_000, description="Longest sequence (prompt + output) to serve; default min(model maximum, 8192).")
    max_num_seqs: int | None = Field(default=None, ge=1, le=4096, description="vLLM's cap on sequences served at once (--max-num-seqs); it never reserves KV for more than 2 full-length sequences (1 when set to 1). Default: vLLM's own.")
    max_num_batched_tokens: int | None = Field(default=None, ge=128, le=1_048_576, description="Tokens per scheduler step (--max-num-batched-tokens); default 8192 on GPUs with 70 GiB or more, else 2048.")
    kv_cache_dtype: KvCacheDtype = Field(default=KvCacheDtype.AUTO, description="KV cache dtype (--kv-cache-dtype); fp8 halves KV memory.")
    gpu_memory_utilization: float = Field(default=0.9, ge=0.5, le=0.98, description="Fraction of each GPU's total memory vLLM may use.")
    image: str = Field(default=DEFAULT_IMAGE, max_length=512, pattern=IMAGE, description="vLLM OpenAI server image.")
    extra_args: list[str] = Field(default_factory=list, max_length=64, description="Extra vLLM arguments, one argv element each; must not contradict the plan.")
    env: list[EnvVar] = Field(default_factory=list, max_length=64, description="Extra environment variables for the vLLM container.")
    workload: Workload | None = Field(default=None, description="The load to size for: the KV cache holds it, the planner picks the replica count and predicts latency and cost.")
    slo: Slo | None = Field(default=None, description="Latency targets at the workload; cheapest then means cheapest that meets them.")

    @field_validator("extra_args")
    @classmethod
    def _arg_length(cls, args: list[str]) -> list[str]:
        for arg in args:
            if len(arg) > 16384:
                raise ValueError("each extraArgs element must be at most 16384 characters")
        return args

    @field_validator("env")
    @classmethod
    def _unique_env(cls, env: list[EnvVar]) -> list[EnvVar]:
        names = [e.name for e in env]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate env names: {', '.join(dupes)}")
        return env


class Placement(ApiModel):
    pools: list[str] = Field(default_factory=list, max_length=32, description="Allow-list of GPUPool names; empty means every pool.")
    tensor_parallel_size: int | None = Field(default=None, ge=1, le=64, description="Pin the tensor-parallel size.")
    pipeline_parallel_size: int | None = Field(default=None, ge=1, le=64, description="Pin the pipeline-parallel size.")
    policy: Policy = Field(default=Policy.CHEAPEST, description="How to choose among feasible layouts.")
    multi_node: MultiNode = Field(
        default=MultiNode.WHEN_NEEDED,
        description="Layouts across nodes (LeaderWorkerSet): whenNeeded (only when no single node of any "
                    "allowed pool holds the model), allowed (the policy chooses freely) or never.")

    @field_validator("pools")
    @classmethod
    def _pool_names(cls, pools: list[str]) -> list[str]:
        import re

        for p in pools:
            if len(p) > 253 or not re.match(DNS_SUBDOMAIN, p):
                raise ValueError(f"pool name {p!r} is not a valid Kubernetes object name")
        return pools


class Autoscaling(ApiModel):
    min_replicas: int = Field(default=1, ge=0, le=1000, description="Lower bound on replicas (0 needs scaleToZero).")
    max_replicas: int = Field(default=1, ge=1, le=1000, description="Upper bound on replicas.")
    metric: AutoscalingMetric = Field(default=AutoscalingMetric.REQUESTS_WAITING, description="vLLM metric to scale on.")
    target: float | None = Field(default=None, gt=0, le=100000, description="Target value per replica (kvCacheUsage: a fraction 0-1). Default: from the predicted capacity at spec.serving.workload (status.plan.autoscalingTarget says which), else 5 requests (0.8 for kvCacheUsage).")
    scale_up_stabilization_seconds: int = Field(default=0, ge=0, le=3600, description="Scale up only to the lowest recommendation over this window.")
    scale_down_stabilization_seconds: int = Field(default=300, ge=0, le=3600, description="Scale down only to the highest recommendation over this window.")
    scale_to_zero: bool = Field(default=False, description="Allow zero replicas after idleSeconds without requests in flight. Rendered as a KEDA HTTP add-on HTTPScaledObject whose interceptor holds requests while the first replica loads; clients reach the model through the interceptor. With mode keda, KEDA wakes the model; with builtin, the operator reads the interceptors' counts (cluster-wide installs only).")
    idle_seconds: int = Field(default=900, ge=60, le=86400, description="Seconds without requests in flight (running + waiting in vLLM, or pending at the interceptor) before scaling to zero.")
    mode: AutoscalingMode = Field(default=AutoscalingMode.BUILTIN, description="builtin (operator scrapes vLLM), hpa or keda.")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must be ≤ maxReplicas")
        if self.scale_to_zero and self.mode == AutoscalingMode.HPA:
            raise ValueError("scaleToZero is not possible with mode hpa (HPA cannot scale to 0); use keda or builtin")
        if self.min_replicas == 0 and not self.scale_to_zero:
            raise ValueError("minReplicas 0 requires scaleToZero: true")
        if self.metric == AutoscalingMetric.KV_CACHE_USAGE and self.target is not None and self.target > 1:
            raise ValueError("target for kvCacheUsage is a fraction between 0 and 1")
        return self


# Targets when neither spec nor a workload prediction gives one: 5 requests per replica (the
# earlier default), 80 % KV cache usage (room for a burst before vLLM preempts).
DEFAULT_TARGETS = {AutoscalingMetric.REQUESTS_WAITING: 5.0, AutoscalingMetric.REQUESTS_RUNNING: 5.0,
                   AutoscalingMetric.KV_CACHE_USAGE: 0.8}


def target_or_default(scaling: Autoscaling) -> float:
    """The target a spec asks for, or the metric's default (no prediction at hand)."""
    return scaling.target if scaling.target is not None else DEFAULT_TARGETS[AutoscalingMetric(scaling.metric)]


class Rollout(ApiModel):
    max_unavailable: int = Field(default=1, ge=0, le=1000, description="Replicas that may be down during a rollout when no spare GPUs exist.")
    max_surge: int | Literal["auto"] = Field(default="auto", description="Extra replicas during a rollout; auto = as many as free GPUs allow.")
    progress_deadline_seconds: int | None = Field(default=None, ge=60, le=86400, description="Rollout deadline; default derived from model size.")
    auto_rollback: bool = Field(default=True, description="Return to the last Ready revision when a rollout fails.")
    stall_seconds: int = Field(default=DEFAULT_STALL_SECONDS, ge=60, le=86400, description="Seconds a cache download or a starting replica may go without progress (bytes downloaded, vLLM's load log lines) before it is declared failed (DownloadStalled, LoadStalled). A slow start that keeps progressing is never cut short.")

    @field_validator("max_surge")
    @classmethod
    def _surge(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 0 <= v <= 1000:
            raise ValueError("maxSurge must be 'auto' or an integer 0-1000")
        return v


class SecretKeyRef(ApiModel):
    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="Secret name in the ModelDeployment's namespace.")
    key: str = Field(default="token", max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key inside the Secret.")


class Credentials(ApiModel):
    hugging_face_token: SecretKeyRef | None = Field(default=None, description="Secret holding the Hugging Face token (HF_TOKEN).")


class Cache(ApiModel):
    mode: CacheMode = Field(default=CacheMode.EMPTY_DIR, description="emptyDir (each pod downloads into its own volume), pvc (a claim per ModelDeployment), or shared (one ReadWriteMany claim per model and revision in the namespace, filled once by a download Job; serving pods mount it read-only). Left out: emptyDir, or pvc when the cache exceeds the operator's emptyDir maximum (100 GiB by default; node root disks are small).")
    size: str | None = Field(default=None, max_length=32, pattern=QUANTITY, description="Cache size; default derived from the checkpoint size.")
    storage_class_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN, description="StorageClass for the claim; shared needs one that supports ReadWriteMany. Default: the operator's cache storage class (chart value cache.storageClassName), else the cluster default.")


def pin_rule_broken(arch: Architecture, tp: int | None, pp: int | None) -> str | None:
    """The vLLM rule a TP / PP pin breaks for an explicit architecture, or None.

    The same rules as `planner.rules` (vLLM ModelConfig.verify_with_parallel_config: heads divisible
    by TP; QKVParallelLinear: KV heads divisible by TP, or TP a multiple of them; PP ≤ layers),
    restated here so that the CRD's CEL rules and the models agree on a spec alone.
    """
    kv = arch.kv_heads or arch.attention_heads
    mla = arch.kv_lora_rank is not None
    if tp is not None and arch.attention_heads % tp:
        return (f"vLLM needs the attention heads divisible by placement.tensorParallelSize "
                f"({arch.attention_heads} heads, TP {tp})")
    if tp is not None and not mla and (tp % kv if tp >= kv else kv % tp):
        return (f"vLLM needs the KV heads divisible by placement.tensorParallelSize, or it a "
                f"multiple of them ({kv} KV heads, TP {tp})")
    if pp is not None and pp > arch.layers:
        return (f"vLLM needs placement.pipelineParallelSize at most the model's layers "
                f"({arch.layers} layers, PP {pp})")
    return None


class ModelDeploymentSpec(ApiModel):
    model: ModelSource = Field(description="Which model to serve.")
    serving: Serving = Field(default_factory=Serving, description="vLLM serving settings.")
    placement: Placement = Field(default_factory=Placement, description="Where and how to lay out the model.")
    replicas: int = Field(default=1, ge=0, le=1000, description="Replicas when autoscaling is off. Left out: 1, and with spec.serving.workload the plan prices the replicas the load needs (replicasForWorkload); a given value is fixed.")
    autoscaling: Autoscaling | None = Field(default=None, description="Autoscaling on vLLM metrics.")
    rollout: Rollout = Field(default_factory=Rollout, description="Rollout behaviour.")
    credentials: Credentials = Field(default_factory=Credentials, description="Secrets the server needs.")
    cache: Cache = Field(default_factory=Cache, description="Model download cache.")

    @model_validator(mode="after")
    def _pins(self) -> ModelDeploymentSpec:
        arch = self.model.architecture
        if arch is not None:
            reason = pin_rule_broken(arch, self.placement.tensor_parallel_size,
                                     self.placement.pipeline_parallel_size)
            if reason:
                raise ValueError(reason)
        return self

    def min_replicas(self) -> int:
        """Replicas the layout must at least support (the floor the pool must hold)."""
        if self.autoscaling is not None:
            return max(self.autoscaling.min_replicas, 1 if not self.autoscaling.scale_to_zero else 0)
        return self.replicas


def name_problem(name: str) -> str | None:
    """The ModelDeployment name rule `name` breaks, in words, or None."""
    import re

    # Children append suffixes ("-lws", "-pdb"); keep the base a DNS label with room.
    if len(name) > MAX_NAME:
        return (f"{len(name)} characters; a ModelDeployment name has at most {MAX_NAME} characters "
                "(its objects are named NAME-lws, NAME-pdb, ...)")
    if not re.match(DNS_LABEL, name):
        return (f"{name!r} is not a DNS label (lowercase letters, digits and '-', starting and "
                "ending with a lowercase letter or digit)")
    return None


class ModelDeployment(ApiModel):
    api_version: Literal["modeldeploy.dev/v1alpha1"] = Field(default="modeldeploy.dev/v1alpha1", description="API version.")
    kind: Literal["ModelDeployment"] = Field(default="ModelDeployment", description="Kind.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: ModelDeploymentSpec = Field(description="Desired state.")
    status: dict[str, Any] | None = Field(default=None, description="Observed state (written by the operator).")

    @field_validator("metadata")
    @classmethod
    def _name(cls, meta: ObjectMeta) -> ObjectMeta:
        problem = name_problem(meta.name)
        if problem:
            raise ValueError(f"name: {problem}")
        return meta
