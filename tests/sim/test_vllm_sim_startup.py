"""The simulator's start: vLLM's progress lines phase by phase, and the stall modes.

Each log is read with the operator's own startup parser (`decisions.startup.last_step`) and
judged by its watchdog (`judge_start`), as the operator will see a pod's log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tests.sim.inprocess import SIM_PATH, load_sim, serve

from modeldeploy.decisions.rollout import StuckKind
from modeldeploy.decisions.startup import Allowance, StartPhase, judge_start, last_step

sim = load_sim()
STARTING_POD = {"metadata": {"name": "m-0"},
                "status": {"containerStatuses": [{"name": "vllm", "ready": False, "restartCount": 0,
                                                  "state": {"running": {}}}]}}


@pytest.fixture
async def engine() -> AsyncIterator[Any]:
    """Start an in-process simulator; yields a function returning its engine."""
    runners: list[web.AppRunner] = []

    async def start(**cfg: Any) -> Any:
        app, _ = await serve(runners, **cfg)
        return app[sim.ENGINE]

    yield start
    for r in runners:
        await r.cleanup()


async def _phases_until_loaded(eng: Any, timeout: float = 5.0) -> list[StartPhase]:
    """The distinct phases the log passes through, chunk by chunk as it was written."""
    deadline = time.monotonic() + timeout
    while not eng.loaded:
        assert time.monotonic() < deadline, f"not loaded within {timeout}s"
        await asyncio.sleep(0.02)
    seen: list[StartPhase] = []
    chunks = eng.startup_log.chunks
    for end in range(1, len(chunks) + 1):
        phase = last_step("".join(chunks[:end])).phase
        if not seen or seen[-1] != phase:
            seen.append(phase)
    return seen


async def test_a_start_passes_through_vllms_phases_in_order(engine: Any) -> None:
    eng = await engine(model="org/m", download_seconds=0.4, load_seconds=0.4, warmup_seconds=0.2, shards=2)
    phases = await _phases_until_loaded(eng)
    # vLLM logs "Starting to load model" first and downloads inside its loader (weight_utils.py).
    order = [StartPhase.LOAD, StartPhase.DOWNLOAD, StartPhase.LOAD, StartPhase.LOADED, StartPhase.KV_CACHE,
             StartPhase.CUDA_GRAPHS, StartPhase.SERVING]
    assert phases == order
    text = eng.startup_log.text
    assert "Starting to load model org/m..." in text
    assert "model-00002-of-00002.safetensors: 100%|##########|" in text
    assert "Loading safetensors checkpoint shards:  50% Completed | 1/2 [" in text
    assert "Loading safetensors checkpoint shards: 100% Completed | 2/2 [" in text
    assert "Time spent downloading weights for org/m:" in text
    assert "Model loading took 14.9575 GiB and" in text  # 16,060,522,496 bytes
    assert "GPU KV cache size: 32,768 tokens" in text
    assert "Starting vLLM API server 0 on http://0.0.0.0:8000" in text


async def test_weights_already_local_print_no_download(engine: Any) -> None:
    eng = await engine(load_seconds=0.05)
    phases = await _phases_until_loaded(eng)
    assert StartPhase.DOWNLOAD not in phases
    assert ".safetensors:" not in eng.startup_log.text
    assert phases[-1] == StartPhase.SERVING


@pytest.mark.parametrize(("stall", "phase", "kind", "last_line"), [
    ("download", StartPhase.DOWNLOAD, StuckKind.DOWNLOAD_STALLED, "model-00001-of-00004.safetensors:  50%"),
    ("load", StartPhase.LOAD, StuckKind.LOAD_STALLED, "Loading safetensors checkpoint shards:  50% Completed | 2/4"),
    ("warmup", StartPhase.CUDA_GRAPHS, StuckKind.LOAD_STALLED, "Capturing CUDA graphs"),
])
async def test_a_stalled_phase_stops_moving_and_the_watchdog_says_so(
    engine: Any, stall: str, phase: StartPhase, kind: StuckKind, last_line: str,
) -> None:
    eng = await engine(download_seconds=0.1, load_seconds=0.1, warmup_seconds=0.1, stall=stall)
    await asyncio.sleep(1.0)  # over three times the whole start without the stall
    frozen = eng.startup_log.text
    step = last_step(frozen)
    assert (step.phase, eng.loaded, eng.failed) == (phase, False, None)
    assert step.line is not None and step.line.startswith(last_line), step.line
    await asyncio.sleep(0.3)
    assert eng.startup_log.text == frozen  # alive, silent
    first = judge_start(STARTING_POD, frozen, None, now=100.0, allowance=Allowance(stall_seconds=30, checkpoint_bytes=0))
    assert first.stuck is None
    later = judge_start(STARTING_POD, frozen, first.mark, now=131.0, allowance=Allowance(stall_seconds=30, checkpoint_bytes=0))
    assert later.stuck is not None and later.stuck.kind == kind


async def test_an_oom_strikes_half_way_through_the_weights(engine: Any) -> None:
    eng = await engine(load_seconds=0.2, fault="oom")
    await asyncio.sleep(0.4)
    assert eng.failed is not None and "CUDA out of memory" in eng.failed
    text = eng.startup_log.text
    assert "2/4" in text and "3/4" not in text and "Loading weights took" not in text


def test_stall_and_phase_settings_from_the_environment() -> None:
    cfg = sim.SimConfig.from_args(["serve", "org/m"], {
        "SIM_STALL": "Load", "SIM_DOWNLOAD_SECONDS": "3", "SIM_WARMUP_SECONDS": "1.5",
        "SIM_SHARDS": "8", "SIM_CHECKPOINT_BYTES": "1000"})
    assert (cfg.stall, cfg.download_seconds, cfg.warmup_seconds, cfg.shards, cfg.checkpoint_bytes) == (
        "load", 3.0, 1.5, 8, 1000)
    with pytest.raises(SystemExit, match="SIM_STALL must be one of"):
        sim.SimConfig.from_args([], {"SIM_STALL": "forever"})
    with pytest.raises(SystemExit, match="SIM_SHARDS"):
        sim.SimConfig.from_args([], {"SIM_SHARDS": "0"})


def test_the_process_logs_to_stdout_bars_to_stderr_and_stops_while_stalled(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "SIM_DOWNLOAD_SECONDS": "0.2", "SIM_LOAD_SECONDS": "0.2", "SIM_STALL": "load"}
    cmd = [sys.executable, str(SIM_PATH), "serve", "org/m", "--host", "127.0.0.1", "--port", str(port)]
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("w") as out_file, err_path.open("w") as err_file:
        proc = subprocess.Popen(cmd, stdout=out_file, stderr=err_file, text=True, env=env)
        try:
            deadline = time.monotonic() + 20
            while "2/4" not in err_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # more than the rest of the load would take without the stall
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out, err = out_path.read_text(), err_path.read_text()
    assert "Starting to load model org/m..." in out and "Loading weights took" not in out
    assert ".safetensors: 100%" in err and "Loading safetensors checkpoint shards:  50% Completed | 2/4" in err
    assert "3/4" not in err
    assert last_step(out + err).phase == StartPhase.LOAD
