"""Operator-level rendering settings: set by whoever installs the operator, never by a user."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import __version__
from ..api.base import DNS_SUBDOMAIN
from ..api.deployment import IMAGE
from ..api.pool import LABEL_KEY, LABEL_VALUE

# Pod annotations a ModelDeployment may carry down to its pods, by key prefix. Everything else on
# the ModelDeployment (kubectl, Argo CD, Flux and kopf bookkeeping) stays off the pod template,
# because any change there would restart a model that takes minutes to load.
DEFAULT_POD_ANNOTATION_PREFIXES: tuple[str, ...] = (
    "karpenter.sh/",
    "cluster-autoscaler.kubernetes.io/",
    "sidecar.istio.io/",
    "linkerd.io/",
    "ad.datadoghq.com/",
)


_METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"


class AdapterMetricNames(BaseModel):
    """Names under which a Prometheus adapter serves vLLM's gauges in custom.metrics.k8s.io.

    vLLM exports `vllm:num_requests_waiting` etc.; adapters usually rename the colon (the
    prometheus-adapter rule `name: {matches: "^vllm:(.*)$", as: "vllm_${1}"}`), hence the defaults.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests_waiting: str = Field(
        default="vllm_num_requests_waiting", max_length=253, pattern=_METRIC_NAME,
        description="Pods metric for vllm:num_requests_waiting.")
    requests_running: str = Field(
        default="vllm_num_requests_running", max_length=253, pattern=_METRIC_NAME,
        description="Pods metric for vllm:num_requests_running.")
    kv_cache_usage: str = Field(
        default="vllm_kv_cache_usage_perc", max_length=253, pattern=_METRIC_NAME,
        description="Pods metric for vllm:kv_cache_usage_perc (a 0-1 fraction).")


class RenderOptions(BaseModel):
    """Knobs of the renderer. Defaults suit the common cloud GPU node shapes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_monitor: bool = Field(
        default=False, description="Emit a ServiceMonitor instead of prometheus.io/* annotations.")
    service_monitor_labels: dict[str, str] = Field(
        default_factory=dict, json_schema_extra={"flag": "--service-monitor-label"},
        description="Extra ServiceMonitor labels (e.g. the Prometheus serviceMonitorSelector).")
    cpu_request_per_gpu: float = Field(
        default=3.0, gt=0, le=256, description="CPU cores requested per GPU of a pod.")
    memory_request_base_gib: int = Field(
        default=8, ge=1, le=4096, description="Host memory per pod, GiB, before the GPU share.")
    memory_request_per_gpu_gib: int = Field(
        default=4, ge=0, le=1024, description="Host memory requested per GPU of a pod, GiB.")
    shm_gib_per_gpu: int = Field(
        default=2, ge=1, le=256, description="/dev/shm per GPU of a pod, GiB (NCCL, workers).")
    startup_base_seconds: int = Field(
        default=600, ge=60, le=86_400,
        description="Startup budget before weights: image start, CUDA init, compile, graphs.")
    startup_seconds_per_gib: float = Field(
        default=8.0, ge=0, le=600,
        description="Startup budget per GiB of checkpoint (download ~128 MiB/s, then load).")
    startup_unknown_seconds: int = Field(
        default=3600, ge=60, le=86_400, description="Startup budget when weights are unknown.")
    probe_period_seconds: int = Field(
        default=10, ge=1, le=300, description="Period of the startup/readiness/liveness probes.")
    run_as_user: int | None = Field(
        default=None, ge=1, le=2**31 - 1,
        description="Run vLLM as this non-root UID (only for images built for it).")
    pod_annotation_prefixes: tuple[str, ...] = Field(
        default=DEFAULT_POD_ANNOTATION_PREFIXES,
        description="ModelDeployment annotation key prefixes copied to the pod template.")
    cache_access_mode: Literal["auto", "ReadWriteOnce", "ReadWriteMany"] = Field(
        default="auto",
        description="PVC access mode; auto = ReadWriteMany when several pods may mount it.")
    adapter_metrics: AdapterMetricNames = Field(
        default_factory=AdapterMetricNames,
        description="autoscaling.mode hpa: the Pods metric names the Prometheus adapter exposes.")
    prometheus_address: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090", max_length=2048,
        pattern=r"^https?://[^\s\"'`\\]+$",
        description="autoscaling.mode keda: the Prometheus server KEDA queries (serverAddress).")
    keda_polling_interval_seconds: int = Field(
        default=15, ge=1, le=3600,
        description="autoscaling.mode keda: how often KEDA evaluates the trigger (pollingInterval).")
    keda_wake_query: str | None = Field(
        default=None, min_length=1, max_length=2048,
        description=(
            "autoscaling.mode keda with scaleToZero: PromQL for demand that exists while no vLLM "
            "pod runs (e.g. requests queued at a gateway), or-ed into the trigger query. "
            "$namespace and $service are replaced by the escaped names; use them inside "
            "double-quoted label values."))
    cache_storage_class_name: str | None = Field(
        default=None, max_length=253, pattern=DNS_SUBDOMAIN,
        json_schema_extra={"flag": "--cache-storage-class"},
        description=(
            "StorageClass of cache claims whose spec.cache.storageClassName is unset (chart value "
            "cache.storageClassName); spec.cache.mode shared needs one with ReadWriteMany."))
    download_image: str = Field(
        default=f"ghcr.io/modeldeploy/modeldeploy:{__version__}", max_length=512, pattern=IMAGE,
        description="Image of the shared cache's download Job: the operator's own (it runs "
                    "`modeldeploy download`, huggingface_hub inside).")
    hub_endpoint: str | None = Field(
        default=None, max_length=2048, pattern=r"^https?://[^\s\"'`\\]+$",
        json_schema_extra={"flag": "--download-hub-endpoint"},
        description="HF_ENDPOINT for the download Job (a hub mirror); None: huggingface.co.")
    empty_dir_max_gib: int = Field(
        default=100, ge=1, le=100_000,
        description="Largest model cache kept in an emptyDir when spec.cache.mode is not set, GiB; "
                    "a larger one gets a claim (pvc). Node root disks are small: EKS managed node "
                    "groups default to 20 GiB, GKE boot disks to 100 GB.")
    keda_http_interceptor: str = Field(
        default="keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local", max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="autoscaling.scaleToZero: DNS name of the KEDA HTTP add-on's interceptor proxy "
                    "Service (the add-on's Helm chart: keda-add-ons-http-interceptor-proxy).")
    keda_http_interceptor_port: int = Field(
        default=8080, ge=1, le=65535, description="Port of the interceptor proxy Service.")
    keda_http_scaler_address: str = Field(
        default="keda-add-ons-http-external-scaler.keda:9090", max_length=300,
        json_schema_extra={"flag": "--keda-http-scaler"},
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[0-9]{1,5}$",
        description="autoscaling.mode keda with scaleToZero: host:port of the add-on's external "
                    "scaler (the ScaledObject's external-push trigger).")
    keda_http_response_header_timeout_seconds: int = Field(
        default=600, ge=1, le=86_400, json_schema_extra={"flag": "--keda-http-response-timeout"},
        description="How long the interceptor waits for vLLM's response headers; a non-streamed "
                    "completion sends them only when it is done (add-on default: 500 ms).")
    cluster_domain: str = Field(
        default="cluster.local", max_length=253, pattern=DNS_SUBDOMAIN,
        description="The cluster's DNS domain (Service names the interceptor routes on).")
    pre_stop_seconds: int = Field(
        default=10, ge=0, le=300,
        description=(
            "Serving pods sleep this long in a preStop hook before vLLM gets SIGTERM, so "
            "Services, kube-proxy and load balancers stop sending requests first (endpoint "
            "removal is asynchronous: kubernetes.io/docs/concepts/workloads/pods/"
            "pod-lifecycle/#pod-termination). 0: no hook."))
    request_ephemeral_storage: bool = Field(
        default=True,
        description="With an emptyDir cache, request the cache size as ephemeral-storage.")

    @field_validator("service_monitor_labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        import re

        for k, v in labels.items():
            valid = len(k) <= 316 and re.match(LABEL_KEY, k) and len(v) <= 63
            if not valid or not re.match(LABEL_VALUE, v):
                raise ValueError(f"service monitor label {k!r}={v!r} is not a valid label")
        return labels
