"""Serialising rendered objects for people and GitOps: byte-identical for identical objects."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import yaml


class _Dumper(yaml.CSafeDumper if hasattr(yaml, "CSafeDumper") else yaml.SafeDumper):  # type: ignore[misc]
    """Block style, no aliases (two identical pod templates stay two readable templates).

    libyaml's emitter when present (3x faster); its output equals PyYAML's for our objects.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(objects: Sequence[dict[str, Any]]) -> str:
    """Multi-document YAML: keys sorted, no line folding, non-ASCII escaped (PyYAML does not
    read back raw NEL or LS/PS line separators verbatim; escapes always round-trip)."""
    return yaml.dump_all(
        objects, Dumper=_Dumper, sort_keys=True, allow_unicode=False, default_flow_style=False,
        explicit_start=True, width=2**31 - 1,
    )


def to_json(objects: Sequence[dict[str, Any]]) -> str:
    """A Kubernetes List (what `kubectl apply -f -` accepts as JSON)."""
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def canonical_json(value: Any) -> str:
    """One text per value: keys sorted, no spaces, UTF-8 kept. What hashes and the rollout
    memory annotations are computed from; changing it changes every stored hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def short_digest(value: Any) -> str:
    """16 hex digits of the SHA-256 of `canonical_json(value)`."""
    text = canonical_json(value)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
