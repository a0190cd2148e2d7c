"""The GPUPool API (`modeldeploy.dev/v1alpha1`, cluster-scoped): a set of identical GPU nodes."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator

from .base import DNS_SUBDOMAIN, ApiModel
from .metadata import ObjectMeta

LABEL_KEY = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(ApiModel):
    key: str | None = Field(default=None, max_length=316, pattern=LABEL_KEY, description="Taint key.")
    operator: TolerationOperator = Field(default=TolerationOperator.EQUAL, description="Exists or Equal.")
    value: str | None = Field(default=None, max_length=63, pattern=LABEL_VALUE, description="Taint value (Equal).")
    effect: TaintEffect | None = Field(default=None, description="Taint effect; empty matches all.")
    toleration_seconds: int | None = Field(default=None, ge=0, le=31_536_000, description="NoExecute grace period.")


class GPU(ApiModel):
    product: str = Field(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._()-]*$", description="GPU product, e.g. NVIDIA-H100-80GB-HBM3.")
    memory_gi_b: float = Field(alias="memoryGiB", gt=0, le=4096, description="Memory per GPU as the device reports it, GiB.")
    bandwidth_g_bps: float | None = Field(default=None, alias="bandwidthGBps", gt=0, le=100_000, description="HBM bandwidth, GB/s (older name of memoryBandwidthGBps; memoryBandwidthGBps wins).")
    nvlink: bool = Field(default=False, description="GPUs in a node are connected by NVLink/NVSwitch.")
    # Overrides of the GPU catalog (modeldeploy.facts.gpus); required for a product it lacks.
    compute_capability: str | None = Field(default=None, alias="computeCapability", max_length=5, pattern=r"^[0-9]{1,2}\.[0-9]{1,2}$", description="CUDA compute capability, e.g. \"8.9\" (overrides the GPU catalog).")
    memory_bandwidth_g_bps: float | None = Field(default=None, alias="memoryBandwidthGBps", gt=0, le=100_000, description="Memory (HBM/GDDR) bandwidth per GPU, GB/s (overrides the GPU catalog).")
    bf16_tflops: float | None = Field(default=None, alias="bf16TFLOPS", gt=0, le=100_000, description="Dense BF16 tensor TFLOP/s per GPU (overrides the GPU catalog).")
    fp8_tflops: float | None = Field(default=None, alias="fp8TFLOPS", gt=0, le=100_000, description="Dense FP8 tensor TFLOP/s per GPU (overrides the GPU catalog).")
    fp4_tflops: float | None = Field(default=None, alias="fp4TFLOPS", gt=0, le=100_000, description="Dense FP4 tensor TFLOP/s per GPU (overrides the GPU catalog).")
    interconnect_g_bps: float | None = Field(default=None, alias="interconnectGBps", gt=0, le=100_000, description="GPU-to-GPU bandwidth in a node, GB/s bidirectional: NVLink when nvlink is true, else PCIe (overrides the GPU catalog).")


class GPUPoolSpec(ApiModel):
    gpu: GPU = Field(description="The GPU every node of the pool carries.")
    gpus_per_node: int = Field(alias="gpusPerNode", ge=1, le=64, description="GPUs per node.")
    max_nodes: int | None = Field(default=None, ge=1, le=100_000, description="Most nodes the pool can have (autoscaler limit).")
    network_g_bps: float | None = Field(default=None, alias="networkGBps", gt=0, le=10_000, description="Node-to-node network bandwidth per GPU, GB/s (50 for 400 Gb/s InfiniBand or EFA per GPU, the default): what pipeline stages on different nodes hand activations over.")
    price_per_gpu_hour: float | None = Field(default=None, alias="pricePerGPUHour", ge=0, le=1000, description="On-demand price per GPU-hour (USD), for the cheapest policy.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Labels that select the pool's nodes.")
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32, description="Tolerations for the pool's taints.")

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, sel: dict[str, str]) -> dict[str, str]:
        if len(sel) > 32:
            raise ValueError("nodeSelector holds at most 32 labels")
        for k, v in sel.items():
            if len(k) > 316 or not re.match(LABEL_KEY, k):
                raise ValueError(f"nodeSelector key {k!r} is not a valid label key")
            if len(v) > 63 or not re.match(LABEL_VALUE, v):
                raise ValueError(f"nodeSelector value {v!r} is not a valid label value")
        return sel


def pool_name_problem(name: str) -> str | None:
    """The GPUPool name rule (a DNS subdomain) `name` breaks, in words, or None."""
    if len(name) > 253:
        return f"{len(name)} characters; a GPUPool name has at most 253"
    if not re.match(DNS_SUBDOMAIN, name):
        return (f"{name!r} is not a DNS subdomain (lowercase letters, digits, '-' and '.', each "
                "part starting and ending with a lowercase letter or digit)")
    return None


class GPUPool(ApiModel):
    api_version: Literal["modeldeploy.dev/v1alpha1"] = Field(default="modeldeploy.dev/v1alpha1", description="API version.")
    kind: Literal["GPUPool"] = Field(default="GPUPool", description="Kind.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: GPUPoolSpec = Field(description="The pool's shape.")
    status: dict[str, Any] | None = Field(default=None, description="Observed capacity (written by the operator).")

    @field_validator("metadata")
    @classmethod
    def _name(cls, meta: ObjectMeta) -> ObjectMeta:
        problem = pool_name_problem(meta.name)
        if problem:
            raise ValueError(f"name: {problem}")
        return meta

    @property
    def name(self) -> str:
        return self.metadata.name
