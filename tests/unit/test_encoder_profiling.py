"""vLLM's multimodal encoder profiling in the memory model (facts/encoder.py, planner/overhead.py),
on real checkpoints: Qwen2.5-VL-32B-AWQ, Llama-4-Scout and gemma-3-27b-it."""

from __future__ import annotations

import pytest
from tests.conftest import make_md, make_pool
from tests.unit.real_configs import GEMMA3_27B, LLAMA_32_90B_VISION, case_config

from modeldeploy.facts import ModelFacts
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.hf_config import facts_from_hf
from modeldeploy.planner import plan_deployment
from modeldeploy.planner.mm_args import multimodal_args
from modeldeploy.planner.overhead import GIB, ProfilingStep, activation_bytes, encoder_profile, profile_for_release

H100 = make_pool("h100", "NVIDIA-H100-80GB-HBM3", 79.18, 8, nvlink=True, max_nodes=1)
QWEN_VL = "Qwen/Qwen2.5-VL-32B-Instruct-AWQ"
SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"


def catalog(repo: str) -> ModelFacts:
    found = load_catalog().get(repo)
    assert found is not None, repo
    return found


def test_largest_item_per_family_as_vllm_profiles_it() -> None:
    # Qwen2.5-VL: preprocessor max_pixels 12845056 / 14² = 65536 patches, merged 2×2 → 16384 tokens.
    qwen = catalog(QWEN_VL).encoder
    assert qwen is not None
    assert (qwen.patches_per_item, qwen.tokens_per_item, qwen.hidden_size, qwen.gated_mlp) == (65536, 16384, 1280, True)
    # Llama 4: 16 tiles + 1 global view of 336² at patch 14 (576 patches), pixel shuffle 0.5 → 144.
    scout = catalog(SCOUT).encoder
    assert scout is not None and (scout.patches_per_item, scout.tokens_per_item) == (17 * 576, 17 * 144)
    # gemma-3-27b-it: SigLIP 896² at patch 14 = 4096 patches pooled to mm_tokens_per_image 256,
    # framed by 4 tokens (vLLM 0.11 log, bench/data source D: 31 items in an 8192-token budget).
    gemma = facts_from_hf("google/gemma-3-27b-it", case_config(GEMMA3_27B)).encoder
    assert gemma is not None and (gemma.patches_per_item, gemma.tokens_per_item) == (4096, 260)
    assert 8192 // gemma.tokens_per_item == 31
    # Text models have no encoder.
    assert catalog("Qwen/Qwen3-32B").encoder is None


def test_a_multimodal_family_without_an_item_size_says_so() -> None:
    # Mllama (Llama-3.2-Vision) feeds its tower through cross-attention layers, not the encoder
    # cache: not modelled, and the facts say so rather than guess.
    f = facts_from_hf("meta-llama/Llama-3.2-90B-Vision-Instruct", case_config(LLAMA_32_90B_VISION))
    assert f.is_multimodal and f.encoder is None
    assert any("encoder profiling memory is left out" in n for n in f.notes)


def test_items_follow_the_encoder_budget() -> None:
    # compute_mm_encoder_budget: budget = max(max_num_batched_tokens, tokens per item).
    qwen, scout = catalog(QWEN_VL), catalog(SCOUT)
    one = encoder_profile(qwen, ProfilingStep(tp=1, tokens=8192, rows=1024, max_model_len=16000))
    assert one is not None and one.items == 1  # 16384 > 8192: one item fills the budget
    assert one.cache == 16384 * qwen.hidden_size * 2  # embeddings for the language model, bf16
    three = encoder_profile(scout, ProfilingStep(tp=1, tokens=8192, rows=1024, max_model_len=16000))
    assert three is not None and three.items == 8192 // 2448
    # The decoder side bounds the items: max_num_seqs × items per prompt (max_model_len // tokens).
    single = encoder_profile(scout, ProfilingStep(tp=1, tokens=8192, rows=1, max_model_len=2000))
    assert single is not None and single.items == 1
    two = encoder_profile(scout, ProfilingStep(tp=1, tokens=8192, rows=1, max_model_len=16000, mm=multimodal_args(
        ["--limit-mm-per-prompt", '{"image": 2}'])))
    assert two is not None and two.items == 2  # --limit-mm-per-prompt caps the items per prompt
    # The tower is tensor-parallel: its pass shrinks with TP, the cached outputs do not.
    split = encoder_profile(qwen, ProfilingStep(tp=4, tokens=8192, rows=1024, max_model_len=16000))
    assert split is not None and split.tower_pass < one.tower_pass and split.cache == one.cache
    assert encoder_profile(catalog("Qwen/Qwen3-32B"), ProfilingStep(1, 8192, 1024, 16000)) is None


@pytest.mark.parametrize(("release", "dominant"), [((0, 11, 0), "sampler"), ((0, 30, 0), "tower")])
def test_activation_holds_the_encoder_cache_or_the_tower_pass(release: tuple[int, int, int], dominant: str) -> None:
    qwen = catalog(QWEN_VL)
    profile = profile_for_release(release)
    text_only = activation_bytes(profile, qwen.model_copy(update={"encoder": None}), 1, 8192, 1024, 16000)
    with_encoder = activation_bytes(profile, qwen, 1, 8192, 1024, 16000)
    enc = encoder_profile(qwen, ProfilingStep(1, 8192, 1024, 16000))
    assert enc is not None
    if dominant == "sampler":  # v0.11: 38.9 B per logit × 1024 × 152064 ≫ the tower's pass
        assert with_encoder == pytest.approx(text_only + enc.cache)
    else:  # v0.15+: the sampler peak is small; the 65536-patch tower pass is the peak
        assert with_encoder == pytest.approx(enc.tower_pass) and enc.tower_pass > text_only + enc.cache


def test_v0_releases_have_no_encoder_term() -> None:
    qwen = catalog(QWEN_VL)
    v0 = profile_for_release((0, 6, 5))
    assert activation_bytes(v0, qwen, 1, 8192, 256, 8192) == activation_bytes(
        v0, qwen.model_copy(update={"encoder": None}), 1, 8192, 256, 8192)


def test_the_plan_of_a_vision_model_reserves_the_encoder_memory() -> None:
    qwen = catalog(QWEN_VL)
    md = make_md(QWEN_VL, serving={"maxModelLen": 16000, "image": "vllm/vllm-openai:v0.30.0"},
                 placement={"tensorParallelSize": 1})
    with_encoder = plan_deployment(md, qwen, [H100])
    text_only = plan_deployment(md, qwen.model_copy(update={"encoder": None}), [H100])
    assert with_encoder.feasible and text_only.feasible
    m, t = with_encoder.memory_per_gpu, text_only.memory_per_gpu
    assert m is not None and t is not None
    enc = encoder_profile(qwen, ProfilingStep(1, 8192, 1024, 16000))
    assert enc is not None
    assert m.activation_gib == pytest.approx(enc.tower_pass / GIB, abs=0.01)
    assert with_encoder.kv_cache_tokens is not None and text_only.kv_cache_tokens is not None
    assert with_encoder.kv_cache_tokens < text_only.kv_cache_tokens


@pytest.mark.parametrize(("args", "limit", "profiled"), [
    ([], 999, True),  # vLLM's default per modality
    (["--limit-mm-per-prompt", '{"image": 2, "video": 0}'], 2, True),
    (['--limit-mm-per-prompt={"image": {"count": 3, "width": 512, "height": 512}}'], 3, True),
    (["--limit_mm_per_prompt", "image=4,video=1"], 4, True),  # the older key=value form
    (["--limit-mm-per-prompt.image", "0"], 0, True),
    (["--limit-mm-per-prompt.image=5", "--limit-mm-per-prompt", '{"image": 1}'], 1, True),  # last wins
    (["--skip-mm-profiling"], 999, False),
    (["--skip-mm-profiling", "--no-skip-mm-profiling"], 999, True),
    (["--limit-mm-per-prompt", '{"video": 1}'], 999, True),  # says nothing about images
])
def test_extra_args_reach_the_encoder_profiling(args: list[str], limit: int, profiled: bool) -> None:
    mm = multimodal_args(args)
    assert (mm.image_limit, mm.profiled) == (limit, profiled)


def test_images_disabled_or_profiling_skipped_remove_the_encoder_term() -> None:
    # encoder_cache_manager.py: with every modality disabled vLLM initialises no encoder cache;
    # gpu_model_runner.profile_run: --skip-mm-profiling skips the encoder run.
    qwen = catalog(QWEN_VL)
    base = {"maxModelLen": 16000, "image": "vllm/vllm-openai:v0.30.0"}

    def activation(extra: list[str]) -> float:
        md = make_md(QWEN_VL, serving={**base, "extraArgs": extra}, placement={"tensorParallelSize": 1})
        plan = plan_deployment(md, qwen, [H100])
        assert plan.feasible and plan.memory_per_gpu is not None
        return plan.memory_per_gpu.activation_gib

    text_only = plan_deployment(make_md(QWEN_VL, serving=base, placement={"tensorParallelSize": 1}),
                                qwen.model_copy(update={"encoder": None}), [H100])
    assert text_only.memory_per_gpu is not None
    assert activation([]) > text_only.memory_per_gpu.activation_gib
    for extra in (["--limit-mm-per-prompt", '{"image": 0, "video": 0}'], ["--skip-mm-profiling"]):
        assert activation(extra) == text_only.memory_per_gpu.activation_gib


def test_the_plan_says_what_the_encoder_profiling_holds() -> None:
    qwen = catalog(QWEN_VL)
    md = make_md(QWEN_VL, serving={"maxModelLen": 16000, "image": "vllm/vllm-openai:v0.30.0"})
    note = next(n for n in plan_deployment(md, qwen, [H100]).notes if "vision encoder" in n)
    assert "1 image of 16384 tokens (65536 patches each)" in note and "0.16 GiB of encoder cache" in note
    assert "--limit-mm-per-prompt" in note
    off = make_md(QWEN_VL, serving={"maxModelLen": 16000, "extraArgs": ["--skip-mm-profiling"]})
    assert not any("vision encoder" in n for n in plan_deployment(off, qwen, [H100]).notes)
    v0 = make_md(QWEN_VL, serving={"maxModelLen": 8192, "image": "vllm/vllm-openai:v0.6.5"})
    assert not any("vision encoder" in n for n in plan_deployment(v0, qwen, [H100]).notes)
    text = make_md("Qwen/Qwen3-32B", serving={"maxModelLen": 16000})
    assert not any("vision encoder" in n for n in plan_deployment(text, catalog("Qwen/Qwen3-32B"), [H100]).notes)
