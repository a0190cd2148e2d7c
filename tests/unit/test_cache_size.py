"""The model cache (PVC or emptyDir) holds the checkpoint as stored on disk: its safetensors
bytes, MTP layers and 16-bit weights included, never the weights vLLM serves from it."""

from __future__ import annotations

import math

import pytest
from tests.conftest import make_md
from tests.unit.real_configs import catalog_config

from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.hf_config import facts_from_hf
from modeldeploy.facts.model import FactsSource
from modeldeploy.planner import default_pools, plan_deployment
from modeldeploy.planner.plan import Plan
from modeldeploy.render.options import RenderOptions
from modeldeploy.render.sizes import sizing

GIB = 2**30


def _plan(repo: str, **spec: object) -> Plan:
    facts = load_catalog().get(repo)
    assert facts is not None
    return plan_deployment(make_md(repo, **spec), facts, default_pools())


def _cache_gib(stored_bytes: int) -> int:
    return math.ceil(1.1 * stored_bytes / GIB) + 10  # headroom: render/sizes.py


def test_deepseek_v3_cache_holds_the_mtp_layer_it_does_not_serve() -> None:
    # 688574839360 bytes: the published safetensors total, MTP layer 61 included (catalog entry).
    plan = _plan("deepseek-ai/DeepSeek-V3", serving={"maxModelLen": 16384})
    assert plan.feasible and plan.checkpoint_gib == pytest.approx(688574839360 / GIB, abs=0.01)
    assert sizing(plan, RenderOptions()).cache_gib == _cache_gib(688574839360)


def test_online_fp8_caches_the_bf16_checkpoint() -> None:
    # meta-llama/Llama-3.1-8B-Instruct: index total_size 16060522496 (BF16); vLLM quantizes to
    # FP8 while loading, so it serves ~8.5 GiB from 15 GiB on disk.
    plan = _plan("meta-llama/Llama-3.1-8B-Instruct", model={"quantization": "fp8"}, serving={"maxModelLen": 8192})
    assert plan.feasible and plan.quantization == "fp8" and plan.memory_per_gpu is not None
    assert plan.memory_per_gpu.weights_gib < 9
    assert plan.checkpoint_gib == pytest.approx(16060522496 / GIB, abs=0.01)
    assert sizing(plan, RenderOptions()).cache_gib == _cache_gib(16060522496)


def test_an_estimated_checkpoint_counts_the_mtp_layer_its_config_declares() -> None:
    # No counts: the estimate from DeepSeek-V3's shapes plus its declared MTP module is the
    # published total to 0.01 %.
    facts = facts_from_hf("acme/v3-copy", catalog_config("deepseek-ai/DeepSeek-V3"), source=FactsSource.HF_CONFIG)
    plan = plan_deployment(make_md("acme/v3-copy", serving={"maxModelLen": 16384}), facts, default_pools())
    assert plan.checkpoint_gib == pytest.approx(688574839360 / GIB, rel=1e-4)
