"""Sizing for a workload: replica count, predicted latency, cost per million tokens. Pure.

For each feasible layout, the smallest replica count whose per-replica share of the load
meets the SLO (without an SLO: runs without queueing for a KV slot), the prediction for one
replica at its share, and the hourly cost of them all. `cheapest` then means the lowest $/h
that meets the SLO; `fastest` the lowest TPOT. Replica counts are searched by doubling and
bisection: latency only grows with the load per replica (tests/unit/test_perf_model.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..api import GPUPool, ModelDeployment, Policy, Slo, Workload
from ..api.status import Performance
from ..errors import InvalidSpec
from ..facts import ModelFacts
from ..facts.gpus import missing_gpu_spec_fields
from ..perf import Prediction
from ..perf import Workload as PerfWorkload
from .memory import Precision, Weights
from .overhead import VllmProfile, batch_defaults
from .performance import ReplicaModel, replica_model
from .search import Candidate, Request

MAX_REPLICAS = 1000  # spec.replicas and autoscaling.maxReplicas allow at most this many


@dataclass(frozen=True)
class LoadRequest:
    """The workload part of a spec: the load, its targets, and how replicas are decided."""

    workload: Workload
    slo: Slo | None
    fixed_replicas: int | None  # spec.replicas given and no autoscaling
    autoscaled: bool
    min_replicas: int
    max_replicas: int
    max_num_seqs: int | None

    @classmethod
    def from_spec(cls, md: ModelDeployment) -> LoadRequest | None:
        serving, spec = md.spec.serving, md.spec
        if serving.workload is None:
            return None
        scaling = spec.autoscaling
        fixed = spec.replicas if scaling is None and "replicas" in spec.model_fields_set else None
        low = max(scaling.min_replicas, 1) if scaling is not None else 1
        high = scaling.max_replicas if scaling is not None else MAX_REPLICAS
        return cls(serving.workload, serving.slo, fixed, scaling is not None, low, high, serving.max_num_seqs)

    def share(self, replicas: int) -> PerfWorkload:
        """One replica's part of the load when `replicas` share it evenly."""
        w = self.workload
        if w.concurrency is not None:
            return PerfWorkload(w.input_tokens, w.output_tokens, concurrency=w.concurrency / replicas)
        assert w.requests_per_second is not None
        return PerfWorkload(w.input_tokens, w.output_tokens, requests_per_second=w.requests_per_second / replicas)


@dataclass(frozen=True)
class Sizing:
    """A layout at the workload: replicas it needs, and one replica at its share of the load."""

    candidate: Candidate
    replicas_for_workload: int
    meets_slo: bool  # at replicas_for_workload
    serving_replicas: int  # how many share the load in the plan (fixed, autoscaled or 1)
    prediction: Prediction  # one replica at load / serving_replicas
    best: Prediction  # one replica at load / replicas_for_workload (the SLO check)

    def cost_per_hour(self, fixed: bool) -> float | None:
        """$/h of the replicas that serve the load (the fixed count when spec.replicas is set)."""
        cost = self.candidate.cost
        count = self.serving_replicas if fixed else self.replicas_for_workload
        return None if cost is None else round(cost * count, 4)


def meets(p: Prediction, slo: Slo | None) -> bool:
    """The SLO holds (or, without one, no request waits for a KV slot and the rate is served)."""
    if p.saturated:
        return False
    if slo is None:
        return p.running >= p.concurrency - 1e-9
    return (slo.ttft_ms is None or p.ttft_ms <= slo.ttft_ms) and (slo.tpot_ms is None or p.tpot_ms <= slo.tpot_ms)


def slo_shortfall(p: Prediction, slo: Slo | None) -> float:
    """How far a prediction is from the SLO: the worst ratio predicted / target (≤ 1 meets)."""
    if slo is None:
        return 1.0 if meets(p, slo) else max(p.concurrency / max(p.running, 1e-9), 1.0 + 1e-9)
    ratios = [p.ttft_ms / slo.ttft_ms] if slo.ttft_ms else []
    ratios += [p.tpot_ms / slo.tpot_ms] if slo.tpot_ms else []
    return max(ratios + ([math.inf] if p.saturated else []))


def replica_capacity(c: Candidate) -> int:
    """Replicas of this layout the pool can hold (its maxNodes), at most MAX_REPLICAS."""
    spec = c.pool.spec
    if spec.max_nodes is None:
        return MAX_REPLICAS
    per_node = spec.gpus_per_node // c.gpus_per_pod if c.nodes == 1 else 1
    return max(1, min(MAX_REPLICAS, spec.max_nodes * per_node if c.nodes == 1 else spec.max_nodes // c.nodes))


def smallest_meeting(ok: Callable[[int], bool], low: int, high: int) -> int | None:
    """Smallest r in [low, high] with ok(r), for ok monotone (False…False True…True)."""
    if low > high:
        return None
    step, probe = 1, low
    while probe < high and not ok(probe):  # doubling finds a bracket in log steps
        low, probe, step = probe + 1, min(high, probe + step), step * 2
    if not ok(probe):
        return None
    while low < probe:
        mid = (low + probe) // 2
        if ok(mid):
            probe = mid
        else:
            low = mid + 1
    return probe


class WorkloadSizer:
    """Predicts and sizes candidates of one planning problem (caches per candidate)."""

    def __init__(self, facts: ModelFacts, precision: Precision, weights: Weights, load: LoadRequest,
                 vllm: VllmProfile, max_model_len: int) -> None:
        self.facts, self.precision, self.weights, self.load = facts, precision, weights, load
        self.vllm, self.max_model_len = vllm, max_model_len

    def model(self, c: Candidate) -> ReplicaModel | None:
        """One replica of layout `c` as a function of its load; None without GPU specs."""
        defaults = batch_defaults(self.vllm, c.pool.spec.gpu.product, c.pool.spec.gpu.memory_gi_b, self.max_model_len)
        return replica_model(self.facts, self.precision, self.weights, c, self.load.max_num_seqs or defaults.sequences)

    def predictor(self, c: Candidate) -> Callable[[int], Prediction] | None:
        """One replica's prediction as a function of the replica count; None without GPU specs."""
        model = self.model(c)
        if model is None:
            return None
        cache: dict[int, Prediction] = {}

        def at(replicas: int) -> Prediction:
            if replicas not in cache:
                cache[replicas] = model(self.load.share(replicas))
            return cache[replicas]

        return at

    def capacity(self, c: Candidate) -> Prediction | None:
        """One replica at the most requests in flight it serves within the SLO (without one:
        without waiting for a KV slot) — the replica's useful capacity at this request shape; at
        one request when not even that meets the SLO (`performance` then reports capacity 0)."""
        model = self.model(c)
        if model is None:
            return None
        w = self.load.workload

        def at(n: int) -> Prediction:
            return model(PerfWorkload(w.input_tokens, w.output_tokens, concurrency=float(n)))

        room = max(at(1).max_concurrency, 1)
        first_miss = smallest_meeting(lambda n: not meets(at(n), self.load.slo), 1, 2 * room)
        return at(max((first_miss or 2 * room + 1) - 1, 1))

    def size(self, c: Candidate) -> Sizing | None:
        """Replicas the load needs (up to what the pool holds) and the plan's replica count:
        spec.replicas when given, the autoscaling bounds around the need, else one."""
        at = self.predictor(c)
        if at is None:
            return None
        load = self.load
        cap = replica_capacity(c)
        found = smallest_meeting(lambda r: meets(at(r), load.slo), 1, cap)
        needed = found if found is not None else cap
        if load.fixed_replicas is not None:
            serving = max(load.fixed_replicas, 1)
        elif load.autoscaled:
            serving = min(max(needed, load.min_replicas), load.max_replicas)
        else:
            serving = 1
        meets_at_plan = meets(at(serving), load.slo) if load.fixed_replicas is not None else found is not None
        return Sizing(c, needed, meets_at_plan, serving, at(serving), at(needed))


def missing_specs_message(pool: GPUPool) -> str:
    """Why a pool's layout has no performance prediction, and which fields would give one."""
    fields = ", ".join(f"spec.gpu.{f}" for f in missing_gpu_spec_fields(pool.spec.gpu))
    return (f"no performance prediction: GPU {pool.spec.gpu.product} is not in the GPU catalog; "
            f"give GPUPool {pool.name} {fields}")


def request_for_workload(req: Request, md: ModelDeployment, facts: ModelFacts) -> Request:
    """With a workload: maxModelLen covers a request (when unset), the memory fit needs one
    maxModelLen sequence (the load itself is met by replicas), --max-num-seqs is only a cap.
    Raises InvalidSpec when a request is longer than maxModelLen or the model's context."""
    w = md.spec.serving.workload
    if w is None:
        return req
    need, given = w.tokens_per_request, md.spec.serving.max_model_len
    if given is not None and need > given:
        raise InvalidSpec(f"spec.serving.workload: inputTokens + outputTokens = {need} exceeds "
                          f"spec.serving.maxModelLen {given}")
    if need > facts.max_context:
        raise InvalidSpec(f"spec.serving.workload: inputTokens + outputTokens = {need} exceeds "
                          f"{facts.id}'s maximum context of {facts.max_context} tokens")
    return replace(req, max_model_len=given or max(req.max_model_len, need), kv_sequences=1)


def _tail(c: Candidate) -> tuple[object, ...]:
    return (c.nodes, -(c.memory.kv_tokens if c.memory else 0), c.pool.name, c.tp, c.pp)


def rank_key(policy: Policy, load: LoadRequest) -> Callable[[Sizing], tuple[object, ...]]:
    """Smaller is better: layouts meeting the SLO first (else the closest), then the policy:
    cheapest = lowest $/h for the load, fastest = lowest TPOT, fewestGPUs = fewest GPUs."""
    fixed = load.fixed_replicas is not None

    def key(s: Sizing) -> tuple[object, ...]:
        miss = 0.0 if s.meets_slo else round(slo_shortfall(s.best, load.slo), 6)
        cost = s.cost_per_hour(fixed)
        gpus = s.candidate.gpus * (s.serving_replicas if fixed else s.replicas_for_workload)
        tpot = round(s.prediction.tpot_ms, 6)
        if policy == Policy.FASTEST:
            return (miss, tpot, cost is None, cost or 0.0, gpus, *_tail(s.candidate))
        if policy == Policy.FEWEST_GPUS:
            return (miss, gpus, cost is None, cost or 0.0, tpot, *_tail(s.candidate))
        return (miss, cost is None, cost or 0.0, gpus, tpot, *_tail(s.candidate))

    return key


@dataclass(frozen=True)
class WorkloadChoice:
    """The layout chosen for the workload, its sizing (None: no GPU specs) and a note."""

    candidate: Candidate
    sizing: Sizing | None
    note: str | None
    meeting: int | None = None  # sized layouts that meet the SLO (None: none could be sized)


def choose(sizer: WorkloadSizer, feasible: Sequence[Candidate], policy: Policy, fallback: Candidate,
           describe: Callable[[Candidate], str]) -> WorkloadChoice:
    """Rank every feasible layout at the workload; without GPU specs anywhere keep `fallback`."""
    sized = [s for s in (sizer.size(c) for c in feasible) if s is not None]
    if not sized:
        return WorkloadChoice(fallback, None, missing_specs_message(fallback.pool))
    best = min(sized, key=rank_key(policy, sizer.load))
    notes = [] if best.meets_slo else [_miss_note(best, sizer.load, describe)]
    one = sizer.capacity(best.candidate)
    if one is not None and not meets(one, sizer.load.slo):
        notes.append(no_capacity_note(one))
    return WorkloadChoice(best.candidate, best, "; ".join(notes) or None, sum(1 for s in sized if s.meets_slo))


POLICY_WORDS = {"cheapest": "cheapest", "fewestGPUs": "fewest GPUs", "fastest": "fastest"}


def chosen_words(policy: str, feasible: int, meeting: int | None, slo: bool) -> str:
    """How the reason names the choice among `feasible` layouts: by the policy among those that
    meet the SLO (without one: serve the workload without queueing), or as the closest when
    none does (rank_key ranks by the shortfall first). `meeting` None: no workload was sized."""
    target = "spec.serving.slo" if slo else "the workload without queueing"
    if feasible <= 1:
        return "the only feasible layout"
    if meeting == 0:
        return f"closest to {target} of {feasible} feasible layouts (none meets it)"
    if meeting is not None and meeting < feasible:
        meet = "meet spec.serving.slo" if slo else "serve the workload without queueing"
        return f"{POLICY_WORDS[policy]} of the {meeting} feasible layouts that {meet} ({feasible} fit)"
    return f"{POLICY_WORDS[policy]} of {feasible} feasible layouts"


def no_capacity_note(one: Prediction) -> str:
    """Why `performance.capacityConcurrency` is 0: one replica misses `slo` already at one request
    in flight (`one`), so it serves no load within it; the autoscaling target falls back to its
    default (autoscaling_target.py)."""
    return (f"one replica misses spec.serving.slo even at one request in flight (TTFT {one.ttft_ms:.0f} ms, "
            f"TPOT {one.tpot_ms:.1f} ms): its capacity within the SLO is 0")


def _miss_note(s: Sizing, load: LoadRequest, describe: Callable[[Candidate], str]) -> str:
    p, slo = s.best, load.slo
    if slo is None:
        return (f"the workload does not fit without queueing: closest is {describe(s.candidate)} with "
                f"{s.replicas_for_workload} replicas (as many as its pool holds), {p.concurrency:.1f} requests "
                f"in flight per replica, {p.max_concurrency} fit its KV cache")
    parts = []
    if slo.ttft_ms is not None:
        parts.append(f"TTFT {p.ttft_ms:.0f} ms vs {slo.ttft_ms:g} ({(p.ttft_ms / slo.ttft_ms - 1) * 100:+.0f} %)")
    if slo.tpot_ms is not None:
        parts.append(f"TPOT {p.tpot_ms:.1f} ms vs {slo.tpot_ms:g} ({(p.tpot_ms / slo.tpot_ms - 1) * 100:+.0f} %)")
    return (f"no layout meets spec.serving.slo at the workload: closest is {describe(s.candidate)} with "
            f"{s.replicas_for_workload} replicas: " + ", ".join(parts))


def replicas_sentence(s: Sizing, load: LoadRequest) -> str:
    """How many replicas the load needs and how many the plan has, and what the prediction is of:
    one replica of the plan's count at its share (with one, the whole load: requests queue)."""
    needed = f"{s.replicas_for_workload} replica{'s' if s.replicas_for_workload != 1 else ''} needed"
    short = ""
    if s.serving_replicas < s.replicas_for_workload:
        short = " (raise spec.autoscaling.maxReplicas)" if load.autoscaled else " (raise spec.replicas or set spec.autoscaling)"
    share = "each at its share" if s.serving_replicas > 1 else "taking the whole load"
    return f"{needed}, {s.serving_replicas} planned{short}, {share}"


def performance(s: Sizing, load: LoadRequest, capacity: Prediction | None = None) -> Performance:
    """The plan's `performance` block: one replica at its share; cost per million tokens =
    GPUs × $/GPU-hour / (tokens/s × 3600) × 10^6."""
    p, c = s.prediction, s.candidate
    price = c.pool.spec.price_per_gpu_hour
    hourly = None if price is None else c.gpus * price

    def per_million(tokens_per_second: float) -> float | None:
        if hourly is None or tokens_per_second <= 0:
            return None
        return round(hourly / (tokens_per_second * 3600) * 1e6, 4)

    cap: tuple[int | None, float | None, float | None] = (None, None, None)
    if capacity is not None and not meets(capacity, load.slo):
        cap = (0, 0.0, None)  # not even one request in flight meets the SLO: no capacity within it
    elif capacity is not None:
        cap = (round(capacity.concurrency), round(capacity.output_tokens_per_second, 2),
               per_million(capacity.requests_per_second * load.workload.tokens_per_request))
    return Performance(
        ttft_ms=round(p.ttft_ms, 2), tpot_ms=round(p.tpot_ms, 3),
        output_tokens_per_second=round(p.output_tokens_per_second, 2),
        requests_per_second=round(p.requests_per_second, 4), concurrency=round(p.concurrency, 3),
        max_concurrency=p.max_concurrency, replicas=s.serving_replicas,
        cost_per_million_output_tokens=per_million(p.output_tokens_per_second),
        cost_per_million_tokens=per_million(p.requests_per_second * load.workload.tokens_per_request),
        meets_slo=meets(p, load.slo), capacity_concurrency=cap[0],
        capacity_output_tokens_per_second=cap[1], capacity_cost_per_million_tokens=cap[2],
    )
