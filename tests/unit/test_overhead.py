"""Memory overhead per vLLM release (planner/overhead.py), checked on real deployments."""

from __future__ import annotations

import pytest
from tests.conftest import make_md, make_pool

from modeldeploy.facts.catalog import load_catalog
from modeldeploy.planner import plan_deployment
from modeldeploy.planner.overhead import (
    DEFAULT_RELEASE,
    GIB,
    BatchDefaults,
    batch_defaults,
    overhead_for,
    parse_vllm_version,
    profile_for_image,
    profile_for_release,
)

H100 = make_pool("h100-x8", "NVIDIA-H100-80GB-HBM3", 79.18, 8, nvlink=True, max_nodes=1)


def llama(name: str = "meta-llama/Llama-3.3-70B-Instruct"):  # type: ignore[no-untyped-def]
    found = load_catalog().get(name)
    assert found is not None
    return found


@pytest.mark.parametrize(("image", "version"), [
    ("vllm/vllm-openai:v0.11.0", (0, 11, 0)),
    ("docker.io/vllm/vllm-openai:v0.15.1", (0, 15, 1)),
    ("registry.local:5000/vllm/vllm-openai:0.21.0-cu129", (0, 21, 0)),
    ("vllm/vllm-openai:v0.9.2@sha256:" + "a" * 64, (0, 9, 2)),
    ("vllm/vllm-openai:v0.8", (0, 8, 0)),
])
def test_release_is_read_from_the_image_tag(image: str, version: tuple[int, int, int]) -> None:
    assert parse_vllm_version(image) == version


@pytest.mark.parametrize("image", ["vllm/vllm-openai:latest", "vllm/vllm-openai", "vllm/vllm-openai@sha256:" + "b" * 64])
def test_image_without_a_version_is_sized_as_the_default_release_and_says_so(image: str) -> None:
    choice = profile_for_image(image)
    assert parse_vllm_version(image) is None
    assert choice.profile.release == DEFAULT_RELEASE and choice.note and "names no vLLM version" in choice.note


def test_unknown_release_uses_the_nearest_earlier_known_one_and_the_plan_says_so() -> None:
    assert profile_for_release((0, 12, 3)).release == (0, 11, 0)
    assert profile_for_release((0, 5, 0)).release == (0, 6, 5)  # older than all: the oldest
    md = make_md("meta-llama/Llama-3.1-8B-Instruct", serving={"image": "vllm/vllm-openai:v0.12.3"})
    plan = plan_deployment(md, llama("meta-llama/Llama-3.1-8B-Instruct"), [H100])
    assert plan.vllm_version == "0.12.3"
    assert plan.notes == ["vLLM 0.12.3 has no calibrated memory profile; sized with the nearest earlier known release, 0.11.0"]
    exact = plan_deployment(make_md("meta-llama/Llama-3.1-8B-Instruct"), llama("meta-llama/Llama-3.1-8B-Instruct"), [H100])
    assert exact.notes == [] and exact.vllm_version == "0.30.0"


def test_vllm_0_11_h100_70b_fp8_tp2() -> None:
    # llm-d-incubation/llm-d-planner docs/empirical-vllm-memory-results.md (vLLM v0.11.0, H100
    # 79.18 GiB): RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic at TP 2, util 0.9, max-model-len
    # 16000: weights 33.88 GiB, activation 4.84, non-torch 0.55, KV cache 32.00 GiB per GPU
    # (209,715 tokens at 163,840 bytes per token per GPU). Also ../shared/cases (same id).
    md = make_md("meta-llama/Llama-3.3-70B-Instruct", model={"quantization": "fp8"},
                 serving={"maxModelLen": 16000, "maxNumSeqs": 1, "image": "vllm/vllm-openai:v0.11.0"},
                 placement={"tensorParallelSize": 2})
    plan = plan_deployment(md, llama(), [H100])
    assert plan.feasible and plan.memory_per_gpu is not None and plan.kv_cache_tokens is not None
    m = plan.memory_per_gpu
    assert 32.9 <= m.weights_gib <= 34.9
    assert 188_000 <= plan.kv_cache_tokens <= 231_000
    assert m.activation_gib == pytest.approx(4.84, abs=0.25) and m.non_torch_gib == pytest.approx(0.55, abs=0.05)
    assert m.cuda_graph_gib == 0  # v0.11 captures CUDA graphs after the KV cache, outside the budget


def test_cuda_graphs_enter_the_budget_from_0_21() -> None:
    # gpu_worker.py: "CUDA graph memory profiling is enabled (default since v0.21.0)".
    def plan(image: str):  # type: ignore[no-untyped-def]
        md = make_md("meta-llama/Llama-3.1-8B-Instruct", serving={"image": image, "maxModelLen": 16000})
        return plan_deployment(md, llama("meta-llama/Llama-3.1-8B-Instruct"), [H100])

    before, after = plan("vllm/vllm-openai:v0.15.1"), plan("vllm/vllm-openai:v0.21.0")
    assert before.memory_per_gpu is not None and after.memory_per_gpu is not None
    assert before.memory_per_gpu.cuda_graph_gib == 0 and after.memory_per_gpu.cuda_graph_gib == 0.6
    assert before.memory_per_gpu.outside_budget_gib > after.memory_per_gpu.outside_budget_gib


def test_a100_keeps_vllms_small_batch_defaults() -> None:
    # engine/arg_utils.py: the larger defaults need ≥ 70 GiB and a device name without "a100".
    v1 = profile_for_release((0, 11, 0))
    assert batch_defaults(v1, "NVIDIA-H100-80GB-HBM3", 79.18, 8192) == BatchDefaults(8192, 1024)
    assert batch_defaults(v1, "NVIDIA-A100-SXM4-80GB", 79.15, 8192).tokens == 2048
    assert batch_defaults(v1, "NVIDIA-L4", 22.49, 8192).sequences == 256
    v0 = profile_for_release((0, 6, 5))
    assert batch_defaults(v0, "NVIDIA-H100-80GB-HBM3", 79.22, 8192).tokens == 8192  # max_model_len
    assert batch_defaults(v0, "NVIDIA-H100-80GB-HBM3", 79.22, 65536).tokens == 2048  # chunked prefill


def test_utilization_that_leaves_no_room_outside_the_budget_is_refused() -> None:
    # An L4 reports 23034 MiB (22.49 GiB); at 0.98 only 0.45 GiB stays outside vLLM's budget but
    # the CUDA context alone takes 0.61 GiB (v0.11 logs: 78.57 of 79.18 GiB free at start).
    l4 = make_pool("l4", "NVIDIA-L4", 22.49, 1, max_nodes=4)
    md = make_md("meta-llama/Llama-3.2-3B-Instruct", serving={"gpuMemoryUtilization": 0.98})
    plan = plan_deployment(md, llama("meta-llama/Llama-3.2-3B-Instruct"), [l4])
    assert not plan.feasible
    assert "gpuMemoryUtilization 0.98 leaves 0.45 GiB" in plan.reason and "at most 0.97" in plan.reason
    ok = plan_deployment(make_md("meta-llama/Llama-3.2-3B-Instruct", serving={"gpuMemoryUtilization": 0.95}),
                         llama("meta-llama/Llama-3.2-3B-Instruct"), [l4])
    assert ok.feasible


def test_lower_max_num_seqs_does_not_shrink_the_estimated_sampler_peak() -> None:
    # No log calibrates a lowered --max-num-seqs: the estimate keeps vLLM's default rows.
    facts = llama("meta-llama/Llama-3.1-8B-Instruct")
    one = plan_deployment(make_md(facts.id, serving={"maxNumSeqs": 1, "image": "vllm/vllm-openai:v0.11.0"}), facts, [H100])
    default = plan_deployment(make_md(facts.id, serving={"image": "vllm/vllm-openai:v0.11.0"}), facts, [H100])
    assert one.memory_per_gpu and default.memory_per_gpu
    assert one.memory_per_gpu.activation_gib == default.memory_per_gpu.activation_gib == pytest.approx(4.76, abs=0.05)
    v011 = profile_for_release((0, 11, 0))
    more = overhead_for(v011, facts, tp=1, pp=1, tokens=8192, rows=2048, nvlink=True)
    assert more.activation / GIB == pytest.approx(2 * 4.76, abs=0.1)  # more rows than the default: more
