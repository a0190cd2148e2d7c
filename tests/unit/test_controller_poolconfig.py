"""Namespaced installs read their GPU pools from a ConfigMap, with the CLI's reader and checks."""

from __future__ import annotations

from modeldeploy.controller.pools.config import POOLS_KEY, pools_from_config_maps

POOL = """apiVersion: modeldeploy.dev/v1alpha1
kind: GPUPool
metadata: {name: %s}
spec: {gpu: {product: NVIDIA-L4, memoryGiB: 22.49}, gpusPerNode: %s}
"""


def cm(name: str, text: str | None) -> dict[str, object]:
    return {"metadata": {"name": name}, "data": {} if text is None else {POOLS_KEY: text}}


def test_valid_pools_are_read_and_each_problem_is_one_line() -> None:
    pools, problems = pools_from_config_maps([
        cm("a", POOL % ("l4-x4", 4) + "---\n" + POOL % ("l4-x1", '"1"')),
        cm("b", POOL % ("l4-x4", 8)),
        cm("c", None),
        cm("d", "gpu: [unclosed"),
    ])
    assert [(p.name, p.spec.gpus_per_node) for p in pools] == [("l4-x4", 4)]
    assert problems == [
        "ConfigMap a: pools.yaml document 2: spec.gpusPerNode: must be an integer, not a string '1'",
        "ConfigMap b: GPUPool l4-x4 is given twice; the first is used",
        "ConfigMap c: no key pools.yaml",
        "ConfigMap d: pools.yaml: line 1: invalid YAML: expected ',' or ']', but got '<stream end>'",
    ]
