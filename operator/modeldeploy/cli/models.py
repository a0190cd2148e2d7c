"""`modeldeploy models`: the built-in model catalog, as a table or JSON."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..api import ModelSource, Serving
from ..facts import ModelFacts
from ..facts.catalog import load_catalog
from ..planner.memory import precision_for, weights_for
from .main import app

GIB = 1024**3
_DTYPE_SHORT = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


class ModelsFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def weights_bytes(facts: ModelFacts) -> int:
    """Bytes vLLM loads for the checkpoint as stored: the planner's weight model (exact when the
    checkpoint size is known, less the multi-token-prediction layers the counts hold and plain
    serving skips, facts/mtp.py; else quantized layers at their width, the rest 16-bit)."""
    if facts.checkpoint_bytes:
        return facts.checkpoint_bytes - facts.unloaded_bytes
    precision = precision_for(facts, ModelSource(name=facts.id), Serving())
    return round(weights_for(facts, precision).total)


def _billions(n: int | None) -> str:
    if n is None:
        return "-"
    b = n / 1e9
    return f"{b:.2f}B" if b < 10 else (f"{b:.1f}B" if b < 100 else f"{b:.0f}B")


def _precision(facts: ModelFacts) -> str:
    dtype = _DTYPE_SHORT.get(facts.native_dtype, facts.native_dtype)
    if facts.quantization is None:
        return dtype
    q = facts.quantization
    blocks = f" {q.weight_block_size[0]}x{q.weight_block_size[1]}" if q.weight_block_size else ""
    group = f" g{q.group_size}" if q.group_size and not q.float_weights else ""
    return f"{q.method}{'' if q.method == 'fp8' else f' {q.bits}-bit'}{group}{blocks}"


def _heads(facts: ModelFacts) -> str:
    if facts.is_mla:
        return f"{facts.attention_heads} MLA {facts.kv_lora_rank}+{facts.qk_rope_head_dim}"
    return f"{facts.attention_heads}/{facts.kv_heads}"


def _record(facts: ModelFacts) -> dict[str, Any]:
    out = facts.model_dump(mode="json")
    out["native_quantization"] = facts.native_quantization
    out["weight_block_size"] = facts.weight_block_size
    out["weights_bytes"] = weights_bytes(facts)
    return out


OutputOpt = Annotated[ModelsFormat, typer.Option("--output", "-o", help="table or json.")]


@app.command("models")
def models(output: OutputOpt = ModelsFormat.TABLE) -> None:
    """List the built-in model catalog: architecture facts the planner sizes with."""
    entries = load_catalog().entries()
    if output == ModelsFormat.JSON:
        typer.echo(json.dumps([_record(f) for f in entries], indent=2))
        return
    table = Table(title="modeldeploy model catalog")
    for col in (
        "Model",
        "Family",
        "Params",
        "Active",
        "Layers",
        "Heads/KV",
        "Context",
        "Native",
        "Weights",
    ):
        table.add_column(col, justify="left" if col in {"Model", "Family", "Native"} else "right")
    for f in entries:
        table.add_row(
            f.id,
            f.family,
            _billions(f.parameters),
            _billions(f.active_parameters),
            str(f.layers),
            _heads(f),
            f"{f.max_context:,}",
            _precision(f),
            f"{weights_bytes(f) / GIB:.1f} GiB",
        )
    Console(width=200).print(table)
