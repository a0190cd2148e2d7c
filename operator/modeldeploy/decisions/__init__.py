"""Pure decision functions: observed state in, desired state out. No I/O, no kopf, no client.

- `metrics`: parse a vLLM pod's Prometheus exposition into a typed sample (or a typed miss).
- `autoscale` (types in `autoscale_types`): HPA-like replica decision with tolerance,
  stabilization, step bounds, GPU cap and scale to/from zero; `interceptor`: the KEDA HTTP
  add-on's held requests, the demand of a model at zero.
- `rollout`: capacity-aware rollout strategy, stuck-rollout classification, progress
  deadline, rollback target (the per-pass rollout over them: `controller.rollout`).
- `capacity`: how many more replicas fit in a pool (node-level packing).
- `startup` and `progress`: the startup watchdog, judging a start by its progress marks.
- `cache`: the shared model cache (claim, download Job, its log) as `status.cache`.
"""
