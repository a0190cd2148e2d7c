"""CustomResourceDefinitions generated from the pydantic API models. Pure: no I/O.

The models in `modeldeploy.api` are the single source of truth. This module turns their JSON
schema into structural OpenAPI v3 schemas (refs inlined, nullable unions collapsed, no
`additionalProperties: false`, int-or-string for `maxSurge`), adds what pydantic checks in code
(`FIELD_SCHEMA`) and mirrors every cross-field model validator as a CEL rule (`RULES`) with the
same meaning (both in `crd.rules`). `tests/install/test_crd_validation.py` checks each invalid object is rejected by
both pydantic and the CRD, so the two cannot drift apart silently.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from ..api import (
    GROUP,
    VERSION,
    GPUPool,
    GPUPoolSpec,
    GPUPoolStatus,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from .rules import FIELD_SCHEMA, GIVEN_MATTERS, KIND_DESCRIPTIONS, ROOT_RULES, RULES

Schema = dict[str, Any]


_KEY_ORDER = (
    "description", "type", "format", "x-kubernetes-int-or-string", "anyOf", "enum", "default",
    "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minLength", "maxLength",
    "pattern", "minItems", "maxItems", "items", "maxProperties", "properties",
    "additionalProperties", "required", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-validations", "x-kubernetes-preserve-unknown-fields",
)


def _ordered(node: Schema) -> Schema:
    rank = {k: i for i, k in enumerate(_KEY_ORDER)}
    return {k: node[k] for k in sorted(node, key=lambda k: (rank.get(k, len(rank)), k))}


def _merge(base: Schema, extra: Schema) -> Schema:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list) and key.endswith("validations"):
            out[key] = [*out[key], *value]
        else:
            out[key] = copy.deepcopy(value)
    return out


def _models_under(model: type[BaseModel]) -> Iterable[type[BaseModel]]:
    yield model
    for rule_model in {*RULES, *(m for m, _ in FIELD_SCHEMA), *(m for m, _ in GIVEN_MATTERS)}:
        if rule_model is not model:
            yield rule_model


def _patch(model: type[BaseModel], raw: Schema) -> Schema:
    """Apply FIELD_SCHEMA, GIVEN_MATTERS (no server default) and RULES to the pydantic schema (root and $defs) of `model`."""
    raw = copy.deepcopy(raw)
    defs: dict[str, Schema] = raw.get("$defs", {})
    for target in _models_under(model):
        node = raw if target is model else defs.get(target.__name__)
        if node is None:
            continue
        for (owner, field), extra in FIELD_SCHEMA.items():
            if owner is target:
                if field not in node.get("properties", {}):
                    raise KeyError(f"{owner.__name__} has no field {field}")
                node["properties"][field] = _merge(node["properties"][field], extra)
        for owner, field in GIVEN_MATTERS:
            if owner is target:
                node["properties"][field].pop("default")  # KeyError if the default went away
        rules = RULES.get(target, ())
        if rules:
            node["x-kubernetes-validations"] = [r.wire() for r in rules]
    return raw


def _int_or_string(branches: list[Schema]) -> bool:
    types = sorted(str(b.get("type")) for b in branches)
    return types == ["integer", "string"]


class _Converter:
    """pydantic JSON schema (draft 2020-12) → Kubernetes structural OpenAPI v3 schema."""

    def __init__(self, defs: dict[str, Schema]) -> None:
        self.defs = defs

    def convert(self, node: Schema) -> Schema:
        node = {k: v for k, v in node.items() if k != "title"}
        if "$ref" in node:
            target = self.convert(self.defs[node.pop("$ref").rsplit("/", 1)[-1]])
            return _ordered({**target, **self._scalars(node)})
        if "anyOf" in node:
            return self._union(node)
        if "const" in node:
            node["enum"] = [node.pop("const")]
        for bound in ("Minimum", "Maximum"):
            key = f"exclusive{bound}"
            if isinstance(node.get(key), int | float) and not isinstance(node[key], bool):
                node[bound.lower()] = node[key]
                node[key] = True
        if node.get("additionalProperties") in (False, True):
            del node["additionalProperties"]  # true: free-form objects preserve unknown fields
        if isinstance(node.get("additionalProperties"), dict):
            node["additionalProperties"] = self.convert(node["additionalProperties"])
        if "items" in node:
            node["items"] = self.convert(node["items"])
        if "properties" in node:
            required = set(node.get("required", ()))
            node["properties"] = {
                name: self._property(prop, name in required)
                for name, prop in node["properties"].items()
            }
        if node.get("default", 0) is None:
            del node["default"]
        return _ordered(node)

    def _scalars(self, node: Schema) -> Schema:
        """Sibling keys of a $ref or anyOf (description, default, rules) kept on the result."""
        out = {k: v for k, v in node.items() if k not in ("anyOf", "$ref", "title")}
        if out.get("default", 0) is None:
            del out["default"]
        return out

    def _union(self, node: Schema) -> Schema:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        rest = self._scalars(node)
        if len(branches) == 1:
            return _ordered({**self.convert(branches[0]), **rest})
        if _int_or_string(branches):
            return _ordered({
                **rest,
                "x-kubernetes-int-or-string": True,
                "anyOf": [{"type": "integer"}, {"type": "string"}],
            })
        raise ValueError(f"union is not expressible in a structural schema: {node['anyOf']}")

    def _property(self, prop: Schema, required: bool) -> Schema:
        out = self.convert(prop)
        # A nested settings object (pydantic default_factory) defaults to {} so the API server
        # applies the defaults inside it too, whether or not the user wrote the parent key.
        if (
            not required and "$ref" in prop and "default" not in out
            and out.get("type") == "object" and "properties" in out and not out.get("required")
        ):
            out["default"] = {}
            out = _ordered(out)
        return out


def openapi_schema(model: type[BaseModel]) -> Schema:
    """The structural OpenAPI v3 schema of one API model (spec or status)."""
    raw = _patch(model, model.model_json_schema(by_alias=True))
    converter = _Converter(raw.pop("$defs", {}))
    return converter.convert(raw)


def _strip_defaults(node: Any) -> Any:
    """Status is observed, never defaulted: a missing value must not read as 0 or false."""
    if isinstance(node, dict):
        return {k: _strip_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_strip_defaults(v) for v in node]
    return node


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0

    def wire(self) -> Schema:
        out: Schema = {"name": self.name, "type": self.type, "jsonPath": self.json_path,
                       "description": self.description}
        if self.priority:
            out["priority"] = self.priority
        return out


_READY = '.status.conditions[?(@.type=="Ready")]'
_AGE = Column("Age", "date", ".metadata.creationTimestamp", "Time since creation.")


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    namespaced: bool
    model: type[BaseModel]
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[Column, ...]
    scale: bool

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


MODEL_DEPLOYMENT = Kind(
    kind="ModelDeployment", plural="modeldeployments", short_names=("md", "mdep"),
    categories=("modeldeploy", "all"), namespaced=True, model=ModelDeployment,
    spec=ModelDeploymentSpec, status=ModelDeploymentStatus, scale=True,
    columns=(
        Column("Model", "string", ".spec.model.name", "Model served."),
        Column("GPU", "string", ".status.plan.gpuProduct", "GPU product of the chosen pool."),
        Column("TP", "integer", ".status.plan.tensorParallelSize", "Tensor-parallel size."),
        Column("PP", "integer", ".status.plan.pipelineParallelSize", "Pipeline-parallel size."),
        Column("Ready", "string", f"{_READY}.status", "Ready condition."),
        Column("Replicas", "integer", ".status.replicas", "Replicas that exist."),
        _AGE,
        Column("Available", "integer", ".status.readyReplicas", "Replicas serving.", 1),
        Column("Pool", "string", ".status.plan.pool", "Chosen GPUPool.", 1),
        Column("Reason", "string", f"{_READY}.reason", "Reason of the Ready condition.", 1),
        Column("Endpoint", "string", ".status.endpoint", "OpenAI-compatible API URL.", 1),
    ),
)

GPU_POOL = Kind(
    kind="GPUPool", plural="gpupools", short_names=("gp",), categories=("modeldeploy",),
    namespaced=False, model=GPUPool, spec=GPUPoolSpec, status=GPUPoolStatus, scale=False,
    columns=(
        Column("GPU", "string", ".spec.gpu.product", "GPU product."),
        Column("Nodes", "integer", ".status.nodes", "Nodes matching the nodeSelector."),
        Column("GPUs Free", "integer", ".status.freeGPUs", "Allocatable minus requested GPUs."),
        _AGE,
        Column("GPUs/Node", "integer", ".spec.gpusPerNode", "GPUs per node.", 1),
        Column("Allocatable", "integer", ".status.allocatableGPUs", "Allocatable GPUs.", 1),
        Column("Price", "number", ".spec.pricePerGPUHour", "USD per GPU-hour.", 1),
        Column("Ready", "string", f"{_READY}.status", "Ready condition.", 1),
    ),
)

KINDS = (MODEL_DEPLOYMENT, GPU_POOL)


def root_schema(kind: Kind) -> Schema:
    """openAPIV3Schema of one kind: apiVersion, kind, minimal metadata, spec and status."""
    fields = kind.model.model_fields
    spec = openapi_schema(kind.spec)
    spec["description"] = fields["spec"].description
    status = _strip_defaults(openapi_schema(kind.status))
    status["description"] = fields["status"].description
    root: Schema = {
        "description": KIND_DESCRIPTIONS[kind.kind],
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object.",
                "type": "string",
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents.",
                "type": "string",
            },
            "metadata": {"type": "object"},
            "spec": _ordered(spec),
            "status": _ordered(status),
        },
        "required": ["spec"],
    }
    rules = ROOT_RULES.get(kind.model, ())
    if rules:
        root["x-kubernetes-validations"] = [r.wire() for r in rules]
    return root


def crd(kind: Kind) -> Schema:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of one kind."""
    subresources: Schema = {"status": {}}
    if kind.scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.name, "labels": {"app.kubernetes.io/part-of": "modeldeploy"}},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": list(kind.categories),
            },
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": root_schema(kind)},
                "subresources": subresources,
                "additionalPrinterColumns": [c.wire() for c in kind.columns],
            }],
        },
    }


def crds() -> list[Schema]:
    return [crd(k) for k in KINDS]


def file_name(kind: Kind) -> str:
    """controller-gen's naming: `<group>_<plural>.yaml`."""
    return f"{GROUP}_{kind.plural}.yaml"


def dump(obj: Any) -> str:
    """Deterministic YAML: insertion order kept, unicode kept, stable line width."""
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, width=100)


def crd_yaml(kind: Kind) -> str:
    return "---\n" + dump(crd(kind))


def crds_yaml() -> str:
    """Both CRDs as one multi-document YAML stream (what `modeldeploy crd` prints)."""
    return "".join(crd_yaml(k) for k in KINDS)


# --- JSON Schema for offline validators (tests, values.schema.json) -------------------------


def to_jsonschema(node: Any, *, strict: bool = True) -> Any:
    """Structural schema → JSON Schema (2020-12) a generic validator understands.

    `exclusiveMinimum: true` (OpenAPI 3.0) becomes the numeric form; `x-kubernetes-*` keys are
    dropped. With `strict`, objects with properties reject unknown fields, like `kubectl apply`
    with server-side field validation (the default) does.
    """
    if isinstance(node, list):
        return [to_jsonschema(v, strict=strict) for v in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum"):
            continue
        if key in ("properties",):
            out[key] = {k: to_jsonschema(v, strict=strict) for k, v in value.items()}
        else:
            out[key] = to_jsonschema(value, strict=strict)
    for bound in ("Minimum", "Maximum"):
        if node.get(f"exclusive{bound}") is True:
            out[f"exclusive{bound}"] = out.pop(bound.lower())
    if strict and "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out
