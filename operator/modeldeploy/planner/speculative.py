"""MTP speculative decoding asked for through `spec.serving.extraArgs`. Pure.

modeldeploy has no field for speculative decoding; a user turns it on with vLLM's own flag,
`--speculative-config '{"method": "deepseek_mtp", "num_speculative_tokens": 1}'` (JSON, also
`--speculative-config=…`, or the dotted `--speculative-config.method deepseek_mtp`). With an MTP
method vLLM drafts with the checkpoint's own multi-token-prediction modules: it builds the
draft model from the target's config (vllm/config/speculative.py
SpeculativeConfig.hf_config_override: deepseek_v3/v32 → deepseek_mtp with n_predict =
num_nextn_predict_layers; qwen3_next → qwen3_next_mtp; qwen3_5 → qwen3_5_mtp with
mtp_num_hidden_layers) and loads those modules from the same checkpoint, which plain serving
skips (facts/mtp.py). The MTP methods are vLLM's `MTPModelTypes` (`mtp` and the
`<family>_mtp` names). The modules' input embeddings are replaced by the target's
(vllm/v1/spec_decode/eagle.py load_model, "Detected MTP model. Sharing target model embedding
weights"), so the served weights grow by the modules less their embedding; each module's
attention layer holds its own KV cache (eagle.py: the draft's attention layers get KV blocks
like the target's).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidSpec
from ..facts import ModelFacts
from ..facts.hf_config import DTYPE_BYTES
from ..facts.model import ParameterSource
from .memory import stored_bytes
from .vllm_flags import flag_objects

_FLAG = "--speculative-config"
_FIELD = "spec.serving.extraArgs"


def speculative_method(extra_args: Sequence[str]) -> str | None:
    """The `method` of the last `--speculative-config` in `extraArgs` (argparse: the last wins),
    or None. A value vLLM would reject is left to vLLM to reject."""
    method: str | None = None
    for given in flag_objects(extra_args, _FLAG):
        named = given.get("method")
        if isinstance(named, str) and named:
            method = named
    return method


def is_mtp(method: str | None) -> bool:
    """vLLM's MTP methods: `mtp` and every `<family>_mtp` (vllm/config/speculative.py MTPModelTypes)."""
    return method is not None and (method == "mtp" or method.endswith("_mtp"))


def with_speculative_mtp(facts: ModelFacts, extra_args: Sequence[str]) -> ModelFacts:
    """The facts vLLM serves when `extraArgs` ask for MTP speculative decoding: the MTP modules
    loaded (less the embeddings they share with the target) and their attention layers added to
    the KV cache; `facts` unchanged otherwise.

    Raises InvalidSpec naming spec.serving.extraArgs when the model has no MTP modules, or when
    the checkpoint's counts show it does not store them (vLLM would find no weights to load).
    """
    method = speculative_method(extra_args)
    if not is_mtp(method):
        return facts
    where = f"{_FIELD}: --speculative-config method {method}"
    if not facts.mtp_layers:
        raise InvalidSpec(f"{where} drafts with the checkpoint's multi-token-prediction layers, and {facts.id} "
                          "declares none (config.json num_nextn_predict_layers / mtp_num_hidden_layers)")
    if facts.parameter_source == ParameterSource.SAFETENSORS and not facts.unloaded_bytes:
        raise InvalidSpec(f"{where} loads the multi-token-prediction layers {facts.id} declares, and its "
                          "checkpoint's counts match a checkpoint without them")
    embedding = facts.mtp_embedding_parameters * DTYPE_BYTES.get(facts.native_dtype, 2.0)
    modules = dict(facts.module_parameters)  # the drafter's linear layers are quantized like the model's
    for group, n in facts.mtp_module_parameters.items():
        modules[group] = modules.get(group, 0) + n
    return facts.model_copy(update={
        "parameters": facts.parameters + facts.mtp_parameters - facts.mtp_embedding_parameters,
        "module_parameters": modules,
        "unloaded_bytes": int(embedding) if facts.unloaded_bytes else 0,  # still in the counts, never loaded
        "layers": facts.layers + facts.mtp_layers,
        "speculative_mtp": method,
    })


def as_served(facts: ModelFacts, extra_args: Sequence[str]) -> tuple[ModelFacts, float]:
    """(the facts vLLM serves, the bytes the checkpoint stores): `with_speculative_mtp` and
    planner/memory.py `stored_bytes`, which a plan reports side by side (weights, checkpointGiB).
    Raises InvalidSpec as with_speculative_mtp does."""
    return with_speculative_mtp(facts, extra_args), stored_bytes(facts)
