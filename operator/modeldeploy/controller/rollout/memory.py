"""The rollout memory kept in workload annotations: when the live revision started and the
capacity observed then (see `revisions`). Pure."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from ...render import RolloutInputs
from ...render.output import canonical_json

ROLLOUT_STARTED = "modeldeploy.dev/rollout-started"
ROLLOUT_INPUTS = "modeldeploy.dev/rollout-inputs"


def annotations_of(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = (obj or {}).get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def json_annotation(obj: Mapping[str, Any] | None, key: str) -> Any:
    raw = annotations_of(obj).get(key)
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None




def parse_started(obj: Mapping[str, Any] | None) -> float | None:
    raw = annotations_of(obj).get(ROLLOUT_STARTED)
    if not isinstance(raw, str):
        return None
    try:
        when = datetime.datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return None
    return when.timestamp()


_INPUT_FIELDS = {f.name: f for f in fields(RolloutInputs)}
_INPUT_KEYS = {"free_gpus": "freeGPUs", "spare_replicas": "spareReplicas",
               "scheduled_surge_replicas": "scheduledSurgeReplicas",
               "pool_changed": "poolChanged", "replicas": "replicas"}


def encode_inputs(inputs: RolloutInputs) -> str:
    return canonical_json({_INPUT_KEYS[name]: getattr(inputs, name) for name in _INPUT_FIELDS})


def parse_inputs(obj: Mapping[str, Any] | None) -> RolloutInputs | None:
    """The inputs recorded when the live revision was applied; None when absent or malformed."""
    data = json_annotation(obj, ROLLOUT_INPUTS)
    if not isinstance(data, Mapping) or set(data) != set(_INPUT_KEYS.values()):
        return None
    values: dict[str, Any] = {}
    for name, key in _INPUT_KEYS.items():
        value = data[key]
        if name == "pool_changed":
            if not isinstance(value, bool):
                return None
        elif value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return None
        values[name] = value
    if values["scheduled_surge_replicas"] is None:
        return None
    return RolloutInputs(**values)


