"""The operator's RBAC: one declared list, least privilege, rendered into the chart."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldeploy import rbac
from modeldeploy.rbac import Mode

ROOT = Path(__file__).resolve().parents[2]

CLUSTER_SCOPED = {"nodes", "gpupools", "gpupools/status", "customresourcedefinitions",
                  "clusterkopfpeerings", "namespaces", "persistentvolumes"}
FORBIDDEN = {"secrets", "configmaps", "serviceaccounts", "roles", "rolebindings", "clusterroles",
             "clusterrolebindings", "pods/exec", "pods/attach", "nodes/proxy", "namespaces",
             "customresourcedefinitions"}


def _rules(mode: Mode, peering: bool) -> set[tuple[str, str, str]]:
    return {(g, r, v) for p in rbac.permissions(mode, peering=peering)
            for g in p.api_groups for r in p.resources for v in p.verbs}


def test_every_rule_is_justified_and_specific() -> None:
    for p in (*rbac.PERMISSIONS, *(q for qs in rbac.USER_ROLES.values() for q in qs)):
        assert len(p.why) > 15, p
        assert "*" not in (*p.api_groups, *p.resources, *p.verbs), p
        assert p.modes, p


def test_no_access_to_secrets_rbac_or_exec() -> None:
    for mode in Mode:
        granted = {r for _, r, _ in _rules(mode, peering=True)}
        assert not granted & FORBIDDEN


def test_cluster_mode_grants_what_the_operator_needs() -> None:
    ok = rbac.allows
    assert ok("modeldeploy.dev", "modeldeployments", "watch")
    for verb in ("create", "update", "patch", "delete"):
        assert not ok("modeldeploy.dev", "modeldeployments", verb), "never write the user's object"
    assert ok("modeldeploy.dev", "modeldeployments/status", "patch")
    assert not ok("modeldeploy.dev", "modeldeployments/status", "update")
    assert ok("modeldeploy.dev", "modeldeployments/finalizers", "update")
    assert ok("modeldeploy.dev", "gpupools", "list")
    assert not ok("modeldeploy.dev", "gpupools", "patch")
    assert ok("modeldeploy.dev", "gpupools/status", "patch")
    for group, resource in [("apps", "deployments"), ("", "services"), ("policy", "poddisruptionbudgets"),
                            ("", "persistentvolumeclaims"), ("leaderworkerset.x-k8s.io", "leaderworkersets"),
                            ("autoscaling", "horizontalpodautoscalers"), ("keda.sh", "scaledobjects"),
                            ("monitoring.coreos.com", "servicemonitors")]:
        for verb in ("get", "list", "watch", "create", "patch", "delete"):
            assert ok(group, resource, verb), (resource, verb)
        assert not ok(group, resource, "update"), "server-side apply needs patch (and create), not update"
    assert ok("apps", "deployments/scale", "patch")
    assert ok("leaderworkerset.x-k8s.io", "leaderworkersets/scale", "update")
    assert ok("", "pods", "list") and not ok("", "pods", "create") and not ok("", "pods", "patch")
    # The startup watchdog: read starting pods' log tails, delete a pod whose start stalled.
    assert ok("", "pods", "delete") and ok("", "pods/log", "get")
    assert not ok("", "pods/log", "list") and not ok("", "pods/exec", "create")
    assert ok("", "nodes", "watch") and not ok("", "nodes", "patch")
    assert ok("", "events", "create")
    assert not ok("", "events", "patch") and not ok("events.k8s.io", "events", "create")


def test_the_startup_watchdog_works_in_both_install_modes() -> None:
    for mode in Mode:
        assert rbac.allows("", "pods/log", "get", mode=mode)
        assert rbac.allows("", "pods", "delete", mode=mode)


def test_discovery_replaces_reading_crds() -> None:
    for verb in ("get", "list", "watch"):
        assert not rbac.allows("apiextensions.k8s.io", "customresourcedefinitions", verb)


# The plural of every kind the operator watches (what RBAC rules name).
PLURALS = {"ModelDeployment": "modeldeployments", "GPUPool": "gpupools", "Pod": "pods",
           "Node": "nodes", "Deployment": "deployments", "Service": "services",
           "PodDisruptionBudget": "poddisruptionbudgets",
           "PersistentVolumeClaim": "persistentvolumeclaims",
           "HorizontalPodAutoscaler": "horizontalpodautoscalers",
           "LeaderWorkerSet": "leaderworkersets", "ServiceMonitor": "servicemonitors",
           "ScaledObject": "scaledobjects", "Job": "jobs", "HTTPScaledObject": "httpscaledobjects"}


def test_the_operators_own_api_calls_are_allowed() -> None:
    """Every kind the operator's informers watch is listable and watchable; every child kind
    is patchable (server-side apply) and deletable; statuses and events are writable."""
    from modeldeploy.shell import view

    def group(api_version: str) -> str:
        return api_version.rpartition("/")[0]

    children = view.CORE_CHILDREN + view.OPTIONAL_CHILDREN
    for api_version, kind in (*children, view.MODEL_DEPLOYMENT, view.GPU_POOL, view.POD, view.NODE):
        for verb in ("list", "watch"):
            assert rbac.allows(group(api_version), PLURALS[kind], verb), (kind, verb)
    for api_version, kind in children:
        for verb in ("patch", "delete"):
            assert rbac.allows(group(api_version), PLURALS[kind], verb), (kind, verb)
    for api_version, kind in (view.MODEL_DEPLOYMENT, view.GPU_POOL):
        assert rbac.allows(group(api_version), f"{PLURALS[kind]}/status", "patch")
    assert rbac.allows("", "events", "create")


def test_namespaced_mode_grants_nothing_cluster_scoped() -> None:
    granted = {r for _, r, _ in _rules(Mode.NAMESPACED, peering=True)}
    assert not granted & CLUSTER_SCOPED
    assert "deployments" in granted and "modeldeployments/status" in granted
    assert not rbac.allows("", "nodes", "list", mode=Mode.NAMESPACED)


def test_lease_only_with_peering_and_no_kopf_peering_at_all() -> None:
    for mode in Mode:
        assert not rbac.allows("coordination.k8s.io", "leases", "patch", mode=mode)
        for verb in ("get", "create", "patch"):
            assert rbac.allows("coordination.k8s.io", "leases", verb, mode=mode, peering=True)
        assert not rbac.allows("coordination.k8s.io", "leases", "delete", mode=mode, peering=True)
        # kopf runs standalone: its peering objects are never touched.
        assert not rbac.allows("kopf.dev", "kopfpeerings", "patch", mode=mode, peering=True)
        assert not rbac.allows("kopf.dev", "clusterkopfpeerings", "patch", mode=mode,
                               peering=True)


def test_rules_are_policy_rules() -> None:
    for mode in Mode:
        for rule in rbac.rules(mode, peering=True):
            assert set(rule) == {"apiGroups", "resources", "verbs"}
            assert rule["verbs"] and rule["resources"]


def test_chart_file_carries_the_same_rules() -> None:
    data = yaml.safe_load((ROOT / "charts/modeldeploy/files/rbac.yaml").read_text())
    for mode in Mode:
        always = [{k: v for k, v in e.items() if k != "why"} for e in data[mode.value]["always"]]
        assert always == rbac.rules(mode, peering=False) == rbac.rules(mode, peering=True)
    lease = [{k: v for k, v in e.items() if k != "why"} for e in data["leaderLease"]]
    assert lease == [rbac.LEADER_LEASE.rule()]
    assert set(data["userRoles"]) == {"edit", "view"}


@pytest.mark.parametrize("role", ["view"])
def test_view_role_cannot_write(role: str) -> None:
    for p in rbac.USER_ROLES[role]:
        assert set(p.verbs) <= {"get", "list", "watch"}
