"""Which facts describe a ModelSource: spec.model.architecture > catalog > hub. Pure.

The hub is reached only through the `fetch` callable the caller passes in (the shell's
HubClient.fetch in production, a dict lookup in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..api.deployment import Architecture, ModelSource
from ..errors import ConfigFieldError, InvalidSpec, ModelFactsUnavailable, ModelUnresolved
from .catalog import Catalog
from .hf_config import Checkpoint, facts_from_hf
from .model import FactsSource, ModelFacts, ParameterSource
from .quantization import quantization_from_spec

Fetch = Callable[[str, str | None], tuple[dict[str, Any], dict[str, Any] | None]]


class HubLookupError(Exception):
    """A fetcher's failure, worded as a clause: "the hub is unreachable (timeout after 10s)"."""


def facts_from_architecture(name: str, arch: Architecture) -> ModelFacts:
    """ModelFacts from spec.model.architecture; unset fields keep ModelFacts' defaults."""
    fields: dict[str, Any] = {
        "id": name,
        "source": FactsSource.SPEC,
        "parameters": arch.parameters,
        "layers": arch.layers,
        "hidden_size": arch.hidden_size,
        "attention_heads": arch.attention_heads,
        "kv_heads": arch.kv_heads or arch.attention_heads,
        "head_dim": arch.head_dim or max(1, arch.hidden_size // arch.attention_heads),
        "intermediate_size": arch.intermediate_size,
        "experts": arch.experts,
        "experts_per_token": arch.experts_per_token,
        "moe_intermediate_size": arch.moe_intermediate_size,
        "kv_lora_rank": arch.kv_lora_rank,
        "qk_rope_head_dim": arch.qk_rope_head_dim,
        "supports_pipeline_parallel": arch.supports_pipeline_parallel,
        "parameter_source": ParameterSource.SPEC,
    }
    if arch.quantization is not None:
        q = arch.quantization
        fields["quantization"] = quantization_from_spec(str(q.method), q.bits, q.group_size)
    if arch.vocab_size is not None:
        fields["vocab_size"] = arch.vocab_size
    if arch.max_context is not None:
        fields["max_context"] = arch.max_context
    try:
        return ModelFacts(**fields)
    except ValueError as exc:
        raise ModelUnresolved(f"spec.model.architecture: {exc}") from exc


def facts_from_hf_config(source: ModelSource) -> ModelFacts:
    """spec.model.hfConfig (+ checkpointBytes) through the same parser as the hub's config.json.

    A config the parser cannot read is the spec's fault: InvalidSpec naming the field by the path
    the user wrote ("spec.model.hfConfig.text_config.hidden_size: required to size the model …",
    "spec.model.hfConfig.quantization_config.bits: …").
    """
    assert source.hf_config is not None
    checkpoint = Checkpoint(total_bytes=source.checkpoint_bytes) if source.checkpoint_bytes else None
    try:
        return facts_from_hf(source.name, source.hf_config, checkpoint, source=FactsSource.HF_CONFIG)
    except ConfigFieldError as exc:  # the field as the user wrote it, under the spec
        raise InvalidSpec(f"spec.model.hfConfig.{exc.field}: {exc.problem}") from exc
    except ModelUnresolved as exc:
        raise InvalidSpec(f"spec.model.hfConfig: {exc}") from exc


# What a user can do for a model nothing knows, said the same way wherever it is missing: the
# checkpoint's own config.json is the most exact description (parsed like the hub's copy,
# quantization included), checkpointBytes makes the weight size exact, and architecture is for
# facts written by hand.
DESCRIBE_IT = ("describe it in spec.model.hfConfig (the checkpoint's config.json, verbatim) with "
               "spec.model.checkpointBytes (the safetensors total size, the index's "
               "metadata.total_size), or by hand in spec.model.architecture")


def _cause(exc: BaseException) -> str:
    if isinstance(exc, HubLookupError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"the hub did not answer in time ({exc or 'timeout'})"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"the hub lookup failed ({type(exc).__name__}{': ' + detail if detail else ''})"


def resolve_facts(source: ModelSource, catalog: Catalog, fetch: Fetch | None) -> ModelFacts:
    """Facts for the model the spec names. Raises ModelUnresolved when nothing knows it.

    An fp8 quantization request never switches to the catalog's FP8 repo: the user's repo is
    what vLLM will load (the planner sizes dynamic FP8 for it). A pinned revision still
    uses the catalog: revisions of one release share its architecture.
    """
    name = source.name
    if source.architecture is not None:
        return facts_from_architecture(name, source.architecture)
    if source.hf_config is not None:
        return facts_from_hf_config(source)
    found = catalog.get(name)
    if found is not None:
        return found
    hint = DESCRIBE_IT
    close = catalog.similar(name)
    missing = f"model {name} is not in the catalog" + (f" (did you mean {' or '.join(close)}?)" if close else "")
    ambiguous = catalog.ambiguous(name)
    if ambiguous:
        raise ModelUnresolved(
            f"model {name} is ambiguous in the catalog ({', '.join(ambiguous)}); "
            "use the full repo id"
        )
    if "/" not in name:
        raise ModelUnresolved(
            f"{missing}; use a Hugging Face repo id (org/name) or {hint}"
        )
    if fetch is None:
        raise ModelUnresolved(
            f"{missing} and the hub is not consulted (offline: drop "
            f"--offline, or set HF_ENDPOINT to a mirror, to read it from the hub); {hint}"
        )
    try:
        config, index = fetch(name, source.revision)
    except ModelUnresolved:
        raise
    except Exception as exc:  # the fetcher's failure is the user's problem to see, in one line
        raise ModelFactsUnavailable(
            f"{missing} and {_cause(exc)}; {hint}"
        ) from exc
    return facts_from_hf(name, config, index)
