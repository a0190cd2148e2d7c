"""The multimodal settings a user gives vLLM through `spec.serving.extraArgs`. Pure.

modeldeploy has no field of its own for them: vLLM's defaults apply unless extraArgs say
otherwise, and the planner sizes the encoder profiling (planner/overhead.py encoder_profile)
with what the server will really use:

* `--limit-mm-per-prompt`: items of a modality one prompt may hold (vllm/config/multimodal.py,
  default 999 per modality; 0 disables the modality, and with every modality disabled vLLM
  initialises no encoder cache: encoder_cache_manager.py). Read in the forms vLLM's argument
  parser takes: JSON (`'{"image": 2}'`, a count or `{"count": 2, …}`), the older `image=2,video=1`,
  and the dotted `--limit-mm-per-prompt.image 2`. The image and video counts matter here: the
  planner sizes image items and, for Qwen2-VL / Qwen2.5-VL, the profiling video (facts/encoder.py).
* `--skip-mm-profiling`: vLLM skips the encoder profiling run (gpu_model_runner.profile_run,
  "Skipping memory profiling for multimodal encoder and encoder cache").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .vllm_flags import flag_objects, normalised

DEFAULT_MM_LIMIT = 999  # vllm/config/multimodal.py: limit_per_prompt default per modality
_LIMIT_FLAG = "--limit-mm-per-prompt"
_SKIP_FLAG = "--skip-mm-profiling"
_MODALITIES = ("image", "video")


@dataclass(frozen=True)
class MultimodalArgs:
    """What the encoder profiling will see: images and videos per prompt, and whether it runs."""

    image_limit: int = DEFAULT_MM_LIMIT
    profiled: bool = True
    video_limit: int = DEFAULT_MM_LIMIT


VLLM_DEFAULTS = MultimodalArgs()  # no extraArgs about multimodal inputs


def _count(value: Any) -> int | None:
    """A modality's limit: an integer, or an object with `count` (vLLM's per-modality options)."""
    if isinstance(value, dict):
        value = value.get("count")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _legacy(text: str) -> dict[str, Any]:
    """The older `image=2,video=1` form of --limit-mm-per-prompt."""
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


def multimodal_args(extra_args: Sequence[str]) -> MultimodalArgs:
    """The multimodal settings in `extraArgs` (vLLM's defaults where they say nothing). The last
    occurrence wins, as with argparse; a value vLLM would reject is left to vLLM to reject."""
    limits = {m: DEFAULT_MM_LIMIT for m in _MODALITIES}
    for given in flag_objects(extra_args, _LIMIT_FLAG, _legacy):
        for modality in _MODALITIES:
            count = _count(given.get(modality))
            if count is not None:
                limits[modality] = count
    profiled = True
    for arg in (normalised(a) for a in extra_args):
        if arg in (_SKIP_FLAG, _SKIP_FLAG + "=true", _SKIP_FLAG + "=True"):
            profiled = False
        elif arg == "--no-" + _SKIP_FLAG[2:]:
            profiled = True
    return MultimodalArgs(image_limit=limits["image"], profiled=profiled, video_limit=limits["video"])
