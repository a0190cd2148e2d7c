"""The multimodal encoder's largest item, from a config's vision config. Pure.

vLLM sizes its encoder profiling run (and its encoder cache) by the largest item one modality
can produce: the processor's `get_image_size_with_most_features` gives the image with the most
patches, and the model's processing info turns it into placeholder tokens for the language
model (vllm/multimodal/profiling.py, vllm/model_executor/models/<family>.py). This module
reproduces that for the families in the catalog; for any other multimodal family it returns
None and the facts carry a note (the encoder term is then left out of the plan, not guessed).
Qwen2-VL / Qwen2.5-VL also take videos, and vLLM profiles whichever modality's largest item has
the most tokens: at long max_model_len that is a video of up to 14 frames (VideoItem).

Units: patches = vision-tower tokens of one item; tokens = embeddings handed to the language
model for that item (what the encoder cache stores and the scheduler budgets).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .estimate import config_int

# Qwen2-VL / Qwen2.5-VL: the published preprocessor_config.json of every Qwen2.5-VL checkpoint
# says max_pixels 12845056 (= 16384 × 28²), patch 14, merge 2; vLLM's Qwen2VLProcessingInfo
# (qwen2_vl.py, get_image_size_with_most_features) resizes the profiling image to that many pixels.
QWEN_VL_MAX_PIXELS = 12845056
# Qwen3-VL / Qwen3.5: preprocessor_config.json size.longest_edge 16777216 (= 16384 × 32²), patch
# 16, merge 2 (e.g. huggingface.co/Qwen/Qwen3.5-27B/blob/main/preprocessor_config.json); the same
# Qwen2VLProcessingInfo path in vLLM (qwen3_vl.py).
QWEN3_VL_MAX_PIXELS = 16777216
# Llama 4: vLLM's Mllama4ProcessingInfo (mllama4.py) tiles an image into at most 16 chunks of
# vision_config.image_size plus one global view (transformers' Llama4ImageProcessor max_patches=16).
LLAMA4_MAX_TILES = 16 + 1
# Qwen2-VL / Qwen2.5-VL video: vLLM's Qwen2VLProcessingInfo (vllm/model_executor/models/qwen2_vl.py,
# read at 002d181a) builds the profiling video from frames of the largest image, as many as
# max_model_len holds (_get_max_video_frames), capped at _MAX_FRAMES_PER_VIDEO = 14
# (get_num_frames_with_most_features; the registry asks for 1 video, vllm/multimodal/registry.py
# get_max_tokens_per_item_by_modality). A vLLM v0.23.0 start of Qwen2.5-VL-7B at max_model_len
# 128000 logs a 114688-token video item = 7 temporal groups × 16384 (bench/data/README.md).
QWEN_VL_MAX_PROFILED_FRAMES = 14
# transformers Qwen2VLVisionConfig / Qwen2_5_VLVisionConfig default (config.json may omit it).
QWEN_VL_TEMPORAL_PATCH = 2
# Qwen's processor flattens each patch to channels × temporal_patch × patch² float32 values
# (transformers image_processing_qwen2_vl.py); vLLM moves them to the GPU uncast
# (vllm/multimodal/utils.py group_mm_kwargs_by_modality) and the tower keeps them through its pass.
QWEN_VL_CHANNELS = 3
# Gemma 3: "\n\n", <start_of_image>, <end_of_image>, "\n\n" around each image's soft tokens.
GEMMA3_IMAGE_FRAMING_TOKENS = 4


class VideoItem(BaseModel):
    """The profiling video of a Qwen-VL family: frames of the largest image, grouped in temporal
    patches (vLLM qwen2_vl.py Qwen2VLProcessingInfo._get_vision_info)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    frame_patches: int = Field(ge=1, description="Vision-tower patches of one temporal group")
    frame_tokens: int = Field(ge=1, description="Language-model tokens of one temporal group")
    temporal_patch_size: int = Field(ge=1, description="Frames per temporal group")
    max_frames: int = Field(ge=1, description="vLLM's frame cap for the profiling video")

    def _groups(self, frames: int) -> int:
        # Frames are padded to a multiple of temporal_patch_size (as vLLM's _get_vision_info does).
        padded = frames + frames % self.temporal_patch_size
        return max(padded // self.temporal_patch_size, 1)

    def frames(self, max_model_len: int) -> int:
        """Frames of the profiling video: the most (up to the cap) whose tokens fit max_model_len,
        at least 1 (get_num_frames_with_most_features for one video)."""
        frames = 1
        while frames < self.max_frames and self._groups(frames + 1) * self.frame_tokens <= max_model_len:
            frames += 1
        return frames

    def tokens(self, max_model_len: int) -> int:
        """Language-model tokens of the profiling video at this max_model_len."""
        return self._groups(self.frames(max_model_len)) * self.frame_tokens

    def patches(self, max_model_len: int) -> int:
        """Vision-tower patches of the profiling video at this max_model_len."""
        return self._groups(self.frames(max_model_len)) * self.frame_patches


class EncoderFacts(BaseModel):
    """The largest single multimodal item of a model, as vLLM profiles it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    modality: str = "image"
    patches_per_item: int = Field(ge=1, description="Vision-tower tokens of the largest item")
    tokens_per_item: int = Field(ge=1, description="Language-model embeddings of the largest item")
    hidden_size: int = Field(ge=1, description="Vision tower width")
    intermediate_size: int = Field(ge=1, description="Vision tower MLP width")
    gated_mlp: bool = Field(default=False, description="SiLU-gated MLP (gate and up projections)")
    source: str = Field(default="", description="Where the item size comes from")
    input_values_per_patch: int = Field(
        default=0, ge=0, description="float32 pixel values per patch held through the pass (0: not modelled)")
    video: VideoItem | None = Field(default=None, description="The profiling video (families that take videos)")


def _width(vision: Mapping[str, Any]) -> tuple[int, int, bool]:
    # Qwen2-VL names the tower width embed_dim (its hidden_size is the language model's).
    hidden = config_int(vision, "embed_dim", "hidden_size") or 0
    inter = config_int(vision, "intermediate_size") or int((vision.get("mlp_ratio") or 4) * hidden)
    return hidden, inter, vision.get("hidden_act") == "silu"


def _qwen_vl(vision: Mapping[str, Any], max_pixels: int) -> tuple[int, int, str]:
    patch = config_int(vision, "patch_size", "spatial_patch_size") or 14
    merge = config_int(vision, "spatial_merge_size") or 2
    patches = max_pixels // (patch * patch)
    return patches, patches // (merge * merge), f"preprocessor max_pixels {max_pixels} (vLLM qwen2_vl.py)"


def _pixtral(top: Mapping[str, Any], vision: Mapping[str, Any]) -> tuple[int, int, str]:
    side = (config_int(vision, "image_size") or 1024) // (config_int(vision, "patch_size") or 16)
    merge = config_int(top, "spatial_merge_size") or 1
    rows = side // merge
    # One [IMG_BREAK]/[IMG_END] placeholder per row of merged patches (pixtral.py get_num_image_tokens).
    return side * side, rows * rows + rows, "vision_config.image_size / patch_size (pixtral.py)"


def _gemma3(top: Mapping[str, Any], vision: Mapping[str, Any]) -> tuple[int, int, str]:
    side = (config_int(vision, "image_size") or 896) // (config_int(vision, "patch_size") or 14)
    # Pan-and-scan is off by default: one crop of mm_tokens_per_image soft tokens (gemma3_mm.py),
    # placed in the processor's full_image_sequence "\n\n<start_of_image>…<end_of_image>\n\n"
    # (transformers processing_gemma3.py): vLLM budgets the framing too. A vLLM 0.11 start of
    # gemma-3-27b-it profiles "31 image items" for an 8192-token budget (bench/data source D):
    # 8192 // 260 = 31, where 256 tokens per item would give 32.
    tokens = (config_int(top, "mm_tokens_per_image") or 256) + GEMMA3_IMAGE_FRAMING_TOKENS
    return side * side, tokens, "mm_tokens_per_image + 4 framing tokens (gemma3_mm.py)"


def _llama4(vision: Mapping[str, Any]) -> tuple[int, int, str]:
    side = (config_int(vision, "image_size") or 336) // (config_int(vision, "patch_size") or 14)
    ratio = float(vision.get("pixel_shuffle_ratio") or 0.5)
    per_tile = side * side
    return (LLAMA4_MAX_TILES * per_tile, LLAMA4_MAX_TILES * math.floor(per_tile * ratio * ratio),
            "16 tiles + 1 global view of vision_config.image_size (mllama4.py)")


def encoder_facts(model_type: str, top: Mapping[str, Any], vision: Mapping[str, Any] | None) -> EncoderFacts | None:
    """The largest image item of a known multimodal family, or None (text models, unknown families)."""
    if not vision:
        return None
    if model_type in ("qwen2_5_vl", "qwen2_vl"):
        patches, tokens, source = _qwen_vl(vision, QWEN_VL_MAX_PIXELS)
    elif model_type in ("qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe"):
        patches, tokens, source = _qwen_vl(vision, QWEN3_VL_MAX_PIXELS)
    elif model_type in ("mistral3", "pixtral") or vision.get("model_type") == "pixtral":
        patches, tokens, source = _pixtral(top, vision)
    elif model_type == "gemma3":
        patches, tokens, source = _gemma3(top, vision)
    elif model_type == "llama4":
        patches, tokens, source = _llama4(vision)
    else:
        return None
    hidden, inter, gated = _width(vision)
    if min(patches, tokens, hidden, inter) < 1:
        return None
    video, inputs = None, 0
    if model_type in ("qwen2_5_vl", "qwen2_vl"):
        temporal = config_int(vision, "temporal_patch_size") or QWEN_VL_TEMPORAL_PATCH
        patch = config_int(vision, "patch_size", "spatial_patch_size") or 14
        inputs = (config_int(vision, "in_chans", "in_channels") or QWEN_VL_CHANNELS) * temporal * patch * patch
        video = VideoItem(frame_patches=patches, frame_tokens=tokens, temporal_patch_size=temporal,
                          max_frames=QWEN_VL_MAX_PROFILED_FRAMES)
    return EncoderFacts(patches_per_item=patches, tokens_per_item=tokens, hidden_size=hidden,
                        intermediate_size=inter, gated_mlp=gated, source=source,
                        input_values_per_patch=inputs, video=video)
