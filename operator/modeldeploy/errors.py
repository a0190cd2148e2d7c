"""Errors users see: one line, naming the field and the reason. Pure (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError


class ModeldeployError(Exception):
    """Base: a message fit for a one-line CLI error or a status condition."""

    reason = "Error"


class InvalidSpec(ModeldeployError):
    reason = "InvalidSpec"


class ModelUnresolved(ModeldeployError):
    reason = "ModelUnresolved"


class ConfigFieldError(ModelUnresolved):
    """A config.json field the parser cannot use.

    `field` is the dotted path inside config.json as written (`text_config.hidden_size`,
    `quantization_config.bits`); `problem` says what is wrong. The message names the model and
    the file; spec.model.hfConfig re-roots the path under the spec
    (`spec.model.hfConfig.text_config.hidden_size: ...`, facts/resolve.py).
    """

    def __init__(self, repo_id: str, field: str, problem: str) -> None:
        super().__init__(f"model {repo_id}: config.json {field}: {problem}")
        self.field = field
        self.problem = problem


class ModelFactsUnavailable(ModelUnresolved):
    """The hub could not be asked (down, gated, missing): the CLI tells CI network from input."""


def _message(e: Mapping[str, Any]) -> str:
    msg = str(e["msg"]).removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        return "unknown field"
    if e["type"] == "string_pattern_mismatch":
        from .words import describe_pattern, show  # words reads the API's patterns

        return f"{show(e.get('input'))} is not {describe_pattern(str((e.get('ctx') or {}).get('pattern')))}"
    return msg


def describe_validation_error(err: ValidationError, prefix: str = "") -> str:
    """Render pydantic errors as `field.path: reason; ...` using wire (camelCase) names.

    Patterns are described in words (words.PATTERN_WORDS), never shown as regular expressions;
    a validator's message `field: ...` names a field below the location and extends the path.
    """
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        msg = _message(e)
        sub = re.match(r"^([a-z][A-Za-z]*): ", msg)
        if sub and loc:
            loc, msg = f"{loc}.{sub.group(1)}", msg[sub.end():]
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "document"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)
