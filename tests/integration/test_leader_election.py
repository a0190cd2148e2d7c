"""Two operators with `--peering` against the emulated API server: only the Lease holder writes;
when it stops (or cannot renew), the other takes over within the lease duration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .emulator import EmulatorServer, Fault, LoggedRequest
from .harness import (
    Cluster,
    OperatorThread,
    assert_rbac_allows,
    eventually,
    fast_config,
    gpu_pool,
    model_deployment,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

LEASE_NAME = "modeldeploy"
DURATION = 3  # s; the retry period is a sixth of it
AGENT = "modeldeploy-operator-"


def replica(kubeconfig: Path, namespace: str, name: str) -> OperatorThread:
    return OperatorThread(fast_config(
        kubeconfig, peering=True, pools_namespace=namespace, lease_duration=DURATION,
        lease_retry_period=DURATION / 6, user_agent=AGENT + name))


def lease(server: EmulatorServer, namespace: str) -> dict[str, Any]:
    kind = server.emulator.kind_of("coordination.k8s.io", "v1", "leases")
    return server.emulator.peek(kind, namespace, LEASE_NAME) or {}


def holder(server: EmulatorServer, namespace: str) -> str:
    return str((lease(server, namespace).get("spec") or {}).get("holderIdentity") or "")


def writers(requests: list[LoggedRequest]) -> set[str]:
    """Which replicas wrote anything but the Lease."""
    return {r.user_agent.removeprefix(AGENT) for r in requests
            if r.is_write and r.user_agent.startswith(AGENT) and r.resource != "leases"}


def converge(cluster: Cluster, name: str) -> None:
    cluster.create(model_deployment(name))
    eventually(lambda: cluster.deployment(name), what=f"deployment {name}")
    cluster.mark_available(name)
    cluster.wait_condition(name, "Ready", "True")


@pytest.fixture()
def replicas(emulator_server: EmulatorServer, kubeconfig: Path, cluster: Cluster,
             namespace: str) -> Iterator[dict[str, OperatorThread]]:
    """Replica a, leading, then replica b, on standby."""
    cluster.create_pool(gpu_pool())
    started = {"a": replica(kubeconfig, namespace, "a").start()}
    eventually(lambda: holder(emulator_server, namespace), what="a leads")
    started["b"] = replica(kubeconfig, namespace, "b").start()
    try:
        yield started
    finally:
        for thread in started.values():
            if thread.alive:
                thread.stop()
        assert_rbac_allows(emulator_server, peering=True)


def test_only_the_leader_writes_and_a_stopped_leader_is_replaced(
        emulator_server: EmulatorServer, cluster: Cluster, namespace: str,
        replicas: dict[str, OperatorThread]) -> None:
    mark = emulator_server.emulator.log_mark()
    converge(cluster, "first")
    time.sleep(DURATION)  # several renewals, resyncs and standby rounds
    assert writers(emulator_server.emulator.requests_since(mark)) == {"a"}
    assert replicas["b"].passes() == 0  # the standby's informers are warm, it decides nothing
    first_holder = holder(emulator_server, namespace)

    replicas["a"].stop()
    stopped = time.monotonic()
    mark = emulator_server.emulator.log_mark()
    eventually(lambda: holder(emulator_server, namespace) not in ("", first_holder),
               timeout=DURATION, what="b holds the Lease")
    converge(cluster, "second")
    took_over = time.monotonic() - stopped
    assert writers(emulator_server.emulator.requests_since(mark)) == {"b"}
    spec = lease(emulator_server, namespace)["spec"]
    assert spec["leaseDurationSeconds"] == DURATION and spec["leaseTransitions"] >= 1
    assert took_over < DURATION + 5  # b wrote the second model's children (Ready: the test's)


def test_a_leader_that_cannot_renew_stops_writing_and_is_replaced(
        emulator_server: EmulatorServer, cluster: Cluster, namespace: str,
        replicas: dict[str, OperatorThread]) -> None:
    first_holder = holder(emulator_server, namespace)
    # a's API access to the Lease breaks (as in a partition); it must stand down on its own.
    emulator_server.emulator.inject(Fault(status=500, resource="leases", times=1_000_000,
                                          user_agent_prefix=AGENT + "a"))
    failed = time.monotonic()
    eventually(lambda: holder(emulator_server, namespace) not in ("", first_holder),
               timeout=DURATION + 2, what="b takes the lapsed Lease")
    assert time.monotonic() - failed < DURATION + 2  # the lease duration plus one retry round
    mark = emulator_server.emulator.log_mark()
    converge(cluster, "after")
    time.sleep(DURATION / 2)
    assert writers(emulator_server.emulator.requests_since(mark)) == {"b"}
    assert replicas["a"].alive  # standing by, not crashed
