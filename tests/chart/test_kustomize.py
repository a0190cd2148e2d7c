"""manifests/: the kustomize base is the chart's default render, and it builds with kubectl."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.crdcheck import CRDValidator

from modeldeploy import crd
from modeldeploy.install import generate
from modeldeploy.install.helm import NAMESPACE, chart_crds, render_objects

ROOT = Path(__file__).resolve().parents[2]
Obj = dict[str, Any]

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None,
                                   reason="kubectl (with kustomize) is not installed")


def kustomize(path: str) -> list[Obj]:
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / path)], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def key(obj: Obj) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"]


BASE_FILES = generate.rendered_artifacts(ROOT)


@pytest.mark.parametrize("path", sorted(BASE_FILES))
def test_base_file_is_up_to_date(path: str) -> None:
    assert (ROOT / path).read_text(encoding="utf-8") == BASE_FILES[path], f"{path}: run `make crds`"


def test_base_holds_no_stray_files() -> None:
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "manifests/base").rglob("*.yaml")}
    crds = {f"manifests/base/crds/{crd.file_name(k)}" for k in crd.KINDS}
    assert on_disk == set(BASE_FILES) | crds


@needs_kubectl
def test_base_builds_and_equals_the_chart_default_render() -> None:
    built = {key(o): o for o in kustomize("manifests/base")}
    chart = {key(o): o for o in [*chart_crds(ROOT / "charts/modeldeploy"),
                                 *render_objects(ROOT / "charts/modeldeploy")]}
    extra = set(built) - set(chart)
    assert extra == {("v1", "Namespace", "", NAMESPACE)}, "only the Namespace is kustomize's own"
    assert set(chart) <= set(built), set(chart) - set(built)
    for k, obj in chart.items():
        assert built[k] == obj, k
    labels = built[("v1", "Namespace", "", NAMESPACE)]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@needs_kubectl
def test_example_overlay_builds_with_its_changes() -> None:
    built = kustomize("manifests/overlays/example")
    (deployment,) = [o for o in built if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/mirror/modeldeploy:0.1.0"
    assert container["resources"]["limits"]["memory"] == "1Gi"
    pools = [o for o in built if o["kind"] == "GPUPool"]
    assert {p["metadata"]["name"] for p in pools} == {"l4-x4", "h100-x8"}
    validator = CRDValidator(crd.crd(crd.GPU_POOL))
    for pool in pools:
        assert validator.violations(pool) == []
