"""One parser: catalog, hub and spec.model.hfConfig give the same facts and the same plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import make_md
from tests.unit.real_configs import DEEPSEEK_CODER_67B, GEMMA3_27B, case_config, hub_config
from typer.testing import CliRunner

from modeldeploy.cli.main import app
from modeldeploy.errors import InvalidSpec
from modeldeploy.facts import FactsSource
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.resolve import resolve_facts
from modeldeploy.planner import default_pools, plan_deployment

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_BYTES = 16060522496  # model.safetensors.index.json metadata.total_size (tests/fixtures/hub)


def _plan(model: dict[str, Any], fetch: Any = None) -> tuple[Any, Any]:
    md = make_md(model["name"], model=model, serving={"maxModelLen": 16384})
    facts = resolve_facts(md.spec.model, load_catalog(), fetch)
    return facts, plan_deployment(md, facts, default_pools())


def _without_provenance(plan: Any) -> dict[str, Any]:
    wire: dict[str, Any] = plan.wire()
    wire.pop("parametersSource")
    return wire


def test_catalog_hub_and_hf_config_plan_identically() -> None:
    cat_facts, from_catalog = _plan({"name": LLAMA})
    spec_facts, from_spec = _plan({"name": LLAMA, "hfConfig": hub_config(LLAMA), "checkpointBytes": LLAMA_BYTES})
    index = {"metadata": {"total_size": LLAMA_BYTES}}
    hub_facts, from_hub = _plan({"name": "acme/llama-copy"}, fetch=lambda repo, rev: (hub_config(LLAMA), index))
    _, from_spec_copy = _plan({"name": "acme/llama-copy", "hfConfig": hub_config(LLAMA), "checkpointBytes": LLAMA_BYTES})
    assert (cat_facts.source, spec_facts.source, hub_facts.source) == (
        FactsSource.CATALOG, FactsSource.HF_CONFIG, FactsSource.HUB)
    # The same plan; only the provenance line names where each got its exact count.
    assert from_catalog.feasible and _without_provenance(from_catalog) == _without_provenance(from_spec)
    assert _without_provenance(from_hub) == _without_provenance(from_spec_copy)
    assert all(p.parameters_source.startswith("exact: ") for p in (from_catalog, from_spec, from_hub))
    # A byte total: the weights are exact, the count by dtype is read from it (the catalog has counts).
    assert from_spec.parameters_source.startswith("exact: 15.0 GiB of weights, from spec.model.checkpointBytes; "
                                                  "estimated: 8,030,261,248 parameters")
    only_counts = {"source", "dtype_split_estimated"}
    assert cat_facts.model_dump(exclude=only_counts) == spec_facts.model_dump(exclude=only_counts)


def test_without_checkpoint_bytes_the_plan_says_estimated() -> None:
    facts, plan = _plan({"name": "acme/llama-copy", "hfConfig": hub_config(LLAMA)})
    assert facts.parameter_source == "estimate" and facts.checkpoint_bytes is None
    assert any("estimated" in n for n in plan.notes)
    _, exact = _plan({"name": "acme/llama-copy", "hfConfig": hub_config(LLAMA), "checkpointBytes": LLAMA_BYTES})
    assert not any("estimated" in n for n in exact.notes)


def test_context_is_derived_as_vllm_does() -> None:
    # vllm-project/vllm#5248: deepseek-coder-6.7b: 16384 × linear factor 4 = 65536.
    config = case_config(DEEPSEEK_CODER_67B)
    model = {"name": "deepseek-ai/deepseek-coder-6.7b-instruct", "hfConfig": config}
    facts = resolve_facts(make_md(model["name"], model=model).spec.model, load_catalog(), None)
    assert facts.max_context == 65536
    too_long = make_md(model["name"], model=model, serving={"maxModelLen": 65537})
    with pytest.raises(InvalidSpec, match=r"spec\.serving\.maxModelLen: 65537 exceeds"):
        plan_deployment(too_long, facts, default_pools())
    # yarn scales original_max_position_embeddings (DeepSeek-V3: 4096 × 40); llama3 is not scaled.
    assert load_catalog().get("deepseek-ai/DeepSeek-V3").max_context == 163840  # type: ignore[union-attr]
    assert load_catalog().get(LLAMA).max_context == 131072  # type: ignore[union-attr]


def test_gemma3_relies_on_library_defaults_and_per_layer_windows() -> None:
    model = {"name": "google/gemma-3-27b-it", "hfConfig": case_config(GEMMA3_27B)}
    facts, plan = _plan(model)
    # Gemma3TextConfig: max_position_embeddings 131072 (already rope-scaled), vocab 262208;
    # 5 of every 6 layers slide over 1024 tokens.
    assert (facts.max_context, facts.vocab_size, facts.sliding_window) == (131072, 262208, 1024)
    assert facts.sliding_window_layers == 52 and facts.vision_parameters > 0
    assert plan.feasible


runner = CliRunner()


def _cli(tmp_path: Path, model: dict[str, Any]) -> tuple[int, str]:
    """(exit code, stderr): the one-line error; stdout still shows the plan table."""
    doc = {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
           "metadata": {"name": "m", "namespace": "default"}, "spec": {"model": model}}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = runner.invoke(app, ["plan", str(path), "--offline"])
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantization_config": {"quant_method": "int3"}},
         "spec.model.hfConfig.quantization_config.quant_method: 'int3'"),
        ({"quantization_config": {"quant_method": "gptq", "bits": 6}}, "quantization_config.bits: 6"),
        ({"num_attention_heads": "many"}, "spec.model.hfConfig: model acme/x: config.json"),
        ({"model_type": None}, "spec.model.hfConfig.model_type: missing"),
        ({"blob": "x" * 70000}, "spec.model.hfConfig: 70"),
    ],
)
def test_bad_hf_config_is_one_line_exit_2(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    config = {k: v for k, v in (hub_config(LLAMA) | change).items() if v is not None}
    code, out = _cli(tmp_path, {"name": "acme/x", "hfConfig": config})
    assert code == 2 and message in out and len(out.strip().splitlines()) == 1, out


def test_hf_config_must_be_an_object_and_excludes_architecture(tmp_path: Path) -> None:
    code, out = _cli(tmp_path, {"name": "acme/x", "hfConfig": [1, 2]})
    assert code == 2 and "spec.model.hfConfig" in out
    arch = {"parameters": 8_000_000_000, "layers": 32, "hiddenSize": 4096, "attentionHeads": 32}
    code, out = _cli(tmp_path, {"name": "acme/x", "hfConfig": hub_config(LLAMA), "architecture": arch})
    assert code == 2 and "hfConfig or architecture, not both" in out
    code, out = _cli(tmp_path, {"name": "acme/x", "checkpointBytes": 10})
    assert code == 2 and "checkpointBytes needs hfConfig" in out


def test_hand_written_architecture_gains_quantization_and_pipeline_support() -> None:
    arch = {"parameters": 72_700_000_000, "layers": 80, "hiddenSize": 8192, "attentionHeads": 64, "kvHeads": 8,
            "intermediateSize": 29568, "supportsPipelineParallel": False,
            "quantization": {"method": "awq", "bits": 4, "groupSize": 128}}
    md = make_md("acme/private-72b-awq", model={"architecture": arch}, placement={"tensorParallelSize": 2})
    facts = resolve_facts(md.spec.model, load_catalog(), None)
    assert facts.quantization is not None and facts.quantization.label == "awq 4-bit g128"
    assert not facts.supports_pipeline_parallel and facts.parameter_source == "spec"
    with pytest.raises(InvalidSpec, match=r"spec\.placement\.tensorParallelSize: .*awq 4-bit g128: .* 14784"):
        plan_deployment(md, facts, default_pools())
