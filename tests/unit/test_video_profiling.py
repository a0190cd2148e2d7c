"""The profiling video of Qwen2-VL / Qwen2.5-VL in the memory model (facts/encoder.py VideoItem,
planner/overhead.py encoder_profile): vLLM profiles the modality whose largest item has the most
tokens, and at long max_model_len that is a video of up to 14 frames of the largest image."""

from __future__ import annotations

import pytest
from tests.conftest import make_md, make_pool

from modeldeploy.facts import ModelFacts
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.planner import plan_deployment
from modeldeploy.planner.mm_args import multimodal_args
from modeldeploy.planner.overhead import (
    GIB,
    ProfilingStep,
    activation_bytes,
    encoder_profile,
    overhead_for,
    profile_for_image,
)

QWEN_VL_7B = "Qwen/Qwen2.5-VL-7B-Instruct"
A100 = make_pool("a100", "NVIDIA-A100-SXM4-80GB", 79.25, 8, nvlink=True, max_nodes=1)


def qwen_7b() -> ModelFacts:
    found = load_catalog().get(QWEN_VL_7B)
    assert found is not None
    return found


def test_the_v0_23_log_profiles_one_video_of_114688_tokens() -> None:
    # vllm/vllm-openai:v0.23.0, Qwen2.5-VL-7B-Instruct on one A100-SXM4-80GB, default max_model_len
    # 128000 (bench/data/README.md, public GitHub file, index id 55021192520): "Encoder cache will be
    # initialized with a budget of 114688 tokens, and profiled with 1 video items of the maximum
    # feature size". 14 frames (vLLM's cap) = 7 temporal groups of the 16384-token largest image.
    facts = qwen_7b()
    assert facts.max_context == 128000
    found = encoder_profile(facts, ProfilingStep(tp=1, tokens=8192, rows=1024, max_model_len=0))
    assert found is not None
    assert (found.modality, found.items, found.tokens_per_item) == ("video", 1, 114688)
    assert found.patches_per_item == 7 * 65536


def test_the_v0_23_log_activation_is_the_video_tower_pass() -> None:
    # The same log: "Model loading took 15.67 GiB", "Estimated CUDA graph memory: 0.53 GiB",
    # "Available KV cache memory: -14.28 GiB" at --gpu-memory-utilization 0.22 of 79.25 GiB:
    # activation + non-torch = 0.22 × 79.25 − 15.67 − 0.53 + 14.28 = 15.5 GiB. (The CRD refuses a
    # utilization below 0.5, so the term is checked here rather than through a plan.)
    logged = 0.22 * 79.25 - 15.67 - 0.53 + 14.28
    facts = qwen_7b()
    profile = profile_for_image("vllm/vllm-openai:v0.23.0").profile
    over = overhead_for(profile, facts, tp=1, pp=1, tokens=8192, rows=1024, nvlink=True, max_model_len=128000)
    predicted = (over.activation + over.non_torch) / GIB
    image_only = activation_bytes(profile, facts, 1, 8192, 1024, 128000, multimodal_args(
        ["--limit-mm-per-prompt", '{"video": 0}'])) / GIB
    # Before the video item the term was the image's tower pass (~1.9 GiB): 8× below the log.
    assert image_only < logged / 8
    # The shapes-derived estimate (float32 pixels + the gated MLP's live tensors per patch) is
    # 12.96 GiB of tower pass; the log holds 16 % more (not yet explained, see docs/sizing.md).
    assert 0.80 * logged < predicted < logged


@pytest.mark.parametrize(("max_model_len", "modality", "tokens"), [
    (8192, "image", 16384),     # the video cannot outgrow one temporal group: the image is profiled
    (16000, "image", 16384),    # a tie (1 frame padded to one group): the first modality, image, wins
    (32768, "video", 32768),    # 4 frames = 2 groups
    (65536, "video", 65536),
    (131072, "video", 114688),  # 16 frames fit, the cap keeps 14
    (262144, "video", 114688),
])
def test_the_video_grows_with_max_model_len_up_to_14_frames(max_model_len: int, modality: str, tokens: int) -> None:
    found = encoder_profile(qwen_7b(), ProfilingStep(1, 8192, 1024, max_model_len))
    assert found is not None and (found.modality, found.tokens_per_item) == (modality, tokens)


def test_limit_mm_per_prompt_decides_the_profiled_modality() -> None:
    facts = qwen_7b()

    def profiled(args: list[str]) -> tuple[str, int] | None:
        found = encoder_profile(facts, ProfilingStep(1, 8192, 1024, 128000, multimodal_args(args)))
        return None if found is None else (found.modality, found.tokens_per_item)

    assert profiled([]) == ("video", 114688)
    assert profiled(["--limit-mm-per-prompt", '{"image": 4, "video": 0}']) == ("image", 16384)
    assert profiled(["--limit-mm-per-prompt.video=0"]) == ("image", 16384)
    assert profiled(["--limit-mm-per-prompt", "image=0,video=1"]) == ("video", 114688)
    assert profiled(["--limit-mm-per-prompt", '{"image": 0, "video": 0}']) is None
    assert profiled(["--skip-mm-profiling"]) is None


@pytest.mark.parametrize(("args", "image", "video"), [
    ([], 999, 999),
    (["--limit-mm-per-prompt", '{"image": 2, "video": 0}'], 2, 0),
    (["--limit_mm_per_prompt", "image=4,video=1"], 4, 1),
    (["--limit-mm-per-prompt.video", "0"], 999, 0),
    (["--limit-mm-per-prompt.video=3", "--limit-mm-per-prompt", '{"video": {"count": 1}}'], 999, 1),
])
def test_extra_args_carry_the_video_limit(args: list[str], image: int, video: int) -> None:
    mm = multimodal_args(args)
    assert (mm.image_limit, mm.video_limit) == (image, video)


def test_the_plan_says_it_profiled_a_video_and_reserves_it() -> None:
    facts = qwen_7b()
    serving = {"image": "vllm/vllm-openai:v0.23.0", "maxModelLen": 128000}
    md = make_md(QWEN_VL_7B, serving=serving, placement={"tensorParallelSize": 1})
    plan = plan_deployment(md, facts, [A100])
    note = next(n for n in plan.notes if "vision encoder" in n)
    assert "1 video of 114688 tokens (458752 patches each)" in note
    no_video = make_md(QWEN_VL_7B, serving={**serving, "extraArgs": ["--limit-mm-per-prompt", '{"video": 0}']},
                       placement={"tensorParallelSize": 1})
    images = plan_deployment(no_video, facts, [A100])
    assert "1 image of 16384 tokens" in next(n for n in images.notes if "vision encoder" in n)
    m, i = plan.memory_per_gpu, images.memory_per_gpu
    assert m is not None and i is not None and plan.feasible and images.feasible
    assert m.activation_gib == pytest.approx(12.96, abs=0.01) and i.activation_gib < 2.5
    assert plan.kv_cache_tokens is not None and images.kv_cache_tokens is not None
    assert plan.kv_cache_tokens < images.kv_cache_tokens
