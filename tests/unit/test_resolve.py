"""resolve_facts: spec.model.architecture > catalog > hub, and the errors users see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.api.deployment import ModelSource
from modeldeploy.errors import ModelUnresolved
from modeldeploy.facts import FactsSource
from modeldeploy.facts.catalog import load_catalog
from modeldeploy.facts.resolve import DESCRIBE_IT, HubLookupError, resolve_facts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hub"


def source(**fields: Any) -> ModelSource:
    return ModelSource.model_validate(fields)


def never(repo: str, revision: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    raise AssertionError(f"the hub was consulted for {repo}")


class FixtureHub:
    """A fetch callable over tests/fixtures/hub that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def __call__(
        self, repo: str, revision: str | None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        self.calls.append((repo, revision))
        folder = FIXTURES / repo
        if not folder.is_dir():
            raise HubLookupError(f"the hub has no repository {repo}")
        index = folder / "model.safetensors.index.json"
        return (
            json.loads((folder / "config.json").read_text()),
            json.loads(index.read_text()) if index.exists() else None,
        )


def test_architecture_wins_over_the_catalog() -> None:
    arch = {"parameters": 7_000_000_000, "layers": 30, "hiddenSize": 4000, "attentionHeads": 40}
    f = resolve_facts(
        source(name="meta-llama/Llama-3.1-8B-Instruct", architecture=arch), load_catalog(), never
    )
    assert f.source == FactsSource.SPEC and f.id == "meta-llama/Llama-3.1-8B-Instruct"
    assert (f.layers, f.kv_heads, f.head_dim) == (30, 40, 100)  # defaults: MHA, hidden / heads
    assert f.max_context == 4096 and f.vocab_size == 32000  # ModelFacts defaults


def test_architecture_carries_moe_and_mla_fields() -> None:
    arch = {
        "parameters": 20_000_000_000,
        "layers": 20,
        "hiddenSize": 2048,
        "attentionHeads": 16,
        "kvHeads": 16,
        "headDim": 192,
        "vocabSize": 100000,
        "maxContext": 32768,
        "experts": 64,
        "expertsPerToken": 6,
        "moeIntermediateSize": 1408,
        "kvLoraRank": 512,
        "qkRopeHeadDim": 64,
    }
    f = resolve_facts(source(name="acme/mla-moe", architecture=arch), load_catalog(), None)
    assert f.is_mla and f.is_moe
    assert (f.experts, f.experts_per_token, f.moe_intermediate_size) == (64, 6, 1408)
    assert (f.vocab_size, f.max_context, f.head_dim) == (100000, 32768, 192)


def test_catalog_before_hub_with_case_and_bare_ids() -> None:
    catalog = load_catalog()
    for name in (
        "meta-llama/Llama-3.3-70B-Instruct",
        "META-LLAMA/LLAMA-3.3-70B-INSTRUCT",
        "Llama-3.3-70B-Instruct",
    ):
        f = resolve_facts(source(name=name), catalog, never)
        assert f.id == "meta-llama/Llama-3.3-70B-Instruct" and f.source == FactsSource.CATALOG


def test_a_pinned_revision_still_uses_the_catalog() -> None:
    f = resolve_facts(source(name="microsoft/phi-4", revision="abc123"), load_catalog(), never)
    assert f.source == FactsSource.CATALOG


def test_fp8_request_keeps_the_named_repo() -> None:
    f = resolve_facts(
        source(name="Qwen/Qwen3-235B-A22B", quantization="fp8"), load_catalog(), never
    )
    assert f.id == "Qwen/Qwen3-235B-A22B" and f.native_quantization is None
    assert f.fp8_variant == "Qwen/Qwen3-235B-A22B-FP8"  # offered, never switched to silently


def test_hub_is_asked_with_the_revision_for_models_outside_the_catalog() -> None:
    hub = FixtureHub()
    f = resolve_facts(
        source(name="meta-llama/Llama-3.2-1B-Instruct", revision="v1"), load_catalog(), hub
    )
    assert hub.calls == [("meta-llama/Llama-3.2-1B-Instruct", "v1")]
    assert f.source == FactsSource.HUB and (f.layers, f.head_dim, f.tie_word_embeddings) == (
        16,
        64,
        True,
    )


@pytest.mark.parametrize(
    ("error", "clause"),
    [
        (
            HubLookupError("the hub is unreachable (timeout after 10s)"),
            "the hub is unreachable (timeout after 10s)",
        ),
        (TimeoutError("10s"), "the hub did not answer in time (10s)"),
        (
            ConnectionRefusedError(111, "Connection refused"),
            "the hub lookup failed (ConnectionRefusedError: ",
        ),
        (RuntimeError(), "the hub lookup failed (RuntimeError)"),
    ],
)
def test_fetch_failures_name_the_model_and_the_cause(error: Exception, clause: str) -> None:
    def failing(repo: str, revision: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        raise error

    with pytest.raises(ModelUnresolved) as err:
        resolve_facts(source(name="acme/foo"), load_catalog(), failing)
    message = str(err.value)
    assert message.startswith(f"model acme/foo is not in the catalog and {clause}")
    assert message.endswith(f"; {DESCRIBE_IT}")
    assert err.value.__cause__ is error


def test_offline_and_bare_unknown_names() -> None:
    with pytest.raises(
        ModelUnresolved, match=r"^model acme/foo is not in the catalog and the hub is not consulted"
    ):
        resolve_facts(source(name="acme/foo"), load_catalog(), None)
    with pytest.raises(
        ModelUnresolved, match=r"^model foo is not in the catalog; use a Hugging Face repo id"
    ):
        resolve_facts(source(name="foo"), load_catalog(), never)


@pytest.mark.parametrize("name,fetch", [("acme/foo", None), ("foo", never), ("acme/foo", FixtureHub())])
def test_unknown_model_says_how_to_describe_it(name: str, fetch: Any) -> None:
    """A private or air-gapped checkpoint is described by its own config.json: every message
    for a model nothing knows names hfConfig and checkpointBytes (issue: new-user trial)."""
    with pytest.raises(ModelUnresolved) as err:
        resolve_facts(source(name=name), load_catalog(), fetch)
    message = str(err.value)
    assert "spec.model.hfConfig" in message and "spec.model.checkpointBytes" in message
    assert "spec.model.architecture" in message and "\n" not in message
    if fetch is None:
        assert "drop --offline" in message and "HF_ENDPOINT" in message


def test_unusable_hub_config_is_unresolved() -> None:
    def broken(repo: str, revision: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return {"model_type": "brand_new_arch", "hidden_size": 4096}, None  # unknown to transformers

    message = r"^model acme/foo: config\.json num_hidden_layers: required to size the model$"
    with pytest.raises(ModelUnresolved, match=message):
        resolve_facts(source(name="acme/foo"), load_catalog(), broken)


@pytest.mark.parametrize(("written", "meant"), [
    ("Qwen/Qwen3-32b-Instruct", "Qwen/Qwen3-32B"),  # an Instruct suffix the repo does not have
    ("Llama-3.3-70B", "meta-llama/Llama-3.3-70B-Instruct"),  # a bare, partial name
    ("mistral-large", "mistralai/Mistral-Large-Instruct-2407"),
])
def test_unknown_name_names_the_catalog_model_it_most_likely_means(written: str, meant: str) -> None:
    with pytest.raises(ModelUnresolved) as err:
        resolve_facts(source(name=written), load_catalog(), None)
    assert str(err.value).startswith(f"model {written} is not in the catalog (did you mean {meant}")


def test_no_catalog_guess_for_an_unrelated_name() -> None:
    assert load_catalog().similar("acme/secret-model-7b") == []
