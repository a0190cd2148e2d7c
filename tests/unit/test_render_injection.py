"""Hostile user strings cannot change the shape of what is rendered.

Two halves: (1) every `{{ }}` in every template goes through the JSON `finalize`, proven on the
template AST and on real renders; (2) property tests feed hostile strings wherever a spec allows
free text and check each lands verbatim in exactly its one place, and nothing else moves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jinja2 import nodes
from tests.unit.render_cases import deepseek_v3, llama_8b, llama_70b, validate, with_spec

from modeldeploy.api import ModelDeployment
from modeldeploy.api.deployment import MODEL_NAME, REVISION
from modeldeploy.errors import InvalidSpec
from modeldeploy.render import RenderOptions, engine, render_objects, to_json, to_yaml
from modeldeploy.render.autoscaling import promql_string
from modeldeploy.render.context import HASH_ANNOTATION

TEMPLATES = sorted(Path(str(engine.template_dir())).glob("*.j2"))
CASES = (llama_8b, llama_70b, deepseek_v3)

NASTY = [
    "line1\nserviceAccountName: admin", "key: value", "a: b\n  c: d", "---", "--- !!python/object:os.system",
    "...", "{{ 7*7 }}", "{% raw %}", "{#", "'", '"', "\"'\\", "no", "yes", "on", "off", "~", "null",
    "true", "0x1F", "1e3", "08", ".inf", "- item", "? key", "&anchor", "*alias", "!tag", "%YAML 1.2",
    "@", "`", "|", ">", "#comment", " leading space", "trailing space ", "\t", "\r\n", "\x00", "\x7f",
    "\x85", "\u2028", "\u2029", "\ufeff", "\ufffd", "é", "日本語", "🦙", "$(HF_TOKEN)", "$$(X)", "${HOME}",
    "\\", "]", "}", "[", "{", ",", "\"}, \"privileged\": true, \"x\": {\"",
]
hostile_piece = st.one_of(st.sampled_from(NASTY), st.text(min_size=1, max_size=40))
hostile = st.one_of(
    hostile_piece,
    st.lists(hostile_piece, min_size=2, max_size=6).map("".join),
    st.tuples(hostile_piece, st.integers(250, 1200)).map(lambda t: (t[0] * t[1])[:10_240]),
)


# --- (1) finalize covers every interpolation ---------------------------------------------------

FORBIDDEN_NODES = (
    nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.Include, nodes.Import, nodes.FromImport,
    nodes.Extends, nodes.Block, nodes.EvalContextModifier, nodes.ScopedEvalContextModifier,
    nodes.MarkSafe, nodes.MarkSafeIfAutoescape,
)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_only_output_literals_or_finalized_expressions(path: Path) -> None:
    """Jinja applies `finalize` to every expression in an Output node; macros, includes, filter
    blocks and autoescape switches are the only ways around it, and none is used."""
    env = engine.environment()
    tree = env.parse(path.read_text())
    for node in tree.find_all(nodes.Node):
        assert not isinstance(node, FORBIDDEN_NODES), f"{path.name}: {type(node).__name__}"
    outputs = list(tree.find_all(nodes.Output))
    assert outputs
    assert any(not isinstance(c, nodes.TemplateData) for o in outputs for c in o.nodes)


def test_environment_is_strict_and_json_finalizing() -> None:
    env = engine.environment()
    assert env.finalize is engine.finalize_value  # json_node outside a recording render
    assert env.undefined is jinja2.StrictUndefined
    assert env.autoescape is False
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("x: {{ missing }}").render()
    assert env.from_string("x: {{ v }}").render(v="a\nb: c") == 'x: "a\\nb: c"'


OPEN, CLOSE = "\x02", "\x03"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_every_rendered_character_is_template_literal_or_finalized(
    case: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Render with a finalize that brackets its output; outside the brackets only template
    literal text may remain, and the hostile sentinel only ever appears inside them."""
    real_env = engine.environment()
    marking = real_env.overlay(finalize=lambda v: OPEN + engine.json_node(v) + CLOSE)
    texts: list[tuple[str, str]] = []
    real_parse = engine.parse

    def spy(text: str, name: str) -> list[dict[str, Any]]:
        texts.append((name, text))
        return real_parse(re.sub(f"[{OPEN}{CLOSE}]", "", text), name)

    monkeypatch.setattr(engine, "environment", lambda: marking)
    monkeypatch.setattr(engine, "parse", spy)
    sentinel = "SENTINEL\nserviceAccountName: admin"
    m, p, pool = case()
    m = with_spec(m, serving={"extraArgs": ["--chat-template", sentinel],
                              "env": [{"name": "X", "value": sentinel}]})
    m = m.model_copy(update={"metadata": m.metadata.model_copy(update={"namespace": sentinel})})
    render_objects(m, p, pool, RenderOptions(service_monitor=True))
    wake = RenderOptions(keda_wake_query='q{namespace="$namespace"}')
    for scaling in ({"mode": "hpa", "maxReplicas": 2},
                    {"mode": "keda", "maxReplicas": 2, "minReplicas": 0, "scaleToZero": True}):
        render_objects(with_spec(m, autoscaling=scaling), p, pool, wake)
    assert {name for name, _ in texts} >= {"pod.yaml.j2", "service.yaml.j2", "servicemonitor.yaml.j2",
                                           "horizontalpodautoscaler.yaml.j2", "scaledobject.yaml.j2"}
    sources = {path.name: path.read_text() for path in TEMPLATES}
    for name, text in texts:
        literals = re.split(f"{OPEN}[^{CLOSE}]*{CLOSE}", text)
        assert not any("SENTINEL" in piece for piece in literals)
        for piece in literals:
            for line in piece.splitlines():
                assert line in sources[name], f"{name}: {line!r} is neither literal nor finalized"


# --- (2) hostile strings land verbatim, in one place ------------------------------------------

def kubelet_expand(value: str) -> str:
    """What the process sees after the kubelet's $(VAR) expansion with no variables defined."""
    return re.sub(r"\$\$", "$", value)


def leaves(obj: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    if isinstance(obj, dict):
        out: dict[tuple[Any, ...], Any] = {}
        for k, v in obj.items():
            out.update(leaves(v, (*path, k)))
        return out or {path: {}}
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(leaves(v, (*path, i)))
        return out or {path: []}
    return {path: obj}


def flatten(objects: list[dict[str, Any]]) -> dict[tuple[Any, ...], Any]:
    out: dict[tuple[Any, ...], Any] = {}
    for i, o in enumerate(objects):
        out.update(leaves(o, (i,)))
    return out


def hostile_md(base: ModelDeployment, arg: str, flag_value: str, env: str, note: str) -> ModelDeployment:
    meta = base.metadata.model_copy(update={"annotations": {
        "karpenter.sh/note": note, "kubectl.kubernetes.io/last-applied-configuration": note}})
    m = base.model_copy(update={"metadata": meta})
    return with_spec(m, serving={
        "extraArgs": ["--chat-template", arg, f"--override-generation-config={flag_value}"],
        "env": [{"name": "USER_VALUE", "value": env}],
    })


@settings(max_examples=40, deadline=None)
@given(case=st.sampled_from(CASES), arg=hostile, flag_value=hostile, env=hostile, note=hostile)
def test_hostile_strings_land_verbatim_in_exactly_their_place(
    case: Any, arg: str, flag_value: str, env: str, note: str
) -> None:
    assume(not arg.startswith("-"))  # a value that looks like a flag is checked as one
    m, p, pool = case()
    baseline = flatten(render_objects(hostile_md(m, "P-ARG", "P-FLAG", "P-ENV", "P-NOTE"), p, pool))
    objects = render_objects(hostile_md(m, arg, flag_value, env, note), p, pool)
    for obj in objects:
        validate(obj)  # still schema-valid Kubernetes
    rendered = flatten(objects)
    assert rendered.keys() == baseline.keys(), "the same documents with the same keys"
    placed = {"P-ARG": arg, "--override-generation-config=P-FLAG": f"--override-generation-config={flag_value}",
              "P-ENV": env, "P-NOTE": note}
    seen: dict[str, int] = dict.fromkeys(placed, 0)
    for path, before in baseline.items():
        after = rendered[path]
        if isinstance(before, str) and before in placed:
            seen[before] += 1
            expected = placed[before]
            assert after == expected if before == "P-NOTE" else kubelet_expand(after) == expected
        elif path[-1] == HASH_ANNOTATION:
            assert re.fullmatch("[0-9a-f]{16}", after)
        else:
            assert after == before, f"{path} changed"
    # one place each (the worker pods of a LeaderWorkerSet repeat the env, not the vLLM argv)
    workers = 2 if case is deepseek_v3 else 1
    assert seen == {"P-ARG": 1, "--override-generation-config=P-FLAG": 1, "P-ENV": workers, "P-NOTE": workers}


@settings(max_examples=25, deadline=None)
@given(arg=hostile, env=hostile, note=hostile)
def test_hostile_output_round_trips_through_yaml_and_json(arg: str, env: str, note: str) -> None:
    assume(not arg.startswith("-"))
    m, p, pool = llama_70b()
    objects = render_objects(hostile_md(m, arg, arg, env, note), p, pool, RenderOptions(service_monitor=True))
    text = to_yaml(objects)
    assert list(yaml.safe_load_all(text)) == objects
    assert text.count("\n---\n") == len(objects) - 1
    assert json.loads(to_json(objects))["items"] == objects


revisions = st.from_regex(REVISION, fullmatch=True).filter(lambda s: len(s) <= 128)
models = st.from_regex(MODEL_NAME, fullmatch=True).filter(lambda s: len(s) <= 193)


@settings(max_examples=30, deadline=None)
@given(revision=revisions, model=models)
def test_any_schema_valid_model_and_revision_lands_in_the_args(revision: str, model: str) -> None:
    m, p, pool = llama_8b()
    m2 = with_spec(m, model={"name": model, "revision": revision})
    args = render_objects(m2, p.model_copy(update={"model": model}), pool)[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == model
    assert args[args.index("--served-model-name") + 1] == model
    assert args[args.index("--revision") + 1] == revision


@settings(max_examples=30, deadline=None)
@given(value=hostile)
def test_hostile_label_values_are_refused_or_copied_verbatim(value: str) -> None:
    m, p, pool = llama_8b()
    labelled = m.model_copy(update={"metadata": m.metadata.model_copy(update={"labels": {"team": value}})})
    try:
        objects = render_objects(labelled, p, pool)
    except InvalidSpec as exc:
        assert "\n" not in str(exc) and "metadata.labels[team]" in str(exc)
        return
    assert re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", value) and len(value) <= 63
    assert all(o["metadata"]["labels"]["team"] == value for o in objects)


@settings(max_examples=30, deadline=None)
@given(arg=hostile)
def test_any_extra_arg_is_rendered_verbatim_or_refused_in_one_line(arg: str) -> None:
    m, p, pool = llama_8b()
    try:
        objects = render_objects(with_spec(m, serving={"extraArgs": ["--enforce-eager", arg]}), p, pool)
    except InvalidSpec as exc:
        assert "\n" not in str(exc) and str(exc).startswith("spec.serving.extraArgs[1]: ")
        return
    args = objects[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert kubelet_expand(args[-1]) == arg and args[-2] == "--enforce-eager"


# --- the namespace and name in a PromQL query --------------------------------------------------

PROMQL_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def promql_skeleton(query: str) -> tuple[str, list[str]]:
    """The query with its string literals replaced by S, and their decoded values."""
    assert query.isascii() and "\n" not in query
    values = [b.encode("ascii").decode("unicode_escape") for b in PROMQL_STRING.findall(query)]
    return PROMQL_STRING.sub("S", query), values


def in_namespace(m: ModelDeployment, namespace: str) -> ModelDeployment:
    return m.model_copy(update={"metadata": m.metadata.model_copy(update={"namespace": namespace})})


namespaces = hostile.filter(lambda s: len(s) <= 63 and not any(0xD800 <= ord(c) < 0xE000 for c in s))


@settings(max_examples=40, deadline=None)
@given(case=st.sampled_from(CASES), namespace=namespaces, arg=hostile,
       scaling=st.sampled_from([
           {"mode": "hpa", "maxReplicas": 4, "metric": "requestsRunning"},
           {"mode": "keda", "maxReplicas": 4, "metric": "requestsWaiting"},
           {"mode": "keda", "maxReplicas": 4, "minReplicas": 0, "scaleToZero": True, "metric": "kvCacheUsage",
            "target": 0.5},
       ]))
def test_hostile_namespace_cannot_inject_into_the_autoscaler(
    case: Any, namespace: str, arg: str, scaling: dict[str, Any]
) -> None:
    """The namespace is free text in ObjectMeta; in the KEDA query it stays inside its string
    literal (the query's structure is the benign one), and everywhere else lands verbatim."""
    assume(not arg.startswith("-"))
    options = RenderOptions(keda_wake_query='sum(gw_waiting{namespace="$namespace",service="$service"})')
    m, p, pool = case()
    m = with_spec(m, autoscaling=scaling)
    baseline = render_objects(hostile_md(in_namespace(m, "p-ns"), "P-ARG", "P-FLAG", "P-ENV", "P-NOTE"), p, pool, options)
    objects = render_objects(hostile_md(in_namespace(m, namespace), arg, "F", "E", "N"), p, pool, options)
    for obj in objects:
        validate(obj)
    assert [o["kind"] for o in objects] == [o["kind"] for o in baseline]
    assert all(o["metadata"]["namespace"] == namespace for o in objects)
    before, after = baseline[-1], objects[-1]
    assert flatten([before]).keys() == flatten([after]).keys()
    if after["kind"] == "HorizontalPodAutoscaler":
        assert after["spec"] == before["spec"]
        return
    query, query0 = after["spec"]["triggers"][0]["metadata"]["query"], before["spec"]["triggers"][0]["metadata"]["query"]
    skeleton, values = promql_skeleton(query)
    skeleton0, values0 = promql_skeleton(query0)
    assert skeleton == skeleton0
    assert values == [namespace if v == "p-ns" else v for v in values0]
    assert promql_string(namespace) in query
    for path, value in flatten([before]).items():
        if path[-1] not in ("query", "namespace"):
            assert flatten([after])[path] == value, path
