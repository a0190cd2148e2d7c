"""The typed render context: everything the templates interpolate, derived from (spec, plan, pool).

All arithmetic and every decision lives here, in Python; the templates only place values.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..api import CacheMode, GPUPool, ModelDeployment
from ..api.pool import LABEL_KEY, LABEL_VALUE
from ..decisions.rollout import RolloutStrategy
from ..errors import InvalidSpec, ModeldeployError
from ..planner import Plan
from .argv import PORT, check_env, kube_escape, vllm_args
from .cache import SharedMount, cache_key, shared_env, shared_mount
from .options import RenderOptions
from .rollout import RolloutInputs, default_replicas, progress_deadline, rollout_strategy
from .sizes import STARTUP_PROBE_BACKSTOP_SECONDS, Sizing, sizing

CACHE_MOUNT = "/cache"
HF_HOME = f"{CACHE_MOUNT}/huggingface"
RAY_PORT = 6379
HASH_ANNOTATION = "modeldeploy.dev/pod-template-hash"
POOL_ANNOTATION = "modeldeploy.dev/pool"  # on the workload: where its pods run (pool changes)
NAME_LABEL = "modeldeploy.dev/name"
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"

# Fixed scripts (no user data: the vLLM argv reaches the leader as "$@", never as shell text).
# No "$(" anywhere: the kubelet would expand it before the shell sees it.
LEADER_SCRIPT = f'ray start --head --port={RAY_PORT} --disable-usage-stats && exec vllm serve "$@"'
WORKER_SCRIPT = (
    f'until ray start --address="${{LWS_LEADER_ADDRESS}}:{RAY_PORT}" --disable-usage-stats'
    f' --block; do echo "waiting for the Ray head at ${{LWS_LEADER_ADDRESS}}:{RAY_PORT}";'
    " sleep 5; done"
)

# Label keys the operator, Kubernetes and GitOps tools own; a ModelDeployment's labels with these
# prefixes are not copied to its children.
_RESERVED_LABEL_DOMAINS = (
    "modeldeploy.dev", "kubernetes.io", "k8s.io", "leaderworkerset.sigs.k8s.io",
    "argoproj.io", "fluxcd.io", "kopf.zalando.org",
)


class PlanNotRenderable(ModeldeployError):
    """The plan has no layout (infeasible), so there is nothing to render."""

    reason = "NoFeasibleLayout"


@dataclass(frozen=True)
class ChildNames:
    """Names of a ModelDeployment's children (derived, never generated)."""

    deployment: str
    leader_worker_set: str
    service: str
    pod_disruption_budget: str
    cache: str
    service_monitor: str

    @property
    def horizontal_pod_autoscaler(self) -> str:
        """autoscaling.mode hpa: named after the ModelDeployment, like its Deployment."""
        return self.deployment

    @property
    def scaled_object(self) -> str:
        """autoscaling.mode keda (KEDA names the HPA it creates `keda-hpa-<name>`)."""
        return self.deployment

    @property
    def http_scaled_object(self) -> str:
        """autoscaling.scaleToZero: the KEDA HTTP add-on's route to the model."""
        return self.deployment

    @property
    def wake_service(self) -> str:
        """autoscaling.scaleToZero: the ExternalName Service clients call (the interceptor)."""
        return f"{self.deployment}-wake"


def child_names(md: ModelDeployment) -> ChildNames:
    # The LeaderWorkerSet controller creates a headless Service named after the LWS, so the LWS
    # must not share its name with our Service.
    n = md.metadata.name
    return ChildNames(n, f"{n}-lws", n, f"{n}-pdb", f"{n}-cache", n)


@dataclass(frozen=True)
class Meta:
    name: str
    namespace: str | None
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Env:
    name: str
    value: str | None = None
    secret_name: str | None = None
    secret_key: str | None = None


@dataclass(frozen=True)
class Pod:
    """One pod template: the Deployment's, or the leader's / workers' of a LeaderWorkerSet."""

    labels: dict[str, str]
    annotations: dict[str, str]
    container: str
    image: str
    command: list[str]
    args: list[str]
    env: list[Env]
    serves_http: bool
    port: int
    probe_period: int
    startup_failure_threshold: int
    requests: dict[str, str | int]
    limits: dict[str, str | int]
    shm_size: str
    cache_claim: str | None
    cache_mount: str
    shared_cache: SharedMount | None
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    run_as_user: int | None
    pre_stop_seconds: int = 0  # serving pods: drain endpoints before vLLM stops


def _reserved_label_key(key: str) -> bool:
    if "/" not in key:
        return False
    domain = key.split("/", 1)[0]
    return any(domain == d or domain.endswith("." + d) for d in _RESERVED_LABEL_DOMAINS)


def user_labels(md: ModelDeployment) -> dict[str, str]:
    """The ModelDeployment's own labels, minus reserved keys; each must be a valid label."""
    out: dict[str, str] = {}
    for key, value in md.metadata.labels.items():
        if _reserved_label_key(key):
            continue
        if len(key) > 316 or not re.match(LABEL_KEY, key):
            raise InvalidSpec(f"metadata.labels: key {key[:80]!r} is not a valid label key")
        if not isinstance(value, str) or len(value) > 63 or not re.match(LABEL_VALUE, value):
            raise InvalidSpec(
                f"metadata.labels[{key}]: {str(value)[:80]!r} is not a valid label value"
            )
        out[key] = value
    return out


def pod_annotations(md: ModelDeployment, options: RenderOptions) -> dict[str, str]:
    """ModelDeployment annotations whose key starts with an allowed prefix, copied verbatim."""
    out: dict[str, str] = {}
    for key, value in md.metadata.annotations.items():
        if not key.startswith(options.pod_annotation_prefixes):
            continue
        if len(key) > 316 or not re.match(LABEL_KEY, key):
            raise InvalidSpec(
                f"metadata.annotations: key {key[:80]!r} is not a valid annotation key"
            )
        if not isinstance(value, str):
            raise InvalidSpec(f"metadata.annotations[{key}]: value must be a string")
        out[key] = value
    return out


def common_labels(md: ModelDeployment) -> dict[str, str]:
    """Labels of every child object: the ModelDeployment's own labels and the operator's."""
    return {**user_labels(md), **pod_labels(md)}


def pod_labels(md: ModelDeployment) -> dict[str, str]:
    """Labels of the pod templates: the operator's, fixed for a given name. The user's labels
    stay off the pods: a label edit (`helm.sh/chart: models-0.1.1`) changes the pod template,
    and a changed template replaces every replica."""
    name = md.metadata.name
    return {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/managed-by": "modeldeploy",
        NAME_LABEL: name,
    }


def selector_labels(md: ModelDeployment) -> dict[str, str]:
    """The pods of one ModelDeployment (immutable Deployment selector: keep it this small)."""
    return {NAME_LABEL: md.metadata.name, "app.kubernetes.io/component": "server"}


def _cpu(cores: float) -> str:
    return str(int(cores)) if float(cores).is_integer() else f"{round(cores * 1000)}m"


def replica_bound(md: ModelDeployment, plan: Plan) -> int:
    """The most replicas the workload can have outside a rollout (the autoscaling maximum)."""
    if md.spec.autoscaling is not None:
        return max(plan.replicas, md.spec.autoscaling.max_replicas)
    return plan.replicas


def _max_pods_at_once(md: ModelDeployment, plan: Plan) -> int:
    """Pods that may mount the cache at once. From the spec only, never from observed capacity:
    a claim's access mode is immutable. Any maxSurge but an explicit 0 may surge (a pool change
    surges every replica)."""
    surge = 0 if md.spec.rollout.max_surge == 0 else 1
    return (replica_bound(md, plan) + surge) * max(1, plan.nodes_per_replica or 1)


@dataclass(frozen=True)
class Context:
    md: ModelDeployment
    plan: Plan
    pool: GPUPool
    options: RenderOptions
    names: ChildNames
    labels: dict[str, str]
    selector: dict[str, str]
    sizing: Sizing
    multi_node: bool
    replicas: int | None  # None: an autoscaler owns the count (omitted from the workload)
    strategy: RolloutStrategy
    progress_deadline_seconds: int
    cache_access_mode: str

    def meta(self, name: str, annotations: dict[str, str] | None = None,
             extra_labels: dict[str, str] | None = None) -> Meta:
        labels = {**self.labels, **(extra_labels or {})}
        return Meta(name, self.md.metadata.namespace, labels, annotations or {})


def build_context(
    md: ModelDeployment, plan: Plan, pool: GPUPool, options: RenderOptions,
    rollout_inputs: RolloutInputs | None = None,
) -> Context:
    layout = (plan.gpus_per_pod, plan.tensor_parallel_size, plan.pipeline_parallel_size)
    if not plan.feasible or not all(layout):
        raise PlanNotRenderable(f"{md.metadata.name}: no feasible layout: {plan.reason}")
    if plan.pool != pool.name:
        raise ValueError(f"plan chose pool {plan.pool!r} but pool {pool.name!r} was given")
    rollout = md.spec.rollout
    if rollout.max_surge == 0 and rollout.max_unavailable == 0:
        raise InvalidSpec("spec.rollout: maxSurge and maxUnavailable cannot both be 0")
    md = with_cache_default(md, sizing(plan, options).cache_gib, options.empty_dir_max_gib)
    mode = options.cache_access_mode
    if md.spec.cache.mode == "shared":
        mode = "ReadWriteMany"  # many pods, on many nodes, read one copy
    elif mode == "auto":
        mode = "ReadWriteMany" if _max_pods_at_once(md, plan) > 1 else "ReadWriteOnce"
    strategy = rollout_strategy(md, plan, rollout_inputs or RolloutInputs(), cache_access_mode=mode)
    return Context(
        md=md, plan=plan, pool=pool, options=options, names=child_names(md),
        labels=common_labels(md), selector=selector_labels(md), sizing=sizing(plan, options),
        multi_node=(plan.nodes_per_replica or 1) > 1,
        replicas=None if md.spec.autoscaling is not None else default_replicas(md, plan),
        strategy=strategy, progress_deadline_seconds=progress_deadline(md, plan, options),
        cache_access_mode=mode,
    )


def _env(ctx: Context) -> list[Env]:
    env = [Env("HF_HOME", HF_HOME)]
    if ctx.options.run_as_user is not None:
        env.append(Env("HOME", f"{CACHE_MOUNT}/home"))
    if ctx.md.spec.cache.mode == "shared":
        env += [Env(name, value) for name, value in shared_env()]
    token = ctx.md.spec.credentials.hugging_face_token
    if token is not None:
        env.append(Env("HF_TOKEN", secret_name=token.name, secret_key=token.key))
    ours = {e.name for e in env}
    for i, e in enumerate(ctx.md.spec.serving.env):
        if e.name in ours:
            raise InvalidSpec(f"spec.serving.env[{i}]: {e.name} is set by modeldeploy")
    return env + [Env(e.name, kube_escape(e.value)) for e in ctx.md.spec.serving.env]


def with_cache_default(md: ModelDeployment, cache_gib: int, empty_dir_max_gib: int) -> ModelDeployment:
    """`md` with the cache mode it gets when spec.cache.mode is not set: emptyDir, unless the
    cache needs more than `empty_dir_max_gib` of node-local storage, then a claim (pvc).

    A pod's emptyDir lives on the node's root disk, which is small on managed node groups
    (EKS CreateNodegroup diskSize default 20 GiB; GKE boot disk default 100 GB): requesting
    700+ GiB of ephemeral storage there leaves the pod Pending forever.
    """
    cache = md.spec.cache
    if "mode" in cache.model_fields_set or cache.mode != CacheMode.EMPTY_DIR or \
            cache_gib <= empty_dir_max_gib:
        return md
    spec = md.spec.model_copy(update={"cache": cache.model_copy(update={"mode": CacheMode.PVC.value})})
    return md.model_copy(update={"spec": spec})


def pods(ctx: Context) -> list[Pod]:
    """The pod templates: [server] for a Deployment, [leader, worker] for a LeaderWorkerSet."""
    check_env(ctx.md)
    plan, opts = ctx.plan, ctx.options
    gpus = int(plan.gpus_per_pod or 0)
    argv, _ = vllm_args(ctx.md, plan, ctx.multi_node)
    requests: dict[str, str | int] = {
        "cpu": _cpu(opts.cpu_request_per_gpu * gpus),
        "memory": f"{opts.memory_request_base_gib + opts.memory_request_per_gpu_gib * gpus}Gi",
        "nvidia.com/gpu": str(gpus),
    }
    if ctx.md.spec.cache.mode == "emptyDir" and opts.request_ephemeral_storage:
        requests["ephemeral-storage"] = f"{ctx.sizing.cache_gib}Gi"
    annotations = pod_annotations(ctx.md, opts)
    metrics = {} if opts.service_monitor else {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORT),
        "prometheus.io/path": "/metrics",
    }
    spec = ctx.pool.spec
    common: dict[str, Any] = {
        "labels": pod_labels(ctx.md),
        "image": ctx.md.spec.serving.image,
        "env": _env(ctx),
        "port": PORT,
        "probe_period": opts.probe_period_seconds,
        "startup_failure_threshold": math.ceil(
            STARTUP_PROBE_BACKSTOP_SECONDS / opts.probe_period_seconds
        ),
        "requests": requests,
        "limits": {"nvidia.com/gpu": str(gpus)},
        "shm_size": f"{opts.shm_gib_per_gpu * gpus}Gi",
        "cache_claim": ctx.names.cache if ctx.md.spec.cache.mode == "pvc" else None,
        "cache_mount": CACHE_MOUNT,
        "shared_cache": (
            shared_mount(cache_key(ctx.md, plan)) if ctx.md.spec.cache.mode == "shared" else None
        ),
        "node_selector": dict(spec.node_selector),
        "tolerations": [t.wire() for t in spec.tolerations],
        "run_as_user": opts.run_as_user,
    }
    drain = opts.pre_stop_seconds
    if not ctx.multi_node:
        return [Pod(annotations={**annotations, **metrics}, container="vllm",
                    command=["vllm", "serve"], args=argv, serves_http=True,
                    pre_stop_seconds=drain, **common)]
    leader = Pod(annotations={**annotations, **metrics}, container="vllm",
                 command=["sh", "-c", LEADER_SCRIPT, "vllm"], args=argv, serves_http=True,
                 pre_stop_seconds=drain, **common)
    worker = Pod(annotations=dict(annotations), container="vllm-worker",
                 command=["sh", "-c", WORKER_SCRIPT], args=[], serves_http=False, **common)
    return [leader, worker]
