"""The chart as installed on a real API server: its CRDs reject every invalid ModelDeployment of
the CRD test table (schema and CEL, after the server's defaulting, within the real CEL cost
budget), and its RBAC is enough for the operator cluster-wide and namespaced — the real
authorizer decides, and any refusal fails the scenario (`start_operator`)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from tests.install.test_crd_validation import INVALID
from tests.integration.harness import GROUP, VERSION

from .conftest import Env
from .install import install_rbac, service_account_token
from .plane import ControlPlane

# The validator of the CRD test table speaks jsonschema; the API server says the same things in
# its own words (k8s.io/apiextensions-apiserver validation errors, field.ErrorList). CEL rule
# messages are the rules' own and pass through unchanged.
SERVER_WORDS: tuple[tuple[str, str], ...] = (
    (r"^'(.+)' was unexpected$", r'unknown field "spec.\1"'),
    (r"^'(.+)' is a required property$", r"Required value"),
    (r"^is a required property$", r"Required value"),
    (r"^does not match$", r"should match"),
    (r"^is too long$", r"Too (long|many)"),
    (r"^is not one of$", r"Unsupported value"),
    (r"^less than the minimum of (\S+)$", r"should be greater than or equal to \1"),
    (r"^greater than the maximum of (\S+)$", r"should be less than or equal to \1"),
    (r"^less than or equal to the minimum of (\S+)$", r"should be greater than \1"),
    (r"^is not of type '(\w+)'$", r"must be of type \1"),
    (r"^is not valid under any of the given schemas$", r"must be of type integer"),
    (r"^Duplicate value$", r"Duplicate value"),
)


def server_message(message: str) -> str:
    """A regular expression for the API server's words."""
    for pattern, words in SERVER_WORDS:
        if re.match(pattern, message):
            return re.sub(pattern, words, message)
    return re.escape(message)


@pytest.fixture(scope="module")
def table_namespace(admin: ApiClient, operator_kubeconfig: Path) -> Iterator[str]:
    core = CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": "crd-table"}})
    yield "crd-table"
    core.delete_namespace("crd-table")


@pytest.mark.parametrize(("case", "obj", "message", "models"), INVALID,
                         ids=[c[0] for c in INVALID])
def test_invalid_model_deployment_is_rejected_by_the_api_server(
        admin: ApiClient, table_namespace: str, case: str, obj: dict[str, Any], message: str,
        models: str) -> None:
    body = copy.deepcopy(obj)
    body["metadata"]["namespace"] = table_namespace
    with pytest.raises(ApiException) as refused:
        CustomObjectsApi(admin).create_namespaced_custom_object(
            GROUP, VERSION, table_namespace, "modeldeployments", body,
            field_validation="Strict")  # kubectl's default
    assert refused.value.status in (400, 422), refused.value
    said = json.loads(refused.value.body)["message"]
    expected = server_message(message)
    assert re.search(expected, said), f"{case}: {expected!r} not in {said}"


@pytest.mark.usefixtures("scheduler")
def test_namespaced_install_serves_its_namespace_with_roles_only(
        env: Env, admin: ApiClient, plane: ControlPlane, start_operator: Any) -> None:
    """watchNamespaces: a Role per namespace and no cluster-scoped RBAC; the GPU pools come from
    the ConfigMap the chart renders in the operator's namespace (GPUPools are cluster-scoped).
    Everything the operator does, the real authorizer allows."""
    values = {"watchNamespaces": [env.ns], "gpuPools": [{"name": env.pool, "spec": env.spec}]}
    namespace, account = install_rbac(admin, values, "modeldeploy-namespaced",
                                      release="md-namespaced")
    kubeconfig = plane.write_kubeconfig(
        "namespaced", service_account_token(admin, namespace, account), env.ns)
    start_operator(f"--namespace={env.ns}", f"--pools-namespace={namespace}",
                   kubeconfig=kubeconfig)
    env.add_nodes(1)
    env.cluster.create(env.model("m"))
    env.cluster.wait_condition("m", "Ready", "True", timeout=60)
    (pod,) = env.pods("m")
    assert pod.spec.node_name in env.nodes
    assert env.cluster.md("m")["status"]["plan"]["pool"] == env.pool
