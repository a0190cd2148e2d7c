"""`modeldeploy render`: every example renders and validates, exit codes 2/3, stable bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.unit.render_cases import validate
from typer.testing import CliRunner

from modeldeploy.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
POOLS = ROOT / "examples" / "pools.yaml"
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p.name != "pools.yaml")
runner = CliRunner()


def render(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["render", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_renders_valid_objects(example: Path) -> None:
    code, out, err = render(example, "--pools", POOLS, "--offline")
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    assert docs and all(d["metadata"]["namespace"] == "models" for d in docs)
    for doc in docs:
        validate(doc)
    kinds = [d["kind"] for d in docs if d["kind"] != "PersistentVolumeClaim"]
    assert kinds[0] in ("Deployment", "LeaderWorkerSet") and kinds[1] == "Service"


def test_deepseek_spans_two_h100_nodes_as_a_leader_worker_set(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "deepseek-v3.yaml").read_text().replace(
        "    maxModelLen: 32768\n", "    maxModelLen: 32768\n  placement: {pools: [eks-h100-x8]}\n")
    path = tmp_path / "deepseek.yaml"
    path.write_text(text)
    code, out, err = render(path, "--pools", POOLS, "--offline")
    assert code == 0, err
    docs = {d["kind"]: d for d in yaml.safe_load_all(out)}
    # 716 GiB of cache is more than a node's root disk: a claim, not an emptyDir. Sized from the
    # 641.3 GiB the checkpoint stores (688574839360 bytes, its MTP layer included): ceil(1.1 x 641.3) + 10.
    assert docs["PersistentVolumeClaim"]["spec"]["resources"]["requests"]["storage"] == "716Gi"
    lws = docs["LeaderWorkerSet"]
    tmpl = lws["spec"]["leaderWorkerTemplate"]
    assert tmpl["size"] == 2
    args = tmpl["leaderTemplate"]["spec"]["containers"][0]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "8"
    assert args[args.index("--pipeline-parallel-size") + 1] == "2"
    assert args[args.index("--distributed-executor-backend") + 1] == "ray"
    resources = tmpl["leaderTemplate"]["spec"]["containers"][0]["resources"]["requests"]
    assert "ephemeral-storage" not in resources


def test_output_is_byte_identical_and_json_is_a_list() -> None:
    first = render(*EXAMPLES[:3], "--pools", POOLS, "--offline")
    second = render(*EXAMPLES[:3], "--pools", POOLS, "--offline")
    assert first[0] == 0 and first[1] == second[1]
    code, out, _ = render(EXAMPLES[0], "--pools", POOLS, "--offline", "-o", "json")
    doc = json.loads(out)
    assert code == 0 and doc["kind"] == "List" and doc["items"] == list(yaml.safe_load_all(first[1]))[: len(doc["items"])]


def test_service_monitor_flag() -> None:
    code, out, _ = render(ROOT / "examples" / "llama-3.1-8b.yaml", "--pools", POOLS, "--offline", "--service-monitor")
    assert code == 0
    assert [d["kind"] for d in yaml.safe_load_all(out)][-1] == "ServiceMonitor"


def md(tmp_path: Path, extra: str, model: str = "meta-llama/Llama-3.3-70B-Instruct") -> Path:
    path = tmp_path / "md.yaml"
    path.write_text(
        "apiVersion: modeldeploy.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: t, namespace: ns}\n"
        f"spec:\n  model: {{name: {model}}}\n{extra}"
    )
    return path


def test_infeasible_plan_exits_3_with_the_reason_and_prints_nothing(tmp_path: Path) -> None:
    path = md(tmp_path, "  placement: {pools: [eks-a10g-x1]}\n", model="deepseek-ai/DeepSeek-V3")
    code, out, err = render(path, "--pools", POOLS, "--offline")
    assert code == 3 and out == ""
    assert err.startswith(f"error: {path}: ModelDeployment t: no feasible layout: ") and err.count("\n") == 1


@pytest.mark.parametrize(("extra", "needle"), [
    ("  serving: {extraArgs: ['--tensor-parallel-size', '2']}\n", "spec.serving.extraArgs[0]"),
    ("  serving: {extraArgs: ['other/model']}\n", "positional"),
    ("  serving: {env: [{name: HF_TOKEN, value: hf_abc}]}\n", "spec.serving.env[0]: HF_TOKEN"),
    ("  serving: {extraArgs: ['--model=x\\ny: z']}\n", "--model"),
    ("  bogus: 1\n", "bogus"),
    ("  serving: [\n", "invalid YAML"),
])
def test_invalid_input_exits_2_with_one_line(tmp_path: Path, extra: str, needle: str) -> None:
    path = md(tmp_path, extra, model="meta-llama/Llama-3.1-8B-Instruct")
    code, out, err = render(path, "--pools", POOLS, "--offline")
    assert code == 2, err
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1
    assert needle in err and "Traceback" not in err


def test_no_model_deployment_is_invalid_input() -> None:
    code, _, err = render(POOLS, "--offline")
    assert code == 2 and "no ModelDeployment" in err
