"""Enumerate and evaluate layouts (pool, TP, PP, nodes) and order them by policy. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..api import GPUPool, MultiNode, Policy
from ..facts import ModelFacts
from .gpu_rules import pool_rule
from .memory import GIB, GpuMemory, Precision, Weights, gpu_memory
from .mm_args import VLLM_DEFAULTS, MultimodalArgs
from .overhead import ProfilingStep, VllmProfile, batch_defaults, overhead_for, utilization_rejection
from .rules import model_rules

MAX_NODES_SEARCHED = 16  # no single vLLM replica spans more nodes than this in practice


@dataclass(frozen=True)
class Request:
    """What the spec asks of a layout, with defaults applied."""

    max_model_len: int
    kv_sequences: int
    batched_tokens: int | None  # None: vLLM's default for the GPU size
    max_num_seqs: int | None  # --max-num-seqs when the user sets it
    utilization: float
    vllm: VllmProfile  # the memory accounting of the image's vLLM release
    tp_pin: int | None
    pp_pin: int | None
    policy: Policy
    min_replicas: int
    multi_node: MultiNode = MultiNode.WHEN_NEEDED
    multi_node_served: bool = True  # the LeaderWorkerSet API a multi-node replica runs on
    mm: MultimodalArgs = VLLM_DEFAULTS  # multimodal settings from extraArgs (vLLM defaults)


@dataclass(frozen=True)
class Candidate:
    pool: GPUPool
    tp: int
    pp: int
    nodes: int
    memory: GpuMemory | None
    batched_tokens: int
    rejection: str | None

    @property
    def gpus_per_pod(self) -> int:
        return self.tp if self.nodes > 1 else self.tp * self.pp

    @property
    def gpus(self) -> int:
        return self.tp * self.pp

    @property
    def cost(self) -> float | None:
        price = self.pool.spec.price_per_gpu_hour
        return None if price is None else round(price * self.gpus, 4)

    @property
    def feasible(self) -> bool:
        return self.rejection is None


def tp_options(facts: ModelFacts, gpus_per_node: int) -> list[int]:
    """Powers of two plus any head divisor that fits in a node (e.g. TP 5 for 40 heads)."""
    options = {1 << i for i in range(8) if 1 << i <= gpus_per_node}
    options |= {d for d in range(1, gpus_per_node + 1) if facts.attention_heads % d == 0}
    return sorted(options)


def _capacity_rejection(pool: GPUPool, c_gpus_per_pod: int, nodes: int, min_replicas: int) -> str | None:
    max_nodes = pool.spec.max_nodes
    if max_nodes is None:
        return None
    if nodes > max_nodes:
        return f"needs {nodes} nodes per replica; pool {pool.name} has at most {max_nodes}"
    per_node = pool.spec.gpus_per_node // c_gpus_per_pod if nodes == 1 else 1
    replicas = max_nodes * per_node if nodes == 1 else max_nodes // nodes
    if min_replicas > replicas:
        return f"{min_replicas} replicas need more than the pool's {max_nodes} nodes (it holds {replicas})"
    return None


def _memory_rejection(m: GpuMemory, pool: GPUPool, tp: int, pp: int, req: Request) -> str | None:
    gpu = pool.spec.gpu
    outside = utilization_rejection(req.vllm, m.detail, gpu.memory_gi_b, req.utilization)
    if outside:
        return outside
    if m.fits:
        return None
    layout = f"TP {tp}" + (f" × PP {pp}" if pp > 1 else "")
    return (
        f"needs {m.needed / GIB:.1f} GiB per GPU at {layout} (weights {m.weights / GIB:.1f} + "
        f"KV {m.kv_required / GIB:.1f} for {req.kv_sequences} × {req.max_model_len} tokens + "
        f"overhead {m.overhead / GIB:.1f}); each {gpu.product} gives {m.budget / GIB:.1f} GiB at "
        f"gpuMemoryUtilization {req.utilization:g}"
    )


def profiling_step(req: Request, pool: GPUPool, tp: int) -> ProfilingStep:
    """The profiling step vLLM runs for `req` at TP `tp` on `pool`'s GPU: --max-num-batched-tokens
    (the spec's, else vLLM's default for the GPU) and sampler rows (--max-num-seqs, at least the
    default: overhead_for says why)."""
    gpu = pool.spec.gpu
    defaults = batch_defaults(req.vllm, gpu.product, gpu.memory_gi_b, req.max_model_len)
    rows = max(req.max_num_seqs or 0, defaults.sequences)
    return ProfilingStep(tp, req.batched_tokens or defaults.tokens, rows, req.max_model_len, req.mm)


def evaluate(
    facts: ModelFacts, precision: Precision, weights: Weights, req: Request,
    pool: GPUPool, tp: int, pp: int, nodes: int, explain: bool = True,
) -> Candidate:
    spec = pool.spec
    step = profiling_step(req, pool, tp)
    batched = step.tokens
    overhead = overhead_for(
        req.vllm, facts, tp=tp, pp=pp, tokens=batched, rows=step.rows, nvlink=spec.gpu.nvlink,
        max_model_len=req.max_model_len, mm=req.mm,
    )
    memory = gpu_memory(
        facts, precision, weights, tp=tp, pp=pp, gpu_gib=spec.gpu.memory_gi_b,
        utilization=req.utilization, max_model_len=req.max_model_len,
        kv_sequences=req.kv_sequences, overhead=overhead,
    )
    gpus_per_pod = tp if nodes > 1 else tp * pp
    if not explain:  # a quick probe: only whether memory fits matters
        fits = memory.fits and not utilization_rejection(req.vllm, overhead, spec.gpu.memory_gi_b, req.utilization)
        return Candidate(pool, tp, pp, nodes, memory, batched, None if fits else "does not fit")
    rejection = _memory_rejection(memory, pool, tp, pp, req) or _capacity_rejection(
        pool, gpus_per_pod, nodes, req.min_replicas
    )
    return Candidate(pool, tp, pp, nodes, memory, batched, rejection)


def _pinned(req: Request, tp: int, pp: int) -> bool:
    return (req.tp_pin is None or req.tp_pin == tp) and (req.pp_pin is None or req.pp_pin == pp)


def single_node_candidates(
    facts: ModelFacts, precision: Precision, weights: Weights, req: Request, pool: GPUPool
) -> list[Candidate]:
    """Every layout of one replica on one node of `pool` that the pins and vLLM's rules allow."""
    gpn = pool.spec.gpus_per_node
    if reason := pool_rule(facts, precision, pool):  # the GPU generation rules out every layout
        return [Candidate(pool, req.tp_pin or 1, req.pp_pin or 1, 1, None, 0, reason)]
    out: list[Candidate] = []
    for tp in tp_options(facts, gpn):
        if model_rules(facts, precision, tp, 1, tp_pinned=req.tp_pin == tp):
            continue  # model-level rule: reported once, not per pool
        # PP inside one node only pays off without NVLink (SIZING-FACTS rule 12), unless pinned.
        pps = range(1, gpn // tp + 1) if not pool.spec.gpu.nvlink else sorted({1, req.pp_pin or 1})
        for pp in pps:
            if tp * pp <= gpn and _pinned(req, tp, pp) and not model_rules(facts, precision, tp, pp,
                                                                            tp_pinned=req.tp_pin == tp):
                out.append(evaluate(facts, precision, weights, req, pool, tp, pp, 1))
    return out


def multi_node_candidates(
    facts: ModelFacts, precision: Precision, weights: Weights, req: Request, pool: GPUPool
) -> list[Candidate]:
    """Layouts with one pipeline stage per node (SIZING-FACTS rule 12: TP within a node, PP across
    nodes) at the widest TP the model allows in a node: a narrower TP pin runs its pipeline
    stages inside one node instead (single_node_candidates). Reports only what
    informs: the smallest node count that fits and the one just below it (or, when none fits,
    the largest tried): fewer nodes never fit once more do not."""
    gpn = pool.spec.gpus_per_node
    if pool_rule(facts, precision, pool):
        return []  # the GPU generation rules the pool out (reported by single_node_candidates)
    allowed = [t for t in tp_options(facts, gpn) if not model_rules(facts, precision, t, 1, tp_pinned=req.tp_pin == t)]
    tp = max(allowed, default=0)
    if not tp or req.tp_pin not in (None, tp):
        return []
    limit = min(MAX_NODES_SEARCHED, pool.spec.max_nodes or MAX_NODES_SEARCHED, facts.layers)
    counts = [n for n in range(2, limit + 1)
              if _pinned(req, tp, n) and not model_rules(facts, precision, tp, n, tp_pinned=req.tp_pin == tp)]
    out: list[Candidate] = []
    previous: Candidate | None = None
    for nodes in counts:
        c = evaluate(facts, precision, weights, req, pool, tp, nodes, nodes, explain=False)
        if c.memory is not None and c.memory.fits:
            if previous is not None:
                out.append(evaluate(facts, precision, weights, req, pool, tp, previous.pp, previous.nodes))
            out.append(evaluate(facts, precision, weights, req, pool, tp, nodes, nodes))
            return out
        previous = c
    if previous is not None:
        out.append(evaluate(facts, precision, weights, req, pool, tp, previous.pp, previous.nodes))
    return out


def multi_node_refusal(req: Request) -> str | None:
    """Why layouts across nodes are not considered at all (None: they may be)."""
    if req.multi_node == MultiNode.NEVER:
        return "spec.placement.multiNode is never"
    if not req.multi_node_served:
        return "the LeaderWorkerSet API (leaderworkerset.x-k8s.io/v1) that runs them is not served"
    return None


def all_candidates(
    facts: ModelFacts, precision: Precision, weights: Weights, req: Request, pools: Sequence[GPUPool]
) -> list[Candidate]:
    """Single-node layouts of every pool; layouts across nodes only when allowed and served, and
    (multiNode whenNeeded, the default) only when no single node of any pool holds the model:
    a Ray-connected chain of nodes is slower, fails more often and costs the same GPUs, so a
    platform engineer takes it only when nothing else fits. With multiNode allowed, a pool offers
    them when its own nodes cannot hold the model (the policy then chooses among all pools)."""
    single = {p.name: single_node_candidates(facts, precision, weights, req, p) for p in pools}
    if multi_node_refusal(req) is not None:
        return [c for p in pools for c in single[p.name]]
    needed = not any(c.feasible for cs in single.values() for c in cs)
    out: list[Candidate] = []
    for pool in pools:
        out += single[pool.name]
        pool_fits = any(c.feasible for c in single[pool.name])
        if needed or (req.multi_node == MultiNode.ALLOWED and not pool_fits):
            out += multi_node_candidates(facts, precision, weights, req, pool)
    return out


def policy_key(policy: Policy, speed: Callable[[Candidate], float | None]) -> Callable[[Candidate], tuple[object, ...]]:
    """Sort key: smaller is better. `speed` is the single-stream decode tokens/s of the
    performance model (None: the GPU has no specs; such layouts rank after the known ones for
    `fastest`). Ties broken deterministically (KV headroom, name, TP)."""

    def key(c: Candidate) -> tuple[object, ...]:
        cost = c.cost
        unknown = cost is None
        tokens = speed(c)
        fast = (tokens is None, -round(tokens or 0.0, 6))
        kv = c.memory.kv_tokens if c.memory else 0
        tail = (c.nodes, -kv, c.pool.name, c.tp, c.pp)
        if policy == Policy.FEWEST_GPUS:
            return (c.gpus, unknown, cost or 0.0, *fast, *tail)
        if policy == Policy.FASTEST:
            return (*fast, unknown, cost or 0.0, c.gpus, *tail)
        return (unknown, cost or 0.0, c.gpus, *fast, *tail)

    return key
