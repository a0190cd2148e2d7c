"""The render engine's YAML reading: exactly what PyYAML's StrictLoader builds, and renders
by shape (parsed once, filled per render) equal to parsing each rendered text."""

from __future__ import annotations

import json
from typing import Any

import jinja2
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.render_cases import deepseek_v3, llama_8b, llama_70b, with_spec

from modeldeploy.render import RenderOptions, engine, render_objects


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


# --- rendering by shape (a parsed text with placeholders, filled per render) -----------------

def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)  # True and 1, "1" and 1 differ here


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_a_filled_value_is_what_yaml_reads_from_its_json(value: Any) -> None:
    read = engine._load_all("v: " + engine.json_node(value) + "\n")[0]["v"]
    assert _canonical(engine._as_read(value)) == _canonical(read)


def _by_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_render_docs", lambda name, context: engine.parse(
        engine.environment().get_template(name).render(**context), name))


def _variants() -> list[tuple[Any, Any, Any, RenderOptions]]:
    out = []
    for case in (llama_8b, llama_70b, deepseek_v3):
        m, p, pool = case()
        out.append((m, p, pool, RenderOptions(service_monitor=True)))
        out.append((with_spec(m, autoscaling={"mode": "hpa", "maxReplicas": 3},
                              serving={"extraArgs": ["--x", "1e-05", "true"],
                                       "env": [{"name": "A", "value": "no"}]}),
                    p, pool, RenderOptions()))
        out.append((with_spec(m, autoscaling={"mode": "keda", "maxReplicas": 2, "minReplicas": 0,
                                              "scaleToZero": True}),
                    p, pool, RenderOptions(keda_wake_query='q{namespace="$namespace"}')))
    return out


@pytest.mark.parametrize("index", range(9))
def test_rendering_by_shape_gives_what_rendering_the_text_gives(
        index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    m, p, pool, options = _variants()[index]
    by_shape = render_objects(m, p, pool, options)
    again = render_objects(m, p, pool, options)  # the shape remembered this time
    _by_text(monkeypatch)
    by_text = render_objects(m, p, pool, options)
    assert _canonical(by_shape) == _canonical(by_text) == _canonical(again)


def _from_string(monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    env = jinja2.Environment(loader=jinja2.DictLoader({"t": source}),
                             undefined=jinja2.StrictUndefined,
                             finalize=engine.finalize_value, autoescape=False,
                             keep_trailing_newline=True)
    monkeypatch.setattr(engine, "environment", lambda: env)


@pytest.mark.parametrize(("source", "context", "expected"), [
    ("a: {{ x }}\nb: |\n  literal {{ y }}\n", {"x": 1, "y": "in a block"},
     {"a": 1, "b": 'literal "in a block"\n'}),  # a value inside a longer string
    ("a: &v {{ x }}\nb: *v\n", {"x": "twice"}, {"a": "twice", "b": "twice"}),  # used twice
    ("{{ k }}: 1\nplain: 2\n", {"k": "key"}, {"key": 1, "plain": 2}),  # a value as a key
    ("a: {{ x }}\n", {"x": {"nested": [1.5, None, "s"], "f": 1e-05}},
     {"a": {"nested": [1.5, None, "s"], "f": "1e-05"}}),
])
def test_a_shape_fills_exactly_or_the_text_is_parsed(
        source: str, context: dict[str, Any], expected: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _from_string(monkeypatch, source)
    assert _canonical(engine.render_fragment("t", **context)) == _canonical(expected)


def test_a_filled_duplicate_key_is_refused_as_the_text_would_be(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _from_string(monkeypatch, "{{ k }}: 1\nplain: 2\n")
    with pytest.raises(engine.RenderingError, match="duplicate key 'plain'"):
        engine.render_fragment("t", k="plain")


def test_a_value_json_refuses_fails_the_render(monkeypatch: pytest.MonkeyPatch) -> None:
    _from_string(monkeypatch, "a: {{ x }}\n")
    with pytest.raises(ValueError):
        engine.render_fragment("t", x=float("nan"))
    with pytest.raises(TypeError):
        engine.render_fragment("t", x=object())
