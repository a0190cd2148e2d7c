"""Injection-proof templating: every interpolated value is JSON, the output is parsed back strictly.

- `StrictUndefined`: a missing context field is an error, never an empty string.
- `finalize` JSON-encodes every `{{ }}` value. A JSON scalar, list or object is a YAML flow node,
  so a user string is always exactly one quoted scalar: a newline, `: `, `---`, `{{ }}`, `no` or
  `~` inside it cannot add a key, a document or change a type.
- The output is parsed with a SafeLoader that rejects duplicate keys, and every document's
  apiVersion/kind must be on the allow-list.
"""

from __future__ import annotations

import contextvars
import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

ALLOWED_KINDS: frozenset[tuple[str, str]] = frozenset({
    ("apps/v1", "Deployment"),
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("batch/v1", "Job"),
    ("policy/v1", "PodDisruptionBudget"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("http.keda.sh/v1alpha1", "HTTPScaledObject"),
})
POD_TEMPLATE = "pod.yaml.j2"

# Characters JSON leaves raw (ensure_ascii=False) that YAML would not read back verbatim inside a
# double-quoted scalar: line breaks YAML knows but JSON does not (NEL, LS, PS, which YAML folds),
# and code points YAML 1.1 calls non-printable (C1 controls, DEL, surrogates, BOM, U+FFFE/F).
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def _escape_unsafe(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_node(value: Any) -> str:
    """The `finalize` of the environment: any value as one JSON (= YAML flow) node."""
    if isinstance(value, jinja2.Undefined):  # pragma: no cover - StrictUndefined raises first
        raise jinja2.UndefinedError("undefined value in template")
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))
    return _YAML_UNSAFE.sub(_escape_unsafe, text)


class StrictLoader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


class RenderingError(RuntimeError):
    """A template produced something it must not: a bug in modeldeploy, never user error."""


def template_dir() -> Any:
    return resources.files("modeldeploy").joinpath("templates")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        finalize=finalize_value,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Packaged templates do not change while the process runs: no stat of the template
        # file on every render (docs/PERFORMANCE.md "Reconcile").
        auto_reload=False,
    )


_STR, _SEQ, _MAP = (f"tag:yaml.org,2002:{t}" for t in ("str", "seq", "map"))
_SPECIAL_KEYS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})


class _Cyclic(Exception):
    """An alias inside its own anchor: left to PyYAML's constructor, which builds cycles."""


def _construct(loader: StrictLoader, node: Node, path: set[int]) -> Any:
    """The Python value of a composed node, as StrictLoader would construct it.

    Strings, plain mappings and sequences (nearly every node of a rendered object) are built
    here directly; every other node (ints, booleans, nulls, explicit tags, merge keys, complex
    keys) goes through the loader's own constructor. PyYAML's generic construction was most of
    the parse time of a render (docs/PERFORMANCE.md "Reconcile")."""
    tag = node.tag
    if tag == _STR and isinstance(node, ScalarNode):
        return node.value
    if tag == _MAP and isinstance(node, MappingNode) and all(
            isinstance(k, ScalarNode) and k.tag not in _SPECIAL_KEYS for k, _ in node.value):
        if id(node) in path:
            raise _Cyclic
        path.add(id(node))
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if key_node.tag == _STR else loader.construct_object(key_node)
            if key in out:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            out[key] = _construct(loader, value_node, path)
        path.discard(id(node))
        return out
    if tag == _SEQ and isinstance(node, SequenceNode):
        if id(node) in path:
            raise _Cyclic
        path.add(id(node))
        items = [_construct(loader, item, path) for item in node.value]
        path.discard(id(node))
        return items
    return loader.construct_object(node, deep=True)


def _load_all(text: str) -> list[Any]:
    """yaml.load_all(text, StrictLoader), with the common nodes constructed directly."""
    loader = StrictLoader(text)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            try:
                docs.append(_construct(loader, node, set()))
            except _Cyclic:
                docs.append(loader.construct_document(node))
        return docs
    finally:
        loader.dispose()


def parse(text: str, template: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in _load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise RenderingError(f"{template} rendered invalid YAML: {exc}") from exc
    for doc in docs:
        if not isinstance(doc, dict):
            raise RenderingError(f"{template} rendered a document that is not a mapping")
    return docs


# --- rendering by shape -------------------------------------------------------------------
# Objects of one template differ mostly in their values (names, labels, sizes), not in their
# structure. While a render records, `finalize_value` puts a numbered placeholder in place of
# each value; the text with placeholders (the shape) is parsed once and remembered, and each
# render fills the parsed shape with its values as YAML reads their JSON. Anything the shape
# cannot stand for exactly (a placeholder not a whole node, used twice, a duplicate key after
# filling, a value of another type) renders the text with the values and parses it, as before.
# Parsing was about three quarters of a render's CPU (docs/PERFORMANCE.md "Reconcile").
_VALUE_TOKEN = secrets.token_hex(16)
_PLACEHOLDER = re.compile(f"modeldeploy-value:([0-9]+):{_VALUE_TOKEN}")
_recording: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "modeldeploy_render_values", default=None)
_shapes: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
_SHAPES = 256  # distinct (template, control flow) texts remembered; ~1-4 KB each


def finalize_value(value: Any) -> str:
    """The environment's `finalize`: `json_node(value)`, or while a render records, a
    placeholder for the value (the JSON is still made: a value JSON refuses fails alike)."""
    values = _recording.get()
    if values is None:
        return json_node(value)
    if type(value) is not str:  # JSON encodes every str; other values may be refused
        json_node(value)
    values.append(value)
    return f'"modeldeploy-value:{len(values) - 1}:{_VALUE_TOKEN}"'


class _NotExact(Exception):
    """The shape cannot stand for this render: render and parse the text instead."""


@lru_cache(maxsize=1024)
def _float_as_read(text: str) -> Any:
    return _load_all(text)[0]  # YAML 1.1 reads 1e-05 (no dot) as a string


def _as_read(value: Any) -> Any:
    """What the strict YAML loader reads from `json_node(value)`, for JSON's own types."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float_as_read(json.dumps(value))
    if isinstance(value, list | tuple):
        return [_as_read(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {str.__str__(k): _as_read(v) for k, v in value.items()}
    raise _NotExact  # other keys or types: JSON converts them its own way


def _fill(node: Any, values: list[Any], used: list[int]) -> Any:
    if isinstance(node, str):
        if _VALUE_TOKEN not in node:
            return node
        found = _PLACEHOLDER.fullmatch(node)
        if found is None:
            raise _NotExact  # a placeholder inside a longer string
        index = int(found.group(1))
        used[index] += 1
        return _as_read(values[index])
    if isinstance(node, dict):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            filled = _fill(key, values, used)
            if filled in out:
                raise _NotExact  # a duplicate key: the text path names it
            out[filled] = _fill(value, values, used)
        return out
    if isinstance(node, list):
        return [_fill(v, values, used) for v in node]
    return node


def _shape(text: str, name: str) -> list[dict[str, Any]]:
    held = _shapes.get(text)
    if held is not None:
        _shapes.move_to_end(text)
        return held
    try:
        docs = parse(text, name)
    except RenderingError as exc:
        raise _NotExact from exc
    _shapes[text] = docs
    if len(_shapes) > _SHAPES:
        _shapes.popitem(last=False)
    return docs


def _render_docs(name: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    template = environment().get_template(name)
    values: list[Any] = []
    token = _recording.set(values)
    try:
        text = template.render(**context)
    finally:
        _recording.reset(token)
    if values:  # none: nothing to fill (or another finalize): parse the text itself
        try:
            used = [0] * len(values)
            docs: list[dict[str, Any]] = _fill(_shape(text, name), values, used)
            if all(count == 1 for count in used):
                return docs
        except (_NotExact, TypeError):  # TypeError: a filled key that cannot be a key
            pass
        text = template.render(**context)
    return parse(text, name)


def render_fragment(name: str, /, **context: Any) -> dict[str, Any]:
    """Render a template that produces one mapping that is not an object (the pod template)."""
    docs = _render_docs(name, context)
    if len(docs) != 1:
        raise RenderingError(f"{name} rendered {len(docs)} documents, expected 1")
    return docs[0]


# Embedded fragments (pod templates) are already rendered and strictly parsed: the workload
# template gets a per-process random sentinel in their place, and the parsed mapping is put
# back after parsing, so the large pod template is not encoded and parsed a second time.
_EMBED_TOKEN = secrets.token_hex(16)


def _sentinel(key: str) -> str:
    return f"modeldeploy-embed:{key}:{_EMBED_TOKEN}"


def _put_back(node: Any, by_sentinel: dict[str, dict[str, Any]], seen: dict[str, int]) -> Any:
    if isinstance(node, str) and node in by_sentinel:
        seen[node] += 1
        return by_sentinel[node]
    if isinstance(node, dict):
        return {k: _put_back(v, by_sentinel, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_put_back(v, by_sentinel, seen) for v in node]
    return node


def render_workload(name: str, /, embed: Mapping[str, dict[str, Any]], **context: Any) -> dict[str, Any]:
    """render_object for a workload: `embed` maps context names to already-parsed mappings
    (pod templates), each of which must land exactly once."""
    by_sentinel = {_sentinel(key): value for key, value in embed.items()}
    rendered = render_object(name, **context, **{key: _sentinel(key) for key in embed})
    seen = dict.fromkeys(by_sentinel, 0)
    obj: dict[str, Any] = _put_back(rendered, by_sentinel, seen)
    if any(count != 1 for count in seen.values()):
        raise RenderingError(f"{name}: an embedded fragment did not land exactly once")
    return obj


def render_object(name: str, /, **context: Any) -> dict[str, Any]:
    """Render one Kubernetes object and check its apiVersion/kind against the allow-list."""
    obj = render_fragment(name, **context)
    kind = (obj.get("apiVersion"), obj.get("kind"))
    if kind not in ALLOWED_KINDS:
        raise RenderingError(f"{name} rendered {kind[0]}/{kind[1]}: not on the allow-list")
    return obj
