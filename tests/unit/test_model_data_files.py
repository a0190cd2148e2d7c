"""The catalog data files (operator/modeldeploy/data/models/*.yaml) keep the shared format:
id, configSource (an address with the commit it was read at), config.json verbatim, optional
checkpoint metadata with its own source, optional fp8Variant naming another data file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.facts.checkpoint import SAFETENSORS_BYTES

MODELS = Path(__file__).resolve().parents[2] / "operator" / "modeldeploy" / "data" / "models"
FILES = sorted(MODELS.glob("*.yaml"))
COMMIT = re.compile(r"/blob/[0-9a-f]{40}/")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_there_are_data_files() -> None:
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_data_file_format(path: Path) -> None:
    entry = load(path)
    assert set(entry) <= {"id", "configSource", "config", "checkpoint", "fp8Variant"}
    assert path.stem == entry["id"].replace("/", "--")
    # SHARED-INTERFACES: the address the config was read at, "with commit if known". Entries
    # carried over from the first catalog cite the hub page without a commit and say how they
    # were assembled; the copies read at a pinned commit name it.
    source = entry["configSource"]
    assert "https://" in source
    assert COMMIT.search(source) or "/blob/main/" in source or "data file of that id" in source
    config = entry["config"]
    assert isinstance(config, dict) and config.get("model_type") and config.get("architectures")
    if "checkpoint" in entry:
        checkpoint = entry["checkpoint"]
        assert checkpoint["source"].startswith("https://")
        assert isinstance(checkpoint.get("totalBytes", 0), int)
    if "fp8Variant" in entry:
        assert (MODELS / (entry["fp8Variant"].replace("/", "--") + ".yaml")).exists()


@pytest.mark.parametrize("path", [p for p in FILES if "checkpoint" in load(p)], ids=lambda p: p.stem)
def test_checkpoint_counts_add_up_to_the_total_bytes(path: Path) -> None:
    """parameters by safetensors dtype × the dtype's width = totalBytes (safetensors format: BF16/F16
    2 bytes, F32/I32 4, F8_E4M3/U8 1): a block edited by hand that no longer adds up is caught."""
    checkpoint = load(path)["checkpoint"]
    counts = checkpoint.get("parameters")
    if counts and "totalBytes" in checkpoint:
        assert sum(n * SAFETENSORS_BYTES[d] for d, n in counts.items()) == checkpoint["totalBytes"]
