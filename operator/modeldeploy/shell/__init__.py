"""The I/O shell: everything that talks to the Kubernetes API, the hub or a vLLM pod. What to
write is decided by `controller.decide`; the shell observes, then applies what it returns.

- talking to the API: `kube` (kubernetes_asyncio, server-side apply), `informer` (list, watch,
  relist on 410), `view` (the watch-fed stores of every kind the operator reads);
- one pass: `reconcile` (observe -> decide -> execute); when to run it: `controller`;
- what a pass reads besides the stores: `scrape` and `autoscaler` (vLLM /metrics and the
  builtin autoscaler's memory), `interceptor` (the KEDA HTTP add-on's held requests), `starts`
  (log tails for the startup watchdog), `sources` and `hub` (model facts);
- the process: `config` (the one settings object), `preflight`, `runtime`, `runner`,
  `handlers` (kopf), `leader` (Lease election), `telemetry` (the operator's own metrics);
- `download`: the download Job's program (`modeldeploy download`), not the operator's.
"""
