"""`modeldeploy run`: the operator (kopf) against the cluster of a kubeconfig or in-cluster."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import kopf
import typer
from pydantic import ValidationError

from ..errors import describe_validation_error
from ..render import RenderOptions
from ..shell.config import OperatorConfig
from ..shell.runner import run_operator
from .main import app


def _labels(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not key=value")
        out[key] = value
    return out


def _requests(cpu: float | None, base: int | None, per_gpu: int | None) -> dict[str, Any]:
    """The serving pods' CPU / memory request settings that were given (others keep defaults)."""
    given = {"cpu_request_per_gpu": cpu, "memory_request_base_gib": base,
             "memory_request_per_gpu_gib": per_gpu}
    return {k: v for k, v in given.items() if v is not None}


@app.command("run")
def run_command(
    kubeconfig: Annotated[Path | None, typer.Option(
        "--kubeconfig", envvar="KUBECONFIG",
        help="kubeconfig file. Default: in-cluster config inside a pod, else ~/.kube/config.")
    ] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context to use.")] = None,
    namespace: Annotated[list[str] | None, typer.Option(
        "--namespace", "-n",
        help="Serve ModelDeployments of this namespace (repeatable). Default: all namespaces.")
    ] = None,
    all_namespaces: Annotated[bool, typer.Option(
        "--all-namespaces", "-A",
        help="Serve every namespace, cluster-wide (the default when no --namespace is given).")
    ] = False,
    liveness: Annotated[str | None, typer.Option(
        help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz (kopf's probe server).")
    ] = None,
    peering: Annotated[bool, typer.Option(
        "--peering/--standalone",
        help="kopf peering, so that only one of several replicas is active. Default: off.")
    ] = False,
    peering_name: Annotated[str, typer.Option(help="Name of the kopf peering object.")
                            ] = "modeldeploy",
    priority: Annotated[int, typer.Option(help="Peering priority of this replica.")] = 0,
    hub_endpoint: Annotated[str | None, typer.Option(
        envvar="HF_ENDPOINT", help="Hugging Face endpoint for model metadata.")] = None,
    hub_timeout: Annotated[float, typer.Option(help="Timeout of one hub request, s.")] = 10.0,
    offline: Annotated[bool, typer.Option(
        help="Never contact the hub: the catalog and spec.model.architecture only.")] = False,
    service_monitor: Annotated[bool, typer.Option(
        help="Emit a ServiceMonitor per model (Prometheus Operator) instead of annotations.")
    ] = False,
    service_monitor_label: Annotated[list[str] | None, typer.Option(
        help="Extra ServiceMonitor label key=value, e.g. release=prometheus (repeatable).")
    ] = None,
    cache_storage_class: Annotated[str | None, typer.Option(
        help="StorageClass of model cache claims whose spec.cache.storageClassName is unset "
             "(cache.mode shared needs ReadWriteMany).")] = None,
    download_image: Annotated[str | None, typer.Option(
        help="Image of the shared cache's download Job (default: this operator's image).")
    ] = None,
    resync_interval: Annotated[float, typer.Option(
        help="Re-derive every ModelDeployment this often (drift repair), s.")] = 60.0,
    pool_status_interval: Annotated[float, typer.Option(
        help="Refresh GPUPool status this often, s.")] = 30.0,
    watch_timeout: Annotated[int, typer.Option(
        help="Server-side timeout of each watch request, s (the client waits 30 s longer).")
    ] = 300,
    request_timeout: Annotated[float, typer.Option(help="Timeout of one API request, s.")
                               ] = 30.0,
    max_concurrent: Annotated[int, typer.Option(
        help="ModelDeployments reconciled at the same time.")] = 16,
    max_concurrent_upgrades: Annotated[int, typer.Option(
        help="Models whose template changes without a spec change (an operator upgrade) roll "
             "this many at a time.")] = 2,
    cpu_request_per_gpu: Annotated[float | None, typer.Option(
        help="CPU cores a serving pod requests per GPU (default: the render default).")
    ] = None,
    memory_request_base_gib: Annotated[int | None, typer.Option(
        help="Host memory a serving pod requests before its GPU share, GiB.")] = None,
    memory_request_per_gpu_gib: Annotated[int | None, typer.Option(
        help="Host memory a serving pod requests per GPU, GiB.")] = None,
    scrape_interval: Annotated[float, typer.Option(
        help="Builtin autoscaling: read every autoscaled model's vLLM /metrics this often, s.")
    ] = 15.0,
    vllm_metrics_port: Annotated[int, typer.Option(
        help="Port of vLLM's /metrics on the serving pods.")] = 8000,
    metrics_port: Annotated[int | None, typer.Option(
        envvar="MODELDEPLOY_METRICS_PORT",
        help="Serve the operator's own Prometheus metrics on this port (/metrics). Default: off.")
    ] = None,
    metrics_address: Annotated[str, typer.Option(
        help="Address the operator's metrics server binds to.")] = "0.0.0.0",
    log_format: Annotated[str, typer.Option(help="json or plain.")] = "json",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs.")] = False,
) -> None:
    """Run the operator: watch ModelDeployments and keep their workloads converged."""
    namespaces = tuple(namespace or ())
    if namespaces and all_namespaces:
        raise typer.BadParameter("--namespace and --all-namespaces exclude each other")
    try:
        config = OperatorConfig(
            kubeconfig=kubeconfig, context=context, namespaces=namespaces, liveness=liveness,
            peering=peering, peering_name=peering_name, priority=priority,
            hub_endpoint=hub_endpoint, hub_timeout=hub_timeout, offline=offline,
            render=RenderOptions(service_monitor=service_monitor,
                                 service_monitor_labels=_labels(service_monitor_label or []),
                                 cache_storage_class_name=cache_storage_class,
                                 hub_endpoint=hub_endpoint,
                                 **({"download_image": download_image} if download_image else {}),
                                 **_requests(cpu_request_per_gpu, memory_request_base_gib,
                                             memory_request_per_gpu_gib)),
            resync_interval=resync_interval, pool_status_interval=pool_status_interval,
            watch_server_timeout=watch_timeout, request_timeout=request_timeout,
            max_concurrent_reconciles=max_concurrent,
            max_concurrent_upgrades=max_concurrent_upgrades, scrape_interval=scrape_interval,
            vllm_metrics_port=vllm_metrics_port, metrics_port=metrics_port,
            metrics_address=metrics_address,
        )
    except ValidationError as exc:
        raise typer.BadParameter(describe_validation_error(exc)) from None
    if log_format not in ("json", "plain"):
        raise typer.BadParameter("--log-format is json or plain")
    kopf.configure(
        debug=verbose, verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if not verbose:  # kopf logs every watch-event handler call; our own logs say what changed
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    run_operator(config)

