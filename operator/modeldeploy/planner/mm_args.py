"""The multimodal settings a user gives vLLM through `spec.serving.extraArgs`. Pure.

modeldeploy has no field of its own for them: vLLM's defaults apply unless extraArgs say
otherwise, and the planner sizes the encoder profiling (planner/overhead.py encoder_profile)
with what the server will really use:

* `--limit-mm-per-prompt`: items of a modality one prompt may hold (vllm/config/multimodal.py,
  default 999 per modality; 0 disables the modality, and with every modality disabled vLLM
  initialises no encoder cache: encoder_cache_manager.py). Read in the forms vLLM's argument
  parser takes: JSON (`'{"image": 2}'`, a count or `{"count": 2, …}`), the older `image=2,video=1`,
  and the dotted `--limit-mm-per-prompt.image 2`. Only the image count matters here: the
  planner sizes image items (facts/encoder.py).
* `--skip-mm-profiling`: vLLM skips the encoder profiling run (gpu_model_runner.profile_run,
  "Skipping memory profiling for multimodal encoder and encoder cache").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_MM_LIMIT = 999  # vllm/config/multimodal.py: limit_per_prompt default per modality
_LIMIT_FLAG = "--limit-mm-per-prompt"
_SKIP_FLAG = "--skip-mm-profiling"


@dataclass(frozen=True)
class MultimodalArgs:
    """What the encoder profiling will see: images per prompt, and whether it runs at all."""

    image_limit: int = DEFAULT_MM_LIMIT
    profiled: bool = True

    @property
    def encoder_profiled(self) -> bool:
        return self.profiled and self.image_limit > 0


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


def _image_limit(text: str) -> int | None:
    """The image count in one --limit-mm-per-prompt value, or None when it names none."""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = dict(part.split("=", 1) for part in text.split(",") if "=" in part)  # image=2,video=1
    if not isinstance(parsed, dict):
        return None
    return _count(parsed.get("image"))


def _normalised(token: str) -> str:
    name, sep, value = token.partition("=")
    return "--" + name[2:].replace("_", "-") + sep + value if name.startswith("--") else token


def multimodal_args(extra_args: Sequence[str]) -> MultimodalArgs:
    """The multimodal settings in `extraArgs` (vLLM's defaults where they say nothing). The last
    occurrence wins, as with argparse; a value vLLM would reject is left to vLLM to reject."""
    limit, profiled = DEFAULT_MM_LIMIT, True
    args = [_normalised(a) for a in extra_args]
    for i, arg in enumerate(args):
        following = args[i + 1] if i + 1 < len(args) else ""
        found: int | None = None
        if arg in (_SKIP_FLAG, _SKIP_FLAG + "=true", _SKIP_FLAG + "=True"):
            profiled = False
        elif arg == "--no-" + _SKIP_FLAG[2:]:
            profiled = True
        elif arg == _LIMIT_FLAG:
            found = _image_limit(following)
        elif arg.startswith(_LIMIT_FLAG + "="):
            found = _image_limit(arg.split("=", 1)[1])
        elif arg == _LIMIT_FLAG + ".image":
            found = _count(following)
        elif arg.startswith(_LIMIT_FLAG + ".image="):
            found = _count(arg.split("=", 1)[1])
        if found is not None:
            limit = found
    return MultimodalArgs(image_limit=limit, profiled=profiled)
