"""From model facts and a layout to the performance model's inputs (modeldeploy.perf). Pure.

`layout_load` says what one GPU of a layout reads and computes per token; `hardware_for`
picks the GPU numbers the layout uses (the TFLOP/s of its compute format, the link among its
TP group). MoE experts are split from the dense weights by the model's own counts: with E
routed experts of which k are active, one expert holds (total − active) / (E − k) parameters.
"""

from __future__ import annotations

from collections.abc import Callable

from ..facts import ModelFacts
from ..facts.gpus import GPUSpec, effective_gpu_spec
from ..perf.constants import FITTED
from ..perf.load import ComputeFormat, LayoutLoad
from ..perf.model import Hardware, Limits, Prediction, Workload, predict
from ..perf.parallel import DEFAULT_NETWORK_GBPS
from .memory import Precision, Weights, kv_bytes_per_token_layer, layers_on_stage
from .search import Candidate

FP8_COMPUTE_CAPABILITY = (8, 9)  # W8A8 FP8 GEMMs need Ada/Hopper (SIZING-FACTS.md)


def expert_parameters(facts: ModelFacts) -> float:
    """Parameters in routed experts (all of them), 0 for a dense model."""
    experts, active, k = facts.experts or 0, facts.active_parameters, facts.experts_per_token or 0
    if not facts.is_moe or active is None or not 0 < k < experts:
        return 0.0
    return experts * (facts.parameters - active) / (experts - k)


def _active_expert_parameters(facts: ModelFacts) -> float:
    """Routed-expert parameters one token uses (k of the E experts)."""
    experts = expert_parameters(facts)
    return experts * (facts.experts_per_token or 0) / facts.experts if experts and facts.experts else 0.0


def compute_format(precision: Precision, gpu: GPUSpec) -> ComputeFormat:
    """FP8 GEMMs for FP8 weights on GPUs that have FP8 tensor cores; 16 bit otherwise
    (Ampere runs FP8 weights as W8A16 Marlin, SIZING-FACTS.md; AWQ/GPTQ dequantize)."""
    if precision.effective_quantization == "fp8" and gpu.fp8_tflops and gpu.compute_capability >= FP8_COMPUTE_CAPABILITY:
        return ComputeFormat.FP8
    return ComputeFormat.BF16


def layout_load(
    facts: ModelFacts, precision: Precision, weights: Weights, gpu: GPUSpec,
    *, tp: int, pp: int, nodes: int, expert_parallel: bool,
) -> LayoutLoad:
    """Per-GPU bytes and FLOPs of the most loaded stage of a TP × PP layout."""
    stage = layers_on_stage(facts, pp)
    share = max(stage.full + stage.sliding + stage.linear, 1) / facts.layers  # of the body on this stage
    embed_params = facts.vocab_size * facts.hidden_size
    experts = expert_parameters(facts)
    body_params = max(facts.parameters - embed_params * (1 if facts.tie_word_embeddings else 2), 1)
    expert_bytes = min(experts * weights.body / body_params, weights.body)
    # Every step reads the body's dense part and the lm_head; the input embedding is a lookup.
    dense_bytes = (weights.body - expert_bytes) * share + weights.embed_copy
    active = (facts.active_parameters or facts.parameters) if experts else facts.parameters
    per_layer_kv = kv_bytes_per_token_layer(facts, tp, precision.kv_bytes)
    q_width = facts.attention_heads * facts.head_dim / tp
    return LayoutLoad(
        tp=tp, pp=pp, nodes=nodes, expert_parallel=expert_parallel,
        layers=max(stage.full + stage.sliding + stage.linear, 1),
        dense_bytes=dense_bytes / tp,
        expert_bytes=expert_bytes * share / tp,
        experts=facts.experts or 0,
        experts_per_token=facts.experts_per_token or 0,
        flops_per_token=2 * max(active - embed_params, 1) * share / tp,
        expert_flops_per_token=2 * _active_expert_parameters(facts) * share / tp,
        attention_flops_per_token2=4 * q_width * stage.full,
        kv_bytes_per_token=per_layer_kv * stage.full,
        window_kv_bytes_per_token=per_layer_kv * stage.sliding,
        window_tokens=facts.sliding_window or 0,
        state_bytes_per_sequence=stage.linear * facts.linear_state_bytes_per_layer / tp,
        allreduce_bytes_per_token=facts.hidden_size * precision.embed_bytes,
        compute=compute_format(precision, gpu),
    )


def hardware_for(gpu: GPUSpec, load: LayoutLoad, network_gbps: float = DEFAULT_NETWORK_GBPS) -> Hardware:
    """The GPU's bandwidth, the TFLOP/s of the layout's compute format, its TP link and the
    node network per GPU (GB/s; GPUPool `spec.networkGBps`, default 400 Gb/s)."""
    dense16 = gpu.dense16_tflops or 0.0
    tflops = {ComputeFormat.FP8: gpu.fp8_tflops, ComputeFormat.FP4: gpu.fp4_tflops}.get(load.compute) or dense16
    return Hardware(bandwidth_gbps=gpu.hbm_bandwidth_gbps, tflops=tflops, link_gbps=gpu.link_gbps(load.tp),
                    network_gbps=network_gbps)


ReplicaModel = Callable[[Workload], Prediction]
# The request a single-stream figure is quoted at when the spec gives no workload: 1024 tokens
# in and out (the shortest rows of the calibration set, bench/data/vllm-latency-h100.csv),
# halved when maxModelLen is shorter.
SINGLE_STREAM_TOKENS = 1024


def replica_model(facts: ModelFacts, precision: Precision, weights: Weights, c: Candidate,
                  max_num_seqs: int) -> ReplicaModel | None:
    """One replica of layout `c` as a function of its load, from the one performance model
    (modeldeploy.perf). None when the pool's GPU has no specs or the layout was not sized."""
    gpu = effective_gpu_spec(c.pool.spec.gpu)
    if gpu is None or c.memory is None:
        return None
    layout = layout_load(facts, precision, weights, gpu, tp=c.tp, pp=c.pp, nodes=c.nodes,
                         expert_parallel=facts.is_moe and c.tp > 1)
    hardware = hardware_for(gpu, layout, c.pool.spec.network_g_bps or DEFAULT_NETWORK_GBPS)
    limits = Limits(c.memory.kv_tokens, max_num_seqs, c.batched_tokens)
    return lambda share: predict(layout, hardware, FITTED, share, limits)


def single_stream(facts: ModelFacts, precision: Precision, weights: Weights, c: Candidate,
                  max_model_len: int, shape: tuple[int, int] | None = None) -> Prediction | None:
    """One request in flight on one replica: `shape` (input, output tokens: the workload's) at
    concurrency 1, else SINGLE_STREAM_TOKENS in and out (capped at half of maxModelLen each)."""
    model = replica_model(facts, precision, weights, c, max_num_seqs=1)
    if model is None:
        return None
    if shape is None:
        tokens = max(min(SINGLE_STREAM_TOKENS, max_model_len // 2), 1)
        shape = (tokens, tokens)
    return model(Workload(shape[0], shape[1], concurrency=1.0))


def decode_speed(facts: ModelFacts, precision: Precision, weights: Weights, c: Candidate,
                 max_model_len: int, shape: tuple[int, int] | None = None) -> float | None:
    """Single-stream decode tokens/s (1000 / TPOT at one request in flight); None without
    GPU specs. The plan's `decodeTokensPerSecond` and the `fastest` policy both use it."""
    p = single_stream(facts, precision, weights, c, max_model_len, shape)
    return None if p is None else 1000.0 / p.tpot_ms
