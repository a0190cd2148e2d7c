"""`modeldeploy models`: the catalog as a table and as JSON."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from modeldeploy.cli.main import app
from modeldeploy.facts.catalog import load_catalog

runner = CliRunner()


def test_models_table_lists_every_entry() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for facts in load_catalog().entries():
        assert facts.id in result.output
    row = next(line for line in result.output.splitlines() if "deepseek-ai/DeepSeek-V3 " in line)
    assert (
        "128 MLA 512+64" in row and "fp8 128x128" in row and "163,840" in row and "626.9 GiB" in row  # 641.3 GiB stored, less its MTP layer
    )


def test_models_json_is_the_catalog_with_weight_sizes() -> None:
    result = runner.invoke(app, ["models", "-o", "json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [r["id"] for r in records] == [f.id for f in load_catalog().entries()]
    by_id = {r["id"]: r for r in records}
    llama = by_id["meta-llama/Llama-3.1-8B-Instruct"]
    assert llama["weights_bytes"] == llama["checkpoint_bytes"] == 16060522496
    assert (llama["layers"], llama["kv_heads"], llama["source"]) == (32, 8, "catalog")
    fp8 = by_id["Qwen/Qwen3-32B-FP8"]
    # The hub's counts {BF16: 1558406144, F8_E4M3: 31205621760} (block scales stored in BF16).
    assert fp8["weights_bytes"] == fp8["checkpoint_bytes"] == 1558406144 * 2 + 31205621760
    embed = 151936 * 5120 * 2
    linear = sum(fp8["module_parameters"].values())  # every linear layer at 1 byte + block scales
    norms = fp8["parameters"] - embed - linear
    by_rule = linear * (1 + 4 / (128 * 128)) + (norms + embed) * 2  # what the planner would estimate
    assert fp8["weights_bytes"] == pytest.approx(by_rule, rel=2e-4)
    assert by_id["Qwen/Qwen3-235B-A22B-FP8"]["weight_block_size"] == [128, 128]
    # DeepSeek-V3 stores its MTP layer 61 (15424224880 bytes); vLLM serves without it.
    v3 = by_id["deepseek-ai/DeepSeek-V3"]
    assert (v3["checkpoint_bytes"], v3["weights_bytes"]) == (688574839360, 688574839360 - 15424224880)


def test_unknown_output_format_is_rejected() -> None:
    result = runner.invoke(app, ["models", "-o", "csv"])
    assert result.exit_code == 2
