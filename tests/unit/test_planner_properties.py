"""Property tests: random valid architectures and pools drive the planner.

It never raises on valid input; every feasible plan obeys every vLLM rule and fits its budget;
its choice equals an independent exhaustive search's optimum for the policy.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import make_md, make_pool

from modeldeploy.api import GPUPool, ModelDeployment
from modeldeploy.facts import ModelFacts
from modeldeploy.facts.quantization import parse_quantization
from modeldeploy.planner import plan_deployment
from modeldeploy.planner.memory import gpu_memory, precision_for, weights_for
from modeldeploy.planner.overhead import overhead_for, profile_for_image, utilization_rejection
from modeldeploy.planner.performance import decode_speed
from modeldeploy.planner.search import Request

FP8_BLOCK = {"quant_method": "fp8", "weight_block_size": [128, 128]}  # DeepSeek-V3's config
AWQ_G128 = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}  # Qwen2.5-VL-72B-AWQ


@st.composite
def architectures(draw: st.DrawFn) -> ModelFacts:
    heads = draw(st.sampled_from([8, 12, 16, 24, 32, 40, 48, 64, 96, 128]))
    kv = draw(st.sampled_from([d for d in range(1, heads + 1) if heads % d == 0]))
    head_dim = draw(st.sampled_from([64, 128, 256]))
    hidden = heads * head_dim
    layers = draw(st.integers(4, 128))
    vocab = draw(st.sampled_from([32000, 128256, 152064, 256000]))
    inter = hidden * draw(st.sampled_from([2, 3, 4]))
    moe = draw(st.booleans())
    mla = draw(st.integers(0, 5)) == 0
    experts = draw(st.sampled_from([8, 16, 64, 128])) if moe else None
    moe_inter = draw(st.sampled_from([512, 768, 1024, 1536, 2048])) if moe else None
    body = layers * (4 * hidden * hidden + 3 * hidden * (moe_inter * experts if moe and moe_inter and experts else inter))
    params = body + vocab * hidden * 2
    quant = draw(st.sampled_from([None, "fp8-block", "awq"]))
    return ModelFacts(
        id="test/random", parameters=params, layers=layers, hidden_size=hidden, attention_heads=heads,
        kv_heads=kv, head_dim=head_dim, intermediate_size=inter, vocab_size=vocab,
        max_context=draw(st.sampled_from([4096, 32768, 131072])),
        experts=experts, experts_per_token=2 if moe else None, moe_intermediate_size=moe_inter,
        kv_lora_rank=512 if mla else None, qk_rope_head_dim=64 if mla else None,
        quantization=None if quant is None else (
            parse_quantization("test/random", {"quantization_config": FP8_BLOCK if quant == "fp8-block" else AWQ_G128})),
        supports_pipeline_parallel=draw(st.booleans()),
    )


@st.composite
def pools(draw: st.DrawFn) -> list[GPUPool]:
    """Unknown products; some give the specs the performance model needs (bandwidth, BF16
    TFLOP/s, compute capability), the rest none (no speed: ranked last by `fastest`)."""
    n = draw(st.integers(1, 4))
    out = []
    for i in range(n):
        pool = make_pool(
            f"pool-{i}", f"GPU-{i}", draw(st.sampled_from([14.75, 22.3, 38.6, 44.4, 79.11, 93.6, 140.0, 180.0])),
            draw(st.sampled_from([1, 2, 4, 8])), nvlink=draw(st.booleans()),
            price=draw(st.one_of(st.none(), st.floats(0.2, 10.0).map(lambda x: round(x, 2)))),
            max_nodes=draw(st.one_of(st.none(), st.integers(1, 6))),
            bandwidth=draw(st.one_of(st.none(), st.sampled_from([300.0, 864.0, 2000.0, 3350.0]))),
        )
        if pool.spec.gpu.bandwidth_g_bps is not None and draw(st.booleans()):
            gpu = pool.spec.gpu.model_copy(update={
                "bf16_tflops": draw(st.sampled_from([65.0, 181.0, 312.0, 989.0])),
                # Hopper: no GPU-generation rule (planner/gpu_rules.py) the oracle does not know applies
                "compute_capability": "9.0"})
            pool = pool.model_copy(update={"spec": pool.spec.model_copy(update={"gpu": gpu})})
        out.append(pool)
    return out


@st.composite
def deployments(draw: st.DrawFn, facts: ModelFacts) -> ModelDeployment:
    serving: dict[str, Any] = {"maxModelLen": draw(st.sampled_from([512, 2048, 4096]))}
    if draw(st.booleans()):
        serving["maxNumSeqs"] = draw(st.integers(1, 16))
    if draw(st.booleans()):
        serving["kvCacheDtype"] = "fp8"
    serving["gpuMemoryUtilization"] = draw(st.sampled_from([0.8, 0.9, 0.95]))
    placement = {"policy": draw(st.sampled_from(["cheapest", "fewestGPUs", "fastest"])),
                 "multiNode": draw(st.sampled_from(["whenNeeded", "allowed", "never"]))}
    return make_md("test/random", serving=serving, placement=placement, replicas=draw(st.integers(1, 3)))


def _kv_rule_ok(f: ModelFacts, tp: int) -> bool:
    if f.is_mla:
        return True
    return tp % f.kv_heads == 0 if tp >= f.kv_heads else f.kv_heads % tp == 0


def _block_ok(f: ModelFacts, tp: int) -> bool:
    """FP8 blocks and AWQ (Marlin) groups: each rank holds whole 128-wide slices of the MLP."""
    width = f.moe_intermediate_size if f.is_moe else f.intermediate_size
    if f.quantization is None or width is None:
        return True
    return width % tp == 0 and (width // tp) % 128 == 0


def oracle(md: ModelDeployment, f: ModelFacts, all_pools: list[GPUPool],
           lws: bool = True) -> list[tuple[GPUPool, int, int, int]]:
    """Every feasible (pool, TP, PP, nodes), enumerated without the planner's search code.

    Across nodes only with LeaderWorkerSet served and multiNode not never; with whenNeeded only
    when no pool has a single-node layout; with allowed, in pools whose own nodes cannot."""
    prec = precision_for(f, md.spec.model, md.spec.serving)
    weights = weights_for(f, prec)
    s = md.spec.serving
    vllm = profile_for_image(s.image).profile
    length = s.max_model_len or min(f.max_context, 8192)
    seqs = min(s.max_num_seqs or 2, 2)  # maxNumSeqs is vLLM's cap: KV for two sequences at most
    multi = md.spec.placement.multi_node
    out: list[tuple[GPUPool, int, int, int]] = []
    later: list[tuple[GPUPool, list[tuple[GPUPool, int, int, int]]]] = []
    for pool in all_pools:
        gpn = pool.spec.gpus_per_node
        def fits(tp: int, pp: int, nodes: int, pool: GPUPool = pool, gpn: int = gpn) -> bool:
            if f.attention_heads % tp or not _kv_rule_ok(f, tp) or not _block_ok(f, tp):
                return False
            if pp > 1 and (not f.supports_pipeline_parallel or pp > f.layers):
                return False
            gpu = pool.spec.gpu
            big = gpu.memory_gi_b >= 70 and "a100" not in gpu.product.lower()
            overhead = overhead_for(vllm, f, tp=tp, pp=pp, tokens=s.max_num_batched_tokens or (8192 if big else 2048),
                                    rows=max(s.max_num_seqs or 0, 1024 if big else 256), nvlink=gpu.nvlink)
            m = gpu_memory(f, prec, weights, tp=tp, pp=pp, gpu_gib=gpu.memory_gi_b,
                           utilization=s.gpu_memory_utilization, max_model_len=length, kv_sequences=seqs,
                           overhead=overhead)
            if not m.fits or utilization_rejection(vllm, overhead, gpu.memory_gi_b, s.gpu_memory_utilization):
                return False
            mx = pool.spec.max_nodes
            if mx is not None:
                per_pod = tp if nodes > 1 else tp * pp
                cap = mx * (gpn // per_pod) if nodes == 1 else mx // nodes
                if nodes > mx or md.spec.replicas > cap:
                    return False
            return True
        single = [(tp, pp) for tp in range(1, gpn + 1) for pp in range(1, gpn // tp + 1)
                  if (pp == 1 or not pool.spec.gpu.nvlink) and fits(tp, pp, 1)]
        out += [(pool, tp, pp, 1) for tp, pp in single]
        across: list[tuple[GPUPool, int, int, int]] = []
        limit = min(16, pool.spec.max_nodes or 16, f.layers)
        allowed = [t for t in range(1, gpn + 1) if f.attention_heads % t == 0 and _kv_rule_ok(f, t) and _block_ok(f, t)]
        if allowed:  # one stage per node at the widest allowed TP
            tp = max(allowed)
            for nodes in range(2, limit + 1):
                if fits(tp, nodes, nodes):
                    across.append((pool, tp, nodes, nodes))
                    break
        later.append((pool, across if not single or multi == "whenNeeded" else []))
    if not lws or multi == "never" or (multi == "whenNeeded" and out):
        return out
    return out + [c for _, across in later for c in across]


@settings(max_examples=200)
@given(data=st.data())
def test_planner_matches_exhaustive_search_and_rules(data: st.DataObject) -> None:
    f = data.draw(architectures())
    ps = data.draw(pools())
    md = data.draw(deployments(f))
    lws = data.draw(st.booleans())
    plan = plan_deployment(md, f, ps, multi_node_served=lws)  # must not raise
    best = oracle(md, f, ps, lws)
    assert plan.feasible == bool(best), plan.reason
    if not plan.feasible:
        assert plan.reason and plan.failure in ("NoFeasibleLayout", "MultiNodeUnavailable")
        return
    tp, pp = plan.tensor_parallel_size, plan.pipeline_parallel_size
    assert tp is not None and pp is not None and plan.memory_per_gpu is not None
    pool = next(p for p in ps if p.name == plan.pool)
    # every vLLM rule
    assert f.attention_heads % tp == 0 and _kv_rule_ok(f, tp) and _block_ok(f, tp)
    assert pp == 1 or f.supports_pipeline_parallel
    assert plan.gpus_per_pod is not None and plan.gpus_per_pod <= pool.spec.gpus_per_node
    assert tp <= pool.spec.gpus_per_node
    if plan.nodes_per_replica and plan.nodes_per_replica > 1:
        assert pp == plan.nodes_per_replica
    # per-GPU total never exceeds the budget
    m = plan.memory_per_gpu
    assert m.weights_gib + m.kv_required_gib + m.overhead_gib <= m.budget_gib + 0.02
    # the policy's optimum equals the exhaustive search's
    prec = precision_for(f, md.spec.model, md.spec.serving)
    weights = weights_for(f, prec)

    def cost(c: tuple[GPUPool, int, int, int]) -> float:
        price = c[0].spec.price_per_gpu_hour
        return math.inf if price is None else round(price * c[1] * c[2], 4)

    policy = md.spec.placement.policy
    if policy == "cheapest":
        want = min(cost(c) for c in best)
        got = math.inf if plan.cost_per_hour is None else plan.cost_per_hour
        assert got == want
    elif policy == "fewestGPUs":
        assert plan.gpus_per_replica == min(c[1] * c[2] for c in best)
    else:
        from modeldeploy.planner.planner import build_request
        from modeldeploy.planner.search import evaluate

        req = build_request(md, f, lws)

        def speed(c: tuple[GPUPool, int, int, int]) -> float:
            cand = evaluate(f, prec, weights, req, c[0], c[1], c[2], c[3])
            tokens = decode_speed(f, prec, weights, cand, req.max_model_len)
            return -1.0 if tokens is None else round(tokens, 6)  # no GPU specs: ranked last

        chosen = next(c for c in best if c[0].name == plan.pool and c[1] == tp and c[2] == pp)
        assert speed(chosen) == max(speed(c) for c in best)
        assert (plan.decode_tokens_per_second is None) == (speed(chosen) < 0)


def test_request_defaults_are_documented_values() -> None:
    # docs/sizing.md: maxModelLen min(model max, 8192); KV for 2 full-length sequences.
    from modeldeploy.planner.planner import build_request

    f = ModelFacts(id="x/y", parameters=10**9, layers=8, hidden_size=1024, attention_heads=8,
                   kv_heads=8, head_dim=128, max_context=131072)
    req = build_request(make_md("x/y"), f)
    assert isinstance(req, Request)
    assert (req.max_model_len, req.kv_sequences, req.utilization) == (8192, 2, 0.9)
