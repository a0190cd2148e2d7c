"""Argo CD health checks, run with Lua 5.1 (lupa) in Argo CD's sandbox over health_test.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51
from tests.crdcheck import CRDValidator

from modeldeploy import crd

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "gitops/argocd/resource_customizations/modeldeploy.dev"
KINDS = ("ModelDeployment", "GPUPool")
VALIDATORS = {k.kind: CRDValidator(crd.crd(k)) for k in crd.KINDS}
VALID_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

# Argo CD runs argocd-cm scripts with the base, table, package and a safe os library only.
SANDBOX = """
debug.setmetatable("", nil)
string, io, debug, math, coroutine, load, loadstring, dofile, loadfile = nil
"""


def run_health(script: str, obj: dict[str, Any]) -> dict[str, str]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=False)
    lua.execute(SANDBOX)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    return {key: result[key] for key in ("status", "message") if result[key] is not None}


def _cases() -> list[tuple[str, str, dict[str, str]]]:
    out = []
    for kind in KINDS:
        tests = yaml.safe_load((BASE / kind / "health_test.yaml").read_text())["tests"]
        out += [(kind, t["inputPath"], t["healthStatus"]) for t in tests]
    return out


CASES = _cases()


@pytest.mark.parametrize(("kind", "input_path", "expected"), CASES,
                         ids=[f"{k}/{p.split('/')[-1]}" for k, p, _ in CASES])
def test_health_case(kind: str, input_path: str, expected: dict[str, str]) -> None:
    obj = yaml.safe_load((BASE / kind / input_path).read_text())
    got = run_health((BASE / kind / "health.lua").read_text(), obj)
    assert got == expected
    assert got["status"] in VALID_STATUSES


@pytest.mark.parametrize(("kind", "input_path"), [(k, p) for k, p, _ in CASES],
                         ids=[f"{k}/{p.split('/')[-1]}" for k, p, _ in CASES])
def test_case_input_is_a_valid_object(kind: str, input_path: str) -> None:
    obj = yaml.safe_load((BASE / kind / input_path).read_text())
    assert obj["kind"] == kind
    assert VALIDATORS[kind].violations(obj) == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_testdata_file_is_a_case(kind: str) -> None:
    listed = {p for k, p, _ in CASES if k == kind}
    on_disk = {f"testdata/{p.name}" for p in (BASE / kind / "testdata").glob("*.yaml")}
    assert listed == on_disk


def test_cases_cover_every_outcome() -> None:
    assert {e["status"] for k, _, e in CASES if k == "ModelDeployment"} == {"Healthy", "Progressing", "Degraded"}


def test_both_kinds_share_one_script() -> None:
    assert (BASE / "ModelDeployment/health.lua").read_text() == (BASE / "GPUPool/health.lua").read_text()


def test_stalled_wins_over_a_stale_ready() -> None:
    script = (BASE / "ModelDeployment/health.lua").read_text()
    obj = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Serving", "observedGeneration": 1},
        {"type": "Stalled", "status": "True", "reason": "NoFeasibleLayout", "message": "no pool fits",
         "observedGeneration": 2}]}}
    assert run_health(script, obj) == {"status": "Degraded", "message": "NoFeasibleLayout: no pool fits"}


def test_argocd_cm_embeds_the_scripts() -> None:
    cm = yaml.safe_load((ROOT / "gitops/argocd/argocd-cm.yaml").read_text())
    for kind in KINDS:
        key = f"resource.customizations.health.modeldeploy.dev_{kind}"
        assert cm["data"][key] == (BASE / kind / "health.lua").read_text()


def test_sandbox_really_removes_the_string_library() -> None:
    with pytest.raises(Exception, match="string"):
        run_health('return {status = string.upper("x")}', {})
