"""The generated CRDs: checked in without drift, structural, and useful to kubectl."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest
import yaml

from modeldeploy import crd
from modeldeploy.api.deployment import DEFAULT_IMAGE
from modeldeploy.install import generate

ROOT = Path(__file__).resolve().parents[2]
Schema = dict[str, Any]

ALLOWED_KEYS = {
    "description", "type", "format", "enum", "default", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems",
    "maxItems", "items", "properties", "additionalProperties", "required", "maxProperties",
    "anyOf", "x-kubernetes-int-or-string", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",  # spec.model.hfConfig: config.json verbatim
}


def _schema(kind: crd.Kind) -> Schema:
    return crd.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def _nodes(node: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from _nodes(prop, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


ALL_NODES = [(k.kind, path, node) for k in crd.KINDS for path, node in _nodes(_schema(k))]


# --- drift ------------------------------------------------------------------------------------


STATIC = generate.static_artifacts(ROOT)


@pytest.mark.parametrize("path", sorted(STATIC))
def test_generated_file_is_up_to_date(path: str) -> None:
    wanted = STATIC[path]
    on_disk = ROOT / path
    assert on_disk.is_file(), f"{path} is missing: run `make crds`"
    assert on_disk.read_text(encoding="utf-8") == wanted, f"{path} drifted: run `make crds`"


def test_crds_directory_holds_exactly_the_generated_crds() -> None:
    files = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert files == sorted(crd.file_name(k) for k in crd.KINDS)
    joined = "".join((ROOT / "crds" / crd.file_name(k)).read_text() for k in crd.KINDS)
    assert joined == crd.crds_yaml()


def test_output_is_deterministic() -> None:
    assert crd.crds_yaml() == crd.crds_yaml()
    docs = list(yaml.safe_load_all(crd.crds_yaml()))
    assert [d["metadata"]["name"] for d in docs] == [
        "modeldeployments.modeldeploy.dev", "gpupools.modeldeploy.dev"]


# --- structural schema ------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "path", "node"), ALL_NODES, ids=[f"{k}{p}" for k, p, _ in ALL_NODES])
def test_every_node_is_structural(kind: str, path: str, node: Schema) -> None:
    assert set(node) <= ALLOWED_KEYS, f"{path}: {set(node) - ALLOWED_KEYS}"
    if node.get("x-kubernetes-int-or-string"):
        assert "type" not in node
        assert node.get("anyOf") in (None, [{"type": "integer"}, {"type": "string"}])
    else:
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}
        assert "anyOf" not in node
    assert not ("properties" in node and "additionalProperties" in node)
    assert node.get("additionalProperties", {}) is not False
    if node.get("type") == "array":
        assert isinstance(node.get("items"), dict)
    for key in node.get("x-kubernetes-list-map-keys", ()):
        item = node["items"]
        assert key in item.get("required", []) or "default" in item["properties"][key]
    if "enum" in node:
        python = {"string": str, "integer": int}[node["type"]]
        assert all(isinstance(v, python) for v in node["enum"])


@pytest.mark.parametrize(("kind", "path", "node"), ALL_NODES, ids=[f"{k}{p}" for k, p, _ in ALL_NODES])
def test_every_field_is_described_for_kubectl_explain(kind: str, path: str, node: Schema) -> None:
    if path.endswith(("[]", "{}")) or path in (".metadata",):
        return
    assert node.get("description"), f"{kind}{path} has no description"


@pytest.mark.parametrize(("kind", "path", "node"), [n for n in ALL_NODES if "default" in n[2]],
                         ids=[f"{k}{p}" for k, p, n in ALL_NODES if "default" in n])
def test_defaults_are_valid_against_their_own_schema(kind: str, path: str, node: Schema) -> None:
    jsonschema.validate(node["default"], crd.to_jsonschema(node))


def test_metadata_is_minimal_and_status_has_no_defaults() -> None:
    for kind in crd.KINDS:
        schema = _schema(kind)
        assert schema["properties"]["metadata"] == {"type": "object"}
        assert schema["required"] == ["spec"]
        assert not [p for p, n in _nodes(schema["properties"]["status"]) if "default" in n]


def test_nested_settings_default_to_empty_objects_so_their_defaults_apply() -> None:
    spec = _schema(crd.MODEL_DEPLOYMENT)["properties"]["spec"]["properties"]
    for name in ("serving", "placement", "rollout", "credentials", "cache"):
        assert spec[name]["default"] == {}, name
    assert "default" not in spec["autoscaling"], "autoscaling is off unless written"
    assert spec["serving"]["properties"]["image"]["default"] == DEFAULT_IMAGE


def test_max_surge_is_int_or_string() -> None:
    rollout = _schema(crd.MODEL_DEPLOYMENT)["properties"]["spec"]["properties"]["rollout"]
    surge = rollout["properties"]["maxSurge"]
    assert surge["x-kubernetes-int-or-string"] is True
    assert surge["default"] == "auto"


def test_bounds_patterns_and_enums_come_from_the_models() -> None:
    spec = _schema(crd.MODEL_DEPLOYMENT)["properties"]["spec"]["properties"]
    util = spec["serving"]["properties"]["gpuMemoryUtilization"]
    assert (util["minimum"], util["maximum"], util["default"]) == (0.5, 0.98, 0.9)
    target = spec["autoscaling"]["properties"]["target"]
    assert (target["minimum"], target["exclusiveMinimum"]) == (0, True)
    assert spec["model"]["properties"]["name"]["pattern"].startswith("^[A-Za-z0-9]")
    assert spec["placement"]["properties"]["policy"]["enum"] == ["cheapest", "fewestGPUs", "fastest"]
    assert spec["serving"]["properties"]["extraArgs"]["items"]["maxLength"] == 16384
    pool = _schema(crd.GPU_POOL)["properties"]["spec"]["properties"]
    assert pool["nodeSelector"]["maxProperties"] == 32


def test_every_declared_rule_and_field_extra_lands_in_a_crd() -> None:
    everything = [node for _, _, node in ALL_NODES]
    emitted = {r["rule"] for node in everything for r in node.get("x-kubernetes-validations", ())}
    for rules in (*crd.RULES.values(), *crd.ROOT_RULES.values()):
        for rule in rules:
            assert rule.rule in emitted, rule
    for (model, field), extra in crd.FIELD_SCHEMA.items():
        assert any(all(_contains(node.get(k), v) for k, v in extra.items()) for node in everything), \
            f"{model.__name__}.{field}"


def _contains(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(_contains(actual.get(k), v) for k, v in wanted.items())
    return bool(actual == wanted)


# --- CEL rules type-check against the schema -------------------------------------------------

RULE_NODES = [
    (k.kind, path, node, rule)
    for k in crd.KINDS for path, node in _nodes(_schema(k))
    for rule in node.get("x-kubernetes-validations", ())
]


@pytest.mark.parametrize(("kind", "path", "node", "rule"), RULE_NODES,
                         ids=[f"{k}{p}:{r['message'][:30]}" for k, p, _, r in RULE_NODES])
def test_cel_rules_only_read_fields_that_exist_or_are_guarded(
        kind: str, path: str, node: Schema, rule: dict[str, str]) -> None:
    props = node.get("properties", {})
    for field in set(re.findall(r"self\.(\w+)", rule["rule"])):
        if path == "" and field == "metadata":
            continue  # the root may read metadata.name
        assert field in props, f"{rule['rule']}: no field {field}"
        guarded = f"has(self.{field})" in rule["rule"]
        assert guarded or field in node.get("required", []) or "default" in props[field], \
            f"{rule['rule']}: self.{field} may be absent; guard it with has()"
    if "fieldPath" in rule:
        assert rule["fieldPath"].lstrip(".") in props


# --- what kubectl shows -----------------------------------------------------------------------


def test_crds_validate_as_kubernetes_1_31_objects() -> None:
    for obj in crd.crds():
        kubernetes_validate.validate(copy.deepcopy(obj), "1.31", strict=True)


def test_model_deployment_names_subresources_and_columns() -> None:
    obj = crd.crd(crd.MODEL_DEPLOYMENT)
    spec = obj["spec"]
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["md", "mdep"]
    assert spec["names"]["categories"] == ["modeldeploy", "all"]
    version = spec["versions"][0]
    assert version["subresources"] == {
        "status": {},
        "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                  "labelSelectorPath": ".status.selector"},
    }
    main = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert main == ["Model", "GPU", "TP", "PP", "Ready", "Replicas", "Age"]


def test_gpu_pool_is_cluster_scoped_with_capacity_columns() -> None:
    spec = crd.crd(crd.GPU_POOL)["spec"]
    assert spec["scope"] == "Cluster"
    assert spec["names"]["shortNames"] == ["gp"]
    assert spec["names"]["singular"] == "gpupool"
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    main = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert main == ["GPU", "Nodes", "GPUs Free", "Age"]


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda k: k.kind)
def test_printer_columns_point_at_fields_of_the_schema(kind: crd.Kind) -> None:
    schema = _schema(kind)
    for column in crd.crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]:
        path = column["jsonPath"]
        if path == ".metadata.creationTimestamp":
            continue
        node = schema
        for part in re.sub(r"\[\?\(.*\)\]", "[]", path).strip(".").split("."):
            node = node["properties"][part[:-2]]["items"] if part.endswith("[]") else node["properties"][part]
        expected = {"integer": "integer", "number": "number", "string": "string"}[node["type"]]
        assert column["type"] == expected, path
