"""A vLLM OpenAI-server simulator: the same endpoints, metric names and failure messages, no GPU.

Serves `/health`, `/v1/models`, `/v1/completions`, `/v1/chat/completions` (OpenAI shapes, with
`usage`, optional SSE streaming) and `/metrics` (Prometheus text with vLLM's metric names).
Requests are admitted up to `--max-num-seqs` at a time and while the simulated KV cache has
room; the rest wait in a FIFO queue, which is what `vllm:num_requests_waiting` reports.

It accepts vLLM's command line (`[serve] MODEL --port ... --max-model-len ...`), ignoring
flags it does not model, so a rendered vLLM pod spec runs it unchanged. Simulation knobs come
from the environment (see README.md). It fails at start the way vLLM does, with vLLM's
messages on stderr and exit code 1: a CUDA OOM while loading (SIM_FAULT=oom), a KV cache too
small for max_model_len (SIM_FAULT=kv-too-small, or whenever --max-model-len exceeds
SIM_KV_CAPACITY_TOKENS), a generic crash (SIM_FAULT=crash).

Its start prints vLLM's own progress lines (download, weight loading, KV profiling, CUDA graph
capture, API server up; see sim_startup.py), each phase as long as configured, and can hang in
one phase for good (SIM_STALL=download|load|warmup) the way a stuck start does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# sim_startup.py sits next to this file; the image runs `python /app/sim.py`, the tests load this
# file by path, so its directory is put on the import path either way.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sim_startup
from sim_startup import STALL_PHASES, StartLog, StartPlan

_VALUE_FLAGS = (
    "--tensor-parallel-size",
    "--pipeline-parallel-size",
    "--data-parallel-size",
    "--gpu-memory-utilization",
    "--dtype",
    "--kv-cache-dtype",
    "--max-num-batched-tokens",
    "--quantization",
    "--revision",
    "--distributed-executor-backend",
    "--download-dir",
)
_BOOL_FLAGS = ("--enable-expert-parallel", "--enforce-eager", "--trust-remote-code")
FAULTS = ("", "oom", "kv-too-small", "crash")
KV_METRICS = ("new", "old", "both")
GIB = 1024**3


class EngineStartupError(Exception):
    """The engine failed to start; `log` is what vLLM would print on stderr."""

    def __init__(self, log: str) -> None:
        super().__init__(log.strip().splitlines()[-1])
        self.log = log


@dataclass(frozen=True)
class SimConfig:
    model: str = "sim/model"
    served_model_name: str | None = None
    host: str = "0.0.0.0"
    port: int = 8000
    max_model_len: int = 4096
    max_num_seqs: int = 8
    load_seconds: float = 0.0  # weight loading (the shard bar)
    download_seconds: float = 0.0  # vLLM fetching the weights itself (0: already local)
    warmup_seconds: float = 0.0  # KV profiling and CUDA graph capture
    shards: int = 4  # safetensors files: one download bar and one shard-bar step each
    checkpoint_bytes: int = 16_060_522_496  # Llama 3.1 8B: total_size of its safetensors index
    stall: str = ""  # the start phase that hangs for good: download, load or warmup
    token_latency_s: float = 0.02  # per output token (decode)
    prefill_s_per_token: float = 0.0001  # per prompt token (time to first token)
    kv_capacity_tokens: int = 32768
    kv_bytes_per_token: int = 131072  # Llama-3.1-8B at bf16, TP 1
    max_queue: int = 10000
    fault: str = ""
    kv_metric: str = "new"

    @property
    def name(self) -> str:
        return self.served_model_name or self.model

    @classmethod
    def from_args(cls, argv: Sequence[str], env: Mapping[str, str]) -> SimConfig:
        p = argparse.ArgumentParser(prog="vllm-sim", add_help=True)
        p.add_argument("positional", nargs="*", help="[serve] MODEL, as `vllm serve` takes it")
        p.add_argument("--model")
        p.add_argument("--served-model-name", nargs="+")
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        p.add_argument("--max-model-len", type=int)
        p.add_argument("--max-num-seqs", type=int)
        # vLLM flags the simulator does not model, declared so their values are not taken for
        # the positional model; any other unknown flag is ignored as well.
        for flag in _VALUE_FLAGS:
            p.add_argument(flag)
        for flag in _BOOL_FLAGS:
            p.add_argument(flag, action="store_true")
        args, _unknown = p.parse_known_args(list(argv))
        positional = [a for a in args.positional if a != "serve"]
        d = cls()
        fault = env.get("SIM_FAULT", "").strip().lower()
        kv_metric = env.get("SIM_KV_METRIC", "new").strip().lower()
        stall = env.get("SIM_STALL", "").strip().lower()
        if stall not in STALL_PHASES:
            raise SystemExit(f"SIM_STALL must be one of {', '.join(s or '(empty)' for s in STALL_PHASES)}")
        shards = int(env.get("SIM_SHARDS", d.shards))
        if shards < 1:
            raise SystemExit("SIM_SHARDS must be at least 1")
        if fault not in FAULTS:
            raise SystemExit(f"SIM_FAULT must be one of {', '.join(f or '(empty)' for f in FAULTS)}")
        if kv_metric not in KV_METRICS:
            raise SystemExit(f"SIM_KV_METRIC must be one of {', '.join(KV_METRICS)}")
        return cls(
            model=args.model or (positional[0] if positional else d.model),
            served_model_name=args.served_model_name[0] if args.served_model_name else None,
            host=args.host or env.get("SIM_HOST", d.host),
            port=args.port if args.port is not None else int(env.get("SIM_PORT", d.port)),
            max_model_len=args.max_model_len or int(env.get("SIM_MAX_MODEL_LEN", d.max_model_len)),
            max_num_seqs=args.max_num_seqs or int(env.get("SIM_MAX_NUM_SEQS", d.max_num_seqs)),
            load_seconds=float(env.get("SIM_LOAD_SECONDS", d.load_seconds)),
            download_seconds=float(env.get("SIM_DOWNLOAD_SECONDS", d.download_seconds)),
            warmup_seconds=float(env.get("SIM_WARMUP_SECONDS", d.warmup_seconds)),
            shards=shards,
            checkpoint_bytes=int(env.get("SIM_CHECKPOINT_BYTES", d.checkpoint_bytes)),
            stall=stall,
            token_latency_s=float(env.get("SIM_TOKEN_LATENCY_MS", d.token_latency_s * 1000)) / 1000,
            prefill_s_per_token=float(env.get("SIM_PREFILL_MS_PER_TOKEN", d.prefill_s_per_token * 1000)) / 1000,
            kv_capacity_tokens=int(env.get("SIM_KV_CAPACITY_TOKENS", d.kv_capacity_tokens)),
            kv_bytes_per_token=int(env.get("SIM_KV_BYTES_PER_TOKEN", d.kv_bytes_per_token)),
            max_queue=int(env.get("SIM_MAX_QUEUE", d.max_queue)),
            fault=fault,
            kv_metric=kv_metric,
        )


# --- the engine -------------------------------------------------------------------------------


@dataclass
class _Request:
    prompt_tokens: int
    max_tokens: int
    admitted: asyncio.Event = field(default_factory=asyncio.Event)
    generated: int = 0

    @property
    def kv_tokens(self) -> int:
        return self.prompt_tokens + self.generated


class Engine:
    """Continuous batching, simplified: FIFO admission bounded by max_num_seqs and KV room."""

    def __init__(self, cfg: SimConfig, sink: sim_startup.Sink | None = None) -> None:
        self.cfg = cfg
        self.loaded = False
        self.failed: str | None = None  # the startup error, when loading failed
        self.running: list[_Request] = []
        self.waiting: deque[_Request] = deque()
        self.startup_log = StartLog(sink)  # what `kubectl logs` would show of the start

    @property
    def kv_usage(self) -> float:
        used = sum(r.kv_tokens for r in self.running)
        return min(1.0, used / max(1, self.cfg.kv_capacity_tokens))

    async def load(self) -> None:
        """Start like vLLM: each phase logged at its configured pace, hanging for good in the
        SIM_STALL phase; a CUDA OOM strikes half way through the weights, a KV cache too small
        for max_model_len and a crash right after them (EngineStartupError)."""
        cfg, log = self.cfg, self.startup_log
        plan = StartPlan(
            model=cfg.model, download_seconds=cfg.download_seconds, load_seconds=cfg.load_seconds,
            warmup_seconds=cfg.warmup_seconds, shards=cfg.shards, checkpoint_bytes=cfg.checkpoint_bytes,
            kv_capacity_tokens=cfg.kv_capacity_tokens, kv_bytes_per_token=cfg.kv_bytes_per_token,
            max_model_len=cfg.max_model_len, stall=cfg.stall, host=cfg.host, port=cfg.port,
        )
        log.engine("gpu_model_runner.py:2602", f"Starting to load model {cfg.model}...")
        await sim_startup.download(plan, log)
        await sim_startup.load_weights(plan, log, lambda: self._fail(_OOM_LOG if cfg.fault == "oom" else None))
        if cfg.fault == "kv-too-small" or cfg.max_model_len > cfg.kv_capacity_tokens:
            self._fail(_kv_log(cfg))
        if cfg.fault == "crash":
            self._fail(
                "ERROR [core.py] EngineCore failed to start.\n"
                "RuntimeError: Engine core initialization failed (simulated crash)\n"
            )
        await sim_startup.warm_up(plan, log)
        sim_startup.serving(plan, log)
        self.loaded = True

    def _fail(self, log: str | None) -> None:
        if log is None:
            return
        error = EngineStartupError(log)
        self.failed = str(error)
        raise error

    async def generate(self, prompt_tokens: int, max_tokens: int) -> AsyncIterator[int]:
        """Yield the index of each generated token, after queueing for admission."""
        req = _Request(prompt_tokens, max_tokens)
        self.waiting.append(req)
        try:
            self._admit()
            await req.admitted.wait()
            await asyncio.sleep(self.cfg.prefill_s_per_token * prompt_tokens)
            for i in range(max_tokens):
                await asyncio.sleep(self.cfg.token_latency_s)
                req.generated += 1
                yield i
        finally:
            if req in self.running:
                self.running.remove(req)
            else:
                with contextlib.suppress(ValueError):
                    self.waiting.remove(req)
            self._admit()

    def _admit(self) -> None:
        while self.waiting and len(self.running) < self.cfg.max_num_seqs:
            head = self.waiting[0]
            used = sum(r.kv_tokens for r in self.running)
            if self.running and used + head.prompt_tokens + 1 > self.cfg.kv_capacity_tokens:
                return
            self.waiting.popleft()
            self.running.append(head)
            head.admitted.set()


_OOM_LOG = (
        "ERROR [core.py] EngineCore failed to start.\n"
        "Traceback (most recent call last):\n"
        '  File "vllm/v1/worker/gpu_model_runner.py", in load_model\n'
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.96 GiB. GPU 0 has a total "
        "capacity of 79.11 GiB of which 1.02 GiB is free. Including non-PyTorch memory, this "
        "process has 78.08 GiB memory in use.\n"
)


def _kv_log(cfg: SimConfig) -> str:
    need = cfg.max_model_len * cfg.kv_bytes_per_token / GIB
    have = cfg.kv_capacity_tokens * cfg.kv_bytes_per_token / GIB
    return (
        "ERROR [core.py] EngineCore failed to start.\n"
        "Traceback (most recent call last):\n"
        '  File "vllm/v1/core/kv_cache_utils.py", in check_enough_kv_cache_memory\n'
        f"ValueError: To serve at least one request with the models's max seq len "
        f"({cfg.max_model_len}), ({need:.2f} GiB KV cache is needed, which is larger than the "
        f"available KV cache memory ({have:.2f} GiB). Based on the available memory, the estimated "
        f"maximum model length is {cfg.kv_capacity_tokens}. Try increasing "
        "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.\n"
    )


# --- metrics ----------------------------------------------------------------------------------


class _Gauges(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        cfg, labels = self.engine.cfg, ["model_name", "engine"]
        values = [cfg.name, "0"]
        gauges: list[tuple[str, str, float]] = [
            (
                "vllm:num_requests_running",
                "Number of requests in model execution batches.",
                len(self.engine.running),
            ),
            (
                "vllm:num_requests_waiting",
                "Number of requests waiting to be processed.",
                len(self.engine.waiting),
            ),
        ]
        if cfg.kv_metric in ("new", "both"):
            gauges.append(
                (
                    "vllm:kv_cache_usage_perc",
                    "KV-cache usage. 1 means 100 percent usage.",
                    self.engine.kv_usage,
                )
            )
        if cfg.kv_metric in ("old", "both"):
            gauges.append(
                (
                    "vllm:gpu_cache_usage_perc",
                    "GPU KV-cache usage. 1 means 100 percent usage.",
                    self.engine.kv_usage,
                )
            )
        for name, doc, value in gauges:
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(values, value)
            yield g


class Metrics:
    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Gauges(engine))
        labels = ["model_name", "engine"]
        r = self.registry
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=r)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", labels, registry=r
        )
        self.success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            [*labels, "finished_reason"],
            registry=r,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            labels,
            registry=r,
            buckets=(
                0.3,
                0.5,
                0.8,
                1.0,
                1.5,
                2.0,
                2.5,
                5.0,
                10.0,
                15.0,
                20.0,
                30.0,
                40.0,
                50.0,
                60.0,
            ),
        )
        self.labels = (engine.cfg.name, "0")

    def finished(self, prompt: int, generated: int, seconds: float, reason: str) -> None:
        self.prompt_tokens.labels(*self.labels).inc(prompt)
        self.generation_tokens.labels(*self.labels).inc(generated)
        self.success.labels(*self.labels, reason).inc()
        self.e2e.labels(*self.labels).observe(seconds)


# --- HTTP -------------------------------------------------------------------------------------

ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
LOADER: web.AppKey[asyncio.Task[None]] = web.AppKey("loader", asyncio.Task)


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "code": status}}, status=status)


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _prompt_of(body: Mapping[str, Any], chat: bool) -> str | None:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        parts: list[str] = []
        for m in messages:
            if not isinstance(m, dict):
                return None
            content = m.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(str(c.get("text", "")) for c in content if isinstance(c, dict))
        return " ".join(parts)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return " ".join(str(p) for p in prompt)
    return prompt if isinstance(prompt, str) else None


async def health(request: web.Request) -> web.Response:
    """200 while the engine lives (loading included); 500 once it died, as vLLM answers."""
    return web.Response(status=500 if request.app[ENGINE].failed else 200)


async def models(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if not engine.loaded:
        return _error(503, "The model is still loading.", "ServiceUnavailableError")
    cfg = engine.cfg
    card = {
        "id": cfg.name,
        "object": "model",
        "created": int(time.time()),
        "owned_by": "vllm",
        "root": cfg.model,
        "parent": None,
        "max_model_len": cfg.max_model_len,
    }
    return web.json_response({"object": "list", "data": [card]})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, chat=False)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, chat=True)


async def _complete(request: web.Request, chat: bool) -> web.StreamResponse:
    engine, stats = request.app[ENGINE], request.app[METRICS]
    cfg = engine.cfg
    if not engine.loaded:
        return _error(503, "The model is still loading.", "ServiceUnavailableError")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "Request body is not valid JSON.", "BadRequestError")
    if not isinstance(body, dict):
        return _error(400, "Request body must be a JSON object.", "BadRequestError")
    if body.get("model", cfg.name) != cfg.name:
        return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
    prompt = _prompt_of(body, chat)
    if prompt is None:
        return _error(
            400,
            "messages must be a non-empty list" if chat else "prompt is required",
            "BadRequestError",
        )
    raw_max = body.get("max_completion_tokens", body.get("max_tokens", 16))
    if not isinstance(raw_max, int) or isinstance(raw_max, bool) or raw_max < 1:
        return _error(400, "max_tokens must be a positive integer", "BadRequestError")
    prompt_tokens = _tokens(prompt)
    if prompt_tokens + raw_max > cfg.max_model_len:
        msg = (
            f"This model's maximum context length is {cfg.max_model_len} tokens. However, you "
            f"requested {prompt_tokens + raw_max} tokens ({prompt_tokens} in the messages, "
            f"{raw_max} in the completion). Please reduce the length of the messages or completion."
        )
        return _error(400, msg, "BadRequestError")
    if len(engine.waiting) >= cfg.max_queue:
        return _error(503, "The server is overloaded.", "ServiceUnavailableError")

    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    created, started = int(time.time()), time.monotonic()
    if body.get("stream") is True:
        return await _stream(request, engine, stats, rid, created, started, chat, prompt_tokens, raw_max)
    generated = 0
    async for _ in engine.generate(prompt_tokens, raw_max):
        generated += 1
    stats.finished(prompt_tokens, generated, time.monotonic() - started, "length")
    text = " ".join("tok" for _ in range(generated))
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": prompt_tokens + generated,
    }
    choice: dict[str, Any]
    if chat:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": "length",
        }
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
    obj = "chat.completion" if chat else "text_completion"
    return web.json_response(
        {
            "id": rid,
            "object": obj,
            "created": created,
            "model": cfg.name,
            "choices": [choice],
            "usage": usage,
        }
    )


async def _stream(
    request: web.Request,
    engine: Engine,
    stats: Metrics,
    rid: str,
    created: int,
    started: float,
    chat: bool,
    prompt_tokens: int,
    max_tokens: int,
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    obj = "chat.completion.chunk" if chat else "text_completion"

    async def send(choice: dict[str, Any], usage: dict[str, int] | None = None) -> None:
        chunk: dict[str, Any] = {
            "id": rid,
            "object": obj,
            "created": created,
            "model": engine.cfg.name,
            "choices": [choice],
        }
        if usage is not None:
            chunk["usage"] = usage
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

    generated = 0
    async for i in engine.generate(prompt_tokens, max_tokens):
        generated += 1
        piece = ("" if i == 0 else " ") + "tok"
        if chat:
            delta: dict[str, Any] = {"content": piece} if i else {"role": "assistant", "content": piece}
            await send({"index": 0, "delta": delta, "logprobs": None, "finish_reason": None})
        else:
            await send({"index": 0, "text": piece, "logprobs": None, "finish_reason": None})
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": prompt_tokens + generated,
    }
    last: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": "length"}
    if chat:
        last["delta"] = {}
    else:
        last["text"] = ""
    await send(last, usage)
    await resp.write(b"data: [DONE]\n\n")
    stats.finished(prompt_tokens, generated, time.monotonic() - started, "length")
    await resp.write_eof()
    return resp


def create_app(cfg: SimConfig, *, autoload: bool = True, sink: sim_startup.Sink | None = None) -> web.Application:
    """The simulator app. With `autoload`, loading starts with the app (a startup fault then
    leaves the model unloaded: `/v1/models` keeps answering 503)."""
    engine = Engine(cfg, sink)
    app = web.Application()
    app[ENGINE] = engine
    app[METRICS] = Metrics(engine)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat_completions)
    if autoload:

        async def start_loading(app: web.Application) -> None:
            async def load() -> None:
                with contextlib.suppress(EngineStartupError):
                    await engine.load()

            app[LOADER] = asyncio.get_running_loop().create_task(load())

        async def stop_loading(app: web.Application) -> None:
            task = app.get(LOADER)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        app.on_startup.append(start_loading)
        app.on_cleanup.append(stop_loading)
    return app


async def serve(cfg: SimConfig) -> int:
    """Run like `vllm serve`: HTTP up at once, model loaded later; exit 1 on a startup fault."""
    app = create_app(cfg, autoload=False, sink=sim_startup.console_sink)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    print(
        f"INFO vllm-sim serving {cfg.name} on http://{cfg.host}:{cfg.port}",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loading = asyncio.ensure_future(app[ENGINE].load())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not loading.done():
            return 0  # terminated while loading
        exc = loading.exception()
        if isinstance(exc, EngineStartupError):
            sys.stderr.write(exc.log)
            sys.stderr.flush()
            return 1
        loading.result()
        print("INFO vllm-sim model loaded", file=sys.stderr, flush=True)
        await stopping
        return 0
    finally:
        for task in (loading, stopping):
            task.cancel()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    cfg = SimConfig.from_args(sys.argv[1:] if argv is None else argv, os.environ)
    return asyncio.run(serve(cfg))


if __name__ == "__main__":
    raise SystemExit(main())
