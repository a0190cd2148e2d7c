"""The shared model cache on the real control plane: a StorageClass that cannot provide
ReadWriteMany is `StorageUnavailable` with the fix, read by the operator as the chart's
ServiceAccount (the StorageClass watch is granted by the generated RBAC, no 403)."""

from __future__ import annotations

from kubernetes.client import StorageV1Api

from .conftest import Env
from .install import Operator


def test_a_block_storage_class_stalls_the_shared_cache_with_the_fix(env: Env,
                                                                     operator: Operator) -> None:
    storage = StorageV1Api(env.cluster.api)
    name = f"ebs-{env.ns}"[:63]
    # The AWS EBS CSI driver's volumes attach to one node: never ReadWriteMany.
    storage.create_storage_class({"metadata": {"name": name}, "provisioner": "ebs.csi.aws.com"})
    try:
        env.cluster.create(env.model("m", cache={"mode": "shared", "storageClassName": name}))
        _, _, message = env.cluster.wait_condition("m", "CacheReady", "False",
                                                   "StorageUnavailable", timeout=60)
        assert f"StorageClass {name} (ebs.csi.aws.com) cannot provide ReadWriteMany" in message
        assert "efs.csi.aws.com" in message  # the fix names classes that can
        stalled = env.cluster.wait_condition("m", "Stalled", "True", "CacheFailed", timeout=30)
        assert "StorageUnavailable" in stalled[2]
        assert env.cluster.conditions("m")["Ready"][:2] == ("False", "CacheFailed")
    finally:
        storage.delete_storage_class(name)
