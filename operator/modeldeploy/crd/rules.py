"""The CRDs' additions to the models' JSON schema: what pydantic checks in code, restated for the
API server. Pure: no I/O.

- `RULES` / `ROOT_RULES`: every cross-field model validator as a CEL `x-kubernetes-validations`
  rule with the same meaning (messages are substrings of the pydantic messages);
- `FIELD_SCHEMA`: what field validators check (lengths, patterns, list types);
- `KIND_DESCRIPTIONS`: each kind's description.

`tests/install/test_crd_validation.py` checks each invalid object is rejected by both pydantic
and the CRD, so the two cannot drift apart silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..api import (
    Architecture,
    Autoscaling,
    Cache,
    GPUPoolSpec,
    GPUPoolStatus,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelSource,
    Placement,
    Rollout,
    Serving,
    Slo,
    Workload,
)
from ..api.base import DNS_SUBDOMAIN
from ..api.deployment import HF_CONFIG_MAX_KEYS
from ..api.pool import LABEL_VALUE
from ..api.status import Condition

Schema = dict[str, Any]


@dataclass(frozen=True)
class Rule:
    """One `x-kubernetes-validations` entry."""

    rule: str
    message: str
    field_path: str | None = None

    def wire(self) -> Schema:
        out: Schema = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        return out


# Pins checked against an explicit spec.model.architecture (the models' `pin_rule_broken`); the
# planner applies the same vLLM rules to facts from the catalog or the hub. Names are bound with
# CEL ternaries: `kv` is kvHeads, defaulting to attentionHeads.
_ARCH = "self.model.architecture"
_TP = "self.placement.tensorParallelSize"
_PP = "self.placement.pipelineParallelSize"
_KV = f"(has({_ARCH}.kvHeads) ? {_ARCH}.kvHeads : {_ARCH}.attentionHeads)"
_WITH_TP = f"!has(self.model.architecture) || !has(self.placement) || !has({_TP}) || "
_WITH_PP = f"!has(self.model.architecture) || !has(self.placement) || !has({_PP}) || "
PIN_RULES = (
    Rule(_WITH_TP + f"{_ARCH}.attentionHeads % {_TP} == 0",
         "vLLM needs the attention heads divisible by placement.tensorParallelSize",
         ".placement"),
    Rule(_WITH_TP + f"has({_ARCH}.kvLoraRank) || ({_TP} >= {_KV} ? {_TP} % {_KV} == 0 : {_KV} % {_TP} == 0)",
         "vLLM needs the KV heads divisible by placement.tensorParallelSize, or it a multiple of them",
         ".placement"),
    Rule(_WITH_PP + f"{_PP} <= {_ARCH}.layers",
         "vLLM needs placement.pipelineParallelSize at most the model's layers",
         ".placement"),
)


# CEL mirrors of the models' cross-field validators, keyed by the model they sit on. Messages are
# substrings of the pydantic messages. Fields read without has() are required or defaulted (the
# API server defaults before it validates).
RULES: dict[type[BaseModel], tuple[Rule, ...]] = {
    Architecture: (
        Rule("!has(self.kvHeads) || self.kvHeads <= self.attentionHeads",
             "kvHeads cannot exceed attentionHeads", ".kvHeads"),
        Rule("!has(self.kvHeads) || self.attentionHeads % self.kvHeads == 0",
             "attentionHeads must be a multiple of kvHeads", ".attentionHeads"),
        Rule("has(self.kvLoraRank) == has(self.qkRopeHeadDim)",
             "kvLoraRank and qkRopeHeadDim go together (MLA)"),
        Rule("!has(self.expertsPerToken) || has(self.experts)",
             "expertsPerToken needs experts", ".expertsPerToken"),
        Rule("!has(self.expertsPerToken) || !has(self.experts) || self.expertsPerToken <= self.experts",
             "expertsPerToken cannot exceed experts", ".expertsPerToken"),
    ),
    ModelDeploymentSpec: PIN_RULES,
    Workload: (
        Rule("has(self.concurrency) != has(self.requestsPerSecond)",
             "give exactly one of concurrency or requestsPerSecond"),
    ),
    Slo: (Rule("has(self.ttftMs) || has(self.tpotMs)", "give ttftMs, tpotMs or both"),),
    Autoscaling: (
        Rule("self.minReplicas <= self.maxReplicas", "minReplicas must be ≤ maxReplicas",
             ".minReplicas"),
        Rule("!(self.scaleToZero && self.mode == 'hpa')",
             "scaleToZero is not possible with mode hpa (HPA cannot scale to 0); use keda or builtin",
             ".scaleToZero"),
        Rule("self.minReplicas != 0 || self.scaleToZero",
             "minReplicas 0 requires scaleToZero: true", ".minReplicas"),
        Rule("!has(self.target) || self.metric != 'kvCacheUsage' || self.target <= 1.0",
             "target for kvCacheUsage is a fraction between 0 and 1", ".target"),
    ),
}

# Root-level rules (the root may read metadata.name). Children append suffixes to the name.
ROOT_RULES: dict[type[BaseModel], tuple[Rule, ...]] = {
    ModelDeployment: (
        Rule("self.metadata.name.size() <= 52",
             "a ModelDeployment name has at most 52 characters"),
        Rule("!self.metadata.name.contains('.')", "is not a DNS label"),
    ),
}

# Schema the models enforce in field validators (code), keyed by (model, wire field name).
FIELD_SCHEMA: dict[tuple[type[BaseModel], str], Schema] = {
    (Serving, "extraArgs"): {"items": {"maxLength": 16384}},
    (Serving, "env"): {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    (Placement, "pools"): {"items": {"maxLength": 253, "pattern": DNS_SUBDOMAIN}},
    # config.json verbatim: any keys, kept as written (the parser reads it like the hub's copy).
    (ModelSource, "hfConfig"): {"x-kubernetes-preserve-unknown-fields": True, "maxProperties": HF_CONFIG_MAX_KEYS},
    (Rollout, "maxSurge"): {
        "x-kubernetes-validations": [
            Rule("type(self) == string ? self == 'auto' : (self >= 0 && self <= 1000)",
                 "maxSurge must be 'auto' or an integer 0-1000").wire(),
        ],
    },
    # Label keys are not checked here: map keys have no maxLength, so a regex over them would
    # blow the CEL cost budget. A bad key matches no node (status.nodes 0), and the API server
    # refuses a pod using it, which the ModelDeployment reports as ApplyFailed.
    (GPUPoolSpec, "nodeSelector"): {
        "maxProperties": 32,
        "additionalProperties": {"maxLength": 63, "pattern": LABEL_VALUE},
    },
    (Condition, "lastTransitionTime"): {"format": "date-time"},
    (ModelDeploymentStatus, "conditions"): {
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
    },
    (GPUPoolStatus, "conditions"): {
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
    },
}

# Fields whose pydantic default the API server must NOT write into stored objects: the operator
# reads whether they were given (model_fields_set), as `modeldeploy plan`/`render` do on the
# user's YAML. A server-side default would make the cluster and the CLI disagree:
# cache.mode left out picks a claim for a cache too big for a node (render/context.py
# with_cache_default); replicas left out lets the workload search choose the replica count
# (planner/workload.py LoadRequest.from_spec).
GIVEN_MATTERS: frozenset[tuple[type[BaseModel], str]] = frozenset({
    (Cache, "mode"),
    (ModelDeploymentSpec, "replicas"),
})

KIND_DESCRIPTIONS = {
    "ModelDeployment": (
        "ModelDeployment serves one open LLM with vLLM. The operator reads the model's size and "
        "architecture, chooses a GPUPool and a tensor-/pipeline-parallel layout, runs it as a "
        "Deployment (one node per replica) or a LeaderWorkerSet (several), and reports the plan "
        "and kstatus conditions (Ready, Reconciling, Stalled) in status."
    ),
    "GPUPool": (
        "GPUPool is a set of identical GPU nodes (selected by labels) that ModelDeployments may "
        "be placed on. Cluster-scoped; status reports the nodes and free GPUs observed."
    ),
}
