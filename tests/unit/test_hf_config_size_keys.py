"""The keys that size a model come from the config, never a library default; a byte total makes
the weights exact and their split by dtype estimated. New-user trial, 2026-11-30."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.unit.real_configs import GEMMA3_27B, case_config, catalog_config
from typer.testing import CliRunner

from modeldeploy.cli.main import app
from modeldeploy.errors import ModelUnresolved
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.hf_config import facts_from_hf
from modeldeploy.facts.model import FactsSource

ROOT = Path(__file__).resolve().parents[2]
LLAMA_8B = json.loads((ROOT / "tests/fixtures/hub/meta-llama/Llama-3.1-8B-Instruct/config.json").read_text())
LLAMA_8B_BYTES = 16060522496  # the published index's metadata.total_size (hub fixture)


@pytest.mark.parametrize(("key", "default"), [("hidden_size", 4096), ("num_hidden_layers", 32),
                                              ("num_attention_heads", 32), ("intermediate_size", 11008)])
def test_a_size_key_left_to_the_llama_default_is_refused(key: str, default: int) -> None:
    config = {k: v for k, v in LLAMA_8B.items() if k != key}
    with pytest.raises(ModelUnresolved) as err:
        facts_from_hf("acme/x", config)
    assert str(err.value) == (f"model acme/x: config.json {key}: required to size the model "
                              f"(transformers would default it to {default})")


def test_a_multimodal_config_is_checked_in_its_text_config() -> None:
    gemma = load_catalog().get("google/gemma-3-27b-it")
    assert gemma is not None  # its text_config omits vocab_size and max_position_embeddings: still plans
    config: dict[str, Any] = {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
                              "text_config": {"model_type": "gemma3_text", "hidden_size": 5376,
                                              "num_hidden_layers": 62, "num_attention_heads": 32}}
    with pytest.raises(ModelUnresolved, match=r"config\.json text_config\.intermediate_size: required to size"):
        facts_from_hf("acme/gemma", config)


def test_every_catalog_model_still_has_its_size_keys() -> None:
    catalog = load_catalog()
    assert all(f.hidden_size and f.layers for f in catalog.entries())  # no entry refused


def test_the_cli_exits_2_naming_file_object_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bare.yaml"
    path.write_text(json.dumps({"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
                                "metadata": {"name": "bare"},
                                "spec": {"model": {"name": "acme/x", "hfConfig": {"model_type": "llama"}}}}))
    result = CliRunner().invoke(app, ["plan", str(path), "--offline"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {path}: ModelDeployment bare: spec.model.hfConfig.hidden_size: "
                                     "required to size the model (transformers would default it to 4096)")


def test_a_byte_total_makes_the_weights_exact_and_the_dtype_split_estimated() -> None:
    facts = facts_from_hf("acme/y", LLAMA_8B, {"metadata": {"total_size": LLAMA_8B_BYTES}},
                          source=FactsSource.HF_CONFIG)
    assert facts.parameter_provenance == (
        "exact: 15.0 GiB of weights, from spec.model.checkpointBytes; estimated: 8,030,261,248 parameters, "
        "reading the total as bfloat16 (no counts by dtype)")
    quantized = {**LLAMA_8B, "torch_dtype": "float16",
                 "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}}
    facts = facts_from_hf("acme/g", quantized, {"metadata": {"total_size": 5_730_000_000}},
                          source=FactsSource.HF_CONFIG)
    assert facts.parameter_provenance == (
        "exact: 5.3 GiB of gptq weights, from spec.model.checkpointBytes; estimated: the split between gptq and "
        "16-bit modules, from config.json shapes (no counts by dtype)")
    counted = load_catalog().get("meta-llama/Llama-3.1-8B-Instruct")  # counts by dtype: nothing estimated
    assert counted is not None and "estimated" not in counted.parameter_provenance


def _plan_cli(tmp_path: Path, model: dict[str, Any]) -> tuple[int, str, Path]:
    path = tmp_path / "md.yaml"
    path.write_text(json.dumps({"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
                                "metadata": {"name": "vision"}, "spec": {"model": model}}))
    result = CliRunner().invoke(app, ["plan", str(path), "--offline"])
    return result.exit_code, result.stderr, path


@pytest.mark.parametrize("key", ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"])
def test_a_missing_text_size_key_is_named_by_the_path_the_user_wrote(tmp_path: Path, key: str) -> None:
    # google/gemma-3-27b-it's published config.json (the sizing-report case's copy): its text
    # sizes live in text_config, so the user fixes spec.model.hfConfig.text_config.<key>.
    config = case_config(GEMMA3_27B)
    del config["text_config"][key]
    code, err, path = _plan_cli(tmp_path, {"name": "google/gemma-3-27b-it", "hfConfig": config})
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.strip().startswith(f"error: {path}: ModelDeployment vision: "
                                  f"spec.model.hfConfig.text_config.{key}: required to size the model"), err


def test_a_missing_moe_size_key_is_named_by_its_path(tmp_path: Path) -> None:
    # Qwen/Qwen3-30B-A3B's config.json (catalog copy): without moe_intermediate_size nor
    # intermediate_size the expert width is unknown.
    config = {k: v for k, v in catalog_config("Qwen/Qwen3-30B-A3B").items()
              if k not in ("moe_intermediate_size", "intermediate_size")}
    code, err, path = _plan_cli(tmp_path, {"name": "acme/moe", "hfConfig": config})
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"error: {path}: ModelDeployment vision: spec.model.hfConfig.intermediate_size: required" in err
