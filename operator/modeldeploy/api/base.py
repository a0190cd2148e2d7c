"""Shared pydantic configuration for every API object.

camelCase aliases on the wire, snake_case in Python; unknown fields are rejected so a typo in
a spec is an error, not a silently ignored setting.
"""

from __future__ import annotations

import datetime

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

GROUP = "modeldeploy.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# DNS-1123 label: what Kubernetes accepts for object names we derive children from.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def rfc3339(ts: float) -> str:
    """Epoch seconds as the API's timestamps (metav1.Time: RFC 3339, UTC, whole seconds)."""
    return datetime.datetime.fromtimestamp(int(ts), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiModel(BaseModel):
    """Base for spec/status models: camelCase wire names, strict about unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
        validate_default=True,
    )

    def wire(self) -> dict[str, object]:
        """The object as it appears in Kubernetes (camelCase, unset optionals dropped)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
