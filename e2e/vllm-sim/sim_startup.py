"""The vLLM simulator's start: download, weight loading and warm-up, logged the way vLLM logs them.

A real `vllm serve` start goes through phases that each print recognisable lines; the operator's
startup watchdog (`modeldeploy.decisions.startup`) judges a start by them. The simulator prints
the same lines, at a pace set by its configuration, and can stop printing for good in one phase
(a stall) while the process stays alive, which is what a hung download or load looks like.

The lines and where they come from (vLLM v0.11, V1 engine; the `(EngineCore_DP0 pid=N)` prefix is
vLLM's multiprocessing log prefix, `INFO MM-DD HH:MM:SS [file.py:line]` its log format):

| Phase | Line | Source |
|---|---|---|
| load | `Starting to load model %s...` | v1/worker/gpu_model_runner.py (`logger.info`) |
| download | `Using model weights format ['*.safetensors']` | model_executor/model_loader/weight_utils.py |
| download | `model-00001-of-00004.safetensors:  45%\\|####5     \\| 2.24G/4.98G [...]` | huggingface_hub's per-file tqdm bar in hubs whose `snapshot_download` passes vLLM's `DisabledTqdm` only to its "Fetching N files" bar (hub 2.4 passes it to every file: no bars at all; see README) |
| download | `Time spent downloading weights for %s: %.6f seconds` | weight_utils.py, printed when the download took over 0.5 s |
| load | `Loading safetensors checkpoint shards:  50% Completed \\| 2/4 [...]` | weight_utils.py `_BAR_FORMAT` (ends in a newline, so each update is a log line) |
| load | `Loading weights took %.2f seconds` | model_loader/default_loader.py |
| load | `Model loading took %.4f GiB and %.6f seconds` | gpu_model_runner.py |
| warm-up | `Available KV cache memory: %.2f GiB` | v1/worker/gpu_worker.py |
| warm-up | `GPU KV cache size: %s tokens`, `Maximum concurrency for %s tokens per request: %.2fx` | v1/core/kv_cache_utils.py |
| warm-up | `Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%\\|...\\| 67/67` | gpu_model_runner.py tqdm bar |
| warm-up | `Graph capturing finished in %.0f secs, took %.2f GiB` | gpu_model_runner.py |
| warm-up | `init engine (profile, create kv cache, warmup model) took %.2f seconds` | v1/engine/core.py |
| serving | `Starting vLLM API server %d on %s` | entrypoints/openai/api_server.py |

Whole logs with these lines: vllm-project/vllm#29335 and zai-org/GLM-V#204 (v0.11 EngineCore
logs), vllm-project/vllm#6689 and #25848 (shard bars), kyuz0/amd-strix-halo-vllm-toolboxes#5
(`Using model weights format`, shard bar, `Loading weights took`). vLLM V0's `Memory profiling
takes %.2f seconds` (worker.py) is not printed: the V1 engine replaced it with the KV lines.
Log lines go to stdout (vLLM's logging config streams to stdout), tqdm bars to stderr. The
`[file.py:line]` numbers are those the cited logs show; where no cited log showed a line
(`Time spent downloading`, `Starting vLLM API server`), the number is nominal. The watchdog
reads the messages, never the numbers.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

GIB = 1024**3
STALL_PHASES = ("", "download", "load", "warmup")
CUDA_GRAPH_SIZES = 67  # PIECEWISE capture sizes in the GLM-V#204 log (vLLM 0.11 default)


@dataclass(frozen=True)
class StartPlan:
    """How a simulated start goes. Times in seconds; sizes in bytes.

    `download_seconds` 0 means the weights are already local (a shared cache, a warm pvc):
    no download lines. `stall` names the phase that stops half way and never finishes.
    """

    model: str
    download_seconds: float = 0.0
    load_seconds: float = 0.0
    warmup_seconds: float = 0.0
    shards: int = 4
    checkpoint_bytes: int = 16_060_522_496  # Llama 3.1 8B: total_size of its safetensors index
    kv_capacity_tokens: int = 32768
    kv_bytes_per_token: int = 131072
    max_model_len: int = 4096
    stall: str = ""
    host: str = "0.0.0.0"
    port: int = 8000


Sink = Callable[[str, bool], None]  # (text, is_progress_bar): the text carries its own \r / \n


def console_sink(text: str, bar: bool) -> None:
    """Where a process writes: log lines to stdout, tqdm bars to stderr, as vLLM does."""
    stream = sys.stderr if bar else sys.stdout
    stream.write(text)
    stream.flush()


class StartLog:
    """vLLM's startup lines, written to a sink and kept (the in-process simulator's pods/log)."""

    def __init__(self, sink: Sink | None = None) -> None:
        self.sink = sink
        self.chunks: list[str] = []

    @property
    def text(self) -> str:
        """Everything written so far, as a container log holds it (bars keep their \\r)."""
        return "".join(self.chunks)

    def write(self, text: str, bar: bool = False) -> None:
        self.chunks.append(text)
        if self.sink is not None:
            self.sink(text, bar)

    def engine(self, where: str, message: str) -> None:
        self.line("EngineCore_DP0", where, message)

    def line(self, process: str, where: str, message: str) -> None:
        stamp = time.strftime("%m-%d %H:%M:%S")
        self.write(f"({process} pid={os.getpid()}) INFO {stamp} [{where}] {message}\n")


def _size(n: float) -> str:
    """tqdm's unit_scale rendering of a byte count (4.98G, 512M)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


async def _stall_forever() -> None:
    """A hung phase: alive, silent, never done (cancelled when the process is stopped)."""
    await asyncio.Event().wait()


async def download(plan: StartPlan, log: StartLog) -> None:
    """vLLM fetching the checkpoint into its own cache: one redrawn byte bar per shard file."""
    if plan.download_seconds <= 0:
        return
    log.engine("weight_utils.py:304", "Using model weights format ['*.safetensors']")
    shard_bytes = plan.checkpoint_bytes / plan.shards
    per_file, ticks, started = plan.download_seconds / plan.shards, 4, time.monotonic()
    for index in range(1, plan.shards + 1):
        name = f"model-{index:05d}-of-{plan.shards:05d}.safetensors"
        for tick in range(ticks + 1):
            done = shard_bytes * tick / ticks  # tqdm's unit_scale bytes
            pct = round(100 * tick / ticks)
            bar = ("#" * (pct // 10)).ljust(10)
            log.write(f"\r{name}: {pct:3d}%|{bar}| {_size(done)}/{_size(shard_bytes)} "
                      f"[{_clock(time.monotonic() - started)}<?, ?B/s]", bar=True)
            if plan.stall == "download" and index == 1 and tick == ticks // 2:
                await _stall_forever()
            if tick < ticks:
                await asyncio.sleep(per_file / ticks)
        log.write("\n", bar=True)
    log.engine("weight_utils.py:425", f"Time spent downloading weights for {plan.model}: "
               f"{time.monotonic() - started:.6f} seconds")


async def load_weights(plan: StartPlan, log: StartLog, fail_half_way: Callable[[], None]) -> float:
    """The shard bar (one line per shard, vLLM's `_BAR_FORMAT`), then the two load totals.

    `fail_half_way` runs after half the shards (a CUDA OOM strikes while weights are copied).
    Returns the seconds the load took.
    """
    started, per_shard = time.monotonic(), plan.load_seconds / plan.shards
    desc = "Loading safetensors checkpoint shards"
    for done in range(plan.shards + 1):
        elapsed = time.monotonic() - started
        left, rate = (_clock(per_shard * (plan.shards - done)), f"{per_shard:.2f}s/it") if done else ("?", "?it/s")
        log.write(f"\r{desc}: {round(100 * done / plan.shards):3d}% Completed | {done}/{plan.shards} "
                  f"[{_clock(elapsed)}<{left}, {rate}]\n", bar=True)
        if done == plan.shards // 2:
            fail_half_way()
            if plan.stall == "load":
                await _stall_forever()
        if done < plan.shards:
            await asyncio.sleep(per_shard)
    took = time.monotonic() - started
    log.engine("default_loader.py:267", f"Loading weights took {took:.2f} seconds")
    log.engine("gpu_model_runner.py:2653",
               f"Model loading took {plan.checkpoint_bytes / GIB:.4f} GiB and {took:.6f} seconds")
    return took


async def warm_up(plan: StartPlan, log: StartLog) -> None:
    """KV cache profiling and CUDA graph capture: half the warm-up time each."""
    started, half = time.monotonic(), plan.warmup_seconds / 2
    await asyncio.sleep(half)
    kv_gib = plan.kv_capacity_tokens * plan.kv_bytes_per_token / GIB
    log.engine("gpu_worker.py:298", f"Available KV cache memory: {kv_gib:.2f} GiB")
    log.engine("kv_cache_utils.py:1087", f"GPU KV cache size: {plan.kv_capacity_tokens:,} tokens")
    concurrency = plan.kv_capacity_tokens / max(1, plan.max_model_len)
    log.engine("kv_cache_utils.py:1091", f"Maximum concurrency for {plan.max_model_len:,} tokens per "
               f"request: {concurrency:.2f}x")
    log.write(f"\rCapturing CUDA graphs (mixed prefill-decode, PIECEWISE):   0%|          | "
              f"0/{CUDA_GRAPH_SIZES} [00:00<?, ?it/s]", bar=True)
    if plan.stall == "warmup":
        await _stall_forever()
    await asyncio.sleep(half)
    log.write(f"\rCapturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|##########| "
              f"{CUDA_GRAPH_SIZES}/{CUDA_GRAPH_SIZES} [{_clock(half)}<00:00]\n", bar=True)
    log.engine("gpu_model_runner.py:3480", f"Graph capturing finished in {half:.0f} secs, took 0.31 GiB")
    log.engine("core.py:210", "init engine (profile, create kv cache, warmup model) took "
               f"{time.monotonic() - started:.2f} seconds")


def serving(plan: StartPlan, log: StartLog) -> None:
    log.line("APIServer", "api_server.py:1885", f"Starting vLLM API server 0 on http://{plan.host}:{plan.port}")
