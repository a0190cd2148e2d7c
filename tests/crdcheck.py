"""Validate objects against a generated CRD offline, the way the API server does.

Order as in kube-apiserver: apply structural defaults, validate the OpenAPI schema (with
unknown fields rejected, as `kubectl apply`'s server-side field validation does), check
`x-kubernetes-list-type: map` keys, then evaluate every `x-kubernetes-validations` CEL rule
with values typed by the schema (a `number` is a CEL double even when written as `5`). Uses
`jsonschema` and `cel-python`; the integration tests' API emulator can reuse it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import celpy
import jsonschema  # type: ignore[import-untyped]
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from modeldeploy.crd import to_jsonschema

Schema = dict[str, Any]


@dataclass(frozen=True)
class Violation:
    path: str
    message: str
    source: str  # "schema", "listMap" or "cel"

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


def apply_defaults(value: Any, schema: Schema) -> Any:
    """Structural defaulting: absent properties get their default, recursively."""
    if isinstance(value, dict):
        props: Schema = schema.get("properties", {})
        for name, prop in props.items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
        for name, item in value.items():
            if name in props:
                apply_defaults(item, props[name])
            elif isinstance(schema.get("additionalProperties"), dict):
                apply_defaults(item, schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])
    return value


def to_cel(value: Any, schema: Schema) -> Any:
    """A JSON value as the CEL value Kubernetes builds from it under `schema`."""
    if value is None:
        return None
    if schema.get("x-kubernetes-int-or-string"):
        return celtypes.StringType(value) if isinstance(value, str) else celtypes.IntType(value)
    kind = schema.get("type")
    if kind == "integer":
        return celtypes.IntType(value)
    if kind == "number":
        return celtypes.DoubleType(float(value))
    if kind == "boolean":
        return celtypes.BoolType(value)
    if kind == "string":
        return celtypes.StringType(value)
    if kind == "array":
        items = schema.get("items", {})
        return celtypes.ListType([to_cel(v, items) for v in value])
    if kind == "object" and ("properties" in schema or "additionalProperties" in schema):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return celtypes.MapType({
            celtypes.StringType(k): to_cel(v, props.get(k, extra if isinstance(extra, dict) else {}))
            for k, v in value.items()
        })
    return json_to_cel(value)


def _walk(value: Any, schema: Schema, path: str) -> Iterator[tuple[str, Any, Schema]]:
    yield path, value, schema
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from _walk(item, sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _walk(item, schema["items"], f"{path}[{i}]")


class CRDValidator:
    """Validates objects of the (single-version) kind a CRD defines."""

    def __init__(self, crd: Schema) -> None:
        self.schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        self._json = jsonschema.Draft202012Validator(to_jsonschema(self.schema))
        self._env = celpy.Environment()
        self._programs: dict[str, celpy.Runner] = {}

    def _program(self, rule: str) -> celpy.Runner:
        if rule not in self._programs:
            self._programs[rule] = self._env.program(self._env.compile(rule))
        return self._programs[rule]

    def defaulted(self, obj: Schema) -> Schema:
        return apply_defaults(copy.deepcopy(obj), self.schema)  # type: ignore[no-any-return]

    def violations(self, obj: Schema) -> list[Violation]:
        obj = self.defaulted(obj)
        found = [
            Violation(".".join(str(p) for p in err.absolute_path), err.message, "schema")
            for err in sorted(self._json.iter_errors(obj), key=lambda e: list(map(str, e.path)))
        ]
        if found:  # CEL only means something on schema-valid input
            return found
        for path, value, schema in _walk(obj, self.schema, ""):
            found.extend(self._list_map(path, value, schema))
            for rule in schema.get("x-kubernetes-validations", ()):
                if not self.holds(rule["rule"], value, schema):
                    where = path + rule.get("fieldPath", "")
                    found.append(Violation(where, rule["message"], "cel"))
        return found

    def holds(self, rule: str, value: Any, schema: Schema) -> bool:
        try:
            result = self._program(rule).evaluate({"self": to_cel(value, schema)})
        except CELEvalError as exc:
            raise AssertionError(f"CEL rule {rule!r} failed to evaluate: {exc}") from exc
        if isinstance(result, CELEvalError):
            raise AssertionError(f"CEL rule {rule!r} failed to evaluate: {result}")
        return bool(result)

    @staticmethod
    def _list_map(path: str, value: Any, schema: Schema) -> list[Violation]:
        if schema.get("x-kubernetes-list-type") != "map" or not isinstance(value, list):
            return []
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen: set[tuple[Any, ...]] = set()
        out = []
        for i, item in enumerate(value):
            key = tuple(item.get(k) for k in keys)
            if key in seen:
                out.append(Violation(f"{path}[{i}]", f"Duplicate value: {dict(zip(keys, key, strict=True))}", "listMap"))
            seen.add(key)
        return out
