"""The vLLM simulator on loopback: endpoints, queueing, metrics, and startup faults.

Its metrics are read with the operator's own parser and fed to the autoscaling decision, and its
startup failures are put into a pod status and classified, as the operator will see them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tests.sim.inprocess import SIM_PATH, load_sim, serve

from modeldeploy.api.deployment import Autoscaling
from modeldeploy.decisions.autoscale import ScalingHistory, ScalingObservation, ScalingReason, decide
from modeldeploy.decisions.metrics import PodSample, parse_vllm_metrics
from modeldeploy.decisions.rollout import StuckKind, classify_stuck

sim = load_sim()
Sim = Callable[..., Awaitable[str]]


@pytest.fixture
async def start_sim() -> AsyncIterator[Sim]:
    """Start simulators on 127.0.0.1, random ports; returns their base URLs."""
    runners: list[web.AppRunner] = []

    async def start(**cfg: Any) -> str:
        _, url = await serve(runners, **cfg)
        return url

    yield start
    for r in runners:
        await r.cleanup()


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as r:
        return r.status, await r.text()


async def _post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, json=body) as r:
        return r.status, await r.json()


async def _scrape(http: aiohttp.ClientSession, base: str, pod: str = "pod") -> PodSample:
    status, text = await _get(http, f"{base}/metrics")
    assert status == 200
    sample = parse_vllm_metrics(pod, text)
    assert isinstance(sample, PodSample), sample
    return sample


async def test_health_before_models_and_models_after_load(start_sim: Sim) -> None:
    base = await start_sim(model="org/m", load_seconds=0.4)
    async with aiohttp.ClientSession() as http:
        assert (await _get(http, f"{base}/health"))[0] == 200
        status, body = await _get(http, f"{base}/v1/models")
        assert status == 503 and "loading" in body
        assert (await _post(http, f"{base}/v1/completions", {"prompt": "x"}))[0] == 503
        await asyncio.sleep(0.6)
        status, body = await _get(http, f"{base}/v1/models")
        assert status == 200
        card = json.loads(body)["data"][0]
        assert (card["id"], card["object"], card["max_model_len"]) == ("org/m", "model", 4096)


async def test_a_failed_start_keeps_models_down_and_health_red(start_sim: Sim) -> None:
    base = await start_sim(max_model_len=8192, kv_capacity_tokens=4096)
    async with aiohttp.ClientSession() as http:
        await asyncio.sleep(0.05)
        assert (await _get(http, f"{base}/health"))[0] == 500
        assert (await _get(http, f"{base}/v1/models"))[0] == 503


async def test_openai_shapes(start_sim: Sim) -> None:
    base = await start_sim(model="org/m", served_model_name="m", token_latency_s=0.001)
    async with aiohttp.ClientSession() as http:
        status, c = await _post(
            http,
            f"{base}/v1/completions",
            {"model": "m", "prompt": "one two three", "max_tokens": 4},
        )
        assert status == 200
        assert c["object"] == "text_completion" and c["id"].startswith("cmpl-") and c["model"] == "m"
        assert c["choices"][0]["text"] == "tok tok tok tok" and c["choices"][0]["finish_reason"] == "length"
        assert c["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]
        status, c = await _post(http, f"{base}/v1/chat/completions", {"model": "m", "messages": msgs, "max_tokens": 2})
        assert status == 200 and c["object"] == "chat.completion"
        assert c["choices"][0]["message"] == {"role": "assistant", "content": "tok tok"}
        assert c["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}

        body = {"model": "m", "messages": msgs, "max_tokens": 3, "stream": True}
        async with http.post(f"{base}/v1/chat/completions", json=body) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            events = [line[6:] for line in (await r.text()).splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
        text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks)
        assert text == "tok tok tok" and chunks[-1]["usage"]["completion_tokens"] == 3

        assert (await _post(http, f"{base}/v1/completions", {"model": "nope", "prompt": "x"}))[0] == 404
        status, err = await _post(http, f"{base}/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 5000})
        assert status == 400 and "maximum context length is 4096" in err["error"]["message"]
        assert (await _post(http, f"{base}/v1/completions", {"prompt": "x", "max_tokens": 0}))[0] == 400
        async with http.post(f"{base}/v1/completions", data=b"{not json") as r:
            assert r.status == 400


async def test_requests_beyond_the_limit_wait_and_metrics_follow(start_sim: Sim) -> None:
    base = await start_sim(max_num_seqs=2, token_latency_s=0.03, kv_capacity_tokens=1000, max_model_len=1000)
    async with aiohttp.ClientSession() as http:
        idle = await _scrape(http, base)
        assert (idle.running, idle.waiting, idle.kv_usage) == (0, 0, 0)
        body = {"prompt": " ".join(["w"] * 50), "max_tokens": 10}
        calls = [asyncio.create_task(_post(http, f"{base}/v1/completions", body)) for _ in range(6)]
        await asyncio.sleep(0.15)
        busy = await _scrape(http, base)
        assert (busy.running, busy.waiting) == (2, 4)
        assert busy.kv_usage is not None and 0.1 <= busy.kv_usage <= 0.12  # (2 × 50 + a few) / 1000
        results = await asyncio.gather(*calls)
        assert all(status == 200 for status, _ in results)
        done = await _scrape(http, base)
        assert (done.running, done.waiting, done.kv_usage) == (0, 0, 0)
        _, text = await _get(http, f"{base}/metrics")
        assert 'vllm:generation_tokens_total{engine="0",model_name="sim/model"} 60.0' in text
        assert 'vllm:e2e_request_latency_seconds_count{engine="0",model_name="sim/model"} 6.0' in text


async def test_kv_capacity_also_queues(start_sim: Sim) -> None:
    base = await start_sim(max_num_seqs=10, token_latency_s=0.03, kv_capacity_tokens=120, max_model_len=100)
    async with aiohttp.ClientSession() as http:
        body = {"prompt": " ".join(["w"] * 50), "max_tokens": 5}
        calls = [asyncio.create_task(_post(http, f"{base}/v1/completions", body)) for _ in range(3)]
        await asyncio.sleep(0.08)
        s = await _scrape(http, base)
        assert (s.running, s.waiting) == (2, 1)  # a third 50-token prompt does not fit in 120
        assert s.kv_usage is not None and s.kv_usage > 0.8
        await asyncio.gather(*calls)


@pytest.mark.parametrize(("mode", "names"), [("old", ["gpu_cache"]), ("both", ["gpu_cache", "kv_cache"])])
async def test_kv_metric_names(start_sim: Sim, mode: str, names: list[str]) -> None:
    base = await start_sim(kv_metric=mode)
    async with aiohttp.ClientSession() as http:
        _, text = await _get(http, f"{base}/metrics")
        for n in ("gpu_cache", "kv_cache"):
            assert (f"vllm:{n}_usage_perc{{" in text) == (n in names)
        assert (await _scrape(http, base)).kv_usage == 0.0


async def test_a_load_spike_scales_up_at_the_next_decision(start_sim: Sim) -> None:
    """Two simulator pods, a burst of requests, one scrape, one decision: scale up."""
    bases = [await start_sim(max_num_seqs=2, token_latency_s=0.03) for _ in range(2)]
    spec = Autoscaling(min_replicas=1, max_replicas=8, target=1)  # requestsWaiting, 1 per replica
    async with aiohttp.ClientSession() as http:
        scrapes = tuple([await _scrape(http, b, f"pod-{i}") for i, b in enumerate(bases)])
        calm = decide(spec, ScalingObservation(2, scrapes), ScalingHistory(), 1000.0, capacity_replicas=8)
        assert calm.desired_replicas == 2
        body = {"prompt": "hi", "max_tokens": 10}
        calls = [asyncio.create_task(_post(http, f"{b}/v1/completions", body)) for b in bases for _ in range(5)]
        await asyncio.sleep(0.12)
        scrapes = tuple([await _scrape(http, b, f"pod-{i}") for i, b in enumerate(bases)])
        d = decide(spec, ScalingObservation(2, scrapes), calm.history, 1015.0, capacity_replicas=8)
        assert (d.desired_replicas, d.reason) == (
            4,
            ScalingReason.SCALE_UP_LIMITED,
        )  # 6 waiting, at most double
        d = decide(spec, ScalingObservation(2, scrapes), calm.history, 1015.0, capacity_replicas=3)
        assert (d.desired_replicas, d.reason) == (3, ScalingReason.CAPACITY_LIMITED)
        await asyncio.gather(*calls)


# --- the process: startup faults as a pod would report them -----------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_sim(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    cmd = [
        sys.executable,
        str(SIM_PATH),
        "serve",
        "org/m",
        "--host",
        "127.0.0.1",
        "--port",
        str(_free_port()),
        *args,
    ]
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=30)


def _pod_with_crash(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """What the kubelet reports with terminationMessagePolicy: FallbackToLogsOnError."""
    term = {
        "terminated": {
            "exitCode": result.returncode,
            "reason": "Error",
            "message": result.stderr[-2048:],
        }
    }
    waiting = {
        "waiting": {
            "reason": "CrashLoopBackOff",
            "message": "back-off 10s restarting failed container",
        }
    }
    return {
        "metadata": {"name": "m-1"},
        "status": {"containerStatuses": [{"state": waiting, "lastState": term}]},
    }


@pytest.mark.parametrize(
    ("args", "env", "kind", "needle"),
    [
        ([], {"SIM_FAULT": "oom"}, StuckKind.OOM_AT_LOAD, "CUDA out of memory"),
        (
            ["--max-model-len", "65536", "--tensor-parallel-size", "2"],
            {"SIM_KV_CAPACITY_TOKENS": "32768"},
            StuckKind.KV_CACHE_TOO_SMALL,
            "estimated maximum model length is 32768",
        ),
        ([], {"SIM_FAULT": "kv-too-small"}, StuckKind.KV_CACHE_TOO_SMALL, "KV cache is needed"),
        ([], {"SIM_FAULT": "crash"}, StuckKind.CRASH_LOOP, "EngineCore"),
    ],
)
def test_startup_faults_exit_1_with_vllm_messages(
    args: list[str], env: dict[str, str], kind: StuckKind, needle: str
) -> None:
    result = _run_sim(args, SIM_LOAD_SECONDS="0.1", **env)
    assert result.returncode == 1, result.stderr
    assert needle in result.stderr
    stuck = classify_stuck([_pod_with_crash(result)], started_at=0, deadline_s=600, now=30)
    assert stuck is not None and stuck.kind == kind and stuck.terminal
    if kind == StuckKind.KV_CACHE_TOO_SMALL and args:
        assert stuck.suggested_max_model_len == 32768


def test_process_serves_then_stops_cleanly_on_sigterm() -> None:
    port = _free_port()
    cmd = [
        sys.executable,
        str(SIM_PATH),
        "serve",
        "org/m",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enforce-eager",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "SIM_LOAD_SECONDS": "0.2"})
    try:
        deadline, status = time.monotonic() + 15, 0
        while time.monotonic() < deadline and status != 200:
            time.sleep(0.1)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    c.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    status = int(c.recv(64).split()[1])
            except OSError:
                continue
        assert status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_bad_fault_setting_is_refused() -> None:
    with pytest.raises(SystemExit):
        sim.SimConfig.from_args([], {"SIM_FAULT": "meteor"})
    cfg = sim.SimConfig.from_args(
        [
            "serve",
            "org/m",
            "--served-model-name",
            "m",
            "alias",
            "--max-num-seqs",
            "3",
            "--dtype",
            "bfloat16",
        ],
        {"SIM_TOKEN_LATENCY_MS": "5", "SIM_KV_METRIC": "both"},
    )
    rendered = [  # what the renderer passes after `vllm serve`
        "--tensor-parallel-size",
        "2",
        "e2e/tiny-llm",
        "--served-model-name",
        "tiny",
        "--port",
        "8001",
        "--max-model-len",
        "4096",
        "--enable-expert-parallel",
        "--distributed-executor-backend",
        "ray",
        "--some-future-flag",
    ]
    got = sim.SimConfig.from_args(rendered, {})
    assert (got.model, got.name, got.port, got.max_model_len) == ("e2e/tiny-llm", "tiny", 8001, 4096)
    assert (cfg.model, cfg.name, cfg.max_num_seqs, cfg.token_latency_s, cfg.kv_metric) == (
        "org/m",
        "m",
        3,
        0.005,
        "both",
    )
