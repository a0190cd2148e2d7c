"""plan_deployment: (ModelDeployment, ModelFacts, pools) → Plan. Pure and deterministic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..api import GPUPool, KvCacheDtype, ModelDeployment, MultiNode, Policy
from ..errors import InvalidSpec
from ..facts import ModelFacts
from ..facts.quantization import online_fp8
from .advice import hardware_that_fits
from .autoscaling_target import autoscaling_target
from .gpu_rules import pool_capability, weight_only_note
from .memory import DEFAULT_KV_SEQUENCES, DEFAULT_MAX_MODEL_LEN, Precision, Weights, precision_for, weights_for
from .mm_args import multimodal_args
from .overhead import encoder_note, profile_for_image
from .performance import decode_speed
from .plan import MemoryPerGPU, Plan, Rejection, gib, gib_text
from .rules import model_rules, slice_note
from .search import Candidate, Request, all_candidates, multi_node_refusal, policy_key, profiling_step, tp_options
from .speculative import as_served
from .workload import (
    LoadRequest,
    WorkloadSizer,
    choose,
    chosen_words,
    performance,
    replicas_sentence,
    request_for_workload,
)

ANY_POOL = "*"  # rejections that hold for every pool (a rule of the model itself)


def build_request(md: ModelDeployment, facts: ModelFacts, multi_node_served: bool = True) -> Request:
    serving, placement = md.spec.serving, md.spec.placement
    if serving.max_model_len is not None and serving.max_model_len > facts.max_context:
        raise InvalidSpec(
            f"spec.serving.maxModelLen: {serving.max_model_len} exceeds {facts.id}'s maximum "
            f"context of {facts.max_context} tokens"
        )
    return request_for_workload(Request(
        max_model_len=serving.max_model_len or min(facts.max_context, DEFAULT_MAX_MODEL_LEN),
        # --max-num-seqs is vLLM's concurrency cap only: vLLM needs KV for one full-length
        # sequence to start, not for maxNumSeqs of them (vllm/v1/core/kv_cache_utils.py,
        # check_enough_kv_cache_memory). The KV cache is sized for DEFAULT_KV_SEQUENCES, or
        # fewer when the cap allows fewer at once; a larger cap never reserves more.
        kv_sequences=min(serving.max_num_seqs or DEFAULT_KV_SEQUENCES, DEFAULT_KV_SEQUENCES),
        batched_tokens=serving.max_num_batched_tokens,
        max_num_seqs=serving.max_num_seqs,
        utilization=serving.gpu_memory_utilization,
        vllm=profile_for_image(serving.image).profile,
        tp_pin=placement.tensor_parallel_size,
        pp_pin=placement.pipeline_parallel_size,
        policy=Policy(placement.policy),
        min_replicas=max(md.spec.min_replicas(), 1),
        multi_node=MultiNode(placement.multi_node),
        multi_node_served=multi_node_served,
        mm=multimodal_args(serving.extra_args),
    ), md, facts)


def _check_pins(facts: ModelFacts, precision: Precision, req: Request) -> None:
    """A pin that breaks a vLLM rule is a spec error, whatever the pools."""
    if req.tp_pin is not None and (reason := model_rules(facts, precision, req.tp_pin, 1, tp_pinned=True)):
        raise InvalidSpec(f"spec.placement.tensorParallelSize: vLLM refuses TP {req.tp_pin} "
                          f"for {facts.id}: {reason}")
    if req.pp_pin is not None and (reason := model_rules(facts, precision, 1, req.pp_pin)):
        raise InvalidSpec(f"spec.placement.pipelineParallelSize: vLLM refuses PP {req.pp_pin} "
                          f"for {facts.id}: {reason}")


def _select_pools(md: ModelDeployment, pools: Sequence[GPUPool]) -> tuple[list[GPUPool], list[str]]:
    wanted = md.spec.placement.pools
    if not wanted:
        return sorted(pools, key=lambda p: p.name), []
    known = {p.name: p for p in pools}
    return [known[n] for n in sorted(set(wanted)) if n in known], sorted(set(wanted) - known.keys())


def _model_rule_rejections(facts: ModelFacts, precision: Precision, pools: Sequence[GPUPool],
                           tp_pin: int | None) -> list[Rejection]:
    widest = max((p.spec.gpus_per_node for p in pools), default=1)
    out = []
    for tp in tp_options(facts, widest):
        if reason := model_rules(facts, precision, tp, 1, tp_pinned=tp == tp_pin):
            out.append(Rejection(pool=ANY_POOL, tensor_parallel_size=tp, pipeline_parallel_size=1, reason=reason))
    return out


class _Search:
    """One planning problem; re-run with variations to suggest what would fit."""

    def __init__(self, md: ModelDeployment, facts: ModelFacts, pools: Sequence[GPUPool],
                 multi_node_served: bool = True) -> None:
        self.md, self.facts, self.pools = md, facts, pools
        self.precision = precision_for(facts, md.spec.model, md.spec.serving)
        self.weights = weights_for(facts, self.precision)
        self.request = build_request(md, facts, multi_node_served)
        self.shape = None if (w := md.spec.serving.workload) is None else (w.input_tokens, w.output_tokens)
        self._speeds: dict[tuple[object, ...], float | None] = {}

    def speed(self, c: Candidate, precision: Precision, weights: Weights, max_model_len: int) -> float | None:
        """Single-stream decode tokens/s of a layout (the performance model), cached."""
        key = (c.pool.name, c.tp, c.pp, c.nodes, c.batched_tokens, c.memory and c.memory.kv_tokens, max_model_len, precision)
        if key not in self._speeds:
            self._speeds[key] = decode_speed(self.facts, precision, weights, c, max_model_len, self.shape)
        return self._speeds[key]

    def best(self, precision: Precision | None = None, request: Request | None = None,
             pools: Sequence[GPUPool] | None = None) -> tuple[Candidate | None, list[Candidate]]:
        """The policy's choice and every candidate; `pools` (default: the allowed ones) lets the
        suggestions ask about hypothetical pools (planner/advice.py)."""
        precision = precision or self.precision
        request = request or self.request
        weights = self.weights if precision is self.precision else weights_for(self.facts, precision)
        candidates = all_candidates(self.facts, precision, weights, request, self.pools if pools is None else pools)
        feasible = [c for c in candidates if c.feasible]
        if not feasible:
            return None, candidates
        length = request.max_model_len
        key = policy_key(request.policy, lambda c: self.speed(c, precision, weights, length))
        return min(feasible, key=key), candidates


def _describe(c: Candidate) -> str:
    layout = f"TP {c.tp}" + (f" × PP {c.pp}" if c.pp > 1 else "")
    nodes = f" across {c.nodes} nodes" if c.nodes > 1 else ""
    return f"{c.gpus} × {c.pool.spec.gpu.product} in pool {c.pool.name} ({layout}{nodes})"


def _weights_format(precision: Precision) -> str:
    """` as gptq 4-bit` for quantized weights (a GPTQ checkpoint given by hfConfig says so), else ``."""
    q = precision.quantization
    if q is None:
        return ""
    named_width = any(ch.isdigit() for ch in q.method)  # fp8, mxfp4, nvfp4 say their width
    return f" as {q.method}" if named_width else f" as {q.method} {q.bits}-bit"


def _choice_reason(c: Candidate, chosen: str, req: Request, precision: Precision) -> str:
    m = c.memory
    assert m is not None
    cost = f" at ${c.cost:.2f}/h" if c.cost is not None else " (price unknown)"
    return (
        f"{chosen}: {_describe(c)}{cost}; uses {gib_text(m.needed)} of "
        f"{gib_text(m.budget)} GiB per GPU (weights {gib_text(m.weights)}{_weights_format(precision)}, KV {gib_text(m.kv_required)} "
        f"for {req.kv_sequences} × {req.max_model_len} tokens, overhead {gib_text(m.overhead)}); "
        f"KV cache holds {m.kv_tokens} tokens"
    )


UTILIZATION_CEILING = 0.95  # highest gpuMemoryUtilization suggested: vLLM's CUDA graphs and NCCL
# buffers are partly outside its budget, and 0.95 is the most vLLM's docs show in examples


def _largest_fitting_length(search: _Search) -> tuple[int, Candidate] | None:
    req = search.request
    low, high, fit = 128, req.max_model_len - 1, None
    while low <= high:  # KV need is monotone in length
        mid = (low + high) // 2
        found, _ = search.best(request=replace(req, max_model_len=mid))
        if found:
            fit, low = (mid, found), mid + 1
        else:
            high = mid - 1
    return fit


def _smallest_fitting_utilization(search: _Search) -> tuple[float, Candidate] | None:
    req = search.request
    steps = range(round(req.utilization * 100) + 1, round(UTILIZATION_CEILING * 100) + 1)
    for hundredths in steps:  # few steps: linear is clearer than bisection
        found, _ = search.best(request=replace(req, utilization=hundredths / 100))
        if found:
            return hundredths / 100, found
    return None


def _highest_fitting_lower_utilization(search: _Search, candidates: list[Candidate]) -> tuple[float, Candidate] | None:
    """When the memory fits but too little stays outside vLLM's budget (CUDA context, NCCL:
    overhead.utilization_rejection), the highest lower gpuMemoryUtilization that fits."""
    closest = _closest(candidates)
    if closest is None or closest.memory is None or not closest.memory.fits:
        return None
    req = search.request
    for hundredths in range(round(req.utilization * 100) - 1, 49, -1):  # the API's minimum is 0.5
        found, _ = search.best(request=replace(req, utilization=hundredths / 100))
        if found:
            return hundredths / 100, found
    return None


def _suggestions(search: _Search, candidates: list[Candidate]) -> list[str]:
    """Changes that would make the deployment fit, smallest change first: a memory knob, then
    the KV cache's precision, then what is served (context length), then the weights' precision,
    then where it runs (layouts across nodes, bigger GPUs)."""
    out: list[str] = []
    req, prec, md = search.request, search.precision, search.md
    if util := _smallest_fitting_utilization(search) or _highest_fitting_lower_utilization(search, candidates):
        out.append(f"set spec.serving.gpuMemoryUtilization: {util[0]:g} (fits {_describe(util[1])})")
    if md.spec.serving.kv_cache_dtype == KvCacheDtype.AUTO and prec.kv_bytes > 1:
        found, _ = search.best(precision=replace(prec, kv_bytes=1))
        if found:
            out.append(f"set spec.serving.kvCacheDtype: fp8 (fits {_describe(found)})")
    if fit := _largest_fitting_length(search):
        out.append(f"set spec.serving.maxModelLen: {fit[0]} or less (fits {_describe(fit[1])})")
    if prec.effective_quantization == "none" and md.spec.model.quantization is None:
        fp8 = replace(prec, linear_bytes=1.0, quantization_flag="fp8", effective_quantization="fp8", native=False,
                      quantization=online_fp8())
        found, _ = search.best(precision=fp8)
        if found:
            out.append(f"set spec.model.quantization: fp8 (fits {_describe(found)})")
    if multi_node_refusal(req) is not None:
        found, _ = search.best(request=replace(req, multi_node=MultiNode.ALLOWED, multi_node_served=True))
        if found:
            fix = "set spec.placement.multiNode: whenNeeded" if req.multi_node == MultiNode.NEVER \
                else "install LeaderWorkerSet"
            out.append(f"{fix} (fits {_describe(found)})")
    if (closest := _closest(candidates)) is not None:
        out += hardware_that_fits(closest, lambda pools: search.best(pools=pools)[0])
    return out


def _closest(candidates: list[Candidate]) -> Candidate | None:
    """The sized layout nearest to fitting (smallest need / budget), fewer GPUs on a tie: with
    multi-node layouts tried, a 32-GPU chain that misses by 20 % is closer than one node that
    misses by 9x; among layouts whose memory fits (refused for another reason), one node."""
    def key(c: Candidate) -> tuple[float, bool, float, int, str]:
        ratio = c.memory.needed / c.memory.budget if c.memory else 0.0
        # Layouts whose memory fits (refused for something else) tie: one node is nearer.
        return max(ratio, 1.0), c.nodes > 1, ratio, c.gpus, c.pool.name

    return min((c for c in candidates if c.memory is not None), key=key, default=None)


def _no_layout_reason(search: _Search) -> str:
    """Why no pool offers any layout at all: the pins, or the pools' node sizes."""
    req, facts = search.request, search.facts
    widest = max(p.spec.gpus_per_node for p in search.pools)
    if req.tp_pin and req.tp_pin > widest:
        return (f"tensorParallelSize {req.tp_pin} needs {req.tp_pin} GPUs in one node (vLLM runs "
                f"tensor parallelism within a node, only pipeline stages across nodes); the "
                f"largest node of the allowed pools has {widest}")
    if req.pp_pin and req.pp_pin > 1 and (refusal := multi_node_refusal(req)):
        return (f"pipelineParallelSize {req.pp_pin} fits in no single node of the allowed pools "
                f"at TP {req.tp_pin or 1}, and layouts across nodes are off: {refusal}")
    pins = " and ".join(f"{k} {v}" for k, v in (("tensorParallelSize", req.tp_pin),
                                                  ("pipelineParallelSize", req.pp_pin)) if v)
    return f"no pool offers a layout{' with ' + pins if pins else ''} that {facts.id} allows"


def _infeasible_reason(search: _Search, candidates: list[Candidate]) -> tuple[str, str]:
    """(failure, reason): one complete sentence; the per-layout detail is in `rejected`."""
    facts, req = search.facts, search.request
    if not search.pools:
        return "NoFeasibleLayout", "no GPU pools to plan on"
    if not candidates:
        return "NoFeasibleLayout", _no_layout_reason(search)
    refusal = multi_node_refusal(req)
    if refusal is not None:
        found, _ = search.best(request=replace(req, multi_node=MultiNode.ALLOWED, multi_node_served=True))
        if found is not None:
            failure = "MultiNodeUnavailable" if not req.multi_node_served else "NoFeasibleLayout"
            return failure, (f"{facts.id} fits no single node of the allowed pools; it needs "
                             f"{_describe(found)}, but layouts across nodes are off: {refusal}")
    pools = sorted({c.pool.name for c in candidates})
    closest = _closest(candidates)
    if closest is None:  # every pool is ruled out as a whole (the GPU generation: planner/gpu_rules.py)
        why = "; ".join(sorted({f"{c.pool.name}: {c.rejection}" for c in candidates}))
        return "NoFeasibleLayout", f"{facts.id} can run on no pool of the {len(pools)} allowed: {why}"
    return "NoFeasibleLayout", (f"{facts.id} fits no pool of the {len(pools)} allowed "
                                f"({', '.join(pools)}); the closest layout, {_describe(closest)}, "
                                f"{closest.rejection}; every layout tried is listed in rejected")


# Latency targets hold at a load: without one the planner cannot predict them (planner/workload.py).
SLO_WITHOUT_WORKLOAD = ("spec.serving.slo is not checked: it needs spec.serving.workload (the requests it "
                        "must hold for: inputTokens, outputTokens and concurrency or requestsPerSecond)")
REASON_SUGGESTIONS = 3  # what would fit, said in the reason too (status conditions show only it)


def _with_fixes(reason: str, suggestions: list[str]) -> str:
    """The reason, then the nearest changes that would fit (all of them are in suggestions)."""
    if not suggestions:
        return reason
    more = len(suggestions) - REASON_SUGGESTIONS
    tail = f" ({more} more in suggestions)" if more > 0 else ""
    return f"{reason}; it would fit with: {'; or '.join(suggestions[:REASON_SUGGESTIONS])}{tail}"


def plan_deployment(md: ModelDeployment, facts: ModelFacts, pools: Sequence[GPUPool],
                    multi_node_served: bool = True) -> Plan:
    """Choose the layout for `md` among `pools`, or say why none fits and what would.

    multi_node_served: whether the LeaderWorkerSet API that runs a replica across nodes is
    served (the operator reads API discovery; the CLI assumes it is unless --no-lws).
    Raises InvalidSpec for a spec vLLM cannot serve whatever the pools (pins, MTP drafting).
    """
    (facts, stored), (selected, missing) = as_served(facts, md.spec.serving.extra_args), _select_pools(md, pools)
    search = _Search(md, facts, selected, multi_node_served)
    req, prec = search.request, search.precision
    _check_pins(facts, prec, req)
    vllm = profile_for_image(md.spec.serving.image)
    base: dict[str, Any] = dict(
        vllm_version=vllm.version, notes=[*([vllm.note] if vllm.note else []), *facts.notes],
        parameters_source=facts.parameter_provenance, checkpoint_gib=gib(stored),
        name=md.metadata.name, namespace=md.metadata.namespace, model=facts.id,
        max_model_len=req.max_model_len, max_num_seqs=md.spec.serving.max_num_seqs,
        kv_sequences=req.kv_sequences, kv_cache_dtype=str(md.spec.serving.kv_cache_dtype),
        quantization=prec.effective_quantization, online_quantization=prec.quantization_flag is not None,
        dtype=prec.dtype, requested_dtype=str(md.spec.model.dtype),
        policy=str(req.policy), replicas=md.spec.replicas, multi_node=str(req.multi_node),
    )
    if md.spec.serving.slo is not None and md.spec.serving.workload is None:
        base["notes"].append(SLO_WITHOUT_WORKLOAD)
    if missing and not selected:
        known = ", ".join(sorted(p.name for p in pools)) or "none"
        return Plan(**base, feasible=False, failure="PoolNotFound",
                    reason=f"no GPUPool named {', '.join(missing)} (known: {known})")
    best, candidates = search.best()
    rejected = _model_rule_rejections(facts, prec, selected, req.tp_pin) + [
        Rejection(pool=c.pool.name, tensor_parallel_size=c.tp, pipeline_parallel_size=c.pp, reason=c.rejection)
        for c in candidates if c.rejection
    ]
    if best is None:
        failure, reason = _infeasible_reason(search, candidates)
        fixes = _suggestions(search, candidates)
        return Plan(**base, feasible=False, failure=failure, reason=_with_fixes(reason, fixes),
                    rejected=rejected, suggestions=fixes)
    workload_fields, best, reason_note, meeting = _sized_for_load(search, candidates, best)
    m = best.memory
    assert m is not None
    chosen = chosen_words(str(req.policy), sum(1 for c in candidates if c.feasible), meeting,
                          md.spec.serving.slo is not None)
    reason = _choice_reason(best, chosen, req, prec) + reason_note
    if missing:
        reason += f" (ignored unknown pools: {', '.join(missing)})"
    # The weight-only kernel on an older GPU; the quantized MLP's kernel at this TP; what the
    # multimodal encoder profiling holds.
    layout_notes = (weight_only_note(prec, pool_capability(best.pool)), slice_note(facts, prec, best.tp),
                    encoder_note(req.vllm, facts, profiling_step(req, best.pool, best.tp)))
    base["notes"] = [*base["notes"], *(note for note in layout_notes if note)]
    return Plan(
        **base,
        feasible=True,
        pool=best.pool.name,
        gpu_product=best.pool.spec.gpu.product,
        gpu_memory_gib=best.pool.spec.gpu.memory_gi_b,
        tensor_parallel_size=best.tp,
        pipeline_parallel_size=best.pp,
        gpus_per_replica=best.gpus,
        nodes_per_replica=best.nodes,
        gpus_per_pod=best.gpus_per_pod,
        max_num_batched_tokens=max(best.batched_tokens, md.spec.serving.max_num_seqs or 0),
        kv_cache_tokens=m.kv_tokens,
        expert_parallel=facts.is_moe and best.tp > 1,
        memory_per_gpu=MemoryPerGPU(
            weights_gib=gib(m.weights), kv_cache_gib=gib(m.kv_available),
            kv_required_gib=gib(m.kv_required), overhead_gib=gib(m.overhead),
            activation_gib=gib(m.detail.activation), non_torch_gib=gib(m.detail.non_torch),
            cuda_graph_gib=gib(m.detail.cuda_graphs),
            outside_budget_gib=gib(m.detail.outside_budget), budget_gib=gib(m.budget),
        ),
        cost_per_hour=best.cost,
        decode_tokens_per_second=None if (tokens := search.speed(best, prec, search.weights, req.max_model_len)) is None
        else round(tokens, 1),
        reason=reason,
        rejected=rejected,
        **workload_fields,
    )


def _sized_for_load(search: _Search, candidates: list[Candidate],
                    best: Candidate) -> tuple[dict[str, Any], Candidate, str, int | None]:
    """With spec.serving.workload: the layout × replica count for the load, its prediction, and
    how many layouts meet the SLO (None without a workload or GPU specs)."""
    load = LoadRequest.from_spec(search.md)
    if load is None:
        return {"autoscaling_target": autoscaling_target(search.md, None, None)}, best, "", None
    sizer = WorkloadSizer(search.facts, search.precision, search.weights, load, search.request.vllm,
                          search.request.max_model_len)
    choice = choose(sizer, [c for c in candidates if c.feasible], search.request.policy, best, _describe)
    fields: dict[str, Any] = {"performance_note": choice.note}
    note = f"; {choice.note}" if choice.note else ""
    if choice.sizing is not None:
        s = choice.sizing
        perf = performance(s, load, sizer.capacity(s.candidate))
        kv_tokens = s.candidate.memory.kv_tokens if s.candidate.memory else None
        fields.update(performance=perf, replicas_for_workload=s.replicas_for_workload,
                      autoscaling_target=autoscaling_target(search.md, perf, kv_tokens))
        p = s.prediction
        note = (f"; at the workload {replicas_sentence(s, load)}: "
                f"TTFT {p.ttft_ms:.0f} ms, TPOT {p.tpot_ms:.1f} ms, {p.output_tokens_per_second:.0f} output tokens/s") + note
    return fields, choice.candidate, note, choice.meeting


__all__ = ["Weights", "build_request", "plan_deployment"]
