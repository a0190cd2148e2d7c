"""What parallelism costs a step: TP all-reduces, pipeline hand-offs, expert-parallel imbalance. Pure.

All figures are per GPU, for the `tokens` one step (or one pipeline micro-batch) carries.

- **TP** (tensor parallel, inside a node): two all-reduces per layer (after attention and after
  the MLP) of the step's activations. A ring all-reduce moves 2·(tp − 1)/tp of the message
  through each GPU's one-way link bandwidth at the share NCCL reaches (`ALLREDUCE_EFFICIENCY`).
- **EP** (vLLM `--enable-expert-parallel` on a TP group, data parallel 1): each GPU holds
  E/tp whole experts instead of a 1/tp slice of every expert. Every rank already holds every
  token after the attention all-reduce, so the MoE layer still ends in one all-reduce (vLLM's
  default all2all backend with one DP rank: vllm/model_executor/layers/fused_moe/layer.py,
  `FusedMoE.forward` reduces the routed output across the TP/EP group): communication is TP's.
  What changes is the load: a decode step waits for the GPU whose experts the batch touches
  most (`expert_imbalance`).
- **PP** (pipeline parallel): vLLM's V1 engine keeps `pp` micro-batches in flight
  (vllm/v1/engine/core.py, `step_with_batch_queue`), so a stage reads its weights once per
  micro-batch of batch/pp sequences and a token crosses every stage and every hand-off in
  turn. Hand-offs inside a node go over the GPU link, across nodes over the network
  (`Hardware.network_gbps`, `NETWORK_EFFICIENCY`, `NETWORK_HOP_US`).
"""

from __future__ import annotations

import math

from .load import LayoutLoad

# Share of the GPU link's one-way bandwidth a large all-reduce reaches (NCCL bus bandwidth):
# nccl-tests all_reduce_perf busbw at large sizes, 8 × A100 SXM4 230–250 GB/s of NVLink-3's
# 300 GB/s one way, 8 × H100 SXM 460–480 of NVLink-4's 450 (NVLink SHARP); H100 PCIe 35–45
# of PCIe Gen5's 64 (https://docs.alayanew.com/en/docs/tech-blog/2026-05-06-nccl-tests).
# 0.8 (A100's) sits between the PCIe and the NVLink-SHARP cases.
ALLREDUCE_EFFICIENCY = 0.8
# Between nodes: 400 Gb/s (50 GB/s) per GPU is the common GPU-node network (AWS p5: 3,200 Gbps
# EFA for 8 H100s, https://aws.amazon.com/ec2/instance-types/p5/; InfiniBand NDR 400 Gb/s per
# GPU on DGX H100). NCCL with default settings reaches 46 % of it across nodes (23.4 of 50 GB/s
# for Llama-70B TP 4 on 400 Gb/s InfiniBand; 88 % after tuning), and a hop costs ~5 µs through
# the spine (https://fridayswithfaraday.com/posts/nvidia-dynamo-network-optimization).
DEFAULT_NETWORK_GBPS = 50.0
NETWORK_EFFICIENCY = 0.46
NETWORK_HOP_US = 5.0


def allreduce_ms(load: LayoutLoad, link_gbps: float, tokens: float) -> float:
    """Two ring all-reduces per layer of `tokens` activations over the TP group's link, ms."""
    if load.tp <= 1:
        return 0.0
    volume = 2 * load.layers * tokens * load.allreduce_bytes_per_token * 2 * (load.tp - 1) / load.tp
    return volume / (link_gbps / 2 * 1e9 * ALLREDUCE_EFFICIENCY) * 1e3


def handoff_ms(load: LayoutLoad, link_gbps: float, network_gbps: float, tokens: float) -> float:
    """All pp − 1 hand-offs of `tokens` activations from one stage to the next, ms: over the
    network (with its per-hop latency) when the stages sit on different nodes, else the GPU link."""
    if load.pp <= 1:
        return 0.0
    message = tokens * load.allreduce_bytes_per_token
    if load.nodes > 1:
        per_hop = message / (network_gbps * 1e9 * NETWORK_EFFICIENCY) + NETWORK_HOP_US / 1e6
    else:
        per_hop = message / (link_gbps / 2 * 1e9 * ALLREDUCE_EFFICIENCY)
    return per_hop * (load.pp - 1) * 1e3


def expert_imbalance(load: LayoutLoad, batch: float) -> float:
    """Routed-expert bytes the busiest GPU reads, as a share of the GPU's expert bytes.

    Without EP every GPU holds a slice of every expert, so it reads the touched share
    q = 1 − (1 − k/E)^B of them. With EP a GPU holds G = E/tp whole experts, of which
    Binomial(G, q) are touched; the step waits for the busiest of the tp GPUs, about
    mean + σ·√(2 ln tp) (the expected maximum of tp near-normal draws), at most all G and at
    most all the experts the batch touches (E·q), so EP never reads more than one GPU would.
    """
    share = load.touched_expert_fraction(batch)
    if not load.expert_parallel or load.tp <= 1 or load.experts <= 1:
        return share
    per_gpu = load.experts / load.tp
    mean = per_gpu * share
    spread = math.sqrt(max(per_gpu * share * (1 - share), 0.0))
    busiest = min(per_gpu, load.experts * share, mean + spread * math.sqrt(2 * math.log(load.tp)))
    return busiest / per_gpu
