"""Every input case of issue 11's "Why" list: the right exit code and one line naming file,
object and field, never a traceback; YAML read as kubectl reads it; one validation path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeldeploy.cli.main import app

runner = CliRunner()

HEAD = "apiVersion: modeldeploy.dev/v1alpha1\nkind: ModelDeployment\n"


def md(name: str = "t", spec: str = "  model: {name: microsoft/phi-4}\n", head: str = HEAD) -> str:
    return f"{head}metadata: {{name: {name}}}\nspec:\n{spec}"


def run(tmp_path: Path, content: str | bytes, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "md.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["plan", str(path), *args], env={"HF_HUB_OFFLINE": ""})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


ARCH = ("  model:\n    name: acme/private-15b\n    architecture: {parameters: 14.77e9, layers: 40, "
        "hiddenSize: 5120, attentionHeads: 40, kvHeads: 10, maxContext: 1e6}\n")

INVALID = [
    ("replicas as a string", md(spec="  model: {name: microsoft/phi-4}\n  replicas: \"2\"\n"),
     "ModelDeployment t: spec.replicas: must be an integer, not a string '2'"),
    ("replicas as a boolean", md(spec="  model: {name: microsoft/phi-4}\n  replicas: true\n"),
     "spec.replicas: must be an integer, not a boolean True"),
    ("no apiVersion", md(head="kind: ModelDeployment\n"), "ModelDeployment t: apiVersion is required"),
    ("no kind", md(head="apiVersion: modeldeploy.dev/v1alpha1\n"), "document 1: kind is required"),
    ("duplicate key", md(spec="  model: {name: microsoft/phi-4}\n  replicas: 1\n  replicas: 2\n"),
     "line 7: key 'replicas' is given twice"),
    ("reserved extraArgs", md(spec="  model: {name: microsoft/phi-4}\n  serving: {extraArgs: [--tensor-parallel-size, '2']}\n"),
     "spec.serving.extraArgs[0]: '--tensor-parallel-size' sets --tensor-parallel-size"),
    ("underscore in the name", md(name="Bad_Name"), "metadata.name: 'Bad_Name' is not a DNS label (lowercase"),
    ("300-character name", md(name="a" * 300), "metadata.name: 300 characters; a ModelDeployment name has at most 52"),
    ("image pattern in words", md(spec="  model: {name: microsoft/phi-4}\n  serving: {image: Evil/x}\n"),
     "spec.serving.image: 'Evil/x' is not a container image reference"),
    ("pin vLLM refuses", md(spec="  model: {name: microsoft/phi-4}\n  placement: {tensorParallelSize: 6}\n"),
     "ModelDeployment t: spec.placement.tensorParallelSize: vLLM refuses TP 6 for microsoft/phi-4: 40 attention heads"),
]


@pytest.mark.parametrize(("case", "content", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_input_exits_2_with_one_line(tmp_path: Path, case: str, content: str, message: str) -> None:
    code, _, err = run(tmp_path, content, "--offline", "-o", "json")
    assert code == 2, err
    assert f"error: {tmp_path / 'md.yaml'}: " in err and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "^" not in err and "[a-z" not in err  # words, not regular expressions


@pytest.mark.parametrize(("content", "message"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text (byte 0x89 at offset 0)"),
    ("spec: caf\u00e9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    (b"apiVersion: v1\x00\n", "invalid YAML"),
])
def test_binary_or_non_utf8_files_are_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    code, _, err = run(tmp_path, content, "--offline")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_numbers_with_exponents_are_numbers(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, md(spec=ARCH + "  serving: {maxModelLen: 1e4}\n"), "--offline", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)[0]
    assert doc["maxModelLen"] == 10000 and doc["feasible"]


def test_an_unplannable_deployment_is_its_own_row(tmp_path: Path) -> None:
    both = md("known") + "---\n" + md("unknown", "  model: {name: acme/unknown-model}\n")
    code, out, err = run(tmp_path, both, "--offline", "-o", "json")
    assert code == 3
    rows = {d["name"]: d for d in json.loads(out)}
    assert rows["known"]["feasible"] and rows["known"]["file"] == str(tmp_path / "md.yaml")
    assert rows["unknown"]["feasible"] is False and rows["unknown"]["failure"] == "ModelUnresolved"
    assert "acme/unknown-model is not in the catalog" in rows["unknown"]["error"]
    assert err.strip() == f"error: {tmp_path / 'md.yaml'}: ModelDeployment unknown: {rows['unknown']['reason'].split(': ', 2)[2]}"


def test_model_facts_that_cannot_be_fetched_exit_4(tmp_path: Path) -> None:
    # Nothing listens on loopback port 9: the hub lookup fails at once, as with the hub down.
    code, out, err = run(tmp_path, md(spec="  model: {name: acme/unknown-model}\n"),
                         "--hub-endpoint", "http://127.0.0.1:9", "-o", "json")
    assert code == 4, err
    row = json.loads(out)[0]
    assert row["failure"] == "ModelFactsUnavailable" and "ModelDeployment t:" in err and "Traceback" not in err


def test_the_infeasible_reason_is_a_complete_sentence(tmp_path: Path) -> None:
    spec = "  model: {name: meta-llama/Llama-3.1-405B-Instruct}\n  placement: {multiNode: never, pools: [aws-p5-h100-x8]}\n"
    code, out, _ = run(tmp_path, md(spec=spec), "--offline", "-o", "json")
    assert code == 3
    row = json.loads(out)[0]
    assert "…" not in row["reason"] and "across 2 nodes" in row["reason"]
    assert not row["suggestions"][0].startswith("or ")
