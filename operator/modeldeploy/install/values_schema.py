"""values.schema.json of charts/modeldeploy, with GPUPool specs checked by the CRD's schema."""

from __future__ import annotations

from typing import Any

from ..api.base import DNS_LABEL, DNS_SUBDOMAIN
from ..api.pool import LABEL_VALUE
from ..crd import GPU_POOL, root_schema, to_jsonschema
from ..shell.config import CHART_OWN, OperatorConfig, camel

Schema = dict[str, Any]

_STR: Schema = {"type": "string"}
_OBJ: Schema = {"type": "object"}
_PORT: Schema = {"type": "integer", "minimum": 1, "maximum": 65535}
_DURATION: Schema = {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h))+$"}
_LABEL_VALUE: Schema = {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE}


def _closed(properties: Schema, **extra: Any) -> Schema:
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


def _camel_schema(schema: Schema, defs: Schema) -> Schema:
    """A pydantic JSON schema with camelCase property names, $refs inlined, objects closed."""
    if "$ref" in schema:
        return _camel_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    out = {k: v for k, v in schema.items()
           if k not in ("title", "$defs", "default", "flag", "short")}
    for key in ("anyOf", "allOf", "oneOf"):
        if key in out:
            out[key] = [_camel_schema(item, defs) for item in out[key]]
    if "items" in out and isinstance(out["items"], dict):
        out["items"] = _camel_schema(out["items"], defs)
    if "properties" in out:
        out["properties"] = {camel(name): _camel_schema(prop, defs)
                             for name, prop in out["properties"].items()}
        out["additionalProperties"] = False
        out.pop("required", None)
    return out


def operator_values_schema() -> Schema:
    """The chart's `operator:` object: every setting of `OperatorConfig` the chart does not set
    through a value of its own, camelCase, passed whole as MODELDEPLOY_CONFIG."""
    schema = OperatorConfig.model_json_schema()
    defs = schema.get("$defs", {})
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k not in CHART_OWN}
    out = _camel_schema(schema, defs)
    out["description"] = ("Operator settings (modeldeploy run flags), camelCase; "
                          "docs/reference/operator-settings.md.")
    return out


def values_schema() -> Schema:
    pool_spec = to_jsonschema(root_schema(GPU_POOL)["properties"]["spec"], strict=True)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "modeldeploy chart values",
        **_closed({
            "image": _closed({
                "repository": {"type": "string", "minLength": 1},
                "tag": _STR,
                "digest": {"type": "string", "pattern": r"^(sha256:[a-f0-9]{64})?$"},
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            }, required=["repository"]),
            "imagePullSecrets": {"type": "array", "items": _closed({"name": _STR}, required=["name"])},
            "nameOverride": _STR,
            "fullnameOverride": _STR,
            "watchNamespaces": {
                "description": "Empty: all namespaces (ClusterRole). Set: a Role in each.",
                "type": "array", "uniqueItems": True,
                "items": {"type": "string", "maxLength": 63, "pattern": DNS_LABEL},
            },
            "peering": _closed({
                "enabled": {"type": "boolean"},
                "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
            }),
            "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
            "huggingFace": _closed({
                "endpoint": {"type": "string", "pattern": r"^(https?://[^\s]+)?$"},
                "offline": {"type": "boolean"},
                "tokenSecret": _closed({
                    "name": {"type": "string", "maxLength": 253,
                             "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$"},
                    "key": {"type": "string", "pattern": r"^[-._a-zA-Z0-9]+$"},
                }),
            }),
            "cache": _closed({
                "storageClassName": {
                    "description": "StorageClass of cache claims whose spec.cache.storageClassName is unset.",
                    "type": "string", "maxLength": 253,
                    "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$"},
                "downloadImage": {"description": "Image of the shared cache's download Job; empty: the operator's.",
                                  "type": "string", "maxLength": 512},
            }),
            "kedaHttpAddOn": _closed({
                "interceptor": {"description": "DNS name of the add-on's interceptor proxy Service.",
                                "type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
                "interceptorPort": _PORT,
                "externalScaler": {"description": "host:port of the add-on's external scaler.",
                                   "type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[0-9]{1,5}$"},
                "responseHeaderTimeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 86400},
                "adminService": {"description": "namespace/name of the interceptors' admin Service "
                                                "(mode builtin reads /queue on its endpoints).",
                                 "type": "string", "maxLength": 317,
                                 "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
            }),
            "clusterDomain": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
            "models": _closed({
                "serviceMonitor": _closed({
                    "enabled": {"type": "boolean"},
                    "labels": {"type": "object", "additionalProperties": _LABEL_VALUE},
                }),
                "maxConcurrentUpgrades": {"type": "integer", "minimum": 1, "maximum": 1024},
                "podResources": _closed({
                    "cpuPerGPU": {"type": "number", "exclusiveMinimum": 0, "maximum": 256},
                    "memoryBaseGiB": {"type": "integer", "minimum": 1, "maximum": 4096},
                    "memoryPerGPUGiB": {"type": "integer", "minimum": 0, "maximum": 1024},
                }, required=["cpuPerGPU", "memoryBaseGiB", "memoryPerGPUGiB"]),
            }),
            "operator": operator_values_schema(),
            "extraArgs": {"type": "array", "items": {"type": "string", "pattern": r"^--[a-z]"}},
            "serviceAccount": _closed({
                "create": {"type": "boolean"},
                "name": _STR,
                "annotations": {"type": "object", "additionalProperties": _STR},
            }),
            "rbac": _closed({
                "create": {"type": "boolean"},
                "aggregateToDefaultRoles": {"type": "boolean"},
            }),
            "resources": _closed({"requests": _OBJ, "limits": _OBJ, "claims": {"type": "array"}}),
            "probes": _closed({
                "port": _PORT,
                "livenessInitialDelaySeconds": {"type": "integer", "minimum": 0},
                "livenessPeriodSeconds": {"type": "integer", "minimum": 1},
                "readinessPeriodSeconds": {"type": "integer", "minimum": 1},
            }),
            "metrics": _closed({"port": _PORT}),
            "serviceMonitor": _closed({
                "enabled": {"type": "boolean"},
                "interval": _DURATION,
                "scrapeTimeout": _DURATION,
                "labels": {"type": "object", "additionalProperties": _LABEL_VALUE},
            }),
            "gpuPools": {
                "description": "GPUPool objects to create; spec as in the GPUPool CRD.",
                "type": "array",
                "items": _closed({
                    "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
                    "spec": pool_spec,
                }, required=["name", "spec"]),
            },
            "extraEnv": {"type": "array", "items": {"type": "object", "required": ["name"]}},
            "podAnnotations": {"type": "object", "additionalProperties": _STR},
            "podLabels": {"type": "object", "additionalProperties": _STR},
            "priorityClassName": _STR,
            "nodeSelector": {"type": "object", "additionalProperties": _STR},
            "tolerations": {"type": "array", "items": _OBJ},
            "affinity": _OBJ,
            "global": _OBJ,
        }),
    }
