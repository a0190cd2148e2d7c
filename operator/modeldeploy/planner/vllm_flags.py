"""vLLM's JSON-valued flags read from `spec.serving.extraArgs`. Pure.

vLLM's argument parser takes a JSON-valued flag (`--speculative-config`, `--limit-mm-per-prompt`)
in three forms: `--flag '{"key": …}'`, `--flag='{…}'` and the dotted `--flag.key value` /
`--flag.key=value`, which it expands into a JSON object (vllm/engine/arg_utils.py,
vllm/utils FlexibleArgumentParser); underscores in a flag name read as dashes. One reader for
every such flag, so the planner sees what vLLM will.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

NotJson = Callable[[str], dict[str, Any]]


def normalised(token: str) -> str:
    """`token` with the underscores of its flag name read as dashes (`--limit_mm_per_prompt=…`)."""
    name, sep, value = token.partition("=")
    return "--" + name[2:].replace("_", "-") + sep + value if name.startswith("--") else token


def _as_object(text: str, not_json: NotJson | None) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError:
        return not_json(text) if not_json else {}
    return parsed if isinstance(parsed, dict) else {}


def flag_objects(extra_args: Sequence[str], flag: str, not_json: NotJson | None = None) -> list[dict[str, Any]]:
    """Each occurrence of `flag` in `extra_args`, in order, as the object it sets: a JSON value
    parsed (not an object: {}; not JSON: `not_json(text)`, else {}), a dotted `--flag.key value`
    as {key: value} (the value as written, a string). Callers fold them in order: argparse's
    last occurrence wins, key by key as vLLM merges the dotted form."""
    found: list[dict[str, Any]] = []
    for i, arg in enumerate(extra_args):
        following = extra_args[i + 1] if i + 1 < len(extra_args) else ""
        name, sep, value = normalised(arg).partition("=")
        value = value if sep else following
        if name == flag:
            found.append(_as_object(value, not_json))
        elif name.startswith(flag + "."):
            found.append({name[len(flag) + 1:]: value})
    return found
