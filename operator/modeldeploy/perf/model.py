"""Time to first token, time per output token and throughput of one vLLM replica. Pure.

The physics (all per GPU of the most loaded pipeline stage; docs/PERFORMANCE.md explains it):

- A decode step reads the dense weights, the experts its batch touches and every running
  sequence's KV cache from memory, and multiplies `batch` tokens through the active weights:
  `max(bytes / bandwidth, FLOPs / TFLOP/s)`, plus the all-reduce of each layer's activations
  over the GPU link (TP > 1), plus a per-step overhead that grows with layers, TP and batch.
  Pipeline stages, expert parallelism and hand-offs between nodes: `parallel.py`.
- A prefill of `L` tokens is compute-bound: `L` × 2 × active parameters + causal attention,
  split into chunks of `maxNumBatchedTokens`, each chunk a step with its own overhead, plus
  the CPU dispatch of its layers (a prefill runs outside vLLM's CUDA graphs).
- Closed loop at concurrency N: at most `maxConcurrency` sequences fit the KV cache; the rest
  wait for a slot. Prefills of arriving requests take a share ρ = λ·P of the engine's time,
  so decode slows to step / (1 − ρ) and a new prompt waits for the prefills ahead of it
  (M/D/1: ρ·P / 2(1 − ρ)). λ, the request rate, is solved so that Little's law holds:
  N = λ · (TTFT + (output − 1) · TPOT).

The GPU enters only through its specifications (`Hardware`); the constants are fitted once
(`constants.FITTED`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .constants import PerfConstants
from .load import LayoutLoad
from .parallel import DEFAULT_NETWORK_GBPS, allreduce_ms, expert_imbalance, handoff_ms

MAX_PREFILL_SHARE = 0.98  # ρ stays below 1: beyond it the queue grows without bound
# A grouped expert GEMM with m token rows per expert fills the tensor cores at about
# m / (m + 64): Hopper's wgmma tiles are 64 rows tall (CUTLASS sm90 grouped GEMM), so an expert
# that sees a handful of tokens runs mostly empty tiles.
EXPERT_GEMM_HALF_ROWS = 64.0
# A new request waits on average half of the step under way, and the step that carries its
# prefill also advances every running decode (one more decode step): 1.5 steps before its
# first token, besides its prefill (fixed, not fitted: fitting it traded off against the
# prefill constants without lowering the leave-one-model-out error, docs/PERFORMANCE.md).
FIRST_TOKEN_STEPS = 1.5


@dataclass(frozen=True)
class Hardware:
    """What the model needs of a GPU: memory bandwidth, tensor TFLOP/s, the TP group's link
    and the node network per GPU (GB/s)."""

    bandwidth_gbps: float
    tflops: float
    link_gbps: float
    network_gbps: float = DEFAULT_NETWORK_GBPS


@dataclass(frozen=True)
class Workload:
    """Per replica: prompt and output tokens of a request; `concurrency` requests in flight
    (closed loop) or `requests_per_second` arriving (open loop)."""

    input_tokens: int
    output_tokens: int
    concurrency: float | None = None
    requests_per_second: float | None = None


@dataclass(frozen=True)
class Prediction:
    """One replica at its load. Times in ms, rates per second; `running` ≤ `max_concurrency`."""

    ttft_ms: float
    tpot_ms: float
    concurrency: float
    running: float
    requests_per_second: float
    output_tokens_per_second: float
    max_concurrency: int
    saturated: bool  # an open-loop rate above what the replica can serve: the queue grows


def _ms(seconds: float) -> float:
    return seconds * 1e3


def _overhead_ms(load: LayoutLoad, k: PerfConstants, batch: float) -> float:
    """Per-stage software cost of one step: layers × (launch + TP sync + per-sequence work)."""
    per_layer = k.layer_us + k.tp_layer_us * math.log2(load.tp) + k.sequence_layer_us * batch
    return load.layers * per_layer / 1e3


def _memory_ms(bytes_read: float, hw: Hardware, k: PerfConstants) -> float:
    return _ms(bytes_read / (hw.bandwidth_gbps * 1e9 * min(k.bandwidth_efficiency, 1.0)))


def _compute_ms(flops: float, hw: Hardware, k: PerfConstants) -> float:
    return _ms(flops / (hw.tflops * 1e12 * min(k.compute_efficiency, 1.0)))


def decode_step_ms(load: LayoutLoad, hw: Hardware, k: PerfConstants, batch: float, context: float) -> float:
    """Time per output token with `batch` running sequences of mean `context` tokens, ms.

    Each of the pp stages runs pp micro-batches of batch/pp sequences per token (PP = 1: one
    batch): per micro-batch it reads its dense weights, the experts the micro-batch touches
    (on the busiest GPU under EP) and the micro-batch's KV, or computes its tokens, whichever
    is slower, then all-reduces and pays the per-layer overhead; the token also crosses the
    pp − 1 hand-offs.
    """
    micro = batch / load.pp
    bytes_read = (load.dense_bytes + load.expert_bytes * expert_imbalance(load, micro)
                  + micro * load.kv_read_bytes(context))
    compute = _compute_ms(micro * load.flops_per_token, hw, k)
    stage = (max(_memory_ms(bytes_read, hw, k), compute) + allreduce_ms(load, hw.link_gbps, micro)
             + _overhead_ms(load, k, micro))
    return k.step_us / 1e3 + load.pp * stage + handoff_ms(load, hw.link_gbps, hw.network_gbps, micro)


def prefill_ms(load: LayoutLoad, hw: Hardware, k: PerfConstants, tokens: int, chunk: int) -> float:
    """Engine time to prefill one prompt of `tokens`, in chunks of `chunk` tokens, ms.

    Compute-bound: 2 × active parameters per token plus causal attention (grows with the
    prompt: L²/2 token pairs), routed experts at their grouped-GEMM tile efficiency; each chunk
    is one engine step. With PP the chunks flow through the stages one after another, so the
    prompt takes (chunks + pp − 1) stage-chunk times (the pipeline fills once).
    """
    chunks = max(1, math.ceil(tokens / max(chunk, 1)))
    dense_flops = tokens * (load.flops_per_token - load.expert_flops_per_token)
    flops = dense_flops + load.attention_flops_per_token2 * tokens * tokens / 2
    if load.experts > 1:
        rows = min(tokens, chunk) * load.experts_per_token / load.experts  # per expert per chunk
        flops += tokens * load.expert_flops_per_token * (rows + EXPERT_GEMM_HALF_ROWS) / rows
    weights = load.dense_bytes + load.expert_bytes * expert_imbalance(load, min(tokens, chunk))
    per_chunk = (max(_compute_ms(flops / chunks, hw, k), _memory_ms(weights, hw, k))
                 + allreduce_ms(load, hw.link_gbps, tokens / chunks) + _overhead_ms(load, k, 1))
    hand_offs = handoff_ms(load, hw.link_gbps, hw.network_gbps, tokens / chunks)
    return chunks * k.step_us / 1e3 + (chunks + load.pp - 1) * per_chunk + hand_offs


def max_concurrency(kv_tokens: int, workload: Workload) -> int:
    """Requests whose whole context (input + output) the KV cache holds at once."""
    return kv_tokens // max(workload.input_tokens + workload.output_tokens, 1)


@dataclass(frozen=True)
class _Engine:
    """A replica with `running` sequences decoding; answers latency at a request rate."""

    step: float
    prefill: float
    dispatch: float  # CPU dispatch of the prefill's layers, ms (prefill_layer_us)
    output_tokens: int
    running: float
    closed_loop: bool
    k: PerfConstants

    def latency(self, rate_per_ms: float) -> tuple[float, float]:
        """(TTFT, TPOT) in ms when requests arrive at `rate_per_ms` (no slot wait).

        A new prompt waits for the step under way and the prefills ahead of it. Closed-loop
        clients with equal request lengths arrive in partial waves: a prompt finds a share
        (`arrival_burst`) of the other running requests' prefills ahead of it. Open-loop
        (Poisson) arrivals queue as M/D/1: ρ·P / 2(1 − ρ).
        """
        share = min(rate_per_ms * self.prefill, MAX_PREFILL_SHARE)
        tpot = self.step / (1 - share)
        if self.closed_loop:
            queue = self.k.arrival_burst * max(self.running - 1, 0.0) * self.prefill / 2
        else:
            queue = share * self.prefill / (2 * (1 - share))
        ttft = self.dispatch + self.prefill + FIRST_TOKEN_STEPS * self.step + queue
        return ttft, tpot

    def request_ms(self, rate_per_ms: float) -> float:
        ttft, tpot = self.latency(rate_per_ms)
        return ttft + (self.output_tokens - 1) * tpot

    def closed_loop_rate(self) -> float:
        """λ (per ms) with `running` requests in flight: λ = running / request time(λ)."""
        low, high = 0.0, MAX_PREFILL_SHARE / self.prefill
        for _ in range(60):  # bisection: the left side grows with λ, the right side shrinks
            mid = (low + high) / 2
            if mid * self.request_ms(mid) < self.running:
                low = mid
            else:
                high = mid
        return low


@dataclass(frozen=True)
class Limits:
    """What caps a replica's batch: KV cache tokens, vLLM's --max-num-seqs, the chunk size."""

    kv_tokens: int
    max_num_seqs: int
    chunk: int  # --max-num-batched-tokens


@dataclass(frozen=True)
class _Replica:
    """One replica at a workload: the inputs every step of a prediction reads."""

    load: LayoutLoad
    hw: Hardware
    k: PerfConstants
    workload: Workload
    limits: Limits


def _engine(r: _Replica, running: float, closed_loop: bool) -> _Engine:
    context = r.workload.input_tokens + r.workload.output_tokens / 2
    return _Engine(
        step=decode_step_ms(r.load, r.hw, r.k, running, context),
        prefill=prefill_ms(r.load, r.hw, r.k, r.workload.input_tokens, r.limits.chunk),
        dispatch=r.k.prefill_layer_us * r.load.layers * r.load.pp / 1e3,
        output_tokens=r.workload.output_tokens, running=running, closed_loop=closed_loop, k=r.k,
    )


def _at_concurrency(r: _Replica, concurrency: float, closed_loop: bool) -> Prediction:
    """`concurrency` requests in flight; beyond what the KV cache (and --max-num-seqs) lets
    run at once they wait for a slot."""
    room = max_concurrency(r.limits.kv_tokens, r.workload)
    cap = float(min(room, r.limits.max_num_seqs))
    # A fraction of a request in flight (a light open-loop load) is a part-time batch of one.
    running = max(min(concurrency, cap), min(concurrency, 1.0), 1e-9)
    engine = _engine(r, running, closed_loop)
    rate = engine.closed_loop_rate()
    ttft, tpot = engine.latency(rate)
    wait = max(concurrency / rate - engine.request_ms(rate), 0.0) if concurrency > running else 0.0
    total_ttft = ttft + wait
    request = total_ttft + (r.workload.output_tokens - 1) * tpot
    rps = concurrency / request * 1e3  # Little's law: N = λ · latency
    return Prediction(
        ttft_ms=total_ttft, tpot_ms=tpot, concurrency=concurrency, running=running,
        requests_per_second=rps, output_tokens_per_second=rps * r.workload.output_tokens,
        max_concurrency=room, saturated=False,
    )


def _open_loop(r: _Replica) -> Prediction:
    """`requests_per_second` arriving: the concurrency that serves it, by bisection
    (throughput grows with concurrency); saturated when a full replica cannot keep up."""
    rate = float(r.workload.requests_per_second or 0.0)
    cap = float(max(min(max_concurrency(r.limits.kv_tokens, r.workload), r.limits.max_num_seqs), 1))

    def at(concurrency: float) -> Prediction:
        return _at_concurrency(r, concurrency, closed_loop=False)

    full = at(cap)
    if full.requests_per_second < rate:
        return Prediction(**{**full.__dict__, "saturated": True})
    low, high = 0.0, cap
    for _ in range(50):
        mid = (low + high) / 2
        if mid > 0 and at(mid).requests_per_second >= rate:
            high = mid
        else:
            low = mid
    return at(max(high, 1e-6))


def predict(load: LayoutLoad, hw: Hardware, k: PerfConstants, workload: Workload, limits: Limits) -> Prediction:
    """Latency and throughput of one replica at `workload` (its share of the load)."""
    replica = _Replica(load, hw, k, workload, limits)
    if workload.requests_per_second is not None:
        return _open_loop(replica)
    concurrency = float(workload.concurrency or 1.0)
    return _at_concurrency(replica, concurrency, closed_loop=True)
