"""OperatorConfig: everything `modeldeploy run` (and the integration tests) can set."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..render import RenderOptions


class OperatorConfig(BaseModel):
    """How one operator process runs. Defaults suit production; tests shorten the intervals."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kubeconfig: Path | None = Field(
        default=None, description="kubeconfig file; default: in-cluster, else $KUBECONFIG/~/.kube.")
    context: str | None = Field(default=None, description="kubeconfig context.")
    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces to serve; empty = all namespaces (cluster-wide).")
    liveness: str | None = Field(
        default=None, description="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz.")
    peering: bool = Field(default=False, description="kopf peering (several replicas, one active).")
    peering_name: str = Field(default="modeldeploy", description="Name of the kopf peering object.")
    priority: int = Field(default=0, description="Peering priority of this replica.")
    hub_endpoint: str | None = Field(
        default=None, description="Hugging Face endpoint; default $HF_ENDPOINT or huggingface.co.")
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
    max_concurrent_reconciles: int = Field(default=16, ge=1, le=1024)
    max_concurrent_upgrades: int = Field(
        default=2, ge=1, le=1024,
        description="Models whose template changes without a spec change (an operator upgrade, "
                    "a GPUPool edit) roll this many at a time; the rest keep their template "
                    "until a slot frees.")
    request_timeout: float = Field(default=30.0, gt=0, description="One API request, s.")
    watch_server_timeout: int = Field(
        default=300, ge=1, description="Server-side timeout of a watch request, s.")
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
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535,
        description="Serve the operator's own Prometheus metrics on this port (0: any free "
                    "port); None: off.")
    metrics_address: str = Field(
        default="0.0.0.0", min_length=1, max_length=255,
        description="Address the operator's metrics server binds to.")
    user_agent: str = Field(default="modeldeploy-operator", max_length=256)

    @model_validator(mode="after")
    def _check(self) -> OperatorConfig:
        if len(set(self.namespaces)) != len(self.namespaces):
            raise ValueError("--namespace given twice")
        if not self.retry_backoff or any(d <= 0 for d in self.retry_backoff):
            raise ValueError("retry_backoff needs positive delays")
        return self

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def client_watch_timeout(self) -> int:
        return self.watch_client_timeout or self.watch_server_timeout + 30
