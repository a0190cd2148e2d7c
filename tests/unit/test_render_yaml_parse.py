"""The render engine's YAML parse builds exactly what PyYAML's StrictLoader builds."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from modeldeploy.render import engine


def _reference(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=engine.StrictLoader))


def _outcome(load: Any, text: str) -> Any:
    """The documents, or the error's type and message."""
    try:
        return load(text)
    except (yaml.YAMLError, TypeError) as exc:  # TypeError: an unhashable (complex) key
        return type(exc), str(exc)


CASES = [
    "a: 1\nb: true\nc: ~\nd: 1.5\ne: '1'\nf: 0o17\ng: 0x1f\nh: 1_000\ni: .inf\n",
    "when: 2026-11-30\nat: 2026-11-30T15:00:00Z\n",
    "list:\n- a\n- {b: [1, 2, {c: null}]}\n- - nested\n",
    "tagged: !!str 12\nbytes: !!binary aGVsbG8=\nfloat: !!float 3\n",
    "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n",  # refused by both (merge key)
    "anchor: &a [1, 2]\nagain: *a\n",
    "? [complex, key]\n: value\n",
    "1: int key\ntrue: bool key\n~: null key\n",
    "---\nfirst: 1\n---\n---\nthird: 3\n",
    "",
    "plain scalar document\n",
    "key: \"line\\nbreak \\u2028 and: colon\"\n",
]


@pytest.mark.parametrize("text", CASES)
def test_same_value_as_pyyaml(text: str) -> None:
    assert _outcome(engine._load_all, text) == _outcome(_reference, text)


def test_a_cycle_through_an_alias_is_built_like_pyyaml() -> None:
    loaded = engine._load_all("a: &x\n  self: *x\n")[0]
    assert loaded["a"]["self"] is loaded["a"]


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", "a:\n  b: 1\n  c: 2\n  b: 3\n",
                                  "- {x: 1, x: 1}\n", "1: a\n1: b\n"])
def test_a_duplicate_key_is_refused(text: str) -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key"):
        engine._load_all(text)
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key"):
        _reference(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_block_or_flow_document_parses_like_pyyaml(value: Any) -> None:
    block = yaml.safe_dump({"value": value}, default_flow_style=False, allow_unicode=True)
    flow = "value: " + engine.json_node(value) + "\n"  # how templates interpolate values
    for text in (block, flow):
        assert engine._load_all(text) == _reference(text)
