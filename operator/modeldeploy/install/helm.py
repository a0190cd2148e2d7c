"""Render the chart with Helm's own engine (helm-python-sdk embeds Helm's Go SDK; no binary).

Needs the `[test]` extras. Output is parsed strictly: duplicate keys are an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

RELEASE = "modeldeploy"
NAMESPACE = "modeldeploy-system"

# The order `helm install` applies kinds in (a subset of Helm's InstallOrder).
KIND_ORDER = (
    "Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
    "Role", "RoleBinding", "Service", "Deployment",
)


class _StrictLoader(yaml.SafeLoader):
    pass


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dupes = sorted({str(k) for k in keys if keys.count(k) > 1})
    if dupes:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {dupes}", node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _helm() -> Any:
    """Helm's engine (helm-python-sdk, in the `[test]` extras); imported only when a chart is
    rendered, so the rest of the package works without the extras."""
    try:
        import helm_python
    except ImportError as exc:
        raise RuntimeError("rendering the chart needs helm-python-sdk: "
                           "pip install 'modeldeploy[test]'") from exc
    return helm_python


def load_all(text: str) -> list[dict[str, Any]]:
    """YAML documents as objects; empty documents dropped, duplicate keys rejected."""
    docs = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
            raise ValueError(f"not a Kubernetes object: {str(doc)[:80]}")
    return docs


def sort_key(obj: dict[str, Any]) -> tuple[int, str, str, str]:
    kind = obj["kind"]
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    meta = obj.get("metadata", {})
    return rank, kind, meta.get("namespace", ""), meta.get("name", "")


def render(chart_dir: Path, values: dict[str, Any] | None = None, *, release: str = RELEASE,
           namespace: str = NAMESPACE) -> dict[str, list[dict[str, Any]]]:
    """Template file name → the objects it renders (NOTES.txt excluded)."""
    with _helm().Chart.load(str(chart_dir)) as chart:
        manifests: dict[str, str] = chart.render(
            values or {}, name=release, namespace=namespace, is_install=True)
    return {
        path.split("/templates/", 1)[-1]: load_all(text)
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
    }


def render_objects(chart_dir: Path, values: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    """All rendered objects, in install order."""
    objs = [o for docs in render(chart_dir, values, **kw).values() for o in docs]
    return sorted(objs, key=sort_key)


def chart_crds(chart_dir: Path) -> list[dict[str, Any]]:
    """The CRDs Helm installs from the chart's crds/ directory."""
    with _helm().Chart.load(str(chart_dir)) as chart:
        crds: list[dict[str, str]] = chart.crds
    return [o for c in sorted(crds, key=lambda c: c["filename"]) for o in load_all(c["data"])]
