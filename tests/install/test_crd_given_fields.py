"""The API server's defaulting must not change what a ModelDeployment deploys.

The operator reads objects as the API server stores them, after the CRD's structural defaults;
`modeldeploy render` reads the user's YAML as written. Fields whose presence matters
(crd.rules.GIVEN_MATTERS: cache.mode, replicas) carry no server default, so both render the
same objects. Regression: the CRD defaulted cache.mode to emptyDir, and the operator asked for
716Gi of node-local ephemeral storage for DeepSeek-V3 where `render` chose a claim.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.crdcheck import CRDValidator
from typer.testing import CliRunner

from modeldeploy import crd
from modeldeploy.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
POOLS = ROOT / "examples" / "pools.yaml"
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p.name != "pools.yaml")


def _validator() -> CRDValidator:
    crds = {c["spec"]["names"]["kind"]: c for c in crd.crds()}
    return CRDValidator(crds["ModelDeployment"])


def _render(path: Path) -> Any:
    result = CliRunner().invoke(app, ["render", str(path), "--pools", str(POOLS), "--offline", "-o", "json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_render_is_the_same_after_the_api_servers_defaults(example: Path, tmp_path: Path) -> None:
    stored = _validator().defaulted(yaml.safe_load(example.read_text()))
    as_stored = tmp_path / example.name
    as_stored.write_text(yaml.safe_dump(stored, sort_keys=False))
    assert _render(as_stored) == _render(example)


def test_fields_whose_presence_matters_have_no_server_default() -> None:
    spec = _validator().schema["properties"]["spec"]["properties"]
    assert "default" not in spec["replicas"]
    assert "default" not in spec["cache"]["properties"]["mode"]
