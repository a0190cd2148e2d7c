"""docs/reference/<kind>.md generated from the CRD: every field, its type, default, bounds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..api import API_VERSION
from ..crd import Kind, crd

Schema = dict[str, Any]


def _type(node: Schema) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "integer or string"
    kind = node.get("type", "any")
    if kind == "array":
        return f"[]{_type(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'])}"
    return str(kind)


def _constraints(node: Schema) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    if "minimum" in node:
        parts.append(("> " if node.get("exclusiveMinimum") else "≥ ") + str(node["minimum"]))
    if "maximum" in node:
        parts.append(("< " if node.get("exclusiveMaximum") else "≤ ") + str(node["maximum"]))
    if "maxLength" in node:
        parts.append(f"length ≤ {node['maxLength']}")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    if "maxItems" in node:
        parts.append(f"≤ {node['maxItems']} items")
    if "maxProperties" in node:
        parts.append(f"≤ {node['maxProperties']} entries")
    if node.get("x-kubernetes-list-type") == "map":
        keys = ", ".join(node.get("x-kubernetes-list-map-keys", []))
        parts.append(f"unique by {keys}")
    items = node.get("items") or node.get("additionalProperties")
    if isinstance(items, dict) and items.get("type") != "object":
        inner = _constraints(items)
        if inner:
            parts.append(f"each: {inner}")
    return "; ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(node: Schema, path: str, required: bool) -> Iterator[str]:
    default = f"`{json.dumps(node['default'], ensure_ascii=False)}`" if "default" in node else ""
    yield (f"| `{path}` | {_type(node)} | {'yes' if required else ''} | {default} | "
           f"{_cell(_constraints(node))} | {_cell(node.get('description', ''))} |")
    target = node
    suffix = ""
    if node.get("type") == "array" and node.get("items", {}).get("type") == "object":
        target, suffix = node["items"], "[]"
    for name, prop in target.get("properties", {}).items():
        yield from _rows(prop, f"{path}{suffix}.{name}", name in target.get("required", ()))


def _rules(node: Schema, path: str) -> Iterator[str]:
    for rule in node.get("x-kubernetes-validations", ()):
        where = (path + rule.get("fieldPath", "")).lstrip(".") or "(object)"
        yield f"| `{where}` | `{_cell(rule['rule'])}` | {_cell(rule['message'])} |"
    target = node.get("items", node) if node.get("type") == "array" else node
    for name, prop in target.get("properties", {}).items():
        yield from _rules(prop, f"{path}{'[]' if target is not node else ''}.{name}")


def markdown(kind: Kind) -> str:
    obj = crd(kind)
    version = obj["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    names = obj["spec"]["names"]
    lines = [
        f"# {kind.kind}",
        "",
        "<!-- Generated from the CRD by `make crds` (modeldeploy.install.reference). Do not edit. -->",
        "",
        schema["description"],
        "",
        f"- API version: `{API_VERSION}`",
        f"- Scope: {obj['spec']['scope']}",
        f"- Short names: {', '.join(f'`{n}`' for n in names['shortNames'])}; "
        f"categories: {', '.join(f'`{c}`' for c in names['categories'])}",
        f"- Subresources: {', '.join(f'`{s}`' for s in version['subresources'])}",
        "",
        "`kubectl explain " + names["plural"] + ".spec` shows the same descriptions.",
        "",
        "## Columns of `kubectl get`",
        "",
        "| Column | JSONPath | Shown |",
        "|---|---|---|",
        *(f"| {c['name']} | `{_cell(c['jsonPath'])}` | {'-o wide' if c.get('priority') else 'always'} |"
          for c in version["additionalPrinterColumns"]),
    ]
    for section in ("spec", "status"):
        node = schema["properties"][section]
        lines += [
            "",
            f"## {section}",
            "",
            node.get("description", ""),
            "",
            "| Field | Type | Required | Default | Validation | Description |",
            "|---|---|---|---|---|---|",
        ]
        for name, prop in node.get("properties", {}).items():
            lines.extend(_rows(prop, f"{section}.{name}", name in node.get("required", ())))
    rules = list(_rules(schema, ""))
    if rules:
        lines += [
            "",
            "## Cross-field rules (CEL)",
            "",
            "The API server rejects an object that breaks one of these with the message shown.",
            "",
            "| Where | Rule | Message |",
            "|---|---|---|",
            *rules,
        ]
    return "\n".join(lines) + "\n"


def rbac_markdown() -> str:
    """docs/reference/rbac.md: every permission, the modes it applies to, and why."""
    from .. import rbac

    def verbs(p: rbac.Permission) -> str:
        return ", ".join(p.verbs)

    def where(p: rbac.Permission) -> str:
        modes = "both" if p.modes == rbac.BOTH else f"{next(iter(p.modes)).value} only"
        return modes + (", with peering" if p.peering else "")

    lines = [
        "# Operator RBAC",
        "",
        "<!-- Generated from operator/modeldeploy/rbac.py by `make crds`. Do not edit. -->",
        "",
        "Every permission the operator's ServiceAccount holds. The chart and the kustomize base",
        "render their ClusterRole / Roles from the same list; `modeldeploy rbac` prints it.",
        "Cluster-wide mode: one ClusterRole. Namespaced mode (`watchNamespaces`): a Role in each",
        "watched namespace with the rules marked *both* and nothing cluster-scoped.",
        "With peering (replicas > 1), the Lease rule is a Role in the operator's own namespace.",
        "",
        "| API group | Resources | Verbs | Mode | Why |",
        "|---|---|---|---|---|",
        *(f"| `{', '.join(p.api_groups) or 'core'}` | {', '.join(p.resources)} | {verbs(p)} | "
          f"{where(p)} | {_cell(p.why)} |" for p in (*rbac.PERMISSIONS, rbac.LEADER_LEASE)),
        "",
        "## Aggregated user roles",
        "",
        "In cluster-wide mode (and `rbac.aggregateToDefaultRoles: true`) these rules are added to",
        "the built-in `edit`/`admin` and `view` ClusterRoles, so whoever may edit a namespace may",
        "manage its ModelDeployments.",
        "",
        "| Role | Resources | Verbs | Why |",
        "|---|---|---|---|",
        *(f"| {role} | {', '.join(p.resources)} | {', '.join(p.verbs)} | {_cell(p.why)} |"
          for role, perms in rbac.USER_ROLES.items() for p in perms),
    ]
    return "\n".join(lines) + "\n"


def settings_markdown() -> str:
    """docs/reference/operator-settings.md: every operator setting as flag, env and value."""
    from ..cli.flags import settings_flags
    from ..shell.config import CHART_OWN, OperatorConfig, camel

    def default(path: tuple[str, ...]) -> str:
        value: Any = OperatorConfig.model_construct()
        for key in path:
            value = getattr(value, key, None) if not isinstance(value, dict) else value.get(key)
        return f"`{value}`" if value not in (None, "", (), {}) else ""

    lines = [
        "# Operator settings",
        "",
        "<!-- Generated from operator/modeldeploy/shell/config.py by `make crds`. Do not edit. -->",
        "",
        "One settings object (`OperatorConfig`): each setting is a flag of `modeldeploy run`, an",
        "environment variable, and a key of the chart's `operator:` value (camelCase, passed as",
        "the JSON `MODELDEPLOY_CONFIG`). Precedence: flag, environment variable,",
        "`MODELDEPLOY_CONFIG`, default. Settings marked *chart value* are set by a dedicated",
        "value of the chart (watchNamespaces, peering, probes, metrics, huggingFace).",
        "",
        "| Flag | Environment | Chart `operator:` key | Default | What |",
        "|---|---|---|---|---|",
    ]
    for flag in settings_flags(OperatorConfig):
        env = flag.help.rpartition("[env: ")[2].rstrip("]")
        what = flag.help.rpartition(" [env: ")[0]
        key = "chart value" if flag.path[0] in CHART_OWN else \
            "`" + ".".join(camel(p) for p in flag.path) + "`"
        lines.append(f"| `{' '.join(flag.names)}` | `{env}` | {key} | {default(flag.path)} | "
                     f"{_cell(what)} |")
    return "\n".join(lines) + "\n"
