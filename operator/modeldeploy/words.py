"""Rules in words for messages people read: patterns described, values quoted.

Every pattern the API models use (api.base, api.deployment, api.pool) has a sentence here; a
pattern without one is described generically rather than shown as a regular expression.
"""

from __future__ import annotations

from typing import Any

from .api.base import DNS_LABEL, DNS_SUBDOMAIN
from .api.deployment import ENV_NAME, IMAGE, MODEL_NAME, QUANTITY, REVISION
from .api.pool import LABEL_KEY, LABEL_VALUE

_ALNUM_ENDS = "starting and ending with a lowercase letter or digit"

PATTERN_WORDS: dict[str, str] = {
    DNS_LABEL: f"a DNS label (lowercase letters, digits and '-', {_ALNUM_ENDS})",
    DNS_SUBDOMAIN: (f"a DNS subdomain (lowercase letters, digits, '-' and '.', each part "
                    f"{_ALNUM_ENDS})"),
    MODEL_NAME: ("a Hugging Face repo id (org/name) or a catalog id: letters, digits, '.', '_' "
                 "and '-', each part starting with a letter or digit"),
    REVISION: "a branch, tag or commit: letters, digits, '.', '_', '/' and '-'",
    IMAGE: ("a container image reference such as vllm/vllm-openai:v0.11.0 (repository in "
            "lowercase, no spaces or newlines)"),
    ENV_NAME: "an environment variable name (letters, digits and '_', not starting with a digit)",
    QUANTITY: "a size such as 200Gi (a whole or decimal number, then Ki, Mi, Gi, Ti, k, M, G or T)",
    LABEL_KEY: "a label key ([prefix/]name: a DNS subdomain prefix and a name of letters, digits, '-', '_' and '.')",
    LABEL_VALUE: ("a label value (letters, digits, '-', '_' and '.', starting and ending with a "
                  "letter or digit, or empty)"),
    r"^[-._a-zA-Z0-9]+$": "a Secret key (letters, digits, '-', '_' and '.')",
    r"^[A-Za-z0-9][A-Za-z0-9 ._()-]*$": ("a GPU product name (letters, digits, spaces, '.', '_', "
                                          "'(', ')' and '-', starting with a letter or digit)"),
    r"^[0-9]{1,2}\.[0-9]{1,2}$": "a compute capability such as 8.9 (major.minor)",
}


def describe_pattern(pattern: str) -> str:
    """The rule a pattern stands for, in words."""
    return PATTERN_WORDS.get(pattern, "in the format this field accepts (see docs/reference)")


def show(value: Any, limit: int = 80) -> str:
    """A value quoted for a one-line message: repr (escapes newlines), long ones shortened."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 20]}... ({len(str(value))} characters)"

