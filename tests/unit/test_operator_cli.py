"""`modeldeploy run`: flags, configuration, kopf settings and credentials (no cluster)."""

from __future__ import annotations

from pathlib import Path

import kopf
import pytest
import yaml
from kubernetes_asyncio import client as k8s
from typer.testing import CliRunner

from modeldeploy.cli.main import app
from modeldeploy.shell.config import OperatorConfig
from modeldeploy.shell.runtime import (
    FINALIZER,
    configure_kopf,
    connection_info,
    load_client_configuration,
)

FLAGS = ("--kubeconfig", "--context", "--namespace", "--all-namespaces", "--liveness",
         "--peering", "--standalone", "--hub-endpoint", "--hub-timeout", "--offline",
         "--service-monitor", "--service-monitor-label", "--resync-interval",
         "--pool-status-interval", "--watch-timeout", "--request-timeout", "--max-concurrent",
         "--max-concurrent-upgrades", "--cpu-request-per-gpu", "--memory-request-base-gib",
         "--memory-request-per-gpu-gib", "--log-format", "--verbose")


def test_help_documents_every_flag() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in FLAGS:
        assert flag in result.output, flag


def test_namespace_and_all_namespaces_exclude_each_other() -> None:
    result = CliRunner().invoke(app, ["run", "-n", "a", "--all-namespaces"])
    assert result.exit_code != 0 and "exclude each other" in result.output


def test_invalid_settings_are_refused_before_anything_runs() -> None:
    result = CliRunner().invoke(app, ["run", "--resync-interval", "0"])
    assert result.exit_code != 0 and "resync_interval" in result.output
    result = CliRunner().invoke(app, ["run", "--cpu-request-per-gpu", "0"])
    assert result.exit_code != 0 and "cpu_request_per_gpu" in result.output
    result = CliRunner().invoke(app, ["run", "--max-concurrent-upgrades", "0"])
    assert result.exit_code != 0 and "max_concurrent_upgrades" in result.output


def test_config_defaults_and_checks() -> None:
    config = OperatorConfig()
    assert config.clusterwide and not config.peering
    assert config.client_watch_timeout == config.watch_server_timeout + 30
    assert not OperatorConfig(namespaces=("a",)).clusterwide
    with pytest.raises(ValueError, match="twice"):
        OperatorConfig(namespaces=("a", "a"))


def test_kopf_state_lives_under_our_group_with_explicit_timeouts() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings, OperatorConfig(watch_server_timeout=120, connect_timeout=3))
    assert settings.persistence.finalizer == FINALIZER == "modeldeploy.dev/finalizer"
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert settings.persistence.progress_storage.prefix == "modeldeploy.dev"
    assert settings.persistence.diffbase_storage.prefix == "modeldeploy.dev"  # type: ignore[attr-defined]
    assert (settings.watching.server_timeout, settings.watching.client_timeout) == (120, 150)
    assert settings.watching.connect_timeout == 3
    assert not settings.posting.enabled and settings.scanning.disabled


async def test_kopf_and_the_client_share_one_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://10.0.0.1:6443",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "s3cret"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }))
    client_config = await load_client_configuration(OperatorConfig(kubeconfig=path))
    assert isinstance(client_config, k8s.Configuration)
    info = await connection_info(client_config)
    assert (info.server, info.scheme, info.token, info.insecure) == (
        "https://10.0.0.1:6443", "Bearer", "s3cret", True)
