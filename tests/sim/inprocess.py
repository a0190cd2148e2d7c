"""The vLLM simulator (e2e/vllm-sim/sim.py) for tests: loaded by path once, and served in-process
on 127.0.0.1 at a free port (both simulator test files use it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web

SIM_PATH = Path(__file__).resolve().parents[2] / "e2e" / "vllm-sim" / "sim.py"


def load_sim() -> ModuleType:
    """The simulator module, loaded by path once per test process (as `vllm_sim`)."""
    if "vllm_sim" not in sys.modules:
        spec = importlib.util.spec_from_file_location("vllm_sim", SIM_PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["vllm_sim"] = module
        spec.loader.exec_module(module)
    return sys.modules["vllm_sim"]


async def serve(runners: list[web.AppRunner], **cfg: Any) -> tuple[web.Application, str]:
    """Start one simulator with SimConfig(**cfg); its runner joins `runners` (the caller cleans
    them up). Returns the app and its base URL (http://127.0.0.1:<port>)."""
    sim = load_sim()
    app = sim.create_app(sim.SimConfig(**cfg))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    runners.append(runner)
    host, port = runner.addresses[0][:2]
    return app, f"http://{host}:{port}"
