"""The performance model: physics it must respect, Little's law, and its properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeldeploy.api import ModelSource, Serving
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.gpus import GPUSpec, LinkTopology, load_gpu_catalog, lookup_gpu
from modeldeploy.perf import FITTED, Limits, Workload, predict
from modeldeploy.perf.model import decode_step_ms, max_concurrency, prefill_ms
from modeldeploy.perf.parallel import DEFAULT_NETWORK_GBPS, expert_imbalance
from modeldeploy.planner.memory import gpu_memory, precision_for, weights_for
from modeldeploy.planner.overhead import DEFAULT_RELEASE, overhead_for, profile_for_release
from modeldeploy.planner.performance import compute_format, expert_parameters, hardware_for, layout_load

H100 = lookup_gpu("NVIDIA-H100-80GB-HBM3")
NVLINK_GPUS = [g for g in load_gpu_catalog().entries() if g.gpu_link_topology is LinkTopology.SWITCH]
DENSE_AND_MOE = ["meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.3-70B-Instruct", "Qwen/Qwen3-32B",
                 "mistralai/Mixtral-8x7B-Instruct-v0.1", "Qwen/Qwen3-235B-A22B-FP8", "deepseek-ai/DeepSeek-V3"]


def _inputs(model: str, gpu: GPUSpec, tp: int, in_out: int = 2048, *, pp: int = 1, nodes: int = 1,
            expert_parallel: bool = False, network_gbps: float = DEFAULT_NETWORK_GBPS):  # type: ignore[no-untyped-def]
    facts = load_catalog().get(model)
    assert facts is not None
    precision = precision_for(facts, ModelSource(name=model), Serving())
    weights = weights_for(facts, precision)
    load = layout_load(facts, precision, weights, gpu, tp=tp, pp=pp, nodes=nodes,
                       expert_parallel=expert_parallel and facts.is_moe)
    profile = profile_for_release(DEFAULT_RELEASE)
    overhead = overhead_for(profile, facts, tp=tp, pp=pp, tokens=8192, rows=1024, nvlink=True)
    memory = gpu_memory(facts, precision, weights, tp=tp, pp=pp, gpu_gib=gpu.memory_gib, utilization=0.9,
                        max_model_len=in_out, kv_sequences=1, overhead=overhead)
    return load, hardware_for(gpu, load, network_gbps), max(memory.kv_tokens, in_out)


def test_decode_is_bandwidth_bound_at_batch_one() -> None:
    # Llama-3.3-70B bf16 at TP 8 on H100: 141 GB / 8 GPUs read per token; the memory term alone
    # is 17.6 GB / (3.35 TB/s × efficiency), i.e. at least 5.3 ms.
    assert H100 is not None
    load, hw, _ = _inputs("meta-llama/Llama-3.3-70B-Instruct", H100, 8)
    step = decode_step_ms(load, hw, FITTED, 1, 1024)
    memory_only = load.dense_bytes / (hw.bandwidth_gbps * 1e9) * 1e3
    assert step > memory_only > 5.0


def test_prefill_is_compute_bound_and_chunks_add_steps() -> None:
    assert H100 is not None
    load, hw, _ = _inputs("meta-llama/Llama-3.3-70B-Instruct", H100, 8)
    long, short = prefill_ms(load, hw, FITTED, 8192, 8192), prefill_ms(load, hw, FITTED, 1024, 8192)
    assert long > 7 * short  # ~linear in tokens, plus the quadratic attention term
    assert prefill_ms(load, hw, FITTED, 8192, 512) > long  # 16 chunks pay 16 step overheads


def test_moe_reads_only_touched_experts_at_small_batch() -> None:
    assert H100 is not None
    load, _, _ = _inputs("Qwen/Qwen3-235B-A22B-FP8", H100, 8)
    assert load.touched_expert_fraction(1) == pytest.approx(8 / 128)
    assert load.touched_expert_fraction(256) > 0.99
    facts = load_catalog().get("Qwen/Qwen3-235B-A22B-FP8")
    assert facts is not None and expert_parameters(facts) > 0.9 * facts.parameters


def test_fp8_gemms_only_where_the_gpu_has_fp8_tensor_cores() -> None:
    facts = load_catalog().get("Qwen/Qwen3-32B-FP8")
    a100, l40s = lookup_gpu("NVIDIA-A100-SXM4-80GB"), lookup_gpu("NVIDIA-L40S")
    assert facts is not None and a100 is not None and l40s is not None
    precision = precision_for(facts, ModelSource(name=facts.id), Serving())
    assert compute_format(precision, a100) == "bf16" and compute_format(precision, l40s) == "fp8"


def test_kv_room_bounds_running_requests_and_the_rest_wait() -> None:
    assert H100 is not None
    load, hw, _ = _inputs("meta-llama/Llama-3.3-70B-Instruct", H100, 2)
    workload = Workload(8192, 1024, concurrency=64)
    tight, roomy = Limits(8 * 9216, 256, 8192), Limits(64 * 9216, 256, 8192)
    assert max_concurrency(tight.kv_tokens, workload) == 8
    queued, free = predict(load, hw, FITTED, workload, tight), predict(load, hw, FITTED, workload, roomy)
    assert queued.running == 8 and free.running == 64
    assert queued.ttft_ms > 5 * free.ttft_ms  # 56 requests wait for one of 8 slots


def test_faster_memory_means_faster_decode() -> None:
    h100, h200 = lookup_gpu("NVIDIA-H100-80GB-HBM3"), lookup_gpu("NVIDIA-H200")
    assert h100 is not None and h200 is not None
    w = Workload(1024, 512, concurrency=8)
    slow, fast = (predict(*_inputs("meta-llama/Llama-3.3-70B-Instruct", g, 4)[:2], FITTED, w,
                          Limits(10**6, 256, 8192)) for g in (h100, h200))
    assert fast.tpot_ms < slow.tpot_ms


workloads = st.builds(
    lambda i, o, c: Workload(i, o, concurrency=c),
    st.integers(16, 8192), st.integers(1, 4096), st.integers(1, 512),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(DENSE_AND_MOE), gpu=st.sampled_from(NVLINK_GPUS), workload=workloads)
def test_littles_law_and_the_cost_inputs_are_consistent(model: str, gpu: GPUSpec, workload: Workload) -> None:
    load, hw, kv = _inputs(model, gpu, 8)
    p = predict(load, hw, FITTED, workload, Limits(kv, 256, 8192))
    latency_s = (p.ttft_ms + (workload.output_tokens - 1) * p.tpot_ms) / 1e3
    assert p.requests_per_second == pytest.approx(p.concurrency / latency_s, rel=1e-9)
    assert p.output_tokens_per_second == pytest.approx(p.requests_per_second * workload.output_tokens, rel=1e-9)
    assert p.running <= max(p.max_concurrency, 1) and p.ttft_ms > 0 and p.tpot_ms > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(DENSE_AND_MOE), gpu=st.sampled_from(NVLINK_GPUS), workload=workloads,
       more=st.integers(1, 512))
def test_higher_concurrency_never_lowers_ttft(model: str, gpu: GPUSpec, workload: Workload, more: int) -> None:
    load, hw, kv = _inputs(model, gpu, 8)
    limits = Limits(kv, 256, 8192)
    assert workload.concurrency is not None
    busier = Workload(workload.input_tokens, workload.output_tokens, concurrency=workload.concurrency + more)
    assert predict(load, hw, FITTED, busier, limits).ttft_ms >= predict(load, hw, FITTED, workload, limits).ttft_ms - 1e-9


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(DENSE_AND_MOE), gpu=st.sampled_from(NVLINK_GPUS), workload=workloads)
def test_larger_tp_in_an_nvlink_node_never_slows_tpot(model: str, gpu: GPUSpec, workload: Workload) -> None:
    # Same load per replica, same KV room (the smaller TP's), TP 1 → 2 → 4 → 8 on one node, with
    # expert parallelism for MoE models above TP 1 as the planner renders it.
    tpots = []
    kv = _inputs(model, gpu, 1)[2]
    for tp in (1, 2, 4, 8):
        load, hw, _ = _inputs(model, gpu, tp, expert_parallel=tp > 1)
        tpots.append(predict(load, hw, FITTED, workload, Limits(kv, 256, 8192)).tpot_ms)
    assert all(b <= a * (1 + 1e-9) for a, b in itertools.pairwise(tpots)), tpots


def test_open_loop_rate_is_served_or_saturated() -> None:
    assert H100 is not None
    load, hw, kv = _inputs("meta-llama/Llama-3.1-8B-Instruct", H100, 1)
    light = predict(load, hw, FITTED, Workload(512, 256, requests_per_second=1.0), Limits(kv, 256, 8192))
    assert not light.saturated and light.requests_per_second == pytest.approx(1.0, rel=1e-3)
    flood = predict(load, hw, FITTED, Workload(512, 256, requests_per_second=1e6), Limits(kv, 256, 8192))
    assert flood.saturated and flood.requests_per_second < 1e6


def test_expert_parallel_waits_for_the_busiest_gpu_at_small_batch() -> None:
    # DeepSeek-V3 on 8 × H200: one token routes to 8 of 256 experts. Sliced over TP every GPU
    # reads 1/8 of each of the 8; with EP the GPU holding the most of them (about 3 of its 32)
    # sets the pace. At a large batch every expert is touched and the two converge.
    h200 = lookup_gpu("NVIDIA-H200")
    assert h200 is not None
    tp_load, hw, kv = _inputs("deepseek-ai/DeepSeek-V3", h200, 8)
    ep_load, _, _ = _inputs("deepseek-ai/DeepSeek-V3", h200, 8, expert_parallel=True)
    assert expert_imbalance(tp_load, 1) == pytest.approx(8 / 256)
    assert 2 * 8 / 256 < expert_imbalance(ep_load, 1) <= 1
    assert expert_imbalance(ep_load, 4096) == pytest.approx(expert_imbalance(tp_load, 4096), rel=1e-3)
    one = Workload(1024, 256, concurrency=1)
    assert predict(ep_load, hw, FITTED, one, Limits(kv, 256, 8192)).tpot_ms > \
        predict(tp_load, hw, FITTED, one, Limits(kv, 256, 8192)).tpot_ms


def test_pipeline_across_nodes_pays_the_network() -> None:
    # Llama-3.1-405B-FP8 at TP 8 × PP 2: the same two stages inside one 16-GPU NVLink domain or
    # on two nodes over 400 Gb/s (50 GB/s per GPU) or 100 Gb/s Ethernet: each hand-off costs more.
    h100 = lookup_gpu("NVIDIA-H100-80GB-HBM3")
    assert h100 is not None
    w = Workload(4096, 512, concurrency=32)
    model = "meta-llama/Llama-3.1-405B-Instruct-FP8"
    inside = _inputs(model, h100, 8, pp=2, nodes=1)
    ib = _inputs(model, h100, 8, pp=2, nodes=2)
    ethernet = _inputs(model, h100, 8, pp=2, nodes=2, network_gbps=12.5)
    limits = Limits(min(inside[2], ib[2]), 256, 8192)
    t_inside, t_ib, t_eth = (predict(x[0], x[1], FITTED, w, limits) for x in (inside, ib, ethernet))
    assert t_inside.tpot_ms < t_ib.tpot_ms < t_eth.tpot_ms
    assert t_inside.ttft_ms < t_ib.ttft_ms < t_eth.ttft_ms


def test_pipeline_stages_fill_once_per_prompt() -> None:
    # A prompt of c chunks through pp stages takes (c + pp − 1) stage-chunk times: PP 2 costs
    # one extra stage-chunk over PP 1 for a one-chunk prompt (a stage is half the layers),
    # so it is no faster, and far from pp × slower for a long prompt.
    h100 = lookup_gpu("NVIDIA-H100-80GB-HBM3")
    assert h100 is not None
    flat, hw1, _ = _inputs("meta-llama/Llama-3.3-70B-Instruct", h100, 4)
    piped, hw2, _ = _inputs("meta-llama/Llama-3.3-70B-Instruct", h100, 4, pp=2)
    assert prefill_ms(piped, hw2, FITTED, 8192, 8192) >= prefill_ms(flat, hw1, FITTED, 8192, 8192) * 0.95
    assert prefill_ms(piped, hw2, FITTED, 65536, 2048) < 1.2 * prefill_ms(flat, hw1, FITTED, 65536, 2048)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(DENSE_AND_MOE), workload=workloads, network=st.floats(1.0, 400.0))
def test_a_faster_network_never_slows_decoding_across_nodes(model: str, workload: Workload, network: float) -> None:
    h100 = lookup_gpu("NVIDIA-H100-80GB-HBM3")
    assert h100 is not None
    slow = _inputs(model, h100, 8, pp=2, nodes=2, network_gbps=network)
    fast = _inputs(model, h100, 8, pp=2, nodes=2, network_gbps=network * 2)
    limits = Limits(slow[2], 256, 8192)
    a, b = predict(slow[0], slow[1], FITTED, workload, limits), predict(fast[0], fast[1], FITTED, workload, limits)
    # TPOT only: in a closed loop a faster replica cycles its clients faster, so more prompts
    # arrive per second and each may find a few more prefills ahead of it (TTFT can rise a little
    # while every request finishes sooner).
    assert b.tpot_ms <= a.tpot_ms * (1 + 1e-9)
