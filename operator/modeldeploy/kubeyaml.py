"""Read YAML the way `kubectl` does. Pure: text in, documents out.

kubectl turns YAML into JSON with sigs.k8s.io/yaml (go-yaml), which differs from PyYAML's YAML 1.1
resolver where users notice:

- numbers with an exponent and no dot or no exponent sign (`1e6`, `14.77e9`) are numbers, not
  strings (go-yaml's float rule: `[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?`);
  an integral one is an integer, as the API server's JSON decoding reads `1e+06` for an
  `integer` field;
- a key given twice in one mapping is an error (sigs.k8s.io/yaml decodes strictly: "key
  already set in map"), never "the last one wins";
- the input must be UTF-8 (JSON is), and a document must be a mapping.

`kind: List` documents are unwrapped into their items, as `kubectl apply -f` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

# go-yaml v2 resolve.go: a plain scalar matching this is a float (YAML 1.2 core schema form).
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)$")


class YamlError(ValueError):
    """Input that is not YAML kubectl would read; the message is one line with the position."""


@dataclass(frozen=True)
class Document:
    """One object of a file: its 1-based position among the file's documents, and its body."""

    index: int
    body: dict[str, Any]


def _exponent_number(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | float:
    value = float(loader.construct_scalar(node))
    return int(value) if value.is_integer() and abs(value) < 2**63 else value


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            line = key_node.start_mark.line + 1
            raise YamlError(f"line {line}: key {key!r} is given twice in one mapping")
        out[key] = loader.construct_object(value_node, deep=True)
    return out


class KubectlLoader(yaml.SafeLoader):
    """SafeLoader with go-yaml's exponent numbers and strict (duplicate-free) mappings."""


KubectlLoader.add_implicit_resolver("tag:modeldeploy:exp", _FLOAT, list("-+0123456789."))
KubectlLoader.add_constructor("tag:modeldeploy:exp", _exponent_number)
KubectlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def decode(data: bytes) -> str:
    """UTF-8 text of `data`, or YamlError naming the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                        "Kubernetes manifests are UTF-8") from None


def _problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{where}invalid YAML: {problem}"


def load_documents(text: str) -> list[Document]:
    """The mappings of a multi-document YAML text, `kind: List` unwrapped. Raises YamlError."""
    try:
        raw = list(yaml.load_all(text, Loader=KubectlLoader))
    except YamlError:
        raise
    except yaml.YAMLError as exc:
        raise YamlError(_problem(exc)) from None
    out: list[Document] = []
    for i, doc in enumerate(raw, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise YamlError(f"document {i} is a {type(doc).__name__}, not a mapping (an object)")
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            for item in doc["items"]:
                if not isinstance(item, dict):
                    raise YamlError(f"document {i}: an item of the List is not a mapping")
                out.append(Document(i, item))
            continue
        out.append(Document(i, doc))
    return out
