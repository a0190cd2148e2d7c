"""The GPU catalog: lookup by GFD label / alias / MIG label, pool overrides, data hygiene."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modeldeploy.api.pool import GPU
from modeldeploy.facts.gpus import (
    GPUCatalog,
    GPUCatalogError,
    LinkTopology,
    Vendor,
    effective_gpu_spec,
    load_gpu_catalog,
    lookup_gpu,
    missing_gpu_spec_fields,
    parse_compute_capability,
)

# The products the issue (#13) names, by the label GPU Feature Discovery writes.
REQUIRED = {
    "Tesla-T4": (7, 5), "NVIDIA-L4": (8, 9), "NVIDIA-A10": (8, 6), "NVIDIA-A10G": (8, 6),
    "NVIDIA-L40S": (8, 9), "NVIDIA-A100-PCIE-40GB": (8, 0), "NVIDIA-A100-80GB-PCIe": (8, 0),
    "NVIDIA-A100-SXM4-40GB": (8, 0), "NVIDIA-A100-SXM4-80GB": (8, 0), "NVIDIA-A800-SXM4-80GB": (8, 0),
    "NVIDIA-H100-PCIe": (9, 0), "NVIDIA-H100-80GB-HBM3": (9, 0), "NVIDIA-H100-NVL": (9, 0),
    "NVIDIA-H200": (9, 0), "NVIDIA-B200": (10, 0), "NVIDIA-GeForce-RTX-4090": (8, 9),
    "NVIDIA-GeForce-RTX-3090": (8, 6), "NVIDIA-GeForce-RTX-2080-Ti": (7, 5),
}


@pytest.mark.parametrize(("product", "capability"), sorted(REQUIRED.items()))
def test_required_products_have_the_compute_capability_of_sizing_facts(product: str, capability: tuple[int, int]) -> None:
    spec = lookup_gpu(product)
    assert spec is not None, product
    assert spec.compute_capability == capability


def test_every_entry_is_sourced_and_physically_sane() -> None:
    for spec in load_gpu_catalog().entries():
        assert spec.sources and all(s.startswith("http") for s in spec.sources), spec.product
        assert spec.dense16_tflops is not None, spec.product
        if spec.fp8_tflops is not None:  # FP8 tensor cores run at twice the 16-bit rate
            assert spec.fp8_tflops == pytest.approx(2 * spec.dense16_tflops, rel=0.02), spec.product
        if spec.memory_gb is not None:
            assert spec.memory_gib <= spec.memory_gb * 1.0001, spec.product


def test_datasheet_numbers_for_h100_sxm() -> None:
    # NVIDIA H100 datasheet: 3.35 TB/s, BF16 1,979 / FP8 3,958 TFLOPS with sparsity, NVLink 900 GB/s.
    spec = lookup_gpu("NVIDIA-H100-80GB-HBM3")
    assert spec is not None
    assert (spec.hbm_bandwidth_gbps, spec.bf16_tflops, spec.fp8_tflops) == (3350, 989.5, 1979)
    assert spec.link_gbps(8) == 900 and spec.gpu_link_topology is LinkTopology.SWITCH


def test_fp8_absent_before_ada_and_bf16_absent_on_turing() -> None:
    a100, t4 = lookup_gpu("NVIDIA-A100-SXM4-80GB"), lookup_gpu("Tesla-T4")
    assert a100 is not None and a100.fp8_tflops is None
    assert t4 is not None and t4.bf16_tflops is None and t4.dense16_tflops == 65


@pytest.mark.parametrize(("name", "product"), [
    ("nvidia-tesla-t4", "Tesla-T4"),  # GKE accelerator names
    ("nvidia-h100-80gb", "NVIDIA-H100-80GB-HBM3"),
    ("nvidia-h200-141gb", "NVIDIA-H200"),
    ("nvidia-a100-80gb", "NVIDIA-A100-SXM4-80GB"),
    ("a10g", "NVIDIA-A10G"),  # Karpenter instance-gpu-name
    ("NVIDIA L40S", "NVIDIA-L40S"),  # nvidia-smi spelling
    ("AMD_Instinct_MI300X", "AMD-Instinct-MI300X"),
])
def test_aliases_resolve(name: str, product: str) -> None:
    spec = lookup_gpu(name)
    assert spec is not None and spec.product == product


def test_an_ambiguous_alias_needs_the_memory_to_decide() -> None:
    assert lookup_gpu("a100") is None
    forty, eighty = lookup_gpu("a100", 38.6), lookup_gpu("a100", 79.0)
    assert forty is not None and forty.product == "NVIDIA-A100-SXM4-40GB"
    assert eighty is not None and eighty.product == "NVIDIA-A100-SXM4-80GB"


def test_unknown_product_is_none() -> None:
    assert lookup_gpu("NVIDIA-Quantum-Abacus") is None


def test_mig_label_scales_the_parent_to_the_slice() -> None:
    spec = lookup_gpu("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb")
    assert spec is not None
    assert spec.memory_gib == 5 and spec.mig_fraction == pytest.approx(1 / 7)
    assert spec.hbm_bandwidth_gbps == pytest.approx(1555 / 8, rel=0.01)  # 1 of 8 memory slices
    assert spec.bf16_tflops == pytest.approx(312 / 7, rel=0.01)
    assert spec.gpu_link_topology is LinkTopology.NONE  # no NVLink peer access from a MIG slice
    three = lookup_gpu("NVIDIA-H100-80GB-HBM3-MIG-3g.40gb+me", 39.5)
    assert three is not None and three.memory_gib == 39.5 and three.compute_capability == (9, 0)
    assert lookup_gpu("NVIDIA-A100-SXM4-40GB-MIG-1g.80gb") is None  # bigger than the GPU


def test_bridge_links_pairs_only() -> None:
    nvl = lookup_gpu("NVIDIA-H100-NVL")
    assert nvl is not None
    assert nvl.link_gbps(2) == 600 and nvl.link_gbps(4) == nvl.pcie_gbps == 128


def test_pool_overrides_win_over_the_catalog() -> None:
    gpu = GPU(product="NVIDIA-L4", memoryGiB=22.0, memoryBandwidthGBps=250, bf16TFLOPS=100,
              fp8TFLOPS=200, computeCapability="8.7")
    spec = effective_gpu_spec(gpu)
    assert spec is not None
    assert (spec.memory_gib, spec.hbm_bandwidth_gbps, spec.bf16_tflops, spec.fp8_tflops) == (22.0, 250, 100, 200)
    assert spec.compute_capability == (8, 7)
    assert spec.sources[-1] == "GPUPool spec.gpu overrides"


def test_legacy_bandwidth_field_still_counts_and_the_new_one_wins() -> None:
    old = effective_gpu_spec(GPU(product="NVIDIA-L4", memoryGiB=22.49, bandwidthGBps=280))
    both = effective_gpu_spec(GPU(product="NVIDIA-L4", memoryGiB=22.49, bandwidthGBps=280, memoryBandwidthGBps=310))
    assert old is not None and old.hbm_bandwidth_gbps == 280
    assert both is not None and both.hbm_bandwidth_gbps == 310


def test_pool_without_nvlink_drops_the_link_and_interconnect_override_sets_it() -> None:
    pcie = effective_gpu_spec(GPU(product="NVIDIA-A100-80GB-PCIe", memoryGiB=79.2, nvlink=False))
    assert pcie is not None and pcie.gpu_link_topology is LinkTopology.NONE and pcie.interconnect_gbps == 64
    fast = effective_gpu_spec(GPU(product="NVIDIA-H100-80GB-HBM3", memoryGiB=79.11, nvlink=True, interconnectGBps=450))
    assert fast is not None and fast.link_gbps(8) == 450
    slow_pcie = effective_gpu_spec(GPU(product="NVIDIA-L4", memoryGiB=22.49, interconnectGBps=32))
    assert slow_pcie is not None and slow_pcie.interconnect_gbps == 32


def test_unknown_gpu_needs_bandwidth_bf16_and_capability() -> None:
    bare = GPU(product="NVIDIA-RTX-PRO-6000", memoryGiB=95)
    assert effective_gpu_spec(bare) is None
    assert missing_gpu_spec_fields(bare) == ["memoryBandwidthGBps", "bf16TFLOPS", "computeCapability"]
    described = GPU(product="NVIDIA-RTX-PRO-6000", memoryGiB=95, memoryBandwidthGBps=1792, bf16TFLOPS=500,
                    computeCapability="12.0")
    spec = effective_gpu_spec(described)
    assert missing_gpu_spec_fields(described) == []
    assert spec is not None and spec.compute_capability == (12, 0) and spec.vendor is Vendor.NVIDIA
    assert missing_gpu_spec_fields(GPU(product="NVIDIA-L4", memoryGiB=22.49)) == []


def test_gpupool_schema_rejects_bad_overrides() -> None:
    with pytest.raises(ValidationError):
        GPU(product="NVIDIA-L4", memoryGiB=22.49, computeCapability="eight")
    with pytest.raises(ValidationError):
        GPU(product="NVIDIA-L4", memoryGiB=22.49, bf16TFLOPS=-1)


def test_compute_capability_parsing() -> None:
    assert parse_compute_capability("10.0") == (10, 0)
    assert parse_compute_capability((8, 9)) == (8, 9)
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR"):
        parse_compute_capability("sm_90")


def test_catalog_rejects_duplicates_and_malformed_data() -> None:
    entry = "- {product: X-1, memoryGiB: 1, hbmBandwidthGBps: 1, bf16TFLOPS: 1, computeCapability: '8.0'}\n"
    assert len(GPUCatalog.from_yaml(entry).entries()) == 1
    with pytest.raises(GPUCatalogError, match="twice"):
        GPUCatalog.from_yaml(entry + entry.replace("X-1", "x 1"))
    with pytest.raises(GPUCatalogError):
        GPUCatalog.from_yaml("- {product: X-1, memoryGiB: -1}\n")
