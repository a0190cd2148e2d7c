"""Every Kubernetes permission the operator needs, declared once, with the reason. Pure.

The Helm chart renders its ClusterRole / Roles from `charts/modeldeploy/files/rbac.yaml`, which
is generated from `PERMISSIONS` (`make crds`; a test fails on drift), and the operator's own
API calls are checked against `allows()`. A verb that no code path uses does not belong here.

Two install modes:
- cluster-wide (`watchNamespaces` empty): one ClusterRole with every rule for `Mode.CLUSTER`;
- namespaced (`watchNamespaces: [a, b]`): a Role in each watched namespace with the rules for
  `Mode.NAMESPACED` only. Cluster-scoped resources (nodes, GPUPools) are not readable in
  this mode, so nothing cluster-scoped is granted and no ClusterRole exists.

Namespaced mode adds one Role in the operator's own namespace: read ConfigMaps there, for the
GPU pools ConfigMap (`POOLS_CONFIG_MAP`, controller/pools/config.py). With peering (several
replicas), one more Role there: the leader-election Lease (`LEADER_LEASE`, shell/leader.py).

Deliberately absent: Secrets, and ConfigMaps elsewhere (the HF token reaches vLLM as a
secretKeyRef and the operator through its own env), CustomResourceDefinitions (LeaderWorkerSet presence comes
from API discovery, open to every authenticated client), Namespaces (kopf's scanning is
disabled, `shell/runtime.py`), `events.k8s.io` and event patches (events are created once).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml


class Mode(StrEnum):
    CLUSTER = "cluster"
    NAMESPACED = "namespaced"


BOTH = frozenset(Mode)
CLUSTER_ONLY = frozenset({Mode.CLUSTER})
NAMESPACED_ONLY = frozenset({Mode.NAMESPACED})

READ = ("get", "list", "watch")
OWN = ("get", "list", "watch", "create", "patch", "delete")
SCALE = ("get", "patch", "update")


@dataclass(frozen=True)
class Permission:
    """One PolicyRule and why the operator needs it."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    modes: frozenset[Mode] = BOTH
    peering: bool = False

    def rule(self) -> dict[str, Any]:
        return {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }

    def grants(self, group: str, resource: str, verb: str) -> bool:
        return group in self.api_groups and resource in self.resources and verb in self.verbs


PERMISSIONS: tuple[Permission, ...] = (
    # The API we serve. kopf runs event handlers only, so it never adds a finalizer or state
    # annotations: the operator writes nothing on a ModelDeployment except its status.
    Permission(("modeldeploy.dev",), ("modeldeployments",), READ,
               "kopf watches ModelDeployments (shell/handlers.py)"),
    Permission(("modeldeploy.dev",), ("modeldeployments/status",), ("patch",),
               "merge-patch observedGeneration, conditions, plan and replicas (Kube.patch_status)"),
    Permission(("modeldeploy.dev",), ("modeldeployments/finalizers",), ("update",),
               "children carry ownerReferences with blockOwnerDeletion "
               "(OwnerReferencesPermissionEnforcement admission)"),
    Permission(("modeldeploy.dev",), ("gpupools",), READ,
               "kopf watches GPUPools; the planner lists them", modes=CLUSTER_ONLY),
    Permission(("modeldeploy.dev",), ("gpupools/status",), ("patch",),
               "report nodes and free GPUs per pool (PoolStatusWriter)", modes=CLUSTER_ONLY),
    # Children: kopf watches them; server-side apply is a patch that may create; pruning deletes.
    Permission(("apps",), ("deployments",), OWN, "single-node replicas run as a Deployment"),
    Permission(("",), ("services",), OWN, "the OpenAI-compatible Service of each model"),
    Permission(("policy",), ("poddisruptionbudgets",), OWN,
               "keep serving replicas up through voluntary disruptions"),
    Permission(("",), ("persistentvolumeclaims",), OWN,
               "model cache in cache.mode pvc, and the shared claim of cache.mode shared"),
    Permission(("leaderworkerset.x-k8s.io",), ("leaderworkersets",), OWN,
               "multi-node replicas (pipeline parallel across nodes) run as a LeaderWorkerSet"),
    Permission(("monitoring.coreos.com",), ("servicemonitors",), OWN,
               "a ServiceMonitor per model when the operator runs with --service-monitor"),
    Permission(("autoscaling",), ("horizontalpodautoscalers",), OWN,
               "autoscaling.mode hpa renders a HorizontalPodAutoscaler"),
    Permission(("keda.sh",), ("scaledobjects",), OWN,
               "autoscaling.mode keda renders a KEDA ScaledObject"),
    Permission(("http.keda.sh",), ("httpscaledobjects",), OWN,
               "autoscaling.scaleToZero routes requests through the KEDA HTTP add-on"),
    Permission(("batch",), ("jobs",), OWN,
               "cache.mode shared: the Job that downloads a model into the shared claim"),
    Permission(("apps",), ("deployments/scale",), SCALE,
               "autoscaling.mode builtin sets the replicas of a Deployment"),
    Permission(("leaderworkerset.x-k8s.io",), ("leaderworkersets/scale",), SCALE,
               "autoscaling.mode builtin sets the replicas of a LeaderWorkerSet"),
    # Observation.
    Permission(("",), ("pods",), READ,
               "readiness and metrics endpoints of serving pods; GPU requests per node"),
    Permission(("",), ("nodes",), READ, "GPU capacity of the pools' nodes", modes=CLUSTER_ONLY),
    Permission(("storage.k8s.io",), ("storageclasses",), READ,
               "cache.mode shared: whether the claim's StorageClass exists and can be "
               "ReadWriteMany (StorageUnavailable instead of a claim that never binds)",
               modes=CLUSTER_ONLY),
    Permission(("",), ("pods/log",), ("get",),
               "startup watchdog: vLLM's load lines of starting pods and the download Job's "
               "progress lines (tail only, rate-limited; shell/starts.py)"),
    # The startup watchdog's one action: the kubelet no longer kills a start on a fixed budget.
    Permission(("",), ("pods",), ("delete",),
               "startup watchdog: delete a serving pod whose start stalled for stallSeconds so "
               "its Deployment / LeaderWorkerSet starts a fresh one (controller/starts.py)"),
    Permission(("discovery.k8s.io",), ("endpointslices",), ("list", "watch"),
               "autoscaling.mode builtin with scaleToZero: the KEDA HTTP add-on's interceptor pods "
               "(its admin Service's endpoints, watched from the first such model on), whose "
               "/queue counts wake a model at zero (shell/interceptor.py)", modes=CLUSTER_ONLY),
    # Reporting: one core/v1 Event per change (kopf's own event posting is off).
    Permission(("",), ("events",), ("create",), "events on ModelDeployments (Kube.emit)"),
)

# Namespaced mode only, granted in the operator's own namespace (not in the watched ones).
POOLS_CONFIG_MAP = Permission(
    ("",), ("configmaps",), READ,
    "namespaced mode: GPU pools from the ConfigMap labelled modeldeploy.dev/gpu-pools=true in the "
    "operator's namespace (GPUPools and Nodes are cluster-scoped)", modes=NAMESPACED_ONLY)

# --peering only, granted in the operator's own namespace (both modes): leader election.
LEADER_LEASE = Permission(
    ("coordination.k8s.io",), ("leases",), ("get", "create", "patch"),
    "--peering: read, create and renew the leader-election Lease (shell/leader.py)",
    peering=True)

# Aggregated into the default `edit` / `view` ClusterRoles (cluster mode only) so namespace
# users can manage ModelDeployments without a separate grant.
USER_ROLES: dict[str, tuple[Permission, ...]] = {
    "edit": (
        Permission(("modeldeploy.dev",), ("modeldeployments",),
                   ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"),
                   "users with edit on a namespace manage its ModelDeployments"),
        Permission(("modeldeploy.dev",), ("modeldeployments/scale",), ("get", "patch", "update"),
                   "kubectl scale modeldeployment"),
    ),
    "view": (
        Permission(("modeldeploy.dev",), ("modeldeployments", "modeldeployments/status"), READ,
                   "users with view on a namespace see its ModelDeployments"),
    ),
}


def permissions(mode: Mode, *, peering: bool) -> list[Permission]:
    """The permissions of one install mode, in declared order."""
    return [p for p in PERMISSIONS if mode in p.modes and (peering or not p.peering)]


def rules(mode: Mode, *, peering: bool) -> list[dict[str, Any]]:
    """PolicyRules for a ClusterRole (cluster mode) or each Role (namespaced mode)."""
    return [p.rule() for p in permissions(mode, peering=peering)]


def allows(group: str, resource: str, verb: str, *, mode: Mode = Mode.CLUSTER,
           peering: bool = False) -> bool:
    """Whether the operator's RBAC permits one call (`resource` may be `plural/subresource`)."""
    extra = [POOLS_CONFIG_MAP] if mode is Mode.NAMESPACED else []
    extra += [LEADER_LEASE] if peering else []
    return any(p.grants(group, resource, verb) for p in [*permissions(mode, peering=peering), *extra])


def _entries(perms: Iterable[Permission]) -> list[dict[str, Any]]:
    return [{**p.rule(), "why": p.why} for p in perms]


def chart_data() -> dict[str, Any]:
    """What the chart's templates read (`files/rbac.yaml`)."""
    return {
        mode.value: {"always": _entries(permissions(mode, peering=False))} for mode in Mode
    } | {"userRoles": {name: _entries(perms) for name, perms in USER_ROLES.items()},
         "poolsConfigMap": _entries([POOLS_CONFIG_MAP]),
         "leaderLease": _entries([LEADER_LEASE])}


def chart_file() -> str:
    header = (
        "# Generated from operator/modeldeploy/rbac.py by `make crds`. Do not edit.\n"
        "# The chart renders its ClusterRole / Roles from this file.\n"
    )
    return header + yaml.safe_dump(chart_data(), sort_keys=False, width=100)
