"""Plan and render one ModelDeployment: the path `decide()` and the CLI's `plan` and `render`
share (after the one validation path, `modeldeploy.validation`). Pure.

- `plan_on_cluster`: the plan on the pools and APIs seen, and its pool, or the typed reason it
  cannot run (no pools visible, no layout, no pool of that name, an API missing);
- `render_target`: the children of a planned ModelDeployment for given rollout inputs.

Both are remembered by their inputs (bounded LRU memos): a pass of an unchanged
ModelDeployment neither searches layouts nor renders again. The key reads of the object only
what planning and rendering read (plans: the spec; renderings: name, namespace, labels,
annotations, spec), so a status write (a new resourceVersion) keeps the entries, and
ModelDeployments with the same spec share one layout search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..api import GPUPool, ModelDeployment
from ..api.deployment import AutoscalingMode
from ..facts import ModelFacts
from ..planner import Plan, plan_deployment, unplanned
from ..render import RenderOptions, RolloutInputs, render_objects
from .children import ChildKinds
from .memo import Memo
from .pools.config import BUILTIN_WAKE_NAMESPACED, NO_POOLS_CLUSTER, NO_POOLS_NAMESPACED
from .status import Failure, Reason

Obj = dict[str, Any]

# Plans remembered by their inputs: a pass of an unchanged object does not search again.
_plans: Memo[tuple[ModelFacts, Plan]] = Memo(1024)
# Renderings remembered by their inputs. Parsing the rendered YAML is ~10 of the ~12 ms of a
# pass (measured with bench/reconcile_bench.py's model, 2026-11-30); an entry is ~30 KB.
_rendered: Memo[list[Obj]] = Memo(1024)

_READ_OF_OBJECT: Any = {"metadata": {"name", "namespace", "labels", "annotations"}, "spec": True}
# The planner reads only the spec; the name and namespace are copied into the Plan
# (planner.plan_deployment), so ModelDeployments with one spec share one layout search.
_READ_BY_PLANNER: Any = {"spec": True}
_PLAN_FAILURES = {"PoolNotFound": Reason.POOL_NOT_FOUND,
                  "MultiNodeUnavailable": Reason.MULTI_NODE_UNAVAILABLE}


@dataclass(frozen=True)
class Target:
    """What a ModelDeployment runs as: the object, its plan, the plan's pool."""

    md: ModelDeployment
    plan: Plan
    pool: GPUPool


def model_key(md: ModelDeployment, read: Any = _READ_OF_OBJECT) -> str:
    """What planning and rendering read of the object (`read`: a pydantic include), as a memo
    key (JSON). Only the fields given: whether a field was given matters as well as its value
    (a `cache.mode` left out may become a claim for a large model, `replicas` left out is the
    workload's count)."""
    return md.model_dump_json(include=read, exclude_unset=True)


def _suggest(plan: Plan) -> str:
    return f"{plan.reason}; try: " + "; ".join(plan.suggestions) if plan.suggestions \
        else plan.reason


def _missing_api(md: ModelDeployment, kinds: ChildKinds, namespaced: bool) -> Failure | None:
    scaling = md.spec.autoscaling
    if scaling is not None and scaling.mode == AutoscalingMode.KEDA and not kinds.scaled_object:
        return Failure(Reason.KEDA_UNAVAILABLE, (
            "autoscaling.mode keda renders a KEDA ScaledObject, but the KEDA API "
            "(keda.sh/v1alpha1 scaledobjects) is not installed; install KEDA or use mode "
            "builtin"))
    if scaling is not None and scaling.scale_to_zero and not kinds.http_scaled_object:
        return Failure(Reason.KEDA_UNAVAILABLE, (
            "autoscaling.scaleToZero wakes the model through the KEDA HTTP add-on, but its API "
            "(http.keda.sh/v1alpha1 httpscaledobjects) is not installed; install KEDA and the "
            "HTTP add-on (docs/install.md) or turn scaleToZero off"))
    if scaling is not None and scaling.scale_to_zero and scaling.mode == AutoscalingMode.BUILTIN \
            and namespaced:
        return Failure(Reason.KEDA_UNAVAILABLE, BUILTIN_WAKE_NAMESPACED)
    return None


def plan_on_cluster(md: ModelDeployment, facts: ModelFacts, pools: Sequence[GPUPool],
                    kinds: ChildKinds, namespaced: bool = False) -> tuple[Plan, GPUPool | Failure]:
    """The plan and its pool, or why it cannot run here (no pools visible, no layout, no pool
    of that name, an API missing, a builtin wake from zero a namespaced install cannot read).
    Layouts across nodes only where LeaderWorkerSet is served: the planner then prefers a
    single node, and says MultiNodeUnavailable only when nothing else fits."""
    no_pools_message = NO_POOLS_NAMESPACED if namespaced else NO_POOLS_CLUSTER
    if not pools:
        return unplanned(md.metadata.name, md.metadata.namespace, md.spec.model.name,
                         Reason.NO_POOLS_VISIBLE.value, no_pools_message), \
            Failure(Reason.NO_POOLS_VISIBLE, no_pools_message)
    # Facts by identity: the entry holds them, so the identity stays theirs.
    key = "\0".join((model_key(md, _READ_BY_PLANNER), str(id(facts)),
                      str(kinds.leader_worker_set), *(p.model_dump_json() for p in pools)))
    _, shared = _plans.get(key, lambda: (facts, plan_deployment(
        md, facts, list(pools), multi_node_served=kinds.leader_worker_set)))
    plan = shared.model_copy(update={"name": md.metadata.name,
                                     "namespace": md.metadata.namespace})
    if not plan.feasible:
        return plan, Failure(_PLAN_FAILURES.get(plan.failure or "", Reason.NO_FEASIBLE_LAYOUT),
                             _suggest(plan))
    missing = _missing_api(md, kinds, namespaced)
    if missing is not None:
        return plan, missing
    return plan, next(p for p in pools if p.name == plan.pool)


def render_target(target: Target, options: RenderOptions,
                  inputs: RolloutInputs | None = None) -> list[Obj]:
    """`render_objects` of a planned ModelDeployment (raises what it raises), remembered for
    the last 1024 distinct inputs. The objects returned are shared: callers copy what they
    change. inputs: the rollout inputs (None: nothing observed, as offline)."""
    inputs = inputs or RolloutInputs()
    md, plan, pool = target.md, target.plan, target.pool
    key = "\0".join((model_key(md), plan.model_dump_json(), pool.model_dump_json(),
                      options.model_dump_json(), repr(inputs)))
    return _rendered.get(key, lambda: render_objects(md, plan, pool, options, rollout=inputs))
