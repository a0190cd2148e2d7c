"""Self-hosting against hosted API prices: blends, break-even volumes, the CLI flag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modeldeploy.api import ModelDeployment
from modeldeploy.cli.main import app
from modeldeploy.errors import InvalidSpec
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.planner import default_pools, plan_deployment
from modeldeploy.planner.apicost import HOURS_PER_MONTH, ApiPrice, PriceList, builtin_prices, compare, parse_price_list

WORKLOAD = {"inputTokens": 3000, "outputTokens": 1000, "concurrency": 32}


def _md(workload: dict[str, Any] | None = WORKLOAD) -> ModelDeployment:
    serving = {"workload": workload} if workload else {}
    return ModelDeployment.model_validate({"metadata": {"name": "llama"}, "spec": {
        "model": {"name": "meta-llama/Llama-3.3-70B-Instruct"}, "serving": serving}})


def test_builtin_list_is_dated_sourced_and_has_the_seed_prices() -> None:
    prices = builtin_prices()
    assert prices.date == "2026-11-30"
    by_name = {p.name: p for p in prices.prices}
    assert (by_name["OpenAI GPT-4o"].input_per_million, by_name["OpenAI GPT-4o"].output_per_million) == (2.5, 10.0)
    assert by_name["Anthropic Claude Sonnet"].output_per_million == 15.0
    assert all(p.source.startswith("https://") for p in prices.prices)


def test_blend_follows_the_request_mix() -> None:
    assert ApiPrice(name="x", input_per_million=2.5, output_per_million=10).blended(3000, 1000) == pytest.approx(4.375)


def test_break_even_is_fixed_daily_cost_over_the_api_price_per_token() -> None:
    md = _md()
    facts = load_catalog().get(md.spec.model.name)
    assert facts is not None
    plan = plan_deployment(md, facts, default_pools())
    assert plan.performance is not None and plan.cost_per_hour is not None
    dear = PriceList(date="d", prices=[ApiPrice(name="dear", input_per_million=2.5, output_per_million=10)])
    cheap = PriceList(date="d", prices=[ApiPrice(name="cheap", input_per_million=0.001, output_per_million=0.001)])
    [row] = compare(plan, md.spec.serving.workload, dear)
    hourly = plan.cost_per_hour * plan.performance.replicas
    assert row.break_even_tokens_per_day == pytest.approx(hourly * 24 / (4.375 / 1e6))
    assert row.self_monthly == pytest.approx(hourly * HOURS_PER_MONTH, rel=1e-6)
    assert row.break_even_above_capacity is False  # the replicas serve that volume within the SLO
    [beyond] = compare(plan, md.spec.serving.workload, cheap)
    # Self-hosting costs more per token even at capacity: the volume exists, the replicas cannot serve it.
    assert beyond.break_even_tokens_per_day == pytest.approx(hourly * 24 / (0.001 / 1e6))
    assert beyond.break_even_above_capacity is True
    free = PriceList(date="d", prices=[ApiPrice(name="free", input_per_million=0, output_per_million=0)])
    assert compare(plan, md.spec.serving.workload, free)[0].break_even_tokens_per_day is None  # never
    assert compare(plan, None, dear) == []


def test_bad_price_lists_name_the_file_and_field() -> None:
    with pytest.raises(InvalidSpec, match=r"p.yaml: prices.0.outputPerMillion"):
        parse_price_list("date: x\nprices:\n  - {name: a, inputPerMillion: 1, outputPerMillion: -2}\n", "p.yaml")
    with pytest.raises(InvalidSpec, match=r"p\.yaml: date"):
        parse_price_list("prices: []\n", "p.yaml")


def test_price_lists_are_read_as_kubectl_reads_yaml() -> None:
    # A price given twice must not silently take the last value (the house YAML rule, README
    # "Input, errors and exit codes"); an unquoted ISO date is how people write a date in YAML.
    with pytest.raises(InvalidSpec, match=r"p\.yaml: line 5: key 'inputPerMillion' is given twice"):
        parse_price_list("date: x\nprices:\n  - name: a\n    inputPerMillion: 1\n    inputPerMillion: 9\n"
                         "    outputPerMillion: 1\n", "p.yaml")
    dated = parse_price_list("date: 2026-11-30\nprices:\n  - {name: a, inputPerMillion: 1, outputPerMillion: 1}\n", "p.yaml")
    assert dated.date == "2026-11-30"
    assert parse_price_list("date: x\nprices:\n  - {name: a, inputPerMillion: 2e-1, outputPerMillion: 1}\n",
                            "p.yaml").prices[0].input_per_million == pytest.approx(0.2)


def test_cli_compares_with_builtin_and_own_prices(tmp_path: Path) -> None:
    md = tmp_path / "md.yaml"
    md.write_text("apiVersion: modeldeploy.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: llama}\n"
                  "spec:\n  model: {name: meta-llama/Llama-3.3-70B-Instruct}\n"
                  "  serving:\n    workload: {inputTokens: 3000, outputTokens: 1000, concurrency: 32}\n")
    runner = CliRunner()
    builtin = runner.invoke(app, ["plan", str(md), "--offline", "--compare-api"], env={"COLUMNS": "250"})
    assert builtin.exit_code == 0, builtin.output
    assert "OpenAI GPT-4o" in builtin.output and "Break-even" in builtin.output
    own = tmp_path / "prices.yaml"
    own.write_text('date: "2026-12-01"\nprices:\n  - {name: MyAPI, inputPerMillion: 0.1, outputPerMillion: 0.3}\n')
    mine = runner.invoke(app, ["plan", str(md), "--compare-api", str(own), "--offline"], env={"COLUMNS": "250"})
    assert mine.exit_code == 0, mine.output
    assert "MyAPI" in mine.output and "GPT-4o" not in mine.output and "2026-12-01" in mine.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("date: x\nprices:\n  - {name: a, inputPerMillion: -1, outputPerMillion: 1}\n")
    refused = runner.invoke(app, ["plan", str(md), "--compare-api", str(bad), "--offline"])
    assert refused.exit_code == 2 and "bad.yaml: prices.0.inputPerMillion" in refused.output


def test_a_lower_self_hosted_price_never_sits_beside_never(tmp_path: Path) -> None:
    """New-user trial (2026-11-30): with an SLO the replicas miss at the workload, the table put
    "never" (break-even beyond capacity within the SLO) next to a lower Self $/M (at the
    workload). Self cheaper at the workload means the workload is above the break-even volume."""
    md = tmp_path / "md.yaml"
    md.write_text("apiVersion: modeldeploy.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: chat}\n"
                  "spec:\n  model: {name: meta-llama/Llama-3.1-8B-Instruct}\n  serving:\n    maxModelLen: 8192\n"
                  "    workload: {inputTokens: 2000, outputTokens: 500, concurrency: 64}\n"
                  "    slo: {ttftMs: 10, tpotMs: 1}\n")
    prices = tmp_path / "prices.yaml"
    prices.write_text("date: x\nprices:\n  - {name: Mid, inputPerMillion: 0.54, outputPerMillion: 0.54}\n")
    runner = CliRunner()
    shown = runner.invoke(app, ["plan", str(md), "--offline", "--compare-api", str(prices), "-o", "json"])
    (plan,) = json.loads(shown.stdout)
    (row,) = plan["apiComparison"]["apis"]
    perf = plan["performance"]
    workload_tokens_per_day = perf["requestsPerSecond"] * perf["replicas"] * 2500 * 86_400
    assert row["selfPerMillion"] < row["apiPerMillion"] and not perf["meetsSLO"]
    assert row["breakEvenTokensPerDay"] < workload_tokens_per_day and row["breakEvenAboveCapacity"]
    table = runner.invoke(app, ["plan", str(md), "--offline", "--compare-api", str(prices)], env={"COLUMNS": "250"})
    line = next(ln for ln in table.stdout.splitlines() if "│ Mid" in ln)
    assert "never" not in line and "above capacity" in line
    said = " ".join(table.stdout.split())
    assert "chat: the workload misses spec.serving.slo on 1 replica: Self $/M is at the workload" in said
    # TTFT 10 ms / TPOT 1 ms are missed even at one request in flight: no capacity within them.
    assert (perf["capacityConcurrency"], row["capacityTokensPerDay"], row["selfPerMillionFullLoad"]) == (0, 0.0, None)
    break_even, capacity = (cell.strip() for cell in line.split("│")[-3:-1])
    assert break_even.endswith("(above capacity)") and capacity == "0"
    assert "(0 when not even one does)" in said
