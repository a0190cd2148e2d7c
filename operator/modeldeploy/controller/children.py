"""Desired vs observed children: what to apply, what to delete, what to leave alone. Pure.

A desired child carries a controller ownerReference to its ModelDeployment and an
`modeldeploy.dev/applied-hash` annotation (a digest of everything the operator applies).
A child is written only when it is missing, its hash differs, or a field the operator sets
was changed out of band (the desired object is no longer contained in the observed one).
An unchanged world therefore produces no write at all.

Deletion is limited to objects whose controller ownerReference is this ModelDeployment.
An object at a child's name that someone else controls is a conflict, never overwritten;
an orphan with our managed-by and name labels (left by `--cascade=orphan`) is adopted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ..api import API_VERSION
from ..decisions.cache import MODEL_ANNOTATION, REVISION_ANNOTATION, claim_conflict
from ..render import ChildNames
from ..render.cache import is_shared
from ..render.output import short_digest

APPLIED_HASH = "modeldeploy.dev/applied-hash"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "modeldeploy"
NAME_LABEL = "modeldeploy.dev/name"
OWNER_KIND = "ModelDeployment"

Obj = dict[str, Any]


@dataclass(frozen=True, order=True)
class ChildRef:
    """Identity of a child: API group, kind, namespace, name."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Owner:
    name: str
    namespace: str
    uid: str


@dataclass
class ChildDiff:
    apply: list[Obj] = field(default_factory=list)
    delete: list[tuple[ChildRef, str]] = field(default_factory=list)  # (ref, uid precondition)
    unchanged: list[ChildRef] = field(default_factory=list)
    conflicts: list[tuple[ChildRef, str]] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return len(self.apply) + len(self.delete)


def ref_of(obj: Mapping[str, Any]) -> ChildRef:
    meta = obj.get("metadata") or {}
    return ChildRef(str(obj.get("apiVersion")), str(obj.get("kind")), meta.get("namespace"),
                    str(meta.get("name")))


def content_hash(obj: Mapping[str, Any]) -> str:
    """Digest of an object as the operator applies it (the hash annotation left out)."""
    meta = dict(obj.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_HASH}
    meta["annotations"] = annotations
    return short_digest({**obj, "metadata": meta})


def owned(obj: Mapping[str, Any], owner: Owner) -> Obj:
    """The object as applied: controller ownerReference and the applied-hash annotation.

    A shared object (the shared model cache's claim and Job, `render.cache.is_shared`) gets a
    plain ownerReference instead: several ModelDeployments own it, none controls it, and the
    garbage collector removes it with the last of them.
    """
    meta = dict(obj.get("metadata") or {})
    meta["namespace"] = owner.namespace
    meta["ownerReferences"] = [{
        "apiVersion": API_VERSION, "kind": OWNER_KIND, "name": owner.name, "uid": owner.uid,
        "controller": not is_shared(obj), "blockOwnerDeletion": True,
    }]
    result = {**obj, "metadata": meta}
    annotations = dict(meta.get("annotations") or {})
    annotations[APPLIED_HASH] = content_hash(result)
    meta["annotations"] = annotations
    return result


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _adoptable(obj: Mapping[str, Any], owner: Owner) -> bool:
    labels = _labels(obj)
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(NAME_LABEL) == owner.name


# --- semantic containment -----------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]{0,2})$")
_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
    "P": Decimal(10**15), "E": Decimal(10**18), "Ki": Decimal(2**10), "Mi": Decimal(2**20),
    "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity ("16Gi", "1500m", 3) as a number; None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    except InvalidOperation:
        return None


def _empty(value: Any) -> bool:
    return value is None or value is False or value == 0 or value in ("", {}, [])


def _is_mapping(value: Any) -> bool:
    # dict first: the Mapping ABC check is several times slower, and a pass compares every
    # field of every child (docs/PERFORMANCE.md "Reconcile").
    return type(value) is dict or isinstance(value, Mapping)


def contains(observed: Any, desired: Any) -> bool:
    """Whether every field the operator sets has the same value in the observed object.

    Fields the API server adds (defaults, status, metadata) are ignored; empty values match
    omitted ones; lists of named items match by name (others may add items, as server-side
    apply lets them); other lists match element-wise; quantities match by value.
    """
    if type(desired) is str:  # most fields: the same answer as the general path below
        if observed == desired or (observed is None and desired == ""):
            return True
        if isinstance(observed, bool):
            return False
        left, right = quantity(observed), quantity(desired)
        return left is not None and left == right
    if _is_mapping(desired):
        if not _is_mapping(observed):
            return observed is None and all(_empty(v) for v in desired.values())
        return all(contains(observed.get(k), v) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(observed, list):
            return observed is None and not desired
        if desired and all(_is_mapping(d) and "name" in d for d in desired):
            by_name = {o.get("name"): o for o in observed if _is_mapping(o)}
            return all(d["name"] in by_name and contains(by_name[d["name"]], d) for d in desired)
        return len(observed) == len(desired) and all(
            contains(o, d) for o, d in zip(observed, desired, strict=True))
    if isinstance(desired, bool) or isinstance(observed, bool):
        return observed is desired or (observed is None and desired is False)
    if observed == desired or (observed is None and _empty(desired)):
        return True
    left, right = quantity(observed), quantity(desired)
    return left is not None and left == right


def up_to_date(desired: Mapping[str, Any], observed: Mapping[str, Any]) -> bool:
    annotations = (observed.get("metadata") or {}).get("annotations") or {}
    wanted = ((desired.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH)
    return annotations.get(APPLIED_HASH) == wanted and contains(observed, desired)


def diff_children(desired: Sequence[Obj], observed: Mapping[ChildRef, Obj | None],
                  owner: Owner) -> ChildDiff:
    """Compare the owned desired objects with what exists at every candidate child name."""
    diff = ChildDiff()
    wanted = {ref_of(obj): obj for obj in desired}
    for ref, obj in wanted.items():
        live = observed.get(ref)
        if live is None:
            diff.apply.append(obj)
            continue
        if is_shared(obj):
            _diff_shared(diff, ref, obj, live, owner)
            continue
        controller = controller_uid(live)
        if controller not in (None, owner.uid) or (controller is None
                                                   and not _adoptable(live, owner)):
            diff.conflicts.append((ref, f"{ref} exists and is not controlled by this "
                                        f"ModelDeployment"))
        elif up_to_date(obj, live):
            diff.unchanged.append(ref)
        else:
            diff.apply.append(obj)
    for ref, live in sorted(observed.items()):
        if live is not None and ref not in wanted and controller_uid(live) == owner.uid:
            diff.delete.append((ref, str((live.get("metadata") or {}).get("uid"))))
    return diff


def shared_join(obj: Mapping[str, Any]) -> Obj:
    """The apply that adds one more owner to an existing shared object: its metadata only (a
    claim's and a Job's spec are immutable, and the first owner's settings stay)."""
    meta = obj.get("metadata") or {}
    keep = {k: meta[k] for k in ("name", "namespace", "labels", "ownerReferences") if k in meta}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": keep}


def _diff_shared(diff: ChildDiff, ref: ChildRef, obj: Obj, live: Mapping[str, Any],
                 owner: Owner) -> None:
    """A shared object that exists: never overwritten; joined (our ownerReference added) when
    it holds the same model and revision, a conflict when it holds something else."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    conflict = claim_conflict(live, str(annotations.get(MODEL_ANNOTATION)),
                              str(annotations.get(REVISION_ANNOTATION)))
    if conflict is not None:
        diff.conflicts.append((ref, f"CacheConflict: {conflict}"))
    elif any(r.get("uid") == owner.uid for r in (live.get("metadata") or {}).get("ownerReferences") or []):
        diff.unchanged.append(ref)
    else:
        diff.apply.append(shared_join(obj))


@dataclass(frozen=True)
class ChildKinds:
    """Which optional child APIs exist in the cluster (observed, not configured)."""

    leader_worker_set: bool
    service_monitor: bool
    scaled_object: bool = False  # KEDA
    http_scaled_object: bool = False  # the KEDA HTTP add-on (autoscaling.scaleToZero)


def candidate_children(namespace: str, names: ChildNames, kinds: ChildKinds) -> list[ChildRef]:
    """Every child a ModelDeployment may own, at its derived name: what to observe."""
    refs = [
        ChildRef("v1", "PersistentVolumeClaim", namespace, names.cache),
        ChildRef("apps/v1", "Deployment", namespace, names.deployment),
        ChildRef("v1", "Service", namespace, names.service),
        ChildRef("policy/v1", "PodDisruptionBudget", namespace, names.pod_disruption_budget),
    ]
    if kinds.leader_worker_set:
        refs.append(ChildRef("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", namespace,
                             names.leader_worker_set))
    if kinds.service_monitor:
        refs.append(ChildRef("monitoring.coreos.com/v1", "ServiceMonitor", namespace,
                             names.service_monitor))
    # autoscaling.mode hpa / keda (observed in every mode, so a mode switch prunes the other).
    refs.append(ChildRef("autoscaling/v2", "HorizontalPodAutoscaler", namespace,
                         names.horizontal_pod_autoscaler))
    if kinds.scaled_object:
        refs.append(ChildRef("keda.sh/v1alpha1", "ScaledObject", namespace, names.scaled_object))
    # autoscaling.scaleToZero (observed in every mode, so turning it off prunes them).
    refs.append(ChildRef("v1", "Service", namespace, names.wake_service))
    if kinds.http_scaled_object:
        refs.append(ChildRef("http.keda.sh/v1alpha1", "HTTPScaledObject", namespace,
                             names.http_scaled_object))
    return refs


def _merged(live: Any, desired: Any) -> Any:
    if isinstance(live, Mapping) and isinstance(desired, Mapping):
        return {**live, **{k: _merged(live.get(k), v) for k, v in desired.items()}}
    return desired


def applied_view(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> Obj:
    """A child as it will be once `desired` is applied (server-side apply merges our fields
    over the live object; a spec change is a generation the controller has not observed)."""
    if live is None:
        return {**desired, "metadata": {**(desired.get("metadata") or {}), "generation": 1}}
    meta = dict(live.get("metadata") or {})
    for key in ("labels", "annotations"):
        meta[key] = {**(meta.get(key) or {}), **((desired.get("metadata") or {}).get(key) or {})}
    spec = live.get("spec")
    if "spec" in desired and not contains(spec, desired["spec"]):
        meta["generation"] = int(meta.get("generation") or 0) + 1
        spec = _merged(spec or {}, desired["spec"])
    return {**live, "metadata": meta, "spec": spec}
