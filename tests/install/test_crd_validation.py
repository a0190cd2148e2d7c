"""The CRD rejects what it can, with the models' meaning: CEL rules, schema, parity tests.

Every `x-kubernetes-validations` rule is evaluated (cel-python) on valid and invalid values; a
table of invalid ModelDeployments must each be rejected by the CRD (schema or CEL, after API
server defaulting) with the expected message *and* by the pydantic models; property tests
check that the CRD and the models accept exactly the same cross-field combinations.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from tests.crdcheck import CRDValidator, apply_defaults

from modeldeploy import crd
from modeldeploy.api import GPUPool, ModelDeployment
from modeldeploy.errors import describe_validation_error

ROOT = Path(__file__).resolve().parents[2]
Schema = dict[str, Any]

MD = CRDValidator(crd.crd(crd.MODEL_DEPLOYMENT))
POOL = CRDValidator(crd.crd(crd.GPU_POOL))

ARCH = {"parameters": 8_000_000_000, "layers": 32, "hiddenSize": 4096, "attentionHeads": 32}


def md(spec: Schema | None = None, name: str = "llama", **meta: Any) -> Schema:
    body: Schema = {"model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}}
    body.update(spec or {})
    return {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": "models", **meta}, "spec": body}


def pool(spec: Schema | None = None, name: str = "h100") -> Schema:
    body: Schema = {"gpu": {"product": "NVIDIA-H100-80GB-HBM3", "memoryGiB": 79.11}, "gpusPerNode": 8}
    body.update(spec or {})
    return {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "GPUPool",
            "metadata": {"name": name}, "spec": body}


def _rule_nodes(node: Schema, path: str = "") -> Iterator[tuple[str, Schema, dict[str, str]]]:
    for rule in node.get("x-kubernetes-validations", ()):
        yield path, node, rule
    for name, prop in node.get("properties", {}).items():
        yield from _rule_nodes(prop, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _rule_nodes(node["items"], f"{path}[]")


# --- each CEL rule on valid and invalid values of the object it sits on ----------------------

# message → (values the rule accepts, values it rejects). Values are what the user writes;
# the API server's defaults are applied before the rule runs.
RULE_CASES: dict[str, tuple[list[Any], list[Any]]] = {
    "kvHeads cannot exceed attentionHeads": (
        [ARCH, {**ARCH, "kvHeads": 8}, {**ARCH, "kvHeads": 32}],
        [{**ARCH, "kvHeads": 64}],
    ),
    "attentionHeads must be a multiple of kvHeads": (
        [ARCH, {**ARCH, "kvHeads": 8}, {**ARCH, "attentionHeads": 64, "kvHeads": 1}],
        [{**ARCH, "kvHeads": 12}, {**ARCH, "attentionHeads": 40, "kvHeads": 16}],
    ),
    "kvLoraRank and qkRopeHeadDim go together (MLA)": (
        [ARCH, {**ARCH, "kvLoraRank": 512, "qkRopeHeadDim": 64},
         {**ARCH, "kvLoraRank": 512, "qkRopeHeadDim": 0}],
        [{**ARCH, "kvLoraRank": 512}, {**ARCH, "qkRopeHeadDim": 64}],
    ),
    "expertsPerToken needs experts": (
        [ARCH, {**ARCH, "experts": 8}, {**ARCH, "experts": 8, "expertsPerToken": 2}],
        [{**ARCH, "expertsPerToken": 2}],
    ),
    "expertsPerToken cannot exceed experts": (
        [{**ARCH, "experts": 8, "expertsPerToken": 8}, {**ARCH, "expertsPerToken": 2}],
        [{**ARCH, "experts": 8, "expertsPerToken": 9}],
    ),
    "vLLM needs the attention heads divisible by placement.tensorParallelSize": (
        [{"model": {"name": "m"}, "placement": {"tensorParallelSize": 3}},
         {"model": {"name": "m", "architecture": {**ARCH, "attentionHeads": 40, "kvHeads": 10}},
          "placement": {"tensorParallelSize": 5}},
         {"model": {"name": "m", "architecture": ARCH}, "placement": {}}],
        [{"model": {"name": "m", "architecture": {**ARCH, "attentionHeads": 40}},
          "placement": {"tensorParallelSize": 6}}],
    ),
    "vLLM needs the KV heads divisible by placement.tensorParallelSize, or it a multiple of them": (
        [{"model": {"name": "m", "architecture": {**ARCH, "kvHeads": 8}}, "placement": {"tensorParallelSize": 16}},
         {"model": {"name": "m", "architecture": {**ARCH, "kvHeads": 8}}, "placement": {"tensorParallelSize": 4}},
         {"model": {"name": "m", "architecture": {**ARCH, "attentionHeads": 40, "kvLoraRank": 512,
                                                  "qkRopeHeadDim": 64}}, "placement": {"tensorParallelSize": 20}}],
        [{"model": {"name": "m", "architecture": {**ARCH, "attentionHeads": 40, "kvHeads": 10}},
          "placement": {"tensorParallelSize": 4}},
         {"model": {"name": "m", "architecture": {**ARCH, "attentionHeads": 48, "kvHeads": 8}},
          "placement": {"tensorParallelSize": 12}}],
    ),
    "vLLM needs placement.pipelineParallelSize at most the model's layers": (
        [{"model": {"name": "m", "architecture": ARCH}, "placement": {"pipelineParallelSize": 32}},
         {"model": {"name": "m"}, "placement": {"pipelineParallelSize": 64}}],
        [{"model": {"name": "m", "architecture": ARCH}, "placement": {"pipelineParallelSize": 33}}],
    ),
    "minReplicas must be ≤ maxReplicas": (
        [{}, {"minReplicas": 2, "maxReplicas": 4}, {"minReplicas": 3, "maxReplicas": 3}],
        [{"minReplicas": 5, "maxReplicas": 4}, {"minReplicas": 2}],
    ),
    "scaleToZero is not possible with mode hpa (HPA cannot scale to 0); use keda or builtin": (
        [{"mode": "hpa"}, {"scaleToZero": True}, {"scaleToZero": True, "mode": "keda"}],
        [{"scaleToZero": True, "mode": "hpa"}],
    ),
    "minReplicas 0 requires scaleToZero: true": (
        [{"minReplicas": 0, "scaleToZero": True}, {"minReplicas": 1}],
        [{"minReplicas": 0}, {"minReplicas": 0, "scaleToZero": False}],
    ),
    "target for kvCacheUsage is a fraction between 0 and 1": (
        [{"metric": "kvCacheUsage", "target": 0.8}, {"metric": "kvCacheUsage", "target": 1},
         {"metric": "requestsWaiting", "target": 5}, {}, {"metric": "kvCacheUsage"}],
        [{"metric": "kvCacheUsage", "target": 2},
         {"metric": "kvCacheUsage", "target": 1.01}],
    ),
    "give exactly one of concurrency or requestsPerSecond": (
        [{"inputTokens": 10, "outputTokens": 5, "concurrency": 2},
         {"inputTokens": 10, "outputTokens": 5, "requestsPerSecond": 0.5}],
        [{"inputTokens": 10, "outputTokens": 5},
         {"inputTokens": 10, "outputTokens": 5, "concurrency": 2, "requestsPerSecond": 1}],
    ),
    "give ttftMs, tpotMs or both": (
        [{"ttftMs": 500}, {"tpotMs": 20}, {"ttftMs": 500, "tpotMs": 20}],
        [{}],
    ),
    "maxSurge must be 'auto' or an integer 0-1000": (
        ["auto", 0, 1, 1000],
        ["fast", "25%", "", -1, 1001],
    ),
    "a ModelDeployment name has at most 52 characters": (
        [md(), md(name="a" * 52), md(name="llama-3-1-8b")],
        [md(name="a" * 53), md(name="a" * 300)],
    ),
    "is not a DNS label": (
        [md(), md(name="a" * 52), md(name="llama-3-1-8b")],
        [md(name="llama.3")],
    ),
}

ALL_RULES = [
    (kind.kind, path, node, rule)
    for kind in crd.KINDS
    for path, node, rule in _rule_nodes(crd.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
]


def test_every_rule_has_cases() -> None:
    messages = [rule["message"] for _, _, _, rule in ALL_RULES]
    assert sorted(messages) == sorted(RULE_CASES)


@pytest.mark.parametrize(("kind", "path", "node", "rule"), ALL_RULES,
                         ids=[r["message"][:40] for *_, r in ALL_RULES])
def test_rule_accepts_valid_and_rejects_invalid_values(
        kind: str, path: str, node: Schema, rule: dict[str, str]) -> None:
    valid, invalid = RULE_CASES[rule["message"]]
    for value in valid:
        value = apply_defaults(copy.deepcopy(value), node)
        assert MD.holds(rule["rule"], value, node), f"{rule['rule']} rejected {value}"
    for value in invalid:
        value = apply_defaults(copy.deepcopy(value), node)
        assert not MD.holds(rule["rule"], value, node), f"{rule['rule']} accepted {value}"


# --- invalid ModelDeployments: rejected by the CRD with the expected message, and by pydantic -

# What the pydantic models say about the same object: "same" = they reject it with the same
# message (a CEL rule mirrors a model validator), "reject" = they reject it too, "accept" =
# only the CRD is stricter (pydantic's lax mode coerces "2" to 2; the API server does not).
SAME, REJECT, ACCEPT = "same", "reject", "accept"

INVALID: list[tuple[str, Schema, str, str]] = [
    # (case, object, message the API server reports, what the models do)
    ("unknown field", md({"replica": 2}), "'replica' was unexpected", REJECT),
    ("model missing", {**md(), "spec": {"replicas": 1}}, "'model' is a required property", REJECT),
    ("model name with spaces", md({"model": {"name": "meta llama"}}), "does not match", REJECT),
    ("model name is a URL", md({"model": {"name": "https://evil.example/x"}}), "does not match", REJECT),
    ("model name too long", md({"model": {"name": "a" * 194}}), "is too long", REJECT),
    ("revision with ..", md({"model": {"name": "m", "revision": "../main"}}), "does not match", REJECT),
    ("unknown quantization", md({"model": {"name": "m", "quantization": "int3"}}), "is not one of", REJECT),
    ("replicas negative", md({"replicas": -1}), "less than the minimum of 0", REJECT),
    ("replicas as string", md({"replicas": "2"}), "is not of type 'integer'", ACCEPT),
    ("gpuMemoryUtilization too high", md({"serving": {"gpuMemoryUtilization": 0.99}}),
     "greater than the maximum of 0.98", REJECT),
    ("maxModelLen too small", md({"serving": {"maxModelLen": 64}}), "less than the minimum of 128", REJECT),
    ("image with newline", md({"serving": {"image": "vllm/vllm\nserviceAccountName: admin"}}),
     "does not match", REJECT),
    ("image with uppercase registry", md({"serving": {"image": "Evil/x"}}), "does not match", REJECT),
    ("extra arg too long", md({"serving": {"extraArgs": ["x" * 16385]}}), "is too long", REJECT),
    ("too many extra args", md({"serving": {"extraArgs": ["--x"] * 65}}), "is too long", REJECT),
    ("env name with =", md({"serving": {"env": [{"name": "A=B", "value": "1"}]}}), "does not match", REJECT),
    ("duplicate env", md({"serving": {"env": [{"name": "A"}, {"name": "A", "value": "2"}]}}),
     "Duplicate value", REJECT),
    ("pool name with uppercase", md({"placement": {"pools": ["H100"]}}), "does not match", REJECT),
    ("unknown policy", md({"placement": {"policy": "random"}}), "is not one of", REJECT),
    ("TP too large", md({"placement": {"tensorParallelSize": 128}}), "greater than the maximum of 64", REJECT),
    ("TP does not divide the heads", md({"model": {"name": "m", "architecture": {**ARCH, "attentionHeads": 40}},
                                         "placement": {"tensorParallelSize": 6}}),
     "vLLM needs the attention heads divisible by placement.tensorParallelSize", SAME),
    ("PP above the layers", md({"model": {"name": "m", "architecture": ARCH},
                                "placement": {"pipelineParallelSize": 48}}),
     "vLLM needs placement.pipelineParallelSize at most the model's layers", SAME),
    ("min above max", md({"autoscaling": {"minReplicas": 4, "maxReplicas": 2}}),
     "minReplicas must be ≤ maxReplicas", SAME),
    ("min above default max", md({"autoscaling": {"minReplicas": 2}}),
     "minReplicas must be ≤ maxReplicas", SAME),
    ("scale to zero with hpa", md({"autoscaling": {"scaleToZero": True, "mode": "hpa", "minReplicas": 0}}),
     "scaleToZero is not possible with mode hpa", SAME),
    ("min 0 without scaleToZero", md({"autoscaling": {"minReplicas": 0, "maxReplicas": 2}}),
     "minReplicas 0 requires scaleToZero: true", SAME),
    ("kv cache target above 1", md({"autoscaling": {"metric": "kvCacheUsage", "target": 80}}),
     "target for kvCacheUsage is a fraction between 0 and 1", SAME),
    ("target zero", md({"autoscaling": {"target": 0}}), "less than or equal to the minimum of 0", REJECT),
    ("unknown autoscaling mode", md({"autoscaling": {"mode": "vpa"}}), "is not one of", REJECT),
    ("idle too short", md({"autoscaling": {"scaleToZero": True, "minReplicas": 0, "idleSeconds": 5}}),
     "less than the minimum of 60", REJECT),
    ("maxSurge percentage", md({"rollout": {"maxSurge": "25%"}}),
     "maxSurge must be 'auto' or an integer 0-1000", REJECT),
    ("maxSurge negative", md({"rollout": {"maxSurge": -1}}),
     "maxSurge must be 'auto' or an integer 0-1000", SAME),
    ("maxSurge a float", md({"rollout": {"maxSurge": 1.5}}), "is not valid under any of the given schemas",
     REJECT),
    ("progress deadline too short", md({"rollout": {"progressDeadlineSeconds": 10}}),
     "less than the minimum of 60", REJECT),
    ("secret name invalid", md({"credentials": {"huggingFaceToken": {"name": "HF_TOKEN"}}}),
     "does not match", REJECT),
    ("secret name missing", md({"credentials": {"huggingFaceToken": {"key": "token"}}}),
     "'name' is a required property", REJECT),
    ("cache size not a quantity", md({"cache": {"size": "100 gigs"}}), "does not match", REJECT),
    ("unknown cache mode", md({"cache": {"mode": "hostPath"}}), "is not one of", REJECT),
    ("kvHeads above heads", md({"model": {"name": "m", "architecture": {**ARCH, "kvHeads": 64}}}),
     "kvHeads cannot exceed attentionHeads", SAME),
    ("heads not a multiple of kvHeads",
     md({"model": {"name": "m", "architecture": {**ARCH, "kvHeads": 12}}}),
     "attentionHeads must be a multiple of kvHeads", SAME),
    ("MLA half given", md({"model": {"name": "m", "architecture": {**ARCH, "kvLoraRank": 512}}}),
     "kvLoraRank and qkRopeHeadDim go together (MLA)", SAME),
    ("experts per token without experts",
     md({"model": {"name": "m", "architecture": {**ARCH, "expertsPerToken": 2}}}),
     "expertsPerToken needs experts", SAME),
    ("experts per token above experts",
     md({"model": {"name": "m", "architecture": {**ARCH, "experts": 4, "expertsPerToken": 8}}}),
     "expertsPerToken cannot exceed experts", SAME),
    ("architecture incomplete", md({"model": {"name": "m", "architecture": {"layers": 2}}}),
     "is a required property", REJECT),
    ("name too long for children", md(name="a" * 53),
     "a ModelDeployment name has at most 52 characters", SAME),
    ("name with a dot", md(name="llama.3"), "is not a DNS label", SAME),
    ("hfConfig with too many keys", md({"model": {"name": "acme/x", "hfConfig": {f"k{i}": i for i in range(513)}}}),
     "512", REJECT),
]


@pytest.mark.parametrize(("case", "obj", "message", "models"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_model_deployment_is_rejected_by_crd_and_models(
        case: str, obj: Schema, message: str, models: str) -> None:
    violations = MD.violations(obj)
    assert any(message in v.message for v in violations), \
        f"{case}: expected {message!r}, got {[str(v) for v in violations]}"
    if models == ACCEPT:
        ModelDeployment.model_validate(obj)
        return
    with pytest.raises(ValidationError) as err:
        ModelDeployment.model_validate(obj)
    if models == SAME:
        assert message in describe_validation_error(err.value)


VALID: list[tuple[str, Schema]] = [
    ("minimal", md()),
    ("full", md({
        "model": {"name": "deepseek-ai/DeepSeek-V3", "revision": "main", "quantization": "fp8",
                  "dtype": "bfloat16",
                  "architecture": {**ARCH, "kvHeads": 8, "experts": 256, "expertsPerToken": 8,
                                   "kvLoraRank": 512, "qkRopeHeadDim": 64, "maxContext": 163840}},
        "serving": {"maxModelLen": 32768, "maxNumSeqs": 16, "kvCacheDtype": "fp8",
                    "gpuMemoryUtilization": 0.92, "image": "vllm/vllm-openai:v0.11.0",
                    "extraArgs": ["--enable-prefix-caching"], "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}]},
        "placement": {"pools": ["eks-h100-x8", "gke-h200-x8"], "tensorParallelSize": 8,
                      "pipelineParallelSize": 2, "policy": "fastest"},
        "autoscaling": {"minReplicas": 0, "maxReplicas": 4, "metric": "kvCacheUsage", "target": 0.7,
                        "scaleToZero": True, "mode": "keda", "idleSeconds": 600},
        "rollout": {"maxUnavailable": 0, "maxSurge": 1, "progressDeadlineSeconds": 3600, "autoRollback": False},
        "credentials": {"huggingFaceToken": {"name": "hf-token", "key": "token"}},
        "cache": {"mode": "pvc", "size": "800Gi", "storageClassName": "fast-ssd"},
    })),
    ("replicas zero without autoscaling", md({"replicas": 0})),
    # config.json verbatim: any keys and nesting (x-kubernetes-preserve-unknown-fields).
    ("hfConfig", md({"model": {"name": "acme/private-vl", "checkpointBytes": 16060522496, "hfConfig": {
        "model_type": "qwen2_5_vl", "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "vision_config": {"depth": 32, "hidden_size": 1280}, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}}}})),
    ("hpa", md({"autoscaling": {"minReplicas": 1, "maxReplicas": 3, "mode": "hpa"}})),
    ("name at the limit", md(name="m" * 52)),
]


@pytest.mark.parametrize(("case", "obj"), VALID, ids=[c for c, _ in VALID])
def test_valid_model_deployment_is_accepted_by_crd_and_models(case: str, obj: Schema) -> None:
    assert MD.violations(obj) == []
    ModelDeployment.model_validate(obj)


def test_api_server_defaults_fill_the_same_values_as_the_models() -> None:
    defaulted = MD.defaulted(md())
    model = ModelDeployment.model_validate(md()).spec.wire()
    assert defaulted["spec"]["serving"]["image"] == model["serving"]["image"]  # type: ignore[index]
    for section in ("serving", "placement", "rollout", "cache"):
        for key, value in defaulted["spec"][section].items():
            assert model[section][key] == value, f"{section}.{key}"  # type: ignore[index]


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid_for_the_crds(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        validator = {"ModelDeployment": MD, "GPUPool": POOL}[doc["kind"]]
        assert validator.violations(doc) == [], doc["metadata"]["name"]


INVALID_POOLS: list[tuple[str, Schema, str]] = [
    ("no gpu", {**pool(), "spec": {"gpusPerNode": 8}}, "'gpu' is a required property"),
    ("zero memory", pool({"gpu": {"product": "X", "memoryGiB": 0}}), "less than or equal to the minimum of 0"),
    ("too many gpus per node", pool({"gpusPerNode": 65}), "greater than the maximum of 64"),
    ("negative price", pool({"pricePerGPUHour": -1}), "less than the minimum of 0"),
    ("label value with space", pool({"nodeSelector": {"gpu": "a b"}}), "does not match"),
    ("too many labels", pool({"nodeSelector": {f"k{i}": "v" for i in range(33)}}), "too many properties"),
    ("bad toleration operator", pool({"tolerations": [{"key": "k", "operator": "In"}]}), "is not one of"),
    ("product with newline", pool({"gpu": {"product": "A\nB", "memoryGiB": 1}}), "does not match"),
]


@pytest.mark.parametrize(("case", "obj", "message"), INVALID_POOLS, ids=[c for c, _, _ in INVALID_POOLS])
def test_invalid_gpu_pool_is_rejected_by_crd_and_models(case: str, obj: Schema, message: str) -> None:
    assert any(message in v.message for v in POOL.violations(obj)), POOL.violations(obj)
    with pytest.raises(ValidationError):
        GPUPool.model_validate(obj)


# --- parity: the CRD and the models accept the same cross-field combinations -----------------


def _agree(obj: Schema) -> None:
    crd_ok = not MD.violations(obj)
    try:
        ModelDeployment.model_validate(obj)
        model_ok = True
    except ValidationError:
        model_ok = False
    assert crd_ok == model_ok, f"CRD {'accepts' if crd_ok else 'rejects'} but models do not: {obj['spec']}"


@given(
    st.fixed_dictionaries({}, optional={
        "minReplicas": st.integers(0, 4), "maxReplicas": st.integers(1, 4),
        "metric": st.sampled_from(["requestsWaiting", "requestsRunning", "kvCacheUsage"]),
        "target": st.sampled_from([0.5, 1, 1.0, 1.5, 5]),
        "scaleToZero": st.booleans(), "mode": st.sampled_from(["builtin", "hpa", "keda"]),
    })
)
def test_autoscaling_rules_agree_with_the_models(autoscaling: Schema) -> None:
    _agree(md({"autoscaling": autoscaling}))


@given(
    st.fixed_dictionaries({"attentionHeads": st.sampled_from([8, 12, 32, 40])}, optional={
        "kvHeads": st.sampled_from([1, 4, 8, 16, 64]), "experts": st.integers(1, 16),
        "expertsPerToken": st.integers(1, 16), "kvLoraRank": st.just(512),
        "qkRopeHeadDim": st.just(64),
    })
)
def test_architecture_rules_agree_with_the_models(arch: Schema) -> None:
    _agree(md({"model": {"name": "m", "architecture": {**ARCH, **arch}}}))


@given(st.integers(1, 64), st.integers(1, 64),
       st.one_of(st.just("auto"), st.integers(-2, 1002), st.sampled_from(["", "fast", "10%"])))
def test_pin_and_surge_rules_agree_with_the_models(tp: int, pp: int, surge: int | str) -> None:
    _agree(md({"placement": {"tensorParallelSize": tp, "pipelineParallelSize": pp},
               "rollout": {"maxSurge": surge}}))


@given(st.integers(1, 64), st.integers(1, 64), st.sampled_from([8, 12, 32, 40, 64]),
       st.sampled_from([1, 2, 4, 8, 10, 16]), st.integers(1, 80), st.booleans())
def test_pins_on_an_architecture_agree_with_the_models(
        tp: int, pp: int, heads: int, kv: int, layers: int, mla: bool) -> None:
    arch: Schema = {**ARCH, "attentionHeads": heads, "kvHeads": min(kv, heads), "layers": layers}
    if mla:
        arch.update(kvLoraRank=512, qkRopeHeadDim=64)
    _agree(md({"model": {"name": "m", "architecture": arch},
               "placement": {"tensorParallelSize": tp, "pipelineParallelSize": pp}}))
