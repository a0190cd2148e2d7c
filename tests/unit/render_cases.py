"""Hand-built (ModelDeployment, Plan, GPUPool) cases for the renderer tests.

Plans are written out by hand, not planned, so the render tests and golden files do not move
when the planner's arithmetic changes. Numbers follow SIZING-FACTS.md.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from modeldeploy.api import GPUPool, ModelDeployment
from modeldeploy.planner import MemoryPerGPU, Plan

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
K8S_VERSION = "1.31"
TOLERATE_GPU = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def pool(name: str, product: str, memory: float, gpus: int, selector: dict[str, str],
         nvlink: bool = False) -> GPUPool:
    return GPUPool.model_validate({
        "metadata": {"name": name},
        "spec": {"gpu": {"product": product, "memoryGiB": memory, "nvlink": nvlink},
                 "gpusPerNode": gpus, "nodeSelector": selector, "tolerations": TOLERATE_GPU},
    })


A10G = pool("eks-a10g-x1", "NVIDIA-A10G", 22.30, 1,
            {"karpenter.k8s.aws/instance-gpu-name": "a10g", "karpenter.k8s.aws/instance-gpu-count": "1"})
H100 = pool("eks-h100-x8", "NVIDIA-H100-80GB-HBM3", 79.11, 8,
            {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, nvlink=True)


def md(name: str, spec: dict[str, Any], namespace: str | None = "models",
       labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> ModelDeployment:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return ModelDeployment.model_validate({"metadata": meta, "spec": spec})


def plan(m: ModelDeployment, p: GPUPool, *, tp: int, pp: int = 1, nodes: int = 1,
         weights_gib: float, max_model_len: int, replicas: int = 1, **extra: Any) -> Plan:
    gpus_per_pod = tp if nodes > 1 else tp * pp
    return Plan(
        name=m.metadata.name, namespace=m.metadata.namespace, model=extra.pop("model", m.spec.model.name),
        feasible=True, pool=p.name, gpu_product=p.spec.gpu.product, gpu_memory_gib=p.spec.gpu.memory_gi_b,
        tensor_parallel_size=tp, pipeline_parallel_size=pp, gpus_per_replica=tp * pp,
        nodes_per_replica=nodes, gpus_per_pod=gpus_per_pod, replicas=replicas,
        max_model_len=max_model_len, kv_sequences=2,
        memory_per_gpu=MemoryPerGPU(weights_gib=weights_gib, kv_cache_gib=4.0, kv_required_gib=2.0,
                                    overhead_gib=2.0, budget_gib=p.spec.gpu.memory_gi_b * 0.9),
        reason="hand-built plan for render tests", **extra,
    )


def llama_8b() -> tuple[ModelDeployment, Plan, GPUPool]:
    """Llama 3.1 8B on one A10G: emptyDir cache, one replica, gated (HF token)."""
    m = md("llama-3-1-8b", {
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
        "serving": {"maxModelLen": 8192},
        "credentials": {"huggingFaceToken": {"name": "hf-token", "key": "token"}},
    })
    return m, plan(m, A10G, tp=1, weights_gib=14.99, max_model_len=8192, max_num_batched_tokens=2048), A10G


def llama_70b() -> tuple[ModelDeployment, Plan, GPUPool]:
    """Llama 3.3 70B, TP 4 on H100: two replicas (PDB), PVC cache, revision, extra args, env."""
    m = md("llama-3-3-70b", {
        "model": {"name": "meta-llama/Llama-3.3-70B-Instruct", "revision": "6f6073b"},
        "serving": {"maxModelLen": 32768, "maxNumSeqs": 16,
                    "extraArgs": ["--enable-prefix-caching", "--max-log-len", "200"],
                    "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}]},
        "replicas": 2,
        "cache": {"mode": "pvc", "storageClassName": "efs-sc"},
        "credentials": {"huggingFaceToken": {"name": "hf-token"}},
    }, labels={"team": "search"}, annotations={"karpenter.sh/do-not-disrupt": "true"})
    return m, plan(m, H100, tp=4, weights_gib=32.87, max_model_len=32768, replicas=2,
                   max_num_seqs=16, max_num_batched_tokens=8192), H100


def deepseek_v3() -> tuple[ModelDeployment, Plan, GPUPool]:
    """DeepSeek V3 (fp8 MoE), TP 8 x PP 2 across two H100 nodes: a LeaderWorkerSet."""
    m = md("deepseek-v3", {
        "model": {"name": "deepseek-ai/DeepSeek-V3"},
        "serving": {"maxModelLen": 32768},
        "placement": {"pools": ["eks-h100-x8"]},
        # set: the default for a 708 GiB cache would be a claim (render.with_cache_default)
        "cache": {"mode": "emptyDir"},
    })
    return m, plan(m, H100, tp=8, pp=2, nodes=2, weights_gib=40.2, max_model_len=32768,
                   max_num_batched_tokens=8192, expert_parallel=True), H100


CASES = {"llama-3.1-8b-a10g": llama_8b, "llama-3.3-70b-h100-tp4": llama_70b,
         "deepseek-v3-h100-lws": deepseek_v3}


def with_spec(m: ModelDeployment, **changes: Any) -> ModelDeployment:
    """A copy of `m` with camelCase spec fragments merged in (one level deep)."""
    body = m.model_dump(by_alias=True, exclude_none=True, mode="json")
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(body["spec"].get(key), dict):
            body["spec"][key] = {**body["spec"][key], **value}
        else:
            body["spec"][key] = value
    return ModelDeployment.model_validate(body)


@cache
def _k8s_definitions() -> dict[str, Any]:
    """The strict Kubernetes 1.31 definitions kubernetes-validate ships ($id: _definitions.json)."""
    import kubernetes_validate

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = base / f"v{K8S_VERSION}.0-local-strict" / "_definitions.json"
    return dict(json.loads(path.read_text()))


def _resolve_podspec(node: Any) -> Any:
    if isinstance(node, dict):
        if "x-podspec" in node:
            return {"$ref": f"{_k8s_definitions()['$id']}#/$defs/{node['x-podspec']}"}
        return {k: _resolve_podspec(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_podspec(v) for v in node]
    return node


@cache
def crd_validator(kind: str) -> Draft202012Validator:
    """jsonschema validator for a vendored CRD subset (pod specs: strict Kubernetes 1.31)."""
    files = {"LeaderWorkerSet": "leaderworkerset.x-k8s.io_v1.subset.yaml",
             "ServiceMonitor": "monitoring.coreos.com_servicemonitors_v1.subset.yaml",
             "ScaledObject": "keda.sh_scaledobjects_v1alpha1.subset.yaml",
             "HTTPScaledObject": "http.keda.sh_httpscaledobjects_v1alpha1.subset.yaml"}
    schema = _resolve_podspec(yaml.safe_load((SCHEMAS / files[kind]).read_text()))
    definitions = _k8s_definitions()
    registry: Registry[Any] = Registry().with_resource(
        definitions["$id"], Resource.from_contents(definitions)
    )
    return Draft202012Validator(schema, registry=registry)


def validate(obj: dict[str, Any]) -> None:
    """Schema-validate one rendered object: kubernetes-validate (1.31, strict) or a vendored CRD
    (LeaderWorkerSet, ServiceMonitor, ScaledObject, HTTPScaledObject)."""
    if obj["kind"] in ("LeaderWorkerSet", "ServiceMonitor", "ScaledObject", "HTTPScaledObject"):
        crd_validator(obj["kind"]).validate(obj)
        return
    import kubernetes_validate

    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
