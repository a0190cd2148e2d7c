"""What a checkpoint's safetensors metadata says: parameter counts by dtype and byte totals. Pure.

The hub's model API (`model_info(expand=["safetensors"])`), a catalog entry's `checkpoint`
block and `spec.model.checkpointBytes` all arrive as a Checkpoint; facts/hf_config.py turns it
into exact parameter counts and the checkpoint's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .estimate import config_int

# safetensors dtype names → bytes per element (safetensors format specification).
SAFETENSORS_BYTES: dict[str, float] = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "BF16": 2, "F16": 2, "I16": 2, "U16": 2,
    "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1, "F4": 0.5,
}


@dataclass(frozen=True)
class Checkpoint:
    """What the safetensors metadata says: parameter counts by dtype and/or the byte total."""

    parameters: Mapping[str, int] | None = None  # safetensors dtype (BF16, F8_E4M3, I32…) → count
    total_bytes: int | None = None
    commit: str | None = None
    # The counts were derived from config.json alone (tools/checkpoint_inventory.py), no published
    # number confirms them: a catalog block marked `derivedOnly` (docs/sizing.md, "Catalog data files").
    derived_only: bool = False

    @property
    def bytes(self) -> int | None:
        if self.total_bytes:
            return self.total_bytes
        if self.parameters:
            return int(sum(n * SAFETENSORS_BYTES.get(d.upper(), 2) for d, n in self.parameters.items()))
        return None

    @classmethod
    def from_index(cls, index: Mapping[str, Any] | None) -> Checkpoint | None:
        """model.safetensors.index.json → Checkpoint, or None.

        Reads metadata.total_size and, when the hub client added them, `parameters` (counts by
        safetensors dtype from the hub's model API) and `commit`.
        """
        if not isinstance(index, Mapping):
            return None
        meta = index.get("metadata")
        size = config_int(meta, "total_size") if isinstance(meta, Mapping) else None
        raw = index.get("parameters")
        counts = {str(k): int(v) for k, v in raw.items() if isinstance(v, int)} if isinstance(raw, Mapping) else None
        if not (size and size > 0) and not counts:
            return None
        commit = index.get("commit")
        return cls(parameters=counts or None, total_bytes=size if size and size > 0 else None,
                   commit=str(commit) if commit else None)
