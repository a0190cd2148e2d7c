"""config.json contents of real checkpoints for the sizing tests, each with its source.

The report cases (tests/fixtures/sizing_reports.yaml) carry most of them; the rest are written
out here with the address they were read from.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_CASES = {c["id"]: c for c in yaml.safe_load((FIXTURES / "sizing_reports.yaml").read_text(encoding="utf-8"))}


def case_config(case_id: str) -> dict[str, Any]:
    """The hfConfig of one report case (its source is in the fixture)."""
    config: dict[str, Any] = copy.deepcopy(_CASES[case_id]["spec"]["model"]["hfConfig"])
    return config


def hub_config(repo: str) -> dict[str, Any]:
    """A verbatim config.json from tests/fixtures/hub (copied from huggingface.co/<repo>)."""
    data: dict[str, Any] = json.loads((FIXTURES / "hub" / repo / "config.json").read_text(encoding="utf-8"))
    return data


def catalog_config(repo: str) -> dict[str, Any]:
    """The config.json a catalog data file holds verbatim (its configSource says where it was read)."""
    path = FIXTURES.parents[1] / "operator/modeldeploy/data/models" / (repo.replace("/", "--") + ".yaml")
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))["config"]
    return config


QWEN25_VL_72B_AWQ = "awq-vision-model-unpinned"  # Qwen/Qwen2.5-VL-72B-Instruct-AWQ
QWEN2_72B_GPTQ_INT8 = "gptq-int8-padded-tp4-clean"  # Qwen/Qwen2-72B-Instruct-GPTQ-Int8 (published: 29696)
QWEN3_30B_A3B_FP8 = "fp8-block-rule-from-checkpoint"  # Qwen/Qwen3-30B-A3B-FP8
LLAMA_32_90B_VISION = "vision-model-without-pipeline-parallel"  # meta-llama/Llama-3.2-90B-Vision-Instruct
DEEPSEEK_CODER_67B = "rope-scaled-context"  # deepseek-ai/deepseek-coder-6.7b-instruct
GEMMA3_27B = "config-relying-on-library-defaults"  # google/gemma-3-27b-it

# https://huggingface.co/openai/gpt-oss-120b/blob/main/config.json (sizing keys; the
# quantization_config is quoted verbatim in the model card and vLLM's gpt-oss recipe).
GPT_OSS_120B: dict[str, Any] = {
    "architectures": ["GptOssForCausalLM"],
    "model_type": "gpt_oss",
    "hidden_size": 2880,
    "intermediate_size": 2880,
    "num_hidden_layers": 36,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "num_local_experts": 128,
    "num_experts_per_tok": 4,
    "vocab_size": 201088,
    "max_position_embeddings": 131072,
    "sliding_window": 128,
    "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096,
                     "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False},
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "quantization_config": {
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                   "model.embed_tokens", "lm_head"],
        "quant_method": "mxfp4",
    },
}
