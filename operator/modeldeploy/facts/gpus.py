"""The GPU catalog (data/gpus.yaml): specifications keyed by the GPU Feature Discovery label.

`lookup_gpu("NVIDIA-H100-80GB-HBM3")` → GPUSpec; GKE accelerator names (`nvidia-l4`), short
names (`L40S`, Karpenter's `a10g`) and MIG product labels (`…-MIG-1g.10gb`) resolve too.
`effective_gpu_spec(pool.spec.gpu)` merges a GPUPool's own overrides over the catalog entry,
so a GPU the catalog does not know can still be described by the pool. Pure: no I/O besides
reading the packaged YAML once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from ..api.pool import GPU

GPU_CATALOG_RESOURCE = "data/gpus.yaml"

# MIG product labels as GFD writes them with the "mixed"/"single" strategies:
# <product>-MIG-<compute slices>g.<memory GB>gb, optionally "+me" (media extensions).
_MIG = re.compile(r"^(?P<base>.+?)-MIG-(?P<g>\d+)g\.(?P<gb>\d+)gb(?:\+me)?$", re.IGNORECASE)
# A100/H100/H200/B200 split into 7 compute slices (NVIDIA MIG User Guide, "Supported GPUs";
# the memory side has 8 slices, each with 1/8 of the memory controllers).
_MIG_COMPUTE_SLICES = 7


class Vendor(StrEnum):
    NVIDIA = "nvidia"
    AMD = "amd"


class LinkTopology(StrEnum):
    """How the GPUs of one node reach each other besides PCIe."""

    SWITCH = "switch"  # all-to-all through NVSwitch / a fully connected fabric (HGX, DGX, OAM)
    BRIDGE = "bridge"  # pairs (or fours) joined by an NVLink bridge (PCIe boards, H100 NVL)
    NONE = "none"  # PCIe only


class GPUCatalogError(ValueError):
    """The packaged GPU catalog is malformed: a packaging bug, never a user error."""


def parse_compute_capability(value: object) -> tuple[int, int]:
    """"8.9" (or (8, 9)) → (8, 9). Raises ValueError for anything else."""
    if isinstance(value, tuple | list) and len(value) == 2:
        return int(value[0]), int(value[1])
    match = re.fullmatch(r"(\d{1,2})\.(\d{1,2})", str(value).strip())
    if match is None:
        raise ValueError(f"compute capability {value!r} is not of the form MAJOR.MINOR (e.g. 8.9)")
    return int(match.group(1)), int(match.group(2))


class GPUSpec(BaseModel):
    """One GPU product's specifications (per GPU; dense tensor-core rates).

    Units: memory GiB (as the device reports it) and GB (vendor nominal), bandwidths GB/s
    (bidirectional for links), compute TFLOP/s dense. `None` = the GPU has no such tensor
    format (T4: no BF16; A100: no FP8). `compute_capability` is NVIDIA's (major, minor); for
    AMD it is the GFX ISA version (gfx942 → (9, 4)) — check `vendor` before applying NVIDIA
    kernel rules. Every entry lists its `sources`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    product: str = Field(min_length=1, description="GFD `nvidia.com/gpu.product` label")
    aliases: tuple[str, ...] = Field(default=(), description="Other names: GKE accelerator, short names")
    vendor: Vendor = Vendor.NVIDIA
    memory_gb: float | None = Field(default=None, alias="memoryGB", gt=0, description="Nominal memory, GB")
    memory_gib: float = Field(alias="memoryGiB", gt=0, description="Memory as the device reports it, GiB")
    memory_reported: bool = Field(default=True, description="False: memory_gib is the nominal size")
    hbm_bandwidth_gbps: float = Field(alias="hbmBandwidthGBps", gt=0, description="Memory bandwidth, GB/s")
    bf16_tflops: float | None = Field(default=None, alias="bf16TFLOPS", gt=0)
    fp16_tflops: float | None = Field(default=None, alias="fp16TFLOPS", gt=0)
    fp8_tflops: float | None = Field(default=None, alias="fp8TFLOPS", gt=0)
    fp4_tflops: float | None = Field(default=None, alias="fp4TFLOPS", gt=0)
    compute_capability: tuple[int, int]
    gpu_link_gbps: float | None = Field(default=None, alias="gpuLinkGBps", gt=0, description="NVLink / Infinity Fabric per GPU, GB/s")
    gpu_link_topology: LinkTopology = LinkTopology.NONE
    pcie_gbps: float = Field(default=64.0, alias="pcieGBps", gt=0, description="Host link, x16 bidirectional, GB/s")
    mig_fraction: float | None = Field(default=None, gt=0, le=1, description="Share of the full GPU's compute (MIG slice)")
    sources: tuple[str, ...] = Field(default=(), description="Where each number comes from")

    @field_validator("compute_capability", mode="before")
    @classmethod
    def _capability(cls, value: object) -> tuple[int, int]:
        return parse_compute_capability(value)

    @property
    def dense16_tflops(self) -> float | None:
        """16-bit tensor rate vLLM runs at: BF16, or FP16 where the GPU has no BF16 (Turing)."""
        return self.bf16_tflops or self.fp16_tflops

    @property
    def interconnect_gbps(self) -> float:
        """Best GPU-to-GPU bandwidth inside a node: the GPU link, else PCIe."""
        if self.gpu_link_topology is LinkTopology.NONE or self.gpu_link_gbps is None:
            return self.pcie_gbps
        return self.gpu_link_gbps

    def link_gbps(self, gpus: int) -> float:
        """Bandwidth among `gpus` GPUs of one tensor-parallel group, GB/s.

        A bridge joins pairs only (NVIDIA A100 PCIe / H100 NVL product briefs: "NVLink bridge
        for up to 2 GPUs"), so a wider group falls back to PCIe.
        """
        if self.gpu_link_topology is LinkTopology.BRIDGE and gpus > 2:
            return self.pcie_gbps
        return self.interconnect_gbps



def _key(name: str) -> str:
    """Normalise a product name: case, spaces and underscores do not matter."""
    return re.sub(r"-+", "-", re.sub(r"[\s_]+", "-", name.strip())).upper()


class GPUCatalog:
    """GPU specs by product label and alias (case-insensitive, ` `/`_` ≡ `-`)."""

    def __init__(self, entries: Iterable[GPUSpec]) -> None:
        self._by_product: dict[str, GPUSpec] = {}
        self._by_alias: dict[str, list[GPUSpec]] = {}
        for spec in entries:
            key = _key(spec.product)
            if key in self._by_product:
                raise GPUCatalogError(f"{GPU_CATALOG_RESOURCE}: product {spec.product} is listed twice")
            self._by_product[key] = spec
        for spec in self._by_product.values():
            for alias in spec.aliases:
                if _key(alias) == _key(spec.product):
                    continue  # GKE spells some labels in lower case: the product itself
                if _key(alias) in self._by_product:
                    raise GPUCatalogError(f"{GPU_CATALOG_RESOURCE}: alias {alias} of {spec.product} is a product label")
                self._by_alias.setdefault(_key(alias), []).append(spec)

    @classmethod
    def from_yaml(cls, text: str) -> GPUCatalog:
        try:
            docs: Any = yaml.safe_load(text)
            return cls(GPUSpec.model_validate(doc) for doc in docs or [])
        except (yaml.YAMLError, ValidationError, TypeError) as exc:
            raise GPUCatalogError(f"{GPU_CATALOG_RESOURCE}: {exc}") from exc

    def entries(self) -> list[GPUSpec]:
        """Every entry, sorted by product label."""
        return [self._by_product[k] for k in sorted(self._by_product)]

    def lookup(self, product: str, memory_gib: float | None = None) -> GPUSpec | None:
        """The spec for a product label, alias or MIG label; None when unknown.

        An alias shared by several products (Karpenter's `a100`) is resolved by the memory the
        node reports (`memory_gib`), or not at all without it.
        """
        mig = _MIG.match(product.strip())
        if mig is not None:
            return self._mig_slice(mig, memory_gib)
        key = _key(product)
        found = self._by_product.get(key)
        if found is not None:
            return found
        candidates = self._by_alias.get(key, [])
        if len(candidates) == 1:
            return candidates[0]
        if candidates and memory_gib is not None:
            return min(candidates, key=lambda spec: abs(spec.memory_gib - memory_gib))
        return None

    def _mig_slice(self, mig: re.Match[str], memory_gib: float | None) -> GPUSpec | None:
        """A MIG instance: the parent's spec scaled to the slice (no NVLink peer access)."""
        parent = self.lookup(mig.group("base"))
        slices, slice_gb = int(mig.group("g")), int(mig.group("gb"))
        nominal = parent.memory_gb if parent is not None else None
        if parent is None or nominal is None or slice_gb > nominal or slices > _MIG_COMPUTE_SLICES:
            return None
        compute, memory_share = slices / _MIG_COMPUTE_SLICES, slice_gb / nominal

        def scaled(value: float | None) -> float | None:
            return None if value is None else round(value * compute, 2)

        return parent.model_copy(update={
            "product": mig.group(0), "aliases": (), "memory_gb": float(slice_gb),
            "memory_gib": memory_gib or float(slice_gb), "memory_reported": memory_gib is not None,
            "hbm_bandwidth_gbps": round(parent.hbm_bandwidth_gbps * memory_share, 1),
            "bf16_tflops": scaled(parent.bf16_tflops), "fp16_tflops": scaled(parent.fp16_tflops),
            "fp8_tflops": scaled(parent.fp8_tflops), "fp4_tflops": scaled(parent.fp4_tflops),
            "gpu_link_gbps": None, "gpu_link_topology": LinkTopology.NONE, "mig_fraction": compute,
            "sources": (*parent.sources, "https://docs.nvidia.com/datacenter/tesla/mig-user-guide/ (7 compute slices, 8 memory slices)"),
        })


@cache
def load_gpu_catalog() -> GPUCatalog:
    """The packaged catalog, parsed and validated once per process."""
    text = resources.files("modeldeploy").joinpath(GPU_CATALOG_RESOURCE).read_text(encoding="utf-8")
    return GPUCatalog.from_yaml(text)


def lookup_gpu(product: str, memory_gib: float | None = None) -> GPUSpec | None:
    """The catalog spec for a GFD product label (or alias / MIG label); None when unknown."""
    return load_gpu_catalog().lookup(product, memory_gib)


# What a GPUPool must give for a GPU the catalog does not know (wire names).
REQUIRED_OVERRIDES = ("memoryBandwidthGBps", "bf16TFLOPS", "computeCapability")


def missing_gpu_spec_fields(gpu: GPU) -> list[str]:
    """The `spec.gpu` fields a pool still has to give before its GPU has a spec ([] = none)."""
    if lookup_gpu(gpu.product, gpu.memory_gi_b) is not None:
        return []
    given = {
        "memoryBandwidthGBps": gpu.memory_bandwidth_g_bps or gpu.bandwidth_g_bps,
        "bf16TFLOPS": gpu.bf16_tflops,
        "computeCapability": gpu.compute_capability,
    }
    return [name for name in REQUIRED_OVERRIDES if given[name] is None]


def effective_gpu_spec(gpu: GPU) -> GPUSpec | None:
    """The catalog entry for a pool's GPU with the pool's own `spec.gpu` fields applied.

    The pool wins: memoryGiB always; memoryBandwidthGBps (or the older bandwidthGBps),
    bf16TFLOPS, fp8TFLOPS, fp4TFLOPS, computeCapability, interconnectGBps when given, and
    `nvlink: false` removes the GPU link. None when the product is not in the catalog and the
    pool does not give `missing_gpu_spec_fields` — the caller says which.
    """
    base = lookup_gpu(gpu.product, gpu.memory_gi_b)
    if base is None and missing_gpu_spec_fields(gpu):
        return None
    update: dict[str, Any] = {"memory_gib": gpu.memory_gi_b, "memory_reported": True}
    bandwidth = gpu.memory_bandwidth_g_bps or gpu.bandwidth_g_bps
    for field, value in (("hbm_bandwidth_gbps", bandwidth), ("bf16_tflops", gpu.bf16_tflops),
                         ("fp8_tflops", gpu.fp8_tflops), ("fp4_tflops", gpu.fp4_tflops)):
        if value is not None:
            update[field] = value
    if gpu.compute_capability is not None:
        update["compute_capability"] = parse_compute_capability(gpu.compute_capability)
    update.update(_link_update(base, gpu))
    if base is None:
        vendor = Vendor.AMD if re.search(r"\bAMD\b|^MI\d", _key(gpu.product).replace("-", " ")) else Vendor.NVIDIA
        return GPUSpec.model_validate({"product": gpu.product, "vendor": vendor,
                                       "sources": ("GPUPool spec.gpu",), **update})
    return base.model_copy(update={**update, "sources": (*base.sources, "GPUPool spec.gpu overrides")})


def _link_update(base: GPUSpec | None, gpu: GPU) -> dict[str, Any]:
    """The pool's word on the node's GPU link: `nvlink` and `interconnectGBps`."""
    if not gpu.nvlink:
        update: dict[str, Any] = {"gpu_link_topology": LinkTopology.NONE, "gpu_link_gbps": None}
        if gpu.interconnect_g_bps is not None:
            update["pcie_gbps"] = gpu.interconnect_g_bps
        return update
    topology = base.gpu_link_topology if base is not None else LinkTopology.NONE
    if gpu.interconnect_g_bps is None:
        return {}
    if topology is LinkTopology.NONE:
        topology = LinkTopology.SWITCH  # the pool says NVLink and gives its speed
    return {"gpu_link_topology": topology, "gpu_link_gbps": gpu.interconnect_g_bps}
