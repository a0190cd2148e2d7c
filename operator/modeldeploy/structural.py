"""Check a value against a CRD's structural schema as the API server does, before pydantic. Pure.

The API server validates a custom object against its CRD's openAPIV3Schema with strict JSON
types (k8s.io/apiextensions-apiserver, kube-openapi validate): `"2"` is not an integer and
`true` is not a number, while an integral number written with an exponent (`1e6`) is an integer.
Unknown fields are refused, as `kubectl apply` with server-side field validation (the default
since Kubernetes 1.27) does. CEL rules are not evaluated here: the pydantic models mirror every
one of them (crd.RULES), with the same messages.

Messages are words, never regular expressions: a pattern is described by `words.describe`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from .words import describe_pattern, show

Schema = Mapping[str, Any]


@lru_cache(maxsize=64)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# JSON value kinds as messages name them; bool before int (a bool is an int in Python).
_NAMES: tuple[tuple[type, str], ...] = ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
                                         (str, "a string"), (list, "a list"), (dict, "an object"))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _NAMES if isinstance(value, kind)), type(value).__name__)


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer()))
    if kind == "number":
        return not isinstance(value, bool) and isinstance(value, int | float)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


_ARTICLE = {"integer": "an integer", "number": "a number", "string": "a string",
            "boolean": "a boolean (true or false)", "array": "a list", "object": "an object"}


def _scalar_checks(value: Any, schema: Schema) -> Iterator[str]:
    if "enum" in schema and value not in schema["enum"]:
        yield f"{show(value)} is not one of {', '.join(show(v) for v in schema['enum'])}"
        return
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield f"is {len(value)} characters long; at most {schema['maxLength']} are allowed"
        elif "pattern" in schema and not _regex(schema["pattern"]).search(value):
            yield f"{show(value)} is not {describe_pattern(schema['pattern'])}"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and (value <= low if schema.get("exclusiveMinimum") else value < low):
            yield f"{show(value)} is below the {'exclusive ' if schema.get('exclusiveMinimum') else ''}minimum {show(low)}"
        if high is not None and (value >= high if schema.get("exclusiveMaximum") else value > high):
            yield f"{show(value)} is above the maximum {show(high)}"


def _children(value: Any, schema: Schema, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name in schema.get("required", ()):
            if name not in value:
                yield f"{path}.{name}".lstrip("."), "is required"
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            yield path, f"has {len(value)} entries; at most {schema['maxProperties']} are allowed"
        for key, item in value.items():
            where = f"{path}.{key}".lstrip(".")
            if item is None:
                continue  # an explicit null is an absent field (the API server prunes it)
            if key in props:
                yield from violations(item, props[key], where)
            elif isinstance(extra, dict):
                yield from violations(item, extra, where)
            elif props and not schema.get("x-kubernetes-preserve-unknown-fields"):
                yield where, UNKNOWN_FIELD
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield path, f"has {len(value)} items; at most {schema['maxItems']} are allowed"
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                yield from violations(item, items, f"{path}[{i}]")


UNKNOWN_FIELD = "unknown field"


def field_paths(schema: Schema, path: str = "") -> Iterator[str]:
    """Every field path the schema declares, list items as `[]` (`spec.serving.env[].name`)."""
    for key, child in schema.get("properties", {}).items():
        where = f"{path}.{key}".lstrip(".")
        yield where
        yield from field_paths(child, where)
    items = schema.get("items")
    if isinstance(items, dict):
        yield from field_paths(items, f"{path}[]")


def _fold(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()  # hf_config, hf-config, HFConfig: hfConfig


def _name(path: str) -> str:
    return _fold(path.rsplit(".", 1)[-1])


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


def closest_field(path: str, known: list[str]) -> str | None:
    """The declared field path a misplaced or misspelt one most likely means, or None.

    The field's own name decides (difflib's ratio on names folded to lower case without `_`
    and `-`, cutoff 0.75, or a sibling the name abbreviates: `max` → `maxReplicas`); a field
    of that exact name elsewhere (`spec.serving.quantization` → `spec.model.quantization`)
    beats a similar sibling, a sibling beats a similar name elsewhere; ties go to the most
    similar whole path. A path's own ancestors are never suggested. Indices of the given path
    (`env[2]`) are carried over to the suggestion.
    """
    shape = re.sub(r"\[\d+\]", "[]", path)
    leaf, parent = _name(shape), _parent(shape)
    ranked = []
    for p in known:
        if p == shape or shape.startswith(f"{p}.") or shape.startswith(f"{p}[]"):
            continue  # the field itself or one of its ancestors
        name, sibling = _name(p), _parent(p) == parent
        ratio = difflib.SequenceMatcher(None, leaf, name).ratio()
        if not (ratio >= 0.75 or (sibling and len(leaf) >= 3 and name.startswith(leaf))):
            continue
        ranked.append(((name == leaf, sibling, ratio, difflib.SequenceMatcher(None, shape, p).ratio()), p))
    if not ranked:
        return None
    found = max(ranked)[1]
    for index in re.findall(r"\[\d+\]", path):
        found = found.replace("[]", index, 1)
    return found


def with_hint(path: str, message: str, schema: Schema, root: str) -> str:
    """`message`, and for an unknown field the closest declared field (`; did you mean X?`)."""
    if message != UNKNOWN_FIELD:
        return message
    guess = closest_field(path, [f"{root}.{p}" for p in field_paths(schema)])
    return f"{message}; did you mean {guess}?" if guess else message


def violations(value: Any, schema: Schema, path: str = "") -> Iterator[tuple[str, str]]:
    """(field path, what is wrong) for each way `value` breaks `schema`, outermost first."""
    if schema.get("x-kubernetes-int-or-string"):
        if not (_is_type(value, "integer") or isinstance(value, str)):
            yield path, f"must be an integer or a string, not {_type_name(value)} {show(value)}"
            return
    elif "type" in schema and not _is_type(value, schema["type"]):
        yield path, f"must be {_ARTICLE.get(schema['type'], schema['type'])}, not {_type_name(value)} {show(value)}"
        return
    for message in _scalar_checks(value, schema):
        yield path, message
    yield from _children(value, schema, path)
