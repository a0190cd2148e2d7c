"""Pure pieces of Kubernetes API machinery that the emulator needs (no I/O, no asyncio).

Each function mirrors one documented API-server behaviour, simplified to what the operator
relies on; the simplifications are listed in docs/testing.md.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

JSON = dict[str, Any]

# Top-level keys that are not "the spec" for generation bumping.
NON_SPEC_KEYS = frozenset({"apiVersion", "kind", "metadata", "status"})
# Metadata the server owns: clients cannot set these through create/patch/apply.
SERVER_METADATA = frozenset(
    {"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
     "managedFields", "selfLink"}
)


class SelectorError(ValueError):
    """A label or field selector the emulator cannot parse (answered with HTTP 400)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: JSON = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_patch(live: JSON, applied: JSON, previous: JSON | None) -> JSON:
    """Server-side apply for one field manager, simplified.

    Maps merge recursively; lists and scalars are replaced atomically; fields that the same
    manager applied last time but no longer applies are removed (SSA's ownership-driven
    pruning, assuming no other manager co-owns them). Except `metadata.ownerReferences`, a
    list-map keyed by `uid` in ObjectMeta (`+listType=map`, `+listMapKey=uid`): each manager
    adds or replaces its own entries and removes only entries it applied before.
    """
    result = merge_apply(prune_unapplied(live, previous or {}, applied), applied)
    live_refs = _owner_refs(live)
    applied_refs = _owner_refs(applied)
    if isinstance(result, dict) and (live_refs or applied_refs):
        dropped = {r.get("uid") for r in _owner_refs(previous)} - {r.get("uid") for r in applied_refs}
        by_uid = {r.get("uid"): r for r in live_refs if r.get("uid") not in dropped}
        by_uid.update({r.get("uid"): r for r in applied_refs})
        meta = dict(result.get("metadata") or {})
        meta["ownerReferences"] = list(by_uid.values())
        if not by_uid:
            meta.pop("ownerReferences")
        result["metadata"] = meta
    return result


def _owner_refs(obj: Any) -> list[Mapping[str, Any]]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    refs = meta.get("ownerReferences") if isinstance(meta, Mapping) else None
    return [r for r in refs or [] if isinstance(r, Mapping)]


def prune_unapplied(live: Any, previous: Any, current: Any) -> Any:
    if not isinstance(live, Mapping) or not isinstance(previous, Mapping):
        return live
    current_map = current if isinstance(current, Mapping) else {}
    result = dict(live)
    for key, prev_value in previous.items():
        if key not in current_map:
            result.pop(key, None)
        elif key in result:
            result[key] = prune_unapplied(result[key], prev_value, current_map[key])
    return result


def merge_apply(live: Any, applied: Any) -> Any:
    if not isinstance(applied, Mapping) or not isinstance(live, Mapping):
        return copy.deepcopy(applied)
    result = dict(live)
    for key, value in applied.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_apply(result.get(key), value)
    return result


def spec_of(obj: Mapping[str, Any]) -> JSON:
    """Everything generation tracks: all top-level keys except metadata, status, kind."""
    return {k: v for k, v in obj.items() if k not in NON_SPEC_KEYS}


def strip_server_metadata(obj: Mapping[str, Any]) -> JSON:
    result = dict(obj)
    meta = dict(result.get("metadata") or {})
    for key in SERVER_METADATA:
        meta.pop(key, None)
    result["metadata"] = meta
    return result


# --- label selectors ------------------------------------------------------------------------

_SET_EXPR = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_EXPR = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")


def _split_requirements(selector: str) -> list[str]:
    """Split on commas that are not inside `in (...)` parentheses."""
    parts, depth, current = [], 0, []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in (p.strip() for p in parts) if p]


Predicate = Callable[[Mapping[str, str]], bool]


def parse_label_selector(selector: str) -> Predicate:
    """Equality- and set-based label selectors, ANDed: `a=b,c!=d,e in (f,g),!h,i`."""
    predicates: list[Predicate] = []
    for requirement in _split_requirements(selector):
        eq = _EQ_EXPR.match(requirement)
        if eq:
            key, op, value = eq.groups()
            if op == "!=":
                predicates.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                predicates.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        st = _SET_EXPR.match(requirement)
        if not st:
            raise SelectorError(f"unable to parse requirement: {requirement!r}")
        negated, key, op, values = st.groups()
        if negated and op:
            raise SelectorError(f"unable to parse requirement: {requirement!r}")
        if op:
            allowed = frozenset(v.strip() for v in values.split(",") if v.strip())
            if op == "in":
                predicates.append(lambda labels, k=key, a=allowed: labels.get(k) in a)
            else:
                predicates.append(lambda labels, k=key, a=allowed: labels.get(k) not in a)
        elif negated:
            predicates.append(lambda labels, k=key: k not in labels)
        else:
            predicates.append(lambda labels, k=key: k in labels)
    return lambda labels: all(p(labels) for p in predicates)


# --- field selectors ------------------------------------------------------------------------

FIELD_PATHS = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "spec.nodeName": ("spec", "nodeName"),
    "status.phase": ("status", "phase"),
    "involvedObject.name": ("involvedObject", "name"),
    "involvedObject.uid": ("involvedObject", "uid"),
}

ObjectPredicate = Callable[[Mapping[str, Any]], bool]


def _field(obj: Mapping[str, Any], path: tuple[str, ...]) -> str:
    value: Any = obj
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def parse_field_selector(selector: str) -> ObjectPredicate:
    """The field selectors the emulator supports (others are answered with 400, not ignored)."""
    predicates: list[ObjectPredicate] = []
    for requirement in _split_requirements(selector):
        eq = _EQ_EXPR.match(requirement)
        if not eq:
            raise SelectorError(f"invalid field selector: {requirement!r}")
        key, op, value = eq.groups()
        if key not in FIELD_PATHS:
            raise SelectorError(f"field label not supported: {key}")
        path = FIELD_PATHS[key]
        if op == "!=":
            predicates.append(lambda obj, p=path, v=value: _field(obj, p) != v)
        else:
            predicates.append(lambda obj, p=path, v=value: _field(obj, p) == v)
    return lambda obj: all(p(obj) for p in predicates)


def get_path(obj: Mapping[str, Any], dotted: str) -> Any:
    value: Any = obj
    for key in dotted.strip(".").split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def set_path(obj: JSON, dotted: str, value: Any) -> JSON:
    """A copy of obj with the dotted path set (intermediate maps created)."""
    keys = dotted.strip(".").split(".")
    result = dict(obj)
    cursor = result
    for key in keys[:-1]:
        nested = dict(cursor.get(key) or {})
        cursor[key] = nested
        cursor = nested
    cursor[keys[-1]] = value
    return result
