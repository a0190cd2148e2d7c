"""Command-line flags generated from a pydantic settings model (`shell.config.OperatorConfig`).

Every leaf field becomes one typer option: `--resync-interval` for `resync_interval`, the
renderer's `render.prometheus_address` as `--prometheus-address`, `render.adapter_metrics.
requests_waiting` as `--adapter-metric-requests-waiting`; a field's `json_schema_extra` may name
its flag (`{"flag": "--max-concurrent", "short": "-n"}`) or hide it (`{"flag": None}`).
Booleans are `--x/--no-x`, tuples repeat the flag, `dict[str, str]` takes `key=value`
repeatedly. Every option defaults to "not given", so the environment and the defaults of the
model apply to what the command line leaves out.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import AliasChoices, BaseModel
from pydantic.fields import FieldInfo

# Nested models whose fields are flags of their own, and the prefix their flags get.
NESTED_PREFIX = {"render": "", "adapter_metrics": "adapter-metric-"}


@dataclass(frozen=True)
class Flag:
    path: tuple[str, ...]  # field names from the root model
    dest: str  # the command function's parameter name
    names: tuple[str, ...]  # "--x" or "--x/--no-x", then a short name
    annotation: Any  # the typer-facing type
    help: str
    kind: str  # "scalar", "list", "mapping"


def _unwrap(annotation: Any) -> Any:
    """X for X | None."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def _typer_type(annotation: Any) -> tuple[Any, str]:
    """The option's type and how its values are gathered (scalar, list, mapping)."""
    inner = _unwrap(annotation)
    origin = typing.get_origin(inner)
    if origin is tuple:
        item = typing.get_args(inner)[0]
        return list[item], "list"  # type: ignore[valid-type]
    if origin is dict:
        return list[str], "mapping"
    if origin is typing.Literal:
        return str, "scalar"
    if inner in (bool, int, float, str, Path):
        return inner, "scalar"
    return str, "scalar"


def _names(field: str, info: FieldInfo, prefix: str, annotation: Any) -> tuple[str, ...] | None:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if "flag" in extra and extra["flag"] is None:
        return None
    flag = str(extra.get("flag") or f"--{prefix}{field.replace('_', '-')}")
    if annotation is bool and "/" not in flag:
        flag = f"{flag}/--no-{flag[2:]}"
    short = extra.get("short")
    return (flag, str(short)) if short else (flag,)


def settings_flags(model: type[BaseModel], path: tuple[str, ...] = (),
                   prefix: str = "") -> Iterator[Flag]:
    """One Flag per leaf field of `model`, nested models expanded."""
    for name, info in model.model_fields.items():
        nested = _unwrap(info.annotation)
        if isinstance(nested, type) and issubclass(nested, BaseModel) and name in NESTED_PREFIX:
            yield from settings_flags(nested, (*path, name), prefix + NESTED_PREFIX[name])
            continue
        annotation, kind = _typer_type(info.annotation)
        names = _names(name, info, prefix, annotation)
        if names is None:
            continue
        alias = info.validation_alias
        env = str(alias.choices[-1]) if isinstance(alias, AliasChoices) else \
            "MODELDEPLOY_" + "__".join((*path, name)).upper()
        yield Flag((*path, name), "_".join((*path, name)), names, annotation,
                   f"{info.description or ''} [env: {env}]".strip(), kind)


def _mapping(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint=flag)
        out[key] = value
    return out


def nest(flags: list[Flag], given: dict[str, Any]) -> dict[str, Any]:
    """The settings the command line gave, as nested keyword arguments of the model."""
    out: dict[str, Any] = {}
    for flag in flags:
        value = given.get(flag.dest)
        if value is None or (flag.kind != "scalar" and not value):
            continue
        if flag.kind == "mapping":
            value = _mapping(value, flag.names[0])
        elif flag.kind == "list":
            value = tuple(value)
        node = out
        for key in flag.path[:-1]:
            node = node.setdefault(key, {})
        node[flag.path[-1]] = value
    return out


def flag_errors(flags: list[Flag], errors: list[dict[str, Any]]) -> str:
    """pydantic errors of the settings model, each naming the flag that sets the field
    (`--connect-timeout: Input should be greater than 0`), not the field's Python name."""
    by_path = {flag.path: flag.names[0].split("/")[0] for flag in flags}
    parts = []
    for e in errors:
        loc = tuple(str(p) for p in e["loc"])
        where = by_path.get(loc) or ".".join(loc)
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def parameters(flags: list[Flag]) -> list[inspect.Parameter]:
    """The typer parameters of the flags (every one optional, default: not given)."""
    return [inspect.Parameter(
        flag.dest, inspect.Parameter.KEYWORD_ONLY, default=None,
        annotation=Annotated[flag.annotation | None, typer.Option(*flag.names, help=flag.help,
                                                                   show_default=False)])
        for flag in flags]
