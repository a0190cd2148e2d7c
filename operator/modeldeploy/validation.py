"""One validation path for ModelDeployments and GPUPools, shared by `plan`, `render`, the tests
and the operator. Pure: a decoded object in, a typed object or InvalidSpec out.

What the API server checks, in its order, then what the operator checks:

1. `apiVersion` and `kind` are present and name this API (the API server refuses an object
   without them; kubectl cannot even send it);
2. `metadata.name` follows the kind's name rule (stated in words);
3. the spec matches the generated CRD's structural schema with strict JSON types
   (`structural.violations`): `replicas: "2"` and `replicas: true` are refused;
4. the pydantic models (which mirror every CEL rule of the CRD, same messages);
5. what the operator would set `Stalled/InvalidSpec` for before planning: reserved
   `extraArgs` flags and reserved environment variables (render.argv).

A ModelDeployment the operator reads from the API server has passed 1–3 already; running them
again costs microseconds and keeps one path.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from . import crd
from .api import API_VERSION, GPUPool, ModelDeployment
from .api.deployment import name_problem
from .api.pool import pool_name_problem
from .errors import InvalidSpec, describe_validation_error
from .render.argv import check_env, check_extra_args
from .structural import violations, with_hint
from .words import show

Model = TypeVar("Model", bound=BaseModel)
MAX_VIOLATIONS = 5  # a document with more is shown with the first few and a count


@lru_cache(maxsize=4)
def _schema(kind: str) -> dict[str, Any]:
    definition = crd.MODEL_DEPLOYMENT if kind == "ModelDeployment" else crd.GPU_POOL
    root = crd.crd(definition)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(root)


def object_label(obj: Mapping[str, Any]) -> str:
    """`KIND NAME` for messages: what a person searches for in the file."""
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    kind = obj.get("kind")
    return f"{kind if isinstance(kind, str) and kind else 'object'} {name if isinstance(name, str) and name else '(no name)'}"


def _check_type_meta(obj: Mapping[str, Any], kind: str) -> None:
    api_version, found = obj.get("apiVersion"), obj.get("kind")
    if not api_version:
        raise InvalidSpec(f"apiVersion is required (apiVersion: {API_VERSION})")
    if api_version != API_VERSION:
        raise InvalidSpec(f"apiVersion {show(api_version)} is not served; use {API_VERSION}")
    if found != kind:
        raise InvalidSpec(f"kind {show(found)} is not a {kind}" if found else "kind is required")
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str) or not meta.get("name"):
        raise InvalidSpec("metadata.name is required")


def _check_schema(obj: Mapping[str, Any], kind: str) -> None:
    """The spec (and the metadata the kind's name rule reads) against the CRD schema."""
    spec = _schema(kind)["properties"]["spec"]
    found = list(violations(obj.get("spec"), spec, "spec")) if "spec" in obj else [("spec", "is required")]
    if not found:
        return
    shown = "; ".join(f"{path}: {with_hint(path, message, spec, 'spec')}"
                      for path, message in found[:MAX_VIOLATIONS])
    more = f" (and {len(found) - MAX_VIOLATIONS} more)" if len(found) > MAX_VIOLATIONS else ""
    raise InvalidSpec(shown + more)


def _typed(model: type[Model], obj: Mapping[str, Any]) -> Model:
    document = {k: obj[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in obj}
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise InvalidSpec(describe_validation_error(exc)) from None


def validate_model_deployment(obj: Mapping[str, Any]) -> ModelDeployment:
    """The typed ModelDeployment, or InvalidSpec with a one-line message naming the field.

    Exactly what the operator sets Stalled/InvalidSpec for before it plans; the planner's own
    refusals (a pin breaking a rule of the resolved model) come later, with the facts.
    """
    _check_type_meta(obj, "ModelDeployment")
    _check_name(name_problem(obj["metadata"]["name"]))
    _check_schema(obj, "ModelDeployment")
    typed = _typed(ModelDeployment, obj)
    check_env(typed)
    check_extra_args(typed.spec.serving.extra_args, {})
    return typed


def validate_gpu_pool(obj: Mapping[str, Any]) -> GPUPool:
    """The typed GPUPool, or InvalidSpec with a one-line message naming the field."""
    _check_type_meta(obj, "GPUPool")
    _check_name(pool_name_problem(obj["metadata"]["name"]))
    _check_schema(obj, "GPUPool")
    return _typed(GPUPool, obj)


def _check_name(problem: str | None) -> None:
    """The kind's name rule first, in words: a 300-character name is told the real limit."""
    if problem:
        raise InvalidSpec(f"metadata.name: {problem}")
