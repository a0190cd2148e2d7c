"""Fixtures of the integration tier: an emulated API server on loopback and a real client."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from .emulator import EmulatorServer
from .fleet import SimFleet
from .harness import Cluster, OperatorThread, SkewedClock, fast_config, running_operator
from .test_hub_fetch import fake_hub  # noqa: F401 - the fake Hugging Face hub, shared fixture

TEST_USER_AGENT = "modeldeploy-tests"

# aiohttp logs one line per request of the emulator; the request log is the tool for that.
logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


@pytest.fixture()
def emulator_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def kubeconfig(emulator_server: EmulatorServer, tmp_path: Path) -> Path:
    return emulator_server.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture()
def api(kubeconfig: Path) -> Iterator[kubernetes.client.ApiClient]:
    """The real `kubernetes` client, configured from the emulator's kubeconfig."""
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=config)
    config.retries = 0  # see each failure; the operator has its own retry policy
    client = kubernetes.client.ApiClient(config)
    client.user_agent = TEST_USER_AGENT
    try:
        yield client
    finally:
        client.close()


@pytest.fixture()
def namespace() -> str:
    return f"ns-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def cluster(api: kubernetes.client.ApiClient, namespace: str) -> Cluster:
    """The tests' side of the API in a fresh namespace."""
    return Cluster(api, namespace)


@pytest.fixture()
def fleet() -> Iterator[SimFleet]:
    """vLLM simulators on loopback addresses, one shared port (the builtin autoscaler's pods)."""
    sims = SimFleet()
    try:
        yield sims
    finally:
        sims.close()


@pytest.fixture()
def clock() -> SkewedClock:
    """The clock the startup-watchdog scenarios' operator decides on."""
    return SkewedClock()


@pytest.fixture()
def watchdog_operator(emulator_server: EmulatorServer, kubeconfig: Path, cluster: Cluster,
                      clock: SkewedClock) -> Iterator[OperatorThread]:
    """The operator on `clock`, reading starting pods' logs on every pass."""
    config = fast_config(kubeconfig, start_log_interval=0.05)
    with running_operator(emulator_server, cluster, config, wall=clock) as thread:
        yield thread
