"""The planner against every logged vLLM memory profile (bench/sizing_calibration.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _calibration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sizing_calibration", ROOT / "bench" / "sizing_calibration.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


CAL = _calibration()
ROWS = CAL.calibrate()
RECENT = [r for r in ROWS if r.version >= (0, 11, 0) and r.plan is not None]


def _id(row) -> str:  # type: ignore[no-untyped-def]
    log = row.log
    return f"{log['model']}-v{log['vllm_version']}-tp{log['tp']}-{log['max_model_len']}"


def test_every_log_of_the_data_file_is_planned_or_waits_for_facts() -> None:
    assert len(ROWS) >= 16
    assert len(RECENT) >= 6  # logs of vLLM ≥ 0.11 with the model's facts


@pytest.mark.parametrize("row", RECENT, ids=_id)
def test_recent_logs_within_bounds(row) -> None:  # type: ignore[no-untyped-def]
    if row.log_consistent:
        assert row.verdict_right, f"plan says feasible={row.plan.feasible}: {row.plan.reason[:300]}"
    if row.weights_error is not None:
        assert abs(row.weights_error) <= 0.03
    if row.tokens_error is not None:
        assert abs(row.tokens_error) <= 0.10


def test_docs_table_is_current() -> None:
    doc = (ROOT / "docs" / "sizing.md").read_text(encoding="utf-8")
    start, end = doc.index(CAL.BEGIN) + len(CAL.BEGIN), doc.index(CAL.END)
    assert doc[start:end].strip() == CAL.table(ROWS).strip(), "run bench/sizing_calibration.py --write"
