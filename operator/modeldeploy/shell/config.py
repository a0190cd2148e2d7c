"""OperatorConfig: the one settings object of the operator process.

Every setting, the renderer's included (`render`), is declared here once; from it come the
flags of `modeldeploy run` (`cli.run`), the environment variables (`MODELDEPLOY_<FIELD>`,
nested with `__`: `MODELDEPLOY_RENDER__PROMETHEUS_ADDRESS`), the chart's `operator:` values and
their part of values.schema.json (`install.values_schema`). Precedence: flags, then environment
variables, then `MODELDEPLOY_CONFIG` (a JSON object, what the chart passes), then defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ..api.base import DNS_LABEL
from ..render import RenderOptions

CONFIG_ENV = "MODELDEPLOY_CONFIG"


# Settings the chart sets through values of their own (watchNamespaces, peering, probes,
# metrics, huggingFace): not part of its `operator:` object.
CHART_OWN = frozenset({"kubeconfig", "context", "namespaces", "liveness", "peering",
                       "peering_name", "priority", "hub_endpoint", "offline", "metrics_port",
                       "metrics_address"})


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake_keys(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """Chart-style camelCase keys as field names, nested models included (a dict-valued
    setting such as a label map keeps its keys)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key if key in model.model_fields else snake(key)
        field = model.model_fields.get(name)
        nested = field.annotation if field is not None else None
        if isinstance(nested, type) and issubclass(nested, BaseModel) and \
                isinstance(value, Mapping):
            value = snake_keys(nested, value)
        out[name] = value
    return out


class _ChartJson(EnvSettingsSource):
    """`MODELDEPLOY_CONFIG`: settings as one JSON object, camelCase keys (the chart's values)."""

    def __call__(self) -> dict[str, Any]:
        raw = self.env_vars.get(CONFIG_ENV.lower())
        if not raw:
            return {}
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError(f"{CONFIG_ENV} must be a JSON object")
        return snake_keys(self.settings_cls, value)


class OperatorConfig(BaseSettings):
    """How one operator process runs. Defaults suit production; tests shorten the intervals."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix="MODELDEPLOY_", env_nested_delimiter="__",
        populate_by_name=True)

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _ChartJson(settings_cls)

    kubeconfig: Path | None = Field(
        default=None, validation_alias=AliasChoices("kubeconfig", "KUBECONFIG"),
        description="kubeconfig file; default: in-cluster, else ~/.kube/config.")
    context: str | None = Field(default=None, description="kubeconfig context.")
    namespaces: tuple[str, ...] = Field(
        default=(), json_schema_extra={"flag": "--namespace", "short": "-n"},
        description="Namespaces to serve (repeatable); empty = all namespaces (cluster-wide).")
    pools_namespace: str | None = Field(
        default=None, validation_alias=AliasChoices("pools_namespace", "POD_NAMESPACE"),
        description="Namespaced install: the namespace of the GPU pools ConfigMap (labelled "
                    "modeldeploy.dev/gpu-pools=true); default: the operator's own.")
    liveness: str | None = Field(
        default=None, description="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz.")
    peering: bool = Field(
        default=False, json_schema_extra={"flag": "--peering/--standalone"},
        description="Several replicas, one active: leader election on a coordination.k8s.io "
                    "Lease in the operator's namespace (docs/decisions/leader-election.md).")
    peering_name: str = Field(default="modeldeploy",
                              description="Name of the leader-election Lease.")
    priority: int = Field(default=0, description="Accepted for compatibility with kopf "
                                                 "peering; Lease election has no priorities.")
    lease_duration: int = Field(
        default=15, ge=2, le=3600,
        description="leaseDurationSeconds: a leader that stops renewing is replaced after "
                    "this long, s (client-go's default, 15).")
    lease_retry_period: float = Field(
        default=2.0, gt=0, le=600,
        description="The Lease is renewed (or tried for) this often, s (client-go's default, "
                    "2); below a third of lease_duration.")
    hub_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("hub_endpoint", "HF_ENDPOINT"),
        description="Hugging Face endpoint; default huggingface.co.")
    hub_timeout: float = Field(default=10.0, gt=0, description="Timeout of one hub request, s.")
    offline: bool = Field(default=False, description="Never consult the hub (catalog only).")
    hub_cache_dir: Path | None = Field(
        default=None, description="Hub download cache; default huggingface_hub's ($HF_HOME).")
    render: RenderOptions = Field(default_factory=RenderOptions)
    resync_interval: float = Field(
        default=60.0, gt=0, description="Every ModelDeployment is re-derived this often, s.")
    pool_status_interval: float = Field(
        default=30.0, gt=0, description="GPUPool status is refreshed this often, s.")
    discovery_interval: float = Field(
        default=300.0, gt=0, description="Installed APIs (LeaderWorkerSet, KEDA, ...) are re-read "
                                         "this often, s.")
    retry_backoff: tuple[float, ...] = Field(
        default=(1, 2, 4, 8, 16, 32), description="Delays between retries of transient failures.")
    max_concurrent_reconciles: int = Field(
        default=16, ge=1, le=1024, json_schema_extra={"flag": "--max-concurrent"},
        description="ModelDeployments reconciled at the same time.")
    max_concurrent_upgrades: int = Field(
        default=2, ge=1, le=1024,
        description="Models whose template changes without a spec change (an operator upgrade, "
                    "a GPUPool edit) roll this many at a time; the rest keep their template "
                    "until a slot frees.")
    request_timeout: float = Field(default=30.0, gt=0, description="One API request, s.")
    watch_server_timeout: int = Field(
        default=300, ge=1, json_schema_extra={"flag": "--watch-timeout"},
        description="Server-side timeout of a watch request, s.")
    watch_client_timeout: int | None = Field(
        default=None, ge=1, description="Client-side watch timeout, s; default server + 30.")
    connect_timeout: float = Field(default=10.0, gt=0, description="TCP connect timeout, s.")
    child_event_delay: float = Field(
        default=0.2, ge=0, description="Coalesce child events this long before reconciling, s.")
    emit_events: bool = Field(default=True, description="Emit Kubernetes Events.")
    scrape_interval: float = Field(
        default=15.0, gt=0, le=3600,
        description="Builtin autoscaling: every autoscaled model's pods are read this often, s.")
    vllm_metrics_port: int = Field(
        default=8000, ge=1, le=65535, description="Port of vLLM's /metrics on serving pods.")
    scrape_timeout: float = Field(
        default=2.0, gt=0, le=60, description="Timeout of one /metrics request, s.")
    scrape_max_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024,
        description="Largest /metrics response read; a larger one counts as unreadable.")
    scrape_concurrency: int = Field(
        default=16, ge=1, le=256, description="Pods of one model read at the same time.")
    start_log_interval: float = Field(
        default=15.0, gt=0, le=3600,
        description="Startup watchdog: a starting pod's (or a download Job's) log is read at "
                    "most this often, s.")
    start_log_tail_lines: int = Field(
        default=200, ge=10, le=10_000,
        description="Startup watchdog: lines read from the end of a starting pod's log.")
    start_log_max_bytes: int = Field(
        default=256 * 1024, ge=4096, le=16 * 1024 * 1024,
        description="Startup watchdog: most bytes read of one log (limitBytes).")
    keda_http_admin_service: str = Field(
        default="keda/keda-add-ons-http-interceptor-admin", max_length=317,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        json_schema_extra={"flag": "--keda-http-admin"},
        description="autoscaling.mode builtin with scaleToZero: namespace/name of the KEDA HTTP "
                    "add-on's interceptor admin Service; the operator reads `/queue` on each of "
                    "its endpoints (requests held for a model at zero wake it).")
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535,
        description="Serve the operator's own Prometheus metrics on this port (0: any free "
                    "port); None: off.")
    metrics_address: str = Field(
        default="0.0.0.0", min_length=1, max_length=255,
        description="Address the operator's metrics server binds to.")
    user_agent: str = Field(default="modeldeploy-operator", max_length=256,
                            description="User-Agent of the operator's API requests.")
    log_format: Literal["json", "plain"] = Field(default="json", description="json or plain.")
    verbose: bool = Field(default=False, json_schema_extra={"short": "-v"},
                          description="Debug logs.")

    @field_validator("namespaces", "pools_namespace")
    @classmethod
    def _namespace_names(cls, value: Any) -> Any:
        for name in value if isinstance(value, tuple) else [value] if value else []:
            if len(name) > 63 or not re.match(DNS_LABEL, name):
                raise ValueError(f"{name!r} is not a namespace name (a DNS label: at most 63 "
                                 "lowercase letters, digits and '-', starting and ending with a "
                                 "letter or digit)")
        return value

    @model_validator(mode="after")
    def _check(self) -> OperatorConfig:
        if len(set(self.namespaces)) != len(self.namespaces):
            raise ValueError("--namespace given twice")
        if self.lease_retry_period * 3 > self.lease_duration:
            raise ValueError("lease_retry_period must be at most a third of lease_duration")
        if not self.retry_backoff or any(d <= 0 for d in self.retry_backoff):
            raise ValueError("retry_backoff needs positive delays")
        if self.hub_endpoint and self.render.hub_endpoint is None:
            # The download Job reads the same hub mirror as the operator unless told otherwise
            # (frozen model: set once, while validating).
            object.__setattr__(self, "render",
                               self.render.model_copy(update={"hub_endpoint": self.hub_endpoint}))
        return self

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def client_watch_timeout(self) -> int:
        return self.watch_client_timeout or self.watch_server_timeout + 30
