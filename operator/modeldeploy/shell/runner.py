"""`run_operator`: the one entry point of `modeldeploy run` and of the integration tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import kopf

from .config import OperatorConfig
from .handlers import build_registry
from .preflight import load_client_configuration
from .runtime import OperatorRuntime

Flag = asyncio.Event | threading.Event | asyncio.Future[object] | None


async def run_operator_async(config: OperatorConfig, *, stop_flag: Flag = None,
                             ready_flag: Flag = None,
                             wall: Callable[[], float] = time.time) -> None:
    """Run until `stop_flag` is set (or a signal, when in the main thread). `wall`: the clock
    of decisions (epoch s; tests move it forward instead of waiting)."""
    runtime = OperatorRuntime(config, await load_client_configuration(config), wall=wall)
    await kopf.operator(
        registry=build_registry(runtime),
        clusterwide=config.clusterwide,
        namespaces=list(config.namespaces),
        # kopf runs no resource handler, so its peering would elect nothing: `--peering`
        # selects the operator's own Lease election (`shell.leader`).
        standalone=True,
        liveness_endpoint=config.liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def run_operator(config: OperatorConfig, *, stop_flag: Flag = None, ready_flag: Flag = None,
                 wall: Callable[[], float] = time.time) -> None:
    """Synchronous wrapper: a fresh event loop for this operator."""
    asyncio.run(run_operator_async(config, stop_flag=stop_flag, ready_flag=ready_flag,
                                   wall=wall))
