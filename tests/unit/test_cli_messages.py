"""What a new user reads: unknown fields with the field meant, one result per document, the
same rounding in table, JSON and reason, the workload table's title, one meaning per exit code.
Each case is a problem found in a new-user trial (2026-11-30)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeldeploy.cli.main import app
from modeldeploy.structural import closest_field, field_paths
from modeldeploy.validation import _schema

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

DOC = """apiVersion: modeldeploy.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}, namespace: models}}
spec:
  model: {{name: {model}}}
{extra}"""


def doc(name: str, model: str = "meta-llama/Llama-3.1-8B-Instruct", extra: str = "") -> str:
    return DOC.format(name=name, model=model, extra=extra)


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [*map(str, args)])
    return result.exit_code, result.stdout, result.stderr


SPEC_PATHS = [f"spec.{p}" for p in field_paths(_schema("ModelDeployment")["properties"]["spec"])]


@pytest.mark.parametrize(("written", "meant"), [
    ("spec.serving.quantization", "spec.model.quantization"),  # the trial's case: wrong parent
    ("spec.serving.tensorParallelSize", "spec.placement.tensorParallelSize"),
    ("spec.model.maxModelLen", "spec.serving.maxModelLen"),
    ("spec.placement.pool", "spec.placement.pools"),
    ("spec.model.hf_config", "spec.model.hfConfig"),
    ("spec.model.checkpoint_bytes", "spec.model.checkpointBytes"),
    ("spec.replica", "spec.replicas"),
    ("spec.modle", "spec.model"),
    ("spec.autoscaling.max", "spec.autoscaling.maxReplicas"),
    ("spec.serving.env[3].valu", "spec.serving.env[3].value"),
    ("spec.serving.gpuUtilization", "spec.serving.gpuMemoryUtilization"),
])
def test_unknown_field_suggests_the_closest_declared_path(written: str, meant: str) -> None:
    assert closest_field(written, SPEC_PATHS) == meant


@pytest.mark.parametrize("written", ["spec.colour", "spec.serving.tp", "spec.autoscaling.enabled"])
def test_no_suggestion_when_nothing_is_close(written: str) -> None:
    assert closest_field(written, SPEC_PATHS) is None  # a wild guess would mislead


def test_unknown_field_error_is_one_line_naming_file_object_field_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "md.yaml"
    path.write_text(doc("chat", extra="  serving: {quantization: fp8}\n"))
    code, _, err = invoke("plan", path, "--offline")
    assert code == 2
    assert err.strip() == (f"error: {path}: ModelDeployment chat: spec.serving.quantization: unknown field; "
                           "did you mean spec.model.quantization?")


def test_one_invalid_document_does_not_sink_the_others(tmp_path: Path) -> None:
    path = tmp_path / "three.yaml"
    path.write_text("---\n".join([
        doc("first"), doc("broken", extra="  replicas: \"2\"\n"), doc("third", model="Qwen/Qwen3-32B")]))
    code, out, err = invoke("plan", path, "--offline", "-o", "json")
    assert code == 2  # any invalid document: the run is not clean
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["first", "broken", "third"]  # file order kept
    assert rows[0]["feasible"] and rows[2]["feasible"]
    bad = rows[1]
    assert (bad["feasible"], bad["failure"], bad["file"]) == (False, "InvalidSpec", str(path))
    assert bad["error"] == f"{path}: ModelDeployment broken: spec.replicas: must be an integer, not a string '2'"
    assert err.strip() == f"error: {bad['error']}"


def test_render_prints_nothing_when_a_document_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("---\n".join([doc("first"), doc("broken", extra="  replica: 2\n")]))
    code, out, err = invoke("render", path, "--offline")
    assert code == 2 and out == ""
    assert "ModelDeployment broken: spec.replica: unknown field; did you mean spec.replicas?" in err


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+\.\d+", text)


def test_table_json_and_reason_show_the_same_memory_numbers() -> None:
    # Mistral Large 2 on 8 × H200: 28.546 GiB of weights per GPU. Rounded twice (28.55, then
    # 28.6) the table contradicted the reason's 28.5.
    example = ROOT / "examples" / "mistral-large-2.yaml"
    code, out, _ = invoke("plan", example, "--offline", "-o", "json")
    assert code == 0
    row = json.loads(out)[0]
    memory = row["memoryPerGPU"]
    weights, budget = f"{memory['weightsGiB']:.2f}", f"{memory['budgetGiB']:.2f}"
    assert f"weights {weights}," in row["reason"] and f"of {budget} GiB per GPU" in row["reason"]
    code, table, _ = invoke("plan", example, "--offline")
    line = next(t for t in table.splitlines() if t.startswith("│ mistral-large-2"))
    assert f"{weights} GiB" in line and f"{budget} GiB" in line
    assert f"{memory['kvCacheGiB']:.2f} GiB" in line


WORKLOAD = "  serving:\n    workload: {inputTokens: 1000, outputTokens: 300, concurrency: 40}\n"


def test_workload_table_says_which_share_one_replica_serves(tmp_path: Path) -> None:
    path = tmp_path / "wl.yaml"
    path.write_text("---\n".join([doc("alone", extra=WORKLOAD), doc("three", extra=WORKLOAD + "  replicas: 3\n")]))
    code, out, _ = invoke("plan", path, "--offline")
    assert code == 0
    assert "one replica at its share" not in out  # misleading with one replica: it takes it all
    assert "predicted for one replica at spec.serving.workload" in " ".join(out.split())
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│ ")}
    assert "whole load" in rows["alone"] and "1/3 of it" in rows["three"]


def test_every_command_says_its_exit_codes_in_help() -> None:
    for command in ("plan", "render", "run"):
        code, out, _ = invoke(command, "--help")
        text = " ".join(out.replace("│", " ").split())
        assert code == 0 and "Exit status" in text and "2 " in text and "4 " in text, command


def test_run_exits_2_for_a_broken_kubeconfig_as_plan_does_for_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nclusters: [\n")
    code, _, err = invoke("run", "--kubeconfig", broken)
    assert code == 2 and err.startswith(f"error: kubeconfig {broken} is not valid YAML")
    yaml_file = tmp_path / "md.yaml"
    yaml_file.write_text("spec: [\n")
    assert invoke("plan", yaml_file, "--offline")[0] == 2


def test_an_slo_without_a_workload_is_noted_not_silently_ignored(tmp_path: Path) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(doc("chat", extra="  serving:\n    slo: {ttftMs: 100}\n"))
    code, out, _ = invoke("plan", path, "--offline", "-o", "json")
    assert code == 0
    (row,) = json.loads(out)
    assert any(n.startswith("spec.serving.slo is not checked: it needs spec.serving.workload") for n in row["notes"])


def test_a_directory_or_a_deployment_among_the_pools_says_what_to_give(tmp_path: Path) -> None:
    code, _, err = invoke("plan", ROOT / "examples", "--offline")
    assert code == 2 and err.strip() == f"error: {ROOT / 'examples'}: is a directory; give its YAML files ({ROOT / 'examples' / '*.yaml'})"
    example = ROOT / "examples" / "qwen3-32b.yaml"
    code, _, err = invoke("plan", ROOT / "examples" / "llama-3.1-8b.yaml", "--pools", example, "--offline")
    assert code == 2 and "(--pools takes GPUPools; give ModelDeployments as FILE arguments)" in err


GPTQ_CONFIG = {  # Llama 3.1 8B's config.json (tests/fixtures/hub) with a GPTQ 4-bit quantization_config
    **json.loads((ROOT / "tests/fixtures/hub/meta-llama/Llama-3.1-8B-Instruct/config.json").read_text()),
    "torch_dtype": "float16",
    "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True},
}


def test_a_gptq_checkpoint_given_by_hf_config_is_named_in_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "gptq.yaml"
    model = {"name": "acme/llama-8b-gptq", "hfConfig": GPTQ_CONFIG, "checkpointBytes": 5_730_000_000}
    path.write_text(json.dumps({"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
                                "metadata": {"name": "private"}, "spec": {"model": model}}))
    code, out, err = invoke("plan", path, "--offline", "-o", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    weights = f"{row['memoryPerGPU']['weightsGiB']:.2f}"
    assert f"(weights {weights} as gptq 4-bit," in row["reason"]
    assert row["memoryPerGPU"]["weightsGiB"] == round(5_730_000_000 / 1024**3, 2)  # the checkpoint's own size
    # The plan says the precision it sized (was null), and vLLM still reads it from the config.
    assert row["quantization"] == "gptq" and row["onlineQuantization"] is False
    code, out, err = invoke("render", path, "-o", "json")
    assert code == 0, err
    assert '"--tensor-parallel-size"' in out and '"--quantization"' not in out


def test_compare_api_keeps_json_json_and_tables_whole(tmp_path: Path) -> None:
    path = tmp_path / "wl.yaml"
    path.write_text(doc("a-rather-long-deployment-name", extra=WORKLOAD))
    code, out, err = invoke("plan", path, "--offline", "--compare-api", "-o", "json")
    assert code == 0, err
    (row,) = json.loads(out)  # the comparison once printed a table after the JSON
    comparison = row["apiComparison"]
    assert comparison["pricesDate"] and comparison["apis"]
    assert {"api", "apiPerMillion", "selfPerMillion", "breakEvenTokensPerDay"} <= set(comparison["apis"][0])
    code, out, _ = invoke("plan", path, "--offline", "--compare-api")
    assert code == 0 and "…" not in out  # a pipe gets whole cells, never names cut short
    assert "a-rather-long-deployment-name" in out.replace("│\n│", "")


def test_run_names_the_flag_not_the_settings_field(tmp_path: Path) -> None:
    code, _, err = invoke("run", "--connect-timeout", "-1")
    assert code == 2 and err.strip() == "error: --connect-timeout: Input should be greater than 0"
    code, _, err = invoke("run", "-n", "Bad_NS")
    assert code == 2 and err.startswith("error: --namespace: 'Bad_NS' is not a namespace name")


def test_rbac_refuses_names_the_api_server_would_refuse() -> None:
    code, out, err = invoke("rbac", "-n", "Bad_NS")
    assert code == 2 and out == ""
    assert err.startswith("error: --namespace: 'Bad_NS' is not a DNS label")
    assert invoke("rbac", "--operator-namespace", "x" * 64)[0] == 2
    assert invoke("rbac", "-n", "team-a", "--name", "modeldeploy.ops")[0] == 0


def test_a_format_that_names_its_width_is_not_repeated() -> None:
    code, out, _ = invoke("plan", ROOT / "examples" / "deepseek-v3.yaml", "--offline", "-o", "json")
    assert code == 0
    (row,) = json.loads(out)
    assert " as fp8," in row["reason"] and "fp8 8-bit" not in row["reason"]  # DeepSeek-V3 ships FP8 weights
