"""The reconcile core as pure functions: one `decide()` per ModelDeployment and its parts.

No kopf, no Kubernetes client, no network: every function takes observed objects (plain
dicts as the API returns them) and returns what to do. The shell (`modeldeploy.shell`)
does the I/O.

Where each concept lives:

- the decision: `decide` (validate -> plan -> render -> rollout step -> writes -> autoscale ->
  status -> events) over a `snapshot` (its input and output types); `target` plans and
  renders, the path the CLI's `plan` and `render` share; `starts` runs the startup watchdog
  (`decisions.startup`) over the pods of a pass;
- rollout: the `rollout` package (workload, revisions, upgrades, layout, memory; its
  docstring walks one pass), over the strategy and stuck-pod tables in `decisions.rollout`
  (below the renderer, which writes the strategy into the workload);
- autoscaling: the decision is `decisions.autoscale` (the builtin autoscaler), called from
  `decide`; HPA and KEDA objects: `render.autoscaling`; reading vLLM's /metrics and the
  decision's memory: `shell.autoscaler`;
- status: `status` (kstatus conditions, `Observation`, `Reason`), `events` (from the status
  diff), `cache_status` (status.cache);
- pools: the `pools` package (discovery from node labels, a namespaced install's ConfigMap,
  GPUPool status); free GPUs per node: `pods.ClusterCapacity`;
- children: `children` (what to apply or delete, ownership, drift by containment);
- leader election: `leader` (the Lease decisions); memoising pure results: `memo`.
"""
