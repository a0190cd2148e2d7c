"""Planning for spec.serving.workload: replicas, prediction, cost, SLO, bad input."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modeldeploy.api import GPUPool, ModelDeployment
from modeldeploy.errors import InvalidSpec
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.planner import default_pools, plan_deployment
from modeldeploy.planner.planner import _Search
from modeldeploy.planner.workload import LoadRequest, WorkloadSizer, meets, replica_capacity, slo_shortfall

LLAMA_70B = "meta-llama/Llama-3.3-70B-Instruct"


def _md(model: str = LLAMA_70B, **serving: Any) -> ModelDeployment:
    spec: dict[str, Any] = {"model": {"name": model}, "serving": serving}
    for key in ("replicas", "autoscaling", "placement"):
        if key in serving:
            spec[key] = serving.pop(key)
    return ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "ns"}, "spec": spec})


def _plan(md: ModelDeployment, pools: list[GPUPool] | None = None):  # type: ignore[no-untyped-def]
    facts = load_catalog().get(md.spec.model.name)
    assert facts is not None
    return plan_deployment(md, facts, pools if pools is not None else default_pools())


def test_plan_keeps_every_key_and_adds_performance() -> None:
    plain = _plan(_md()).wire()
    loaded = _plan(_md(workload={"inputTokens": 1000, "outputTokens": 200, "concurrency": 16})).wire()
    assert set(plain) <= set(loaded)
    assert plain["performance"] is None and plain["replicasForWorkload"] is None
    perf = loaded["performance"]
    assert set(perf) >= {"ttftMs", "tpotMs", "outputTokensPerSecond", "requestsPerSecond", "maxConcurrency",
                         "costPerMillionOutputTokens", "costPerMillionTokens", "meetsSLO"}
    assert loaded["replicasForWorkload"] >= 1


def test_littles_law_and_cost_formula_hold_on_the_plan() -> None:
    plan = _plan(_md(workload={"inputTokens": 2000, "outputTokens": 400, "concurrency": 24}))
    perf, pool = plan.performance, next(p for p in default_pools() if p.name == plan.pool)
    assert perf is not None and pool.spec.price_per_gpu_hour is not None
    latency_s = (perf.ttft_ms + (400 - 1) * perf.tpot_ms) / 1e3
    assert perf.output_tokens_per_second == pytest.approx(perf.concurrency * 400 / latency_s, rel=2e-3)
    hourly = plan.gpus_per_replica * pool.spec.price_per_gpu_hour
    assert perf.cost_per_million_output_tokens == pytest.approx(
        hourly / (perf.output_tokens_per_second * 3600) * 1e6, rel=1e-3)
    assert perf.cost_per_million_tokens == pytest.approx(
        hourly / (perf.requests_per_second * 2400 * 3600) * 1e6, rel=2e-3)


def test_one_replica_takes_the_whole_load_unless_replicas_or_autoscaling_say_otherwise() -> None:
    workload = {"inputTokens": 1000, "outputTokens": 500, "concurrency": 3000}
    alone = _plan(_md(workload=dict(workload)))
    assert alone.performance is not None and alone.performance.replicas == 1
    assert alone.performance.concurrency == 3000 and alone.replicas_for_workload is not None
    assert alone.replicas_for_workload > 1 and not alone.performance.meets_slo  # beyond --max-num-seqs they queue
    fixed = _plan(_md(workload=dict(workload), replicas=3))
    assert fixed.performance is not None and fixed.performance.replicas == 3
    assert fixed.performance.concurrency == pytest.approx(1000)
    scaled = _plan(_md(workload=dict(workload), autoscaling={"minReplicas": 1, "maxReplicas": 50}))
    assert scaled.performance is not None and scaled.replicas_for_workload is not None
    assert scaled.performance.replicas == scaled.replicas_for_workload and scaled.performance.meets_slo


def test_more_load_never_needs_fewer_replicas() -> None:
    counts = []
    for concurrency in (8, 64, 512, 2048):
        plan = _plan(_md(workload={"inputTokens": 1000, "outputTokens": 500, "concurrency": concurrency},
                         placement={"pools": ["aws-p5-h100-x8"], "tensorParallelSize": 4}))
        counts.append(plan.replicas_for_workload)
    assert counts == sorted(counts) and counts[-1] > counts[0]


def test_request_longer_than_max_model_len_is_invalid() -> None:
    with pytest.raises(InvalidSpec, match=r"spec.serving.workload: inputTokens \+ outputTokens = 9000 exceeds spec.serving.maxModelLen 8192"):
        _plan(_md(maxModelLen=8192, workload={"inputTokens": 8000, "outputTokens": 1000, "concurrency": 1}))
    with pytest.raises(InvalidSpec, match="maximum context"):
        _plan(_md(workload={"inputTokens": 200_000, "outputTokens": 1000, "concurrency": 1}))
    longer = _plan(_md(workload={"inputTokens": 12_000, "outputTokens": 1000, "concurrency": 1}))
    assert longer.max_model_len == 13_000  # unset maxModelLen grows to hold a request


@pytest.mark.parametrize("workload", [
    {"inputTokens": 0, "outputTokens": 10, "concurrency": 1},
    {"inputTokens": 10, "outputTokens": -1, "concurrency": 1},
    {"inputTokens": 10, "outputTokens": 10, "concurrency": 0},
    {"inputTokens": 10, "outputTokens": 10},
    {"inputTokens": 10, "outputTokens": 10, "concurrency": 1, "requestsPerSecond": 1},
])
def test_out_of_range_workloads_are_refused_by_the_schema(workload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _md(workload=workload)


def test_an_unmeetable_slo_names_the_closest_layout_and_the_gap() -> None:
    plan = _plan(_md(workload={"inputTokens": 1000, "outputTokens": 200, "concurrency": 4}, slo={"tpotMs": 0.5}))
    assert plan.feasible and plan.performance is not None and not plan.performance.meets_slo
    note = plan.performance_note or ""
    assert "closest is" in note and "TPOT" in note and "%" in note
    assert plan.pool is not None and plan.pool in note


def test_gpu_without_specs_plans_memory_and_says_which_fields_to_give() -> None:
    pool = GPUPool.model_validate({"metadata": {"name": "mystery"}, "spec": {
        "gpu": {"product": "NVIDIA-Mystery-96GB", "memoryGiB": 95}, "gpusPerNode": 8, "pricePerGPUHour": 3}})
    plan = _plan(_md(workload={"inputTokens": 1000, "outputTokens": 200, "concurrency": 4}), [pool])
    assert plan.feasible and plan.performance is None
    assert "memoryBandwidthGBps" in (plan.performance_note or "") and "mystery" in (plan.performance_note or "")
    described = GPUPool.model_validate({"metadata": {"name": "mystery"}, "spec": {
        "gpu": {"product": "NVIDIA-Mystery-96GB", "memoryGiB": 95, "memoryBandwidthGBps": 1800,
                "bf16TFLOPS": 500, "computeCapability": "12.0"}, "gpusPerNode": 8, "pricePerGPUHour": 3}})
    assert _plan(_md(workload={"inputTokens": 1000, "outputTokens": 200, "concurrency": 4}), [described]).performance


def test_requests_per_second_is_served_by_enough_replicas() -> None:
    plan = _plan(_md(workload={"inputTokens": 1000, "outputTokens": 300, "requestsPerSecond": 40},
                     autoscaling={"minReplicas": 1, "maxReplicas": 100}))
    assert plan.performance is not None and plan.replicas_for_workload is not None
    assert plan.performance.requests_per_second * plan.performance.replicas == pytest.approx(40, rel=1e-2)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-32B"]),
       concurrency=st.integers(1, 400), ttft=st.sampled_from([None, 300, 1000, 5000]),
       tpot=st.sampled_from([None, 15, 30, 80]))
def test_cheapest_with_slo_equals_the_exhaustive_optimum(model: str, concurrency: int, ttft: int | None,
                                                         tpot: int | None) -> None:
    slo = {k: v for k, v in (("ttftMs", ttft), ("tpotMs", tpot)) if v is not None}
    md = _md(model, workload={"inputTokens": 1000, "outputTokens": 300, "concurrency": concurrency},
             autoscaling={"minReplicas": 1, "maxReplicas": 1000}, **({"slo": slo} if slo else {}))
    plan = _plan(md)
    facts = load_catalog().get(model)
    assert facts is not None
    search = _Search(md, facts, default_pools())
    load = LoadRequest.from_spec(md)
    assert load is not None
    sizer = WorkloadSizer(facts, search.precision, search.weights, load, search.request.vllm, search.request.max_model_len)
    best: float | None = None
    for c in search.best()[1]:
        at = sizer.predictor(c) if c.feasible else None
        if at is None or c.cost is None:
            continue
        for replicas in range(1, replica_capacity(c) + 1):  # every (layout, replica count)
            if meets(at(replicas), load.slo):
                cost = c.cost * replicas
                best = cost if best is None else min(best, cost)
                break  # more replicas of the same layout only cost more
    if best is None:
        assert plan.performance is not None and plan.replicas_for_workload is not None
        assert plan.performance_note is not None
        return
    assert plan.cost_per_hour is not None and plan.replicas_for_workload is not None
    assert plan.cost_per_hour * plan.replicas_for_workload == pytest.approx(best, rel=1e-6)


def test_reason_says_how_many_replicas_the_plan_serves_with_when_fewer_than_needed() -> None:
    # Llama-3.1-8B on L4 with 4 long requests in flight needs 2 replicas; without spec.replicas or
    # autoscaling the plan has 1, whose prediction is the whole load (queueing), not "its share".
    md = _md("meta-llama/Llama-3.1-8B-Instruct", placement={"pools": ["aws-g6-l4-x1"]},
             workload={"inputTokens": 6000, "outputTokens": 4000, "concurrency": 4})
    plan = _plan(md)
    assert plan.performance is not None and plan.performance.replicas == 1
    assert plan.replicas_for_workload == 2
    assert "2 replicas needed, 1 planned (raise spec.replicas or set spec.autoscaling), taking the whole load: TTFT" in plan.reason
    fixed = _plan(_md("meta-llama/Llama-3.1-8B-Instruct", placement={"pools": ["aws-g6-l4-x1"]}, replicas=2,
                      workload={"inputTokens": 6000, "outputTokens": 4000, "concurrency": 4}))
    assert "2 replicas needed, 2 planned, each at its share: TTFT" in fixed.reason


def test_decode_speed_is_the_performance_models_single_stream_tpot() -> None:
    # DeepSeek-R1 (MoE, 37B of 671B active) on 8 × H200: the bandwidth-only estimate the plan
    # used to print (745 tokens/s) disagreed with the performance model (~170 tokens/s);
    # there is one model now: decodeTokensPerSecond = 1000 / TPOT at one request in flight.
    pools = [p for p in default_pools() if p.name == "aws-p5en-h200-x8"]
    one = _plan(_md("deepseek-ai/DeepSeek-R1", workload={"inputTokens": 1024, "outputTokens": 1024,
                                                         "concurrency": 1}), pools)
    assert one.performance is not None and one.decode_tokens_per_second is not None
    assert one.decode_tokens_per_second == pytest.approx(1000 / one.performance.tpot_ms, rel=1e-3)
    plain = _plan(_md("deepseek-ai/DeepSeek-R1"), pools)
    assert plain.decode_tokens_per_second == pytest.approx(one.decode_tokens_per_second, rel=1e-3)


def test_fastest_ranks_by_the_performance_model_and_unknown_gpus_last() -> None:
    # Two pools of the same H100 nodes, one with its specs hidden behind an unknown product:
    # `fastest` must pick the layout the performance model says is fastest, on the known GPU.
    known = next(p for p in default_pools() if p.name == "aws-p5-h100-x8")
    gpu = known.spec.gpu.model_copy(update={"product": "Mystery-GPU", "bandwidth_g_bps": None})
    unknown = known.model_copy(update={"metadata": known.metadata.model_copy(update={"name": "a-mystery"}),
                                       "spec": known.spec.model_copy(update={"gpu": gpu})})
    plan = _plan(_md(placement={"policy": "fastest"}), [unknown, known])
    assert plan.pool == known.name and plan.tensor_parallel_size == 8
    assert plan.decode_tokens_per_second is not None
    narrower = _plan(_md(placement={"policy": "fastest", "tensorParallelSize": 4}), [known])
    assert narrower.decode_tokens_per_second is not None
    assert narrower.decode_tokens_per_second < plan.decode_tokens_per_second


def test_the_closest_layout_named_for_an_unmeetable_slo_is_the_exhaustive_closest() -> None:
    # TPOT 2 ms for Llama-3.3-70B is out of reach of every pool: the note names the layout
    # whose prediction (at the replicas it would need) misses by the least, with its gap.
    md = _md(workload={"inputTokens": 1000, "outputTokens": 200, "concurrency": 8}, slo={"tpotMs": 2},
             autoscaling={"minReplicas": 1, "maxReplicas": 50})
    plan = _plan(md)
    facts = load_catalog().get(LLAMA_70B)
    assert facts is not None and plan.performance is not None and not plan.performance.meets_slo
    search = _Search(md, facts, default_pools())
    load = LoadRequest.from_spec(md)
    assert load is not None
    sizer = WorkloadSizer(facts, search.precision, search.weights, load, search.request.vllm, search.request.max_model_len)
    sized = [s for s in (sizer.size(c) for c in search.best()[1] if c.feasible) if s is not None]
    closest = min(slo_shortfall(s.best, load.slo) for s in sized)
    chosen = next(s for s in sized if s.candidate.pool.name == plan.pool
                  and s.candidate.tp == plan.tensor_parallel_size and s.candidate.pp == plan.pipeline_parallel_size)
    assert slo_shortfall(chosen.best, load.slo) == pytest.approx(closest)
    gap = f"({(chosen.best.tpot_ms / 2 - 1) * 100:+.0f} %)"
    assert plan.performance_note is not None and gap in plan.performance_note and plan.pool in plan.performance_note


def test_a_pools_node_network_reaches_the_prediction_across_nodes() -> None:
    # Llama-3.1-405B in BF16 needs two 8 × H100 nodes (TP 8 × PP 2): its stages hand
    # activations over the pool's network; 100 Gb/s Ethernet (12.5 GB/s) is slower than the
    # default 400 Gb/s per GPU, and the plan's TTFT and TPOT say so.
    h100 = next(p for p in default_pools() if p.name == "aws-p5-h100-x8")
    slow = h100.model_copy(update={"spec": h100.spec.model_copy(update={"network_g_bps": 12.5})})
    md = _md("meta-llama/Llama-3.1-405B-Instruct", workload={"inputTokens": 2000, "outputTokens": 200, "concurrency": 16})
    fast_plan, slow_plan = _plan(md, [h100]), _plan(md, [slow])
    assert fast_plan.nodes_per_replica == 2 and slow_plan.nodes_per_replica == 2
    assert fast_plan.performance is not None and slow_plan.performance is not None
    assert slow_plan.performance.tpot_ms > fast_plan.performance.tpot_ms
    assert slow_plan.performance.ttft_ms > fast_plan.performance.ttft_ms


def test_the_reason_names_the_choice_as_the_slo_made_it() -> None:
    """New-user trial (2026-11-30): an unmeetable SLO's reason said "cheapest of N feasible
    layouts" for a layout chosen as the closest to the SLO, not the cheapest."""
    workload = {"inputTokens": 1000, "outputTokens": 200, "concurrency": 4}
    unmeetable = _plan(_md(workload=dict(workload), slo={"tpotMs": 0.5}))
    feasible = unmeetable.reason.split(" feasible layouts")[0].split(" of ")[-1]
    assert unmeetable.reason.startswith(f"closest to spec.serving.slo of {feasible} feasible layouts (none meets it): ")
    assert "cheapest" not in unmeetable.reason
    # A TPOT only fast GPUs meet: the cheapest among the layouts that meet it, not among all.
    some = _plan(_md(workload=dict(workload), slo={"tpotMs": 25}))
    meeting = re.match(r"cheapest of the (\d+) feasible layouts that meet spec\.serving\.slo \((\d+) fit\): ", some.reason)
    assert meeting and 0 < int(meeting[1]) < int(meeting[2]), some.reason
    assert _plan(_md(workload=dict(workload))).reason.startswith("cheapest of ")


def test_an_slo_missed_at_one_request_in_flight_leaves_no_capacity() -> None:
    # TPOT 2 ms for Llama-3.3-70B is out of reach of every pool even at one request in flight
    # (BF16 weights read once per token: ≥ 17.5 GB per GPU at TP 8 over H200's 4.8 TB/s is
    # 3.6 ms): one replica serves no load within the SLO, so its capacity is 0, not one request,
    # and the autoscaler keeps its default target instead of scaling out at every request.
    workload = {"inputTokens": 1000, "outputTokens": 200, "concurrency": 8}
    scaling = {"minReplicas": 1, "maxReplicas": 4, "metric": "requestsRunning"}
    plan = _plan(_md(workload=workload, slo={"tpotMs": 2}, autoscaling=scaling))
    perf = plan.performance
    assert perf is not None and not perf.meets_slo
    assert (perf.capacity_concurrency, perf.capacity_output_tokens_per_second) == (0, 0.0)
    assert perf.capacity_cost_per_million_tokens is None
    assert plan.performance_note is not None and "its capacity within the SLO is 0" in plan.performance_note
    assert "even at one request in flight" in plan.reason
    assert plan.autoscaling_target is not None and plan.autoscaling_target.source == "default"
    # A TPOT the layout meets at some load: a capacity of at least one request, priced.
    met = _plan(_md(workload=workload, slo={"tpotMs": 50}, autoscaling=scaling)).performance
    assert met is not None and met.capacity_concurrency and met.capacity_concurrency >= 1
    assert met.capacity_cost_per_million_tokens is not None
