"""`modeldeploy crd` and `modeldeploy rbac` print what is checked in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from modeldeploy import crd, rbac
from modeldeploy.cli.main import app
from modeldeploy.install import helm

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_crd_command_prints_exactly_the_checked_in_crds() -> None:
    result = runner.invoke(app, ["crd"])
    assert result.exit_code == 0, result.output
    expected = "".join((ROOT / "crds" / crd.file_name(k)).read_text() for k in crd.KINDS)
    assert result.stdout == expected


def test_crd_command_selects_a_kind() -> None:
    result = runner.invoke(app, ["crd", "--kind", "GPUPool"])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["spec"]["names"]["kind"] for d in docs] == ["GPUPool"]


def test_rbac_command_cluster_mode() -> None:
    result = runner.invoke(app, ["rbac"])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [d["kind"] for d in docs] == ["ClusterRole"]
    assert docs[0]["rules"] == rbac.rules(rbac.Mode.CLUSTER, peering=False)
    assert "# nodes: GPU capacity of the pools' nodes\n" in result.stdout


def test_rbac_command_namespaced_mode_prints_roles_only() -> None:
    result = runner.invoke(app, ["rbac", "-n", "team-a", "-n", "team-b", "--peering",
                                 "--operator-namespace", "ops"])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [(d["kind"], d["metadata"]["namespace"]) for d in docs] == [
        ("Role", "team-a"), ("Role", "team-b"), ("Role", "ops")]
    assert docs[0]["rules"] == rbac.rules(rbac.Mode.NAMESPACED, peering=True)
    # The leader-election Lease: a Role of its own in the operator's namespace.
    assert docs[2]["metadata"]["name"] == "modeldeploy-leader-election"
    assert docs[2]["rules"] == [rbac.LEADER_LEASE.rule()]


def test_rendering_the_chart_without_the_test_extras_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "helm_python", None)  # as if not installed
    with pytest.raises(RuntimeError, match=r"helm-python-sdk: pip install 'modeldeploy\[test\]'"):
        helm.render(tmp_path)
