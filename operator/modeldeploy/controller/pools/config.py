"""GPU pools of a namespaced install, from a ConfigMap in the operator's namespace. Pure.

A namespaced install (`watchNamespaces`) holds no cluster-scoped right: it cannot read GPUPools
or Nodes. The chart value `gpuPools` then renders a ConfigMap labelled `POOLS_LABEL` in the
operator's namespace whose `POOLS_KEY` holds GPUPool documents, read with the same YAML reader
and validation as `modeldeploy plan` (kubeyaml, validation). The packaged pool catalog is never
used on a cluster: without pools a ModelDeployment is Stalled/NoPoolsVisible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...api import GPUPool
from ...errors import InvalidSpec
from ...kubeyaml import YamlError, load_documents
from ...validation import validate_gpu_pool

POOLS_LABEL = "modeldeploy.dev/gpu-pools"  # value "true"
POOLS_SELECTOR = f"{POOLS_LABEL}=true"
POOLS_KEY = "pools.yaml"

NO_POOLS_CLUSTER = ("no GPU pools are visible: create GPUPool objects (kubectl get gpupools) or "
                    "label the GPU nodes with NVIDIA GPU Feature Discovery, GKE or Karpenter "
                    "labels so that pools are discovered")
NO_POOLS_NAMESPACED = ("no GPU pools are visible: a namespaced install cannot read GPUPools or "
                       f"Nodes; give the pools in a ConfigMap labelled {POOLS_SELECTOR} in the "
                       f"operator's namespace, key {POOLS_KEY} (Helm: the gpuPools value)")
# The other thing a namespaced install cannot see: the KEDA HTTP add-on's interceptor pods
# (EndpointSlices in the add-on's namespace), whose count wakes a builtin model at zero.
BUILTIN_WAKE_NAMESPACED = (
    "autoscaling.scaleToZero with mode builtin: a namespaced install cannot read the KEDA HTTP "
    "add-on's interceptors (in the add-on's namespace), so nothing would wake the model at zero; "
    "set autoscaling.mode: keda (KEDA's scaler wakes it) or install the operator cluster-wide")


def pools_from_config_maps(config_maps: Iterable[Mapping[str, Any]]) -> tuple[list[GPUPool], list[str]]:
    """(pools, problems): every valid GPUPool of the ConfigMaps, sorted by name, and one line
    per document that is not one (`CONFIGMAP: GPUPool NAME: field: why`); the first of two
    pools with one name wins."""
    pools: dict[str, GPUPool] = {}
    problems: list[str] = []
    for cm in sorted(config_maps, key=lambda c: str((c.get("metadata") or {}).get("name"))):
        name = f"ConfigMap {(cm.get('metadata') or {}).get('name')}"
        text = (cm.get("data") or {}).get(POOLS_KEY)
        if not isinstance(text, str):
            problems.append(f"{name}: no key {POOLS_KEY}")
            continue
        try:
            documents = load_documents(text)
        except YamlError as exc:
            problems.append(f"{name}: {POOLS_KEY}: {exc}")
            continue
        for doc in documents:
            try:
                pool = validate_gpu_pool(doc.body)
            except InvalidSpec as exc:
                problems.append(f"{name}: {POOLS_KEY} document {doc.index}: {exc}")
                continue
            if pool.name in pools:
                problems.append(f"{name}: GPUPool {pool.name} is given twice; the first is used")
                continue
            pools[pool.name] = pool
    return sorted(pools.values(), key=lambda p: p.name), problems
