"""GPU pools as the operator sees them on a cluster. Pure.

- `discovery`: pools from Node labels (GPU Feature Discovery, EKS/Karpenter, GKE) when no
  GPUPool objects exist;
- `config`: a namespaced install's pools, from a ConfigMap in the operator's namespace (it may
  read neither GPUPools nor Nodes);
- `status`: GPUPool status (nodes matched, allocatable, requested and free GPUs).

How many more replicas fit in a pool is `decisions.capacity` (node-level packing), over the
free GPUs per node `controller.pods.ClusterCapacity` reads from one node/pod view. The
offline catalog `modeldeploy plan` uses without pools is `planner.pools`.
"""
