"""`modeldeploy crd` and `modeldeploy rbac`: print the install manifests generated from code."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

import typer

from .. import crd as crds
from .. import rbac
from ..api.base import DNS_LABEL, DNS_SUBDOMAIN
from ..words import describe_pattern, show
from .exits import EXIT_INVALID
from .main import app


def _check_names(given: list[tuple[str, str, str]]) -> None:
    """(flag, value, pattern): a name the API server would refuse ends the command, exit 2."""
    limits = {DNS_LABEL: 63, DNS_SUBDOMAIN: 253}
    for flag, value, pattern in given:
        if len(value) > limits[pattern] or not re.match(pattern, value):
            typer.echo(f"error: {flag}: {show(value)} is not {describe_pattern(pattern)}, "
                       f"at most {limits[pattern]} characters", err=True)
            raise typer.Exit(EXIT_INVALID)


class KindName(StrEnum):
    MODEL_DEPLOYMENT = "ModelDeployment"
    GPU_POOL = "GPUPool"


@app.command("crd")
def crd_command(
    kind: list[KindName] = typer.Option(
        [], "--kind", "-k", help="Print only this kind's CRD (repeatable); default: both."),
) -> None:
    """Print the CustomResourceDefinitions (multi-document YAML, deterministic)."""
    wanted = {k.value for k in kind}
    selected = [k for k in crds.KINDS if not wanted or k.kind in wanted]
    typer.echo("".join(crds.crd_yaml(k) for k in selected), nl=False)


@app.command("rbac")
def rbac_command(
    namespace: list[str] = typer.Option(
        [], "--namespace", "-n",
        help="Namespaced mode: print a Role for each watched namespace (repeatable). "
             "Default: one ClusterRole for cluster-wide mode."),
    peering: bool = typer.Option(False, "--peering",
                                 help="Add the leader-election Lease Role (replicas > 1)."),
    operator_namespace: str = typer.Option(
        "modeldeploy", "--operator-namespace",
        help="With --peering: the operator's own namespace, where its Lease lives."),
    name: str = typer.Option("modeldeploy", "--name", help="Name of the ClusterRole / Roles."),
) -> None:
    """Print the operator's least-privilege RBAC, with the reason for each rule."""
    _check_names([("--namespace", ns, DNS_LABEL) for ns in namespace]
                 + [("--operator-namespace", operator_namespace, DNS_LABEL), ("--name", name, DNS_SUBDOMAIN)])
    mode = rbac.Mode.NAMESPACED if namespace else rbac.Mode.CLUSTER
    perms = rbac.permissions(mode, peering=peering)
    docs: list[dict[str, Any]] = []
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/name": "modeldeploy"}}
    if mode is rbac.Mode.CLUSTER:
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": meta, "rules": [p.rule() for p in perms]})
    for ns in namespace:
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                     "metadata": {**meta, "namespace": ns}, "rules": [p.rule() for p in perms]})
    if peering:
        perms = [*perms, rbac.LEADER_LEASE]
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                     "metadata": {**meta, "name": f"{name}-leader-election",
                                  "namespace": operator_namespace},
                     "rules": [rbac.LEADER_LEASE.rule()]})
    why = "".join(f"# {', '.join(p.resources)}: {p.why}\n" for p in perms)
    typer.echo(why + "".join("---\n" + crds.dump(d) for d in docs), nl=False)
