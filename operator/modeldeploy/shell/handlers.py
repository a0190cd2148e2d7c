"""kopf handlers: login, start-up, clean-up and the liveness probe, each delegating in one call.

kopf runs the operator's lifecycle (signals, peering, liveness, credentials); the watches are
the operator's own informers (`shell.view`), so no kopf resource handler exists: kopf writes no
finalizer or state annotation onto the user's ModelDeployment (docs/decisions/operator-shell.md).
Children are removed by ownerReference garbage collection.
"""

from __future__ import annotations

from typing import Any

import kopf

from .runtime import OperatorRuntime


def build_registry(runtime: OperatorRuntime) -> kopf.OperatorRegistry:
    """A fresh registry per operator run (the tests start several in one process)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return await runtime.login()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        await runtime.start(settings)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await runtime.stop()

    @kopf.on.probe(id="reconciles", registry=registry)
    async def probe(**_: Any) -> dict[str, int]:
        return runtime.probe()

    return registry
