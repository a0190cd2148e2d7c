"""Write every generated install artifact, or report drift (`--check`).

    python -m modeldeploy.install.generate [--check] [--root DIR]      (make crds)

Sources: the API models (CRDs, reference docs, values schema), `modeldeploy.rbac` (chart RBAC
file), the chart templates (kustomize base) and the Argo CD health scripts (argocd-cm patch).
The tests compare the same artifacts with the files on disk.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .. import rbac
from ..crd import KINDS, Kind, crd, crd_yaml, dump, file_name
from .reference import markdown, rbac_markdown, settings_markdown
from .values_schema import values_schema

ROOT = Path(__file__).resolve().parents[3]
GENERATED = "# Generated from operator/modeldeploy by `make crds`. Do not edit.\n"
HEALTH_KINDS = ("ModelDeployment", "GPUPool")


def _crds_chart_template(kind: Kind) -> str:
    """The CRD for the modeldeploy-crds chart: Helm upgrades it and never deletes it."""
    obj = crd(kind)
    obj["metadata"]["annotations"] = {"helm.sh/resource-policy": "keep"}
    return GENERATED + "---\n" + dump(obj)


class _LiteralDumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str)


def argocd_cm(root: Path) -> str:
    """argocd-cm patch carrying the health checks (for Argo CD installs not built from source)."""
    base = root / "gitops" / "argocd" / "resource_customizations" / "modeldeploy.dev"
    data = {
        f"resource.customizations.health.modeldeploy.dev_{kind}":
            (base / kind / "health.lua").read_text(encoding="utf-8")
        for kind in HEALTH_KINDS
    }
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "argocd-cm",
            "namespace": "argocd",
            "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
        },
        "data": data,
    }
    head = "# Generated from gitops/argocd/resource_customizations by `make crds`. Do not edit.\n"
    return head + yaml.dump(obj, Dumper=_LiteralDumper, sort_keys=False, width=100)


def static_artifacts(root: Path = ROOT) -> dict[str, str]:
    """Artifacts computed from code alone (plus the health scripts)."""
    out: dict[str, str] = {}
    for kind in KINDS:
        name = file_name(kind)
        text = crd_yaml(kind)
        out[f"crds/{name}"] = text
        out[f"charts/modeldeploy/crds/{name}"] = text
        out[f"manifests/base/crds/{name}"] = text
        out[f"charts/modeldeploy-crds/templates/{name}"] = _crds_chart_template(kind)
        out[f"docs/reference/{kind.kind.lower()}.md"] = markdown(kind)
    out["charts/modeldeploy/files/rbac.yaml"] = rbac.chart_file()
    out["docs/reference/rbac.md"] = rbac_markdown()
    out["docs/reference/operator-settings.md"] = settings_markdown()
    out["charts/modeldeploy/values.schema.json"] = json.dumps(
        values_schema(), indent=2, ensure_ascii=False) + "\n"
    out["gitops/argocd/argocd-cm.yaml"] = argocd_cm(root)
    return out


def rendered_artifacts(root: Path = ROOT) -> dict[str, str]:
    """Artifacts rendered from the chart on disk (run after the static ones are written)."""
    from .kustomize import base_files

    return base_files(root)


def _drift(root: Path, wanted: dict[str, str]) -> list[str]:
    return [
        path for path, text in sorted(wanted.items())
        if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text
    ]


def _write(root: Path, wanted: dict[str, str]) -> list[str]:
    changed = _drift(root, wanted)
    for path in changed:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(wanted[path], encoding="utf-8")
    return changed


def run(root: Path, *, check: bool) -> list[str]:
    """Write (or with `check`, only compare) every artifact; returns the paths that differed."""
    phases: list[Callable[[Path], dict[str, str]]] = [static_artifacts, rendered_artifacts]
    if check:
        return [p for phase in phases for p in _drift(root, phase(root))]
    return [p for phase in phases for p in _write(root, phase(root))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeldeploy.install.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    args = parser.parse_args(argv)
    changed = run(args.root, check=args.check)
    verb = "out of date" if args.check else "written"
    for path in changed:
        print(f"{verb}: {path}")
    if args.check and changed:
        print("run `make crds` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
