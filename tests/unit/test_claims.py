"""docs/claims.md is what `python -m modeldeploy.planner.claims` generates, and every row has a verdict."""

from __future__ import annotations

import re
from pathlib import Path

from modeldeploy.planner.claims import CLAIMS, render_claims

DOC = Path(__file__).parents[2] / "docs" / "claims.md"


def _claims_and_verdicts(text: str) -> list[tuple[str, str]]:
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and "**" in line]
    return [(cells[0].lstrip("| "), cells[-1].strip("*| ")) for cells in rows]


def test_docs_claims_is_current() -> None:
    # Claims and verdicts must match; the numbers in between move with the memory and
    # performance models and are refreshed by the same command.
    assert _claims_and_verdicts(DOC.read_text(encoding="utf-8")) == _claims_and_verdicts(render_claims()), \
        "docs/claims.md is stale: run `python -m modeldeploy.planner.claims > docs/claims.md`"


def test_every_claim_row_has_a_verdict() -> None:
    rows = [line for line in render_claims().splitlines() if line.startswith("| ") and not line.startswith("| Claim")]
    assert len(rows) == len(CLAIMS) >= 6
    for row in rows:
        assert re.search(r"\| \*\*(true|partly|false)\*\* \|$", row), row


def test_the_known_answers() -> None:
    verdicts = {c().text: c().verdict for c in CLAIMS}
    # 671B parameters at FP8 exceed 8 × A100-80's 570 GiB budget; 80B never fits 12 GB.
    assert verdicts["DeepSeek V3 at full precision requires 8x A100"] == "false"
    assert verdicts["Qwen3-Coder-Next runs on an RTX 3060 12GB"] == "false"
    # Only quantized: 141 GB of BF16 weights cannot fit 80 GB.
    assert verdicts["Llama 3.3 70B fits on a single A100 80GB"] == "partly"
