"""Time to first token, time per output token and throughput of one vLLM replica. Pure.

The physics (all per GPU of the most loaded pipeline stage; docs/PERFORMANCE.md explains it):

- A decode step reads the dense weights, the experts its batch touches and every running
  sequence's KV cache from memory, and multiplies `batch` tokens through the active weights:
  `max(bytes / bandwidth, FLOPs / TFLOP/s)`, plus the all-reduce of each layer's activations
  over the GPU link (TP > 1), plus a per-step overhead that grows with layers, TP and batch.
- A prefill of `L` tokens is compute-bound: `L` × 2 × active parameters + causal attention,
  split into chunks of `maxNumBatchedTokens`, each chunk a step with its own overhead.
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

MAX_PREFILL_SHARE = 0.98
# A grouped expert GEMM with m token rows per expert fills the tensor cores at about
# m / (m + 64): Hopper's wgmma tiles are 64 rows tall (CUTLASS sm90 grouped GEMM), so an expert
# that sees a handful of tokens runs mostly empty tiles.
EXPERT_GEMM_HALF_ROWS = 64.0  # ρ stays below 1: beyond it the queue grows without bound
# Between nodes (PP across nodes) activations cross the network: 400 Gb/s per GPU
# (AWS p5: 3,200 Gbps EFA for 8 H100s, https://aws.amazon.com/ec2/instance-types/p5/).
INTER_NODE_GBPS = 50.0


@dataclass(frozen=True)
class Hardware:
    """What the model needs of a GPU: memory bandwidth, tensor TFLOP/s, link bandwidth (GB/s)."""

    bandwidth_gbps: float
    tflops: float
    link_gbps: float


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


def _comm_ms(load: LayoutLoad, hw: Hardware, k: PerfConstants, tokens: float) -> float:
    """Two all-reduces per layer (attention, MLP) of the step's activations over the GPU link."""
    if load.tp <= 1:
        return 0.0
    volume = 2 * load.layers * tokens * load.allreduce_bytes_per_token * 2 * (load.tp - 1) / load.tp
    return _ms(volume / (hw.link_gbps / 2 * 1e9 * min(k.link_efficiency, 1.0)))


def _hops_ms(load: LayoutLoad, hw: Hardware, tokens: float) -> float:
    """Activations handed from one pipeline stage to the next (network across nodes)."""
    if load.pp <= 1:
        return 0.0
    link = INTER_NODE_GBPS if load.nodes > 1 else hw.link_gbps / 2
    per_hop = tokens * load.allreduce_bytes_per_token / (link * 1e9)
    return _ms(per_hop) * (load.pp - 1)


def decode_step_ms(load: LayoutLoad, hw: Hardware, k: PerfConstants, batch: float, context: float) -> float:
    """One decode step for `batch` running sequences of mean `context` tokens, ms."""
    bytes_read = (load.dense_bytes + load.expert_bytes * load.touched_expert_fraction(batch)
                  + batch * load.kv_read_bytes(context))
    memory = _ms(bytes_read / (hw.bandwidth_gbps * 1e9 * min(k.bandwidth_efficiency, 1.0)))
    compute = _ms(batch * load.flops_per_token / (hw.tflops * 1e12 * min(k.compute_efficiency, 1.0)))
    stage = max(memory, compute) + _comm_ms(load, hw, k, batch) + _overhead_ms(load, k, batch)
    return k.step_us / 1e3 + load.pp * stage + _hops_ms(load, hw, batch)


def prefill_ms(load: LayoutLoad, hw: Hardware, k: PerfConstants, tokens: int, chunk: int) -> float:
    """Engine time to prefill one prompt of `tokens`, in chunks of `chunk` tokens, ms."""
    chunks = max(1, math.ceil(tokens / max(chunk, 1)))
    dense_flops = tokens * (load.flops_per_token - load.expert_flops_per_token)
    flops = dense_flops + load.attention_flops_per_token2 * tokens * tokens / 2
    if load.experts > 1:
        rows = min(tokens, chunk) * load.experts_per_token / load.experts  # per expert per chunk
        flops += tokens * load.expert_flops_per_token * (rows + EXPERT_GEMM_HALF_ROWS) / rows
    compute = _ms(flops / (hw.tflops * 1e12 * min(k.compute_efficiency, 1.0)))
    weights = load.dense_bytes + load.expert_bytes * load.touched_expert_fraction(min(tokens, chunk))
    memory = chunks * _ms(weights / (hw.bandwidth_gbps * 1e9 * min(k.bandwidth_efficiency, 1.0)))
    stage = max(compute, memory) + _comm_ms(load, hw, k, tokens) + chunks * _overhead_ms(load, k, 1)
    return chunks * k.step_us / 1e3 + load.pp * stage + _hops_ms(load, hw, tokens)


def max_concurrency(kv_tokens: int, workload: Workload) -> int:
    """Requests whose whole context (input + output) the KV cache holds at once."""
    return kv_tokens // max(workload.input_tokens + workload.output_tokens, 1)


@dataclass(frozen=True)
class _Engine:
    """A replica with `running` sequences decoding; answers latency at a request rate."""

    step: float
    prefill: float
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
        ttft = self.k.request_us / 1e3 + self.prefill + self.k.first_token_steps * self.step + queue
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


def _engine(load: LayoutLoad, hw: Hardware, k: PerfConstants, workload: Workload, running: float,
            chunk: int, closed_loop: bool) -> _Engine:
    context = workload.input_tokens + workload.output_tokens / 2
    return _Engine(
        step=decode_step_ms(load, hw, k, running, context),
        prefill=prefill_ms(load, hw, k, workload.input_tokens, chunk),
        output_tokens=workload.output_tokens, running=running, closed_loop=closed_loop, k=k,
    )


@dataclass(frozen=True)
class Limits:
    """What caps a replica's batch: KV cache tokens, vLLM's --max-num-seqs, the chunk size."""

    kv_tokens: int
    max_num_seqs: int
    chunk: int  # --max-num-batched-tokens


def _at_concurrency(load: LayoutLoad, hw: Hardware, k: PerfConstants, workload: Workload,
                    concurrency: float, limits: Limits, closed_loop: bool) -> Prediction:
    """`concurrency` requests in flight; beyond what the KV cache (and --max-num-seqs) lets
    run at once they wait for a slot."""
    room = max_concurrency(limits.kv_tokens, workload)
    cap = float(min(room, limits.max_num_seqs))
    # A fraction of a request in flight (a light open-loop load) is a part-time batch of one.
    running = max(min(concurrency, cap), min(concurrency, 1.0), 1e-9)
    engine = _engine(load, hw, k, workload, running, limits.chunk, closed_loop)
    rate = engine.closed_loop_rate()
    ttft, tpot = engine.latency(rate)
    wait = max(concurrency / rate - engine.request_ms(rate), 0.0) if concurrency > running else 0.0
    total_ttft = ttft + wait
    request = total_ttft + (workload.output_tokens - 1) * tpot
    rps = concurrency / request * 1e3  # Little's law: N = λ · latency
    return Prediction(
        ttft_ms=total_ttft, tpot_ms=tpot, concurrency=concurrency, running=running,
        requests_per_second=rps, output_tokens_per_second=rps * workload.output_tokens,
        max_concurrency=room, saturated=False,
    )


def _open_loop(load: LayoutLoad, hw: Hardware, k: PerfConstants, workload: Workload, limits: Limits) -> Prediction:
    """`requests_per_second` arriving: the concurrency that serves it, by bisection
    (throughput grows with concurrency); saturated when a full replica cannot keep up."""
    rate = float(workload.requests_per_second or 0.0)
    cap = float(max(min(max_concurrency(limits.kv_tokens, workload), limits.max_num_seqs), 1))

    def at(concurrency: float) -> Prediction:
        return _at_concurrency(load, hw, k, workload, concurrency, limits, closed_loop=False)

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
    if workload.requests_per_second is not None:
        return _open_loop(load, hw, k, workload, limits)
    concurrency = float(workload.concurrency or 1.0)
    return _at_concurrency(load, hw, k, workload, concurrency, limits, closed_loop=True)
