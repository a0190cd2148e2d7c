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
         "--memory-request-per-gpu-gib", "--pre-stop-seconds", "--log-format", "--verbose")


def test_help_documents_every_flag() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in FLAGS:
        assert flag in result.output, flag


def test_namespace_and_all_namespaces_exclude_each_other() -> None:
    result = CliRunner().invoke(app, ["run", "-n", "a", "--all-namespaces"])
    assert result.exit_code != 0 and "exclude each other" in result.output


def test_invalid_settings_are_refused_before_anything_runs() -> None:
    # Exit 2 (bad input) and the flag as the user typed it, not the settings field's name.
    for flag in ("--resync-interval", "--cpu-request-per-gpu", "--max-concurrent-upgrades"):
        result = CliRunner().invoke(app, ["run", flag, "0"])
        assert result.exit_code == 2 and result.output.startswith(f"error: {flag}: "), result.output


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


def _captured(monkeypatch: pytest.MonkeyPatch) -> list[OperatorConfig]:
    from modeldeploy.cli import run as run_module

    seen: list[OperatorConfig] = []

    async def reachable(config: OperatorConfig) -> None:  # no cluster here: skip the preflight
        return None

    monkeypatch.setattr(run_module, "preflight", reachable)
    monkeypatch.setattr(run_module, "run_operator", seen.append)
    return seen


def test_every_render_option_is_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _captured(monkeypatch)
    result = CliRunner().invoke(app, [
        "run", "--prometheus-address", "http://prom.obs.svc:9090", "--run-as-user", "1000",
        "--adapter-metric-requests-waiting", "vllm_waiting", "--keda-polling-interval-seconds",
        "30", "--service-monitor", "--service-monitor-label", "release=prom",
        "--scrape-interval", "5", "--resync-interval", "20", "-n", "a", "-n", "b"])
    assert result.exit_code == 0, result.output
    render = seen[0].render
    assert (render.prometheus_address, render.run_as_user) == ("http://prom.obs.svc:9090", 1000)
    assert render.adapter_metrics.requests_waiting == "vllm_waiting"
    assert render.keda_polling_interval_seconds == 30 and render.service_monitor
    assert render.service_monitor_labels == {"release": "prom"}
    assert (seen[0].scrape_interval, seen[0].resync_interval) == (5, 20)
    assert seen[0].namespaces == ("a", "b")


def test_flags_override_environment_which_overrides_the_chart_json(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _captured(monkeypatch)
    monkeypatch.setenv("MODELDEPLOY_CONFIG", '{"resyncInterval": 7, "scrapeInterval": 9, '
                       '"render": {"prometheusAddress": "http://chart:9090", '
                       '"serviceMonitorLabels": {"teamName": "x"}}}')
    monkeypatch.setenv("MODELDEPLOY_SCRAPE_INTERVAL", "8")
    monkeypatch.setenv("MODELDEPLOY_RENDER__RUN_AS_USER", "1001")
    result = CliRunner().invoke(app, ["run", "--resync-interval", "6"])
    assert result.exit_code == 0, result.output
    config = seen[0]
    assert (config.resync_interval, config.scrape_interval) == (6, 8)
    assert config.render.prometheus_address == "http://chart:9090"
    assert config.render.run_as_user == 1001
    assert config.render.service_monitor_labels == {"teamName": "x"}  # label keys kept as given


def test_an_invalid_setting_from_the_chart_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _captured(monkeypatch)
    monkeypatch.setenv("MODELDEPLOY_CONFIG", '{"render": {"prometheusAddress": "not a url"}}')
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code != 0


def test_the_chart_schema_names_every_setting_it_passes() -> None:
    from modeldeploy.install.values_schema import operator_values_schema
    from modeldeploy.shell.config import CHART_OWN, camel

    schema = operator_values_schema()
    wanted = {camel(name) for name in OperatorConfig.model_fields if name not in CHART_OWN}
    assert set(schema["properties"]) == wanted
    assert "prometheusAddress" in schema["properties"]["render"]["properties"]
