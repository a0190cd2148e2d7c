"""What one decision reads and what it returns: `Snapshot` in, `Actions` out (`controller.decide`).
Pure data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api import GPUPool, ModelDeploymentStatus
from ..decisions.autoscale import Decision, ScalingHistory
from ..decisions.metrics import Scrape
from ..decisions.progress import ProgressMark
from .cache_status import CacheSeen
from .children import ChildKinds, ChildRef
from .events import EventSpec
from .pods import ClusterCapacity
from .rollout.revisions import FailedRevision
from .starts import Starts, StartsSeen
from .status import TRANSIENT, Failure, Reason

Obj = dict[str, Any]
MISSING_API = (Reason.MULTI_NODE_UNAVAILABLE, Reason.KEDA_UNAVAILABLE)


@dataclass(frozen=True)
class Snapshot:
    """Everything one decision reads, as the shell's watch-fed stores show it. Values are
    not changed once observed: the shell compares snapshots to skip deciding again (the
    startup watchdog's logs, marks and StorageClasses are fresh mappings every pass)."""

    body: Mapping[str, Any]  # the ModelDeployment
    children: Mapping[ChildRef, Obj | None]  # every candidate child (None: absent)
    pods: Sequence[Mapping[str, Any]]  # its pods
    pools: Sequence[GPUPool]
    kinds: ChildKinds  # optional APIs the cluster serves
    capacity: ClusterCapacity | None = None  # None: unknown (namespaced install)
    scrapes: tuple[Scrape, ...] = ()  # the builtin autoscaler's reading of its Ready pods
    interceptor_in_flight: int | None = None  # KEDA HTTP add-on's count (builtin scaleToZero)
    history: ScalingHistory = field(default_factory=ScalingHistory)  # the autoscaler's memory
    upgrade_slot: bool = True  # an operator-caused rollout may start (`UpgradeSlots`)
    namespaced: bool = False  # a namespaced install: pools come from the pools ConfigMap
    starts: StartsSeen = field(default_factory=StartsSeen)  # starting pods' logs and marks
    downloads: Mapping[str, CacheSeen] = field(default_factory=dict)  # by download Job name
    # StorageClasses by name (None: not readable, a namespaced install).
    storage_classes: Mapping[str, Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class Scale:
    """Set `spec.replicas` through the workload's scale subresource, preconditioned on the
    version the decision read (the shell substitutes the version its own apply returned)."""

    ref: ChildRef
    replicas: int
    resource_version: str | None


@dataclass(frozen=True)
class Actions:
    """What to write, and the status as it will be."""

    status: ModelDeploymentStatus
    status_patch: dict[str, Any] | None  # merge patch of status, None: nothing changed
    events: tuple[EventSpec, ...] = ()  # emitted once the status patch is written
    handovers: tuple[Obj, ...] = ()  # applied first, as REPLICAS_FIELD_MANAGER
    applies: tuple[Obj, ...] = ()  # server-side applies (owned, hash-stamped)
    deletes: tuple[tuple[ChildRef, str], ...] = ()  # (child, uid precondition)
    scale: Scale | None = None
    scaling: Decision | None = None  # the autoscaler's decision; its history is the memory
    upgrading: bool = False  # holds an operator-caused rollout slot
    upgrade_queued: bool = False  # an operator-caused rollout waits for a slot
    rolled_back: FailedRevision | None = None  # the revision this decision rolled back from
    failure: Failure | None = None
    # The same snapshot gives the same decision until this time (epoch s; None: at any
    # time): the shell skips deciding again on inputs it already decided on, writing nothing.
    expires: float | None = None
    starts: Starts = field(default_factory=Starts)  # the watchdog's verdicts and marks to keep
    cache_mark: tuple[str, ProgressMark | None] | None = None  # (download Job, its mark)
    restarts: tuple[tuple[ChildRef, str], ...] = ()  # stalled pods to delete (uid precondition)

    @property
    def writes(self) -> bool:
        """Whether executing this decision writes anything."""
        return bool(self.handovers or self.applies or self.deletes or self.scale is not None
                    or self.status_patch is not None or self.restarts)

    @property
    def transient(self) -> bool:
        return self.failure is not None and self.failure.reason in TRANSIENT

    @property
    def missing_api(self) -> bool:
        return self.failure is not None and self.failure.reason in MISSING_API
