"""`modeldeploy plan`: exit codes, JSON shape, one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.unit.real_configs import QWEN2_72B_GPTQ_INT8, case_config
from typer.testing import CliRunner

from modeldeploy.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
runner = CliRunner()

REQUIRED_KEYS = {
    "name", "feasible", "pool", "gpuProduct", "gpuMemoryGiB", "tensorParallelSize",
    "pipelineParallelSize", "gpusPerReplica", "nodesPerReplica", "maxModelLen", "kvCacheTokens",
    "memoryPerGPU", "costPerHour", "reason", "rejected",
}


def write(tmp_path: Path, text: str, name: str = "md.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MD = """
apiVersion: modeldeploy.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: t}}
spec:
  model: {{name: {model}}}
{extra}
"""


def plan(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["plan", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_examples_all_plan_offline_as_json() -> None:
    code, out, err = plan(*EXAMPLES, "--offline", "-o", "json")
    assert code == 0, err
    docs = json.loads(out)
    names = {d["name"] for d in docs}
    assert names == {"llama-3-1-8b", "llama-3-3-70b", "llama-4-scout", "deepseek-v3", "qwen3-32b", "mistral-large-2", "gemma-2-27b"}
    for doc in docs:
        assert doc.keys() >= REQUIRED_KEYS
        assert set(doc["memoryPerGPU"]) >= {"weightsGiB", "kvCacheGiB", "overheadGiB", "budgetGiB"}
        for rej in doc["rejected"]:
            assert set(rej) == {"pool", "tensorParallelSize", "pipelineParallelSize", "reason"}
    # the layout each example's comment states: tests/unit/test_examples.py


def test_table_output_for_people() -> None:
    code, out, _ = plan(*EXAMPLES, "--offline")
    assert code == 0
    assert "gemma-2-27b" in out and "NVIDIA-L40S" in out and "cheapest" in out


def test_infeasible_exits_3_with_reason(tmp_path: Path) -> None:
    md = write(tmp_path, MD.format(model="meta-llama/Llama-3.1-405B-Instruct", extra="  placement: {pools: [small]}"))
    pools = write(tmp_path, """
apiVersion: modeldeploy.dev/v1alpha1
kind: GPUPool
metadata: {name: small}
spec: {gpu: {product: NVIDIA-L4, memoryGiB: 22.49}, gpusPerNode: 1, maxNodes: 2}
""", "pools.yaml")
    code, out, _ = plan(md, "--pools", pools, "--offline", "-o", "json")
    assert code == 3
    doc = json.loads(out)[0]
    assert doc["feasible"] is False and "fits no pool" in doc["reason"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spec: [unclosed", "invalid YAML"),
        (MD.format(model="meta-llama/Llama-3.1-8B-Instruct", extra="  colour: blue"), "spec.colour: unknown field"),
        (MD.format(model="meta-llama/Llama-3.1-8B-Instruct", extra="  replicas: -1"), "spec.replicas: -1 is below the minimum 0"),
        (MD.format(model="meta-llama/Llama-3.1-8B-Instruct", extra="  serving: {gpuMemoryUtilization: 7}"), "spec.serving.gpuMemoryUtilization"),
        (MD.format(model="meta-llama/Llama-3.1-8B-Instruct", extra="  serving: {maxModelLen: 99999999999}"), "spec.serving.maxModelLen"),
        (MD.format(model="microsoft/phi-4", extra="  placement: {tensorParallelSize: 4}"), "spec.placement.tensorParallelSize: vLLM refuses TP 4 for microsoft/phi-4: 10 KV heads are not divisible by TP 4"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "document 1: kind 'ConfigMap' is not ModelDeployment or GPUPool"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, text: str, message: str) -> None:
    code, out, err = plan(write(tmp_path, text), "--offline")
    assert code == 2, out + err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_architecture_in_spec_plans_a_model_outside_the_catalog(tmp_path: Path) -> None:
    extra = """    architecture: {parameters: 7000000000, layers: 32, hiddenSize: 4096, attentionHeads: 32, kvHeads: 8, maxContext: 32768}"""
    text = MD.format(model="acme/private-7b", extra="").replace("spec:\n  model: {name: acme/private-7b}", "spec:\n  model:\n    name: acme/private-7b\n" + extra)
    code, out, err = plan(write(tmp_path, text), "--offline", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)[0]
    assert doc["model"] == "acme/private-7b" and doc["feasible"]


def test_plan_names_the_vllm_release_and_notes_an_uncalibrated_one(tmp_path: Path) -> None:
    spec = MD.format(model="meta-llama/Llama-3.1-8B-Instruct",
                     extra="  serving: {image: 'vllm/vllm-openai:v0.12.3'}")
    path = write(tmp_path, spec)
    code, out, _ = plan(path, "--offline")
    assert code == 0
    assert "note: vLLM 0.12.3 has no calibrated memory profile; sized with the nearest earlier known release, 0.11.0" in " ".join(out.split())
    code, out, _ = plan(path, "--offline", "-o", "json")
    doc = json.loads(out)[0]
    assert doc["vllmVersion"] == "0.12.3" and doc["notes"]
    assert {"activationGiB", "nonTorchGiB", "cudaGraphGiB", "outsideBudgetGiB"} <= set(doc["memoryPerGPU"])


def _json_plan(tmp_path: Path, model: dict[str, object]) -> dict[str, object]:
    doc = {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "t"},
           "spec": {"model": model, "serving": {"maxModelLen": 4096}}}
    code, out, err = plan(write(tmp_path, json.dumps(doc)), "--offline", "-o", "json")
    assert code == 0, err
    result: dict[str, object] = json.loads(out)[0]
    return result


def test_dtype_is_the_one_sized_and_requested_dtype_the_one_passed(tmp_path: Path) -> None:
    # vLLM resolves --dtype auto to the checkpoint's torch_dtype (vllm/config/model.py
    # _resolve_auto_dtype); the plan sizes with it and says so, and passes the spec's value on.
    llama = _json_plan(tmp_path, {"name": "meta-llama/Llama-3.1-8B-Instruct"})
    assert (llama["dtype"], llama["requestedDtype"]) == ("bfloat16", "auto")
    # Llama-2-7b-hf's config.json says float16 (catalog configSource).
    assert _json_plan(tmp_path, {"name": "meta-llama/Llama-2-7b-hf"})["dtype"] == "float16"
    # Qwen/Qwen2-72B-Instruct-GPTQ-Int8's published config.json: torch_dtype float16.
    gptq = _json_plan(tmp_path, {"name": "Qwen/Qwen2-72B-Instruct-GPTQ-Int8",
                                 "hfConfig": case_config(QWEN2_72B_GPTQ_INT8)})
    assert (gptq["dtype"], gptq["quantization"], gptq["requestedDtype"]) == ("float16", "gptq", "auto")
    pinned = _json_plan(tmp_path, {"name": "meta-llama/Llama-3.1-8B-Instruct", "dtype": "float16"})
    assert (pinned["dtype"], pinned["requestedDtype"]) == ("float16", "float16")
