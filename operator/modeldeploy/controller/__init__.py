"""The reconcile core as pure functions: one `decide()` per ModelDeployment and its parts.

No kopf, no Kubernetes client, no network: every function takes observed objects (plain
dicts as the API returns them) and returns what to do. The shell (`modeldeploy.shell`)
does the I/O.

Where each concept lives:

- the decision: `decide` (validate -> plan -> render -> rollout step -> writes -> autoscale ->
  status -> events); `target` plans and renders, the path the CLI's `plan` and `render` share;
- rollout: `workload` (render, step, stamp the workload), `rollouts` (revisions, stuck,
  rollback, rollout status), `upgrades` (operator-caused rollouts a few at a time), `layout`
  (Deployment <-> LeaderWorkerSet), `memory` (the rollout annotations on the workload); the
  strategy and stuck-pod tables the renderer also reads: `decisions.rollout`;
- autoscaling: `decisions.autoscale` (the builtin autoscaler), called from `decide`; HPA and
  KEDA objects: `render.autoscaling`;
- status: `status` (kstatus conditions), `events` (from the status diff), `cache_status`;
- pools: `discovery` (from node labels), `poolconfig` (a namespaced install's ConfigMap),
  `poolstatus` (GPUPool status); capacity: `pods`;
- children: `children` (what to apply or delete, ownership, drift by containment);
- leader election: `leader` (the Lease decisions); memoising pure results: `memo`.
"""
