"""ModelFacts: what the planner needs to know about a model, wherever it came from."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .encoder import EncoderFacts
from .quantization import WeightQuantization, parse_quantization


class FactsSource(StrEnum):
    SPEC = "spec"  # spec.model.architecture
    CATALOG = "catalog"  # the built-in catalog (operator/modeldeploy/data/models/*.yaml)
    HUB = "hub"  # config.json (+ safetensors metadata) from the Hugging Face hub
    HF_CONFIG = "hfConfig"  # spec.model.hfConfig: a config.json given inline


class ParameterSource(StrEnum):
    SAFETENSORS = "safetensors"  # counted from the checkpoint's safetensors metadata: exact
    # Counted per tensor from config.json through transformers' model class (tools/checkpoint_inventory.py)
    # with no published safetensors number to confirm it: sized from those counts, planned "estimated".
    DERIVED = "derived"
    ESTIMATE = "estimate"  # from the config's shapes (facts/estimate.py): approximate
    SPEC = "spec"  # spec.model.architecture.parameters, as the user wrote it


class ModelFacts(BaseModel):
    """Architecture facts, normalised. Sizes in bytes, counts as ints; no I/O here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Canonical Hugging Face repo id")
    source: FactsSource = FactsSource.CATALOG
    family: str = ""
    parameters: int = Field(ge=1, description="Total parameters (all experts)")
    active_parameters: int | None = None
    layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    attention_heads: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    intermediate_size: int | None = None
    vocab_size: int = Field(default=32000, ge=1)
    max_context: int = Field(default=4096, ge=1)
    tie_word_embeddings: bool = False
    native_dtype: str = "bfloat16"  # bfloat16 | float16 | float32
    quantization: WeightQuantization | None = Field(default=None, description="The checkpoint's own quantization")
    checkpoint_bytes: int | None = Field(default=None, description="safetensors total_size")
    stored_bytes_estimate: int | None = Field(default=None, description="Without checkpoint_bytes: the checkpoint's "
                                              "safetensors bytes estimated from config.json shapes, MTP modules included")
    checkpoint_commit: str | None = Field(default=None, description="Hub commit the counts came from")
    unloaded_bytes: int = Field(default=0, ge=0, description="Bytes of checkpoint_bytes vLLM does not load: the multi-"
                                "token-prediction modules when the counts include them (facts/mtp.py)")
    # Multi-token-prediction modules (facts/mtp.py): loaded only for MTP speculative decoding.
    mtp_layers: int = Field(default=0, ge=0, description="MTP modules the checkpoint has (declared or counted)")
    mtp_parameters: int = Field(default=0, ge=0, description="Parameters of all MTP modules")
    mtp_bytes: int = Field(default=0, ge=0, description="Bytes of all MTP modules as the checkpoint stores them")
    mtp_embedding_parameters: int = Field(default=0, ge=0, description="The MTP modules' own input embeddings, "
                                          "which vLLM shares with the target model when drafting")
    mtp_module_parameters: dict[str, int] = Field(default_factory=dict, description="The MTP modules' linear "
                                                  "layers by group (quantized like the model's)")
    speculative_mtp: str | None = Field(default=None, description="The MTP speculative method the facts are served "
                                        "with (planner/speculative.py): the MTP modules are loaded")
    parameter_source: ParameterSource = ParameterSource.ESTIMATE
    dtype_split_estimated: bool = Field(default=False, description="Exact weights from a byte total only "
                                        "(checkpointBytes, index total_size): the count by dtype is estimated")
    architecture: str = Field(default="", description="vLLM model class (config.json architectures[0])")
    # Parameters of the decoder's linear layers by module group (facts/estimate.py); empty for
    # hand-written facts. Quantization sizes these groups; the rest stays 16-bit.
    module_parameters: dict[str, int] = Field(default_factory=dict)
    vision_parameters: int = Field(default=0, ge=0, description="Vision/audio towers: kept at the stored 16-bit dtype")
    encoder: EncoderFacts | None = Field(default=None, description="Largest multimodal item (vLLM's encoder profiling)")
    sparse_attention: bool = Field(default=False, description="DeepSeek-V3.2 sparse attention (indexer)")
    index_head_dim: int | None = Field(default=None, ge=1, description="Sparse attention: the lightning indexer's "
                                       "key width (config.json index_head_dim; vLLM caches one key per layer per token)")
    notes: tuple[str, ...] = Field(default=(), description="Caveats a plan repeats (estimates, raw-key parsing)")
    # MoE
    experts: int | None = None
    experts_per_token: int | None = None
    shared_experts: int = 0
    moe_intermediate_size: int | None = None
    # MLA (DeepSeek): one latent of kv_lora_rank + qk_rope_head_dim per layer per token
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    # Sliding-window attention: these layers hold at most `sliding_window` tokens
    sliding_window: int | None = None
    sliding_window_layers: int = 0
    # Linear attention (Mamba / Gated DeltaNet): per-sequence state, no per-token KV
    linear_attention_layers: int = 0
    linear_state_bytes_per_layer: int = 0  # per sequence, at TP 1
    supports_pipeline_parallel: bool = True
    fp8_variant: str | None = Field(default=None, description="Repo id of an FP8 checkpoint of this model")

    @model_validator(mode="before")
    @classmethod
    def _legacy_quantization(cls, data: Any) -> Any:
        """Hand-written facts may still say `native_quantization` (+ `weight_block_size`): read them
        as the config.json quantization_config they stand for (defaults: 4-bit g128 AWQ/GPTQ)."""
        if not isinstance(data, dict) or "native_quantization" not in data:
            return data
        data = dict(data)
        method, block = data.pop("native_quantization"), data.pop("weight_block_size", None)
        if method and "quantization" not in data:
            qc: dict[str, Any] = {"quant_method": method}
            if block:
                qc["weight_block_size"] = list(block)
            data["quantization"] = parse_quantization(str(data.get("id", "facts")), {"quantization_config": qc})
        return data

    @model_validator(mode="after")
    def _check(self) -> ModelFacts:
        if self.attention_heads % self.kv_heads:
            raise ValueError(f"{self.id}: attention heads must be a multiple of KV heads")
        if self.sliding_window_layers + self.linear_attention_layers > self.layers:
            raise ValueError(f"{self.id}: special layers exceed the layer count")
        return self

    @property
    def native_quantization(self) -> str | None:
        """Quantization method of the checkpoint (fp8, awq, gptq, …) or None for 16-bit."""
        return self.quantization.method if self.quantization else None

    @property
    def weight_block_size(self) -> tuple[int, int] | None:
        """FP8 block quantization (block_n, block_k) of the checkpoint, if any."""
        return self.quantization.weight_block_size if self.quantization else None

    @property
    def parameter_provenance(self) -> str:
        """Where the weight sizing came from, in one phrase a plan repeats ("exact: …" or
        "estimated: …"); e.g. "exact: safetensors metadata (catalog, commit 6f6073b), BF16". Counts
        derived from the config with nothing published behind them (ParameterSource.DERIVED) size the
        weights but say "estimated" (issue 10: estimation is the last resort and the plan says so)."""
        if self.parameter_source == ParameterSource.SPEC:
            return "as written: spec.model.architecture.parameters"
        if self.parameter_source == ParameterSource.ESTIMATE:
            return "estimated: from config.json shapes (no safetensors counts)" + self._mtp_provenance()
        origin = {FactsSource.CATALOG: "the checkpoint's safetensors counts recorded in the built-in catalog",
                  FactsSource.HUB: "the hub's safetensors metadata",
                  FactsSource.HF_CONFIG: "spec.model.checkpointBytes"}.get(self.source, str(self.source))
        commit = f" (commit {self.checkpoint_commit[:12]})" if self.checkpoint_commit else ""
        size = f"{self.checkpoint_bytes / 1024**3:.1f} GiB" if self.checkpoint_bytes else ""
        mtp = self._mtp_provenance()
        what = (f"{size} of {self.native_quantization} weights" if self.quantization
                else f"{self.parameters:,} {self.native_dtype} parameters")
        if self.parameter_source == ParameterSource.DERIVED:
            return (f"estimated: {what} derived from the config.json by transformers' reference class "
                    f"(no published safetensors count to confirm){mtp}")
        if self.dtype_split_estimated:  # a byte total: the weights are exact, their split by dtype is not
            split = (f"the split between {self.native_quantization} and 16-bit modules, from config.json shapes"
                     if self.quantization else
                     f"{self.parameters:,} parameters, reading the total as {self.native_dtype}")
            kind = f"{self.native_quantization} " if self.quantization else ""
            return f"exact: {size} of {kind}weights, from {origin}{commit}{mtp}; estimated: {split} (no counts by dtype)"
        checkpoint = f" (checkpoint {size})" if size and not self.quantization else ""
        return f"exact: {what}{checkpoint}, from {origin}{commit}{mtp}"

    def _mtp_provenance(self) -> str:
        """What the weights do with the multi-token-prediction modules, for parameter_provenance."""
        n = self.mtp_layers
        if not n:
            return ""
        layers = f"{n} multi-token-prediction layer{'s' if n > 1 else ''}"
        them = "them" if n > 1 else "it"
        if self.speculative_mtp:
            return (f"; its {layers} counted ({self.mtp_bytes / 1024**3:.1f} GiB as stored, less the embeddings vLLM "
                    f"shares): spec.serving.extraArgs asks for {self.speculative_mtp} speculative decoding")
        if self.unloaded_bytes:
            return (f"; {self.unloaded_bytes / 1024**3:.1f} GiB of {layers} subtracted: the counts include {them} and "
                    f"vLLM loads {them} only for MTP speculative decoding")
        if self.parameter_source == ParameterSource.ESTIMATE:
            return f", without the {layers} (vLLM loads {them} only for MTP speculative decoding)"
        return f"; nothing subtracted for the {layers} config.json declares: the counts match a checkpoint without {them}"

    @property
    def is_multimodal(self) -> bool:
        """A vision/audio tower sits beside the language model (vLLM profiles its encoder too)."""
        return self.vision_parameters > 0

    @property
    def is_moe(self) -> bool:
        return bool(self.experts and self.experts > 1)

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def attention_layers(self) -> int:
        """Layers that keep a per-token KV cache."""
        return self.layers - self.linear_attention_layers
