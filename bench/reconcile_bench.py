"""Reconcile at scale: N ModelDeployments created at once against the API emulator.

The operator runs as `modeldeploy run` in a subprocess (the production code path, its own RSS);
the emulator (tests/integration/emulator.py) runs in this process on 127.0.0.1. Measured:

- time from each ModelDeployment's creation to its last child applied (p50, p99), and until
  all N converged;
- API requests per object the operator (and kopf for it) sent until convergence, reads and
  writes;
- writes and non-watch reads during a no-op resync window of two resync periods (both must
  be 0), and the passes the operator ran in it (its own `modeldeploy_reconcile_passes_total`);
- the operator's RSS (peak and at the end);
- CPU seconds until converged: the operator's, and this process's (mostly the emulator, also
  the 16 threads creating the objects), against the floor client's and the emulator's in the
  floor run; the 1-minute load average when each phase started (the machine is shared);
- the floor: the same writes (apply Deployment, apply Service, patch status, create the
  `Planned` event) sent by a minimal script with as many threads as the operator runs
  reconciles at once (16), and the ratio. Converged means all four written for every object.

Run: python bench/reconcile_bench.py --n 10 100 500 2000. Results go into docs/PERFORMANCE.md by
hand. To see where the operator's time goes: RECONCILE_BENCH_PYSPY=OUT (py-spy on PATH; the
operator's stacks holding the GIL, sampled from the first create until converged) or
RECONCILE_BENCH_PROFILE=OUT (cProfile of the whole operator run); times are then not comparable.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from integration.emulator import EmulatorServer, LoggedRequest  # noqa: E402
from integration.harness import closed_port, gpu_pool, model_deployment  # noqa: E402
from modeldeploy.api import GPUPool, ModelDeployment  # noqa: E402
from modeldeploy.controller.children import Owner, owned  # noqa: E402
from modeldeploy.facts.catalog import load_catalog  # noqa: E402
from modeldeploy.planner import plan_deployment  # noqa: E402
from modeldeploy.render import render_objects  # noqa: E402

NS = "bench"
TESTS_AGENT = "modeldeploy-tests"
FLOOR_WORKERS = 16  # the operator's default --max-concurrent
# The operator's watches: ModelDeployments, GPUPools, Nodes, Pods and five child kinds.
WATCHES = 9


def client(kubeconfig: Path) -> kubernetes.client.ApiClient:
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=config)
    config.connection_pool_maxsize = 16
    api = kubernetes.client.ApiClient(config)
    api.user_agent = TESTS_AGENT
    return api


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def rss_kib(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process used so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def operator_requests(log: list[LoggedRequest]) -> list[LoggedRequest]:
    return [r for r in log if not r.user_agent.startswith(TESTS_AGENT)]


class Convergence:
    """Which objects converged, read incrementally from the emulator's request log: each check
    reads only the requests logged since the last one (a full rescan every 0.1 s would spend
    this process's CPU, shared with the operator, in the operator run only)."""

    def __init__(self, n: int, mark: int) -> None:
        self.n, self.cursor = n, mark
        self.done: dict[str, float] = {}  # name -> when its last child or status was written
        self.seen: dict[str, set[str]] = {}
        self.statuses: set[str] = set()
        self.last_event = 0.0
        self.events = 0

    def update(self, emulator: Any) -> dict[str, float] | None:
        """Fold in the new requests; the converged times (key "" = the last Planned event) or None."""
        fresh = emulator.requests_since(self.cursor)
        self.cursor += len(fresh)
        for r in operator_requests(fresh):
            self._fold(r)
        if len(self.done) < self.n or len(self.statuses) < self.n or self.events < self.n:
            return None
        return {**self.done, "": self.last_event}  # the last Planned event ends convergence

    def _fold(self, r: LoggedRequest) -> None:
        if r.resource == "events" and r.verb == "create":
            self.events += 1
            self.last_event = max(self.last_event, r.at)
        if r.resource == "modeldeployments" and r.subresource == "status":
            self.statuses.add(str(r.name))
        if r.verb != "patch" or r.status not in (200, 201) or not r.name:
            return
        if r.resource in ("deployments", "services") and not r.subresource:
            self.seen.setdefault(r.name, set()).add(r.resource)
            if self.seen[r.name] == {"deployments", "services"}:
                self.done.setdefault(r.name, r.at)
        elif r.resource == "modeldeployments" and r.subresource == "status" and r.name in self.done:
            self.done[r.name] = max(self.done[r.name], r.at)


def passes(metrics_port: int) -> int:
    """Reconcile passes the operator ran, from its own metrics endpoint."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        lines = response.read().decode().splitlines()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in lines
                   if line.startswith("modeldeploy_reconcile_passes_total{")))


def run_operator_bench(n: int, resync: float, timeout: float) -> dict[str, Any]:
    server = EmulatorServer().start()
    workdir = Path(tempfile.mkdtemp(prefix="reconcile-bench-"))
    kubeconfig = server.write_kubeconfig(workdir / "kubeconfig")
    api = client(kubeconfig)
    custom = kubernetes.client.CustomObjectsApi(api)
    custom.create_cluster_custom_object("modeldeploy.dev", "v1alpha1", "gpupools", gpu_pool())
    log_file = (workdir / "operator.log").open("w")
    metrics_port = closed_port()
    # RECONCILE_BENCH_PROFILE=FILE: the operator runs under cProfile, its stats written to FILE
    # when the bench stops it (SIGTERM ends kopf cleanly). Profiling slows it: no timing then.
    profile = os.environ.get("RECONCILE_BENCH_PROFILE")
    entry = (f"import cProfile; from modeldeploy.cli.main import app; "
             f"cProfile.run('app()', {profile!r})" if profile else
             "from modeldeploy.cli.main import app; app()")
    proc = subprocess.Popen(
        [sys.executable, "-c", entry, "run",
         "--kubeconfig", str(kubeconfig), "--metrics-port", str(metrics_port),
         "--metrics-address", "127.0.0.1",
         "--resync-interval", str(resync), "--hub-endpoint",
         f"http://127.0.0.1:{closed_port()}", "--hub-timeout", "0.5", "--log-format", "plain"],
        stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        # A watch is logged when it ends: wait for every stream to be open.
        while server.emulator.open_watches() < WATCHES:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"operator did not start; see {log_file.name}")
            time.sleep(0.05)
        baseline_rss = rss_kib(proc.pid)[0]
        mark = server.emulator.log_mark()
        cpu_start, bench_cpu_start = cpu_s(proc.pid), cpu_s(os.getpid())
        load = os.getloadavg()[0]
        # RECONCILE_BENCH_PYSPY=OUT: sample the operator with py-spy (on PATH) from the first
        # create until converged; collapsed stacks ("raw" format) go to OUT.
        sampled = os.environ.get("RECONCILE_BENCH_PYSPY")
        sampler = subprocess.Popen(
            ["py-spy", "record", "--gil", "--pid", str(proc.pid), "--rate", "250", "--format", "raw",
             "--output", sampled], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL) if sampled else None
        start = time.monotonic()
        created: dict[str, float] = {}

        def create(i: int) -> None:
            custom.create_namespaced_custom_object("modeldeploy.dev", "v1alpha1", NS,
                                                   "modeldeployments", model_deployment(f"m{i}"))
            created[f"m{i}"] = time.monotonic()  # same clock as the emulator's log

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(create, range(n)))

        tracker = Convergence(n, mark)
        done: dict[str, float] | None = None
        while done is None:
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"N={n} did not converge in {timeout}s")
            time.sleep(0.1)
            done = tracker.update(server.emulator)
        wall = max(done.values()) - start
        latencies = [done[name] - created[name] for name in done if name]
        converge_passes = passes(metrics_port)
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(30)
        # CPU until converged: the operator's, and this process's (the emulator, mostly).
        cpu = cpu_s(proc.pid) - cpu_start, cpu_s(os.getpid()) - bench_cpu_start
        time.sleep(0.5)
        converging = operator_requests(server.emulator.requests_since(mark))
        rss_converged = rss_kib(proc.pid)
        # No-op resync window: two resync periods on a converged world.
        quiet, passes_before = server.emulator.log_mark(), passes(metrics_port)
        time.sleep(2 * resync + 0.5)
        window = operator_requests(server.emulator.requests_since(quiet))
        window_passes = passes(metrics_port) - passes_before
        rss_end, rss_peak = rss_kib(proc.pid)
        writes = [r for r in converging if r.is_write]
        breakdown = collections.Counter(
            f"{r.verb} {r.rbac_resource}{' (kopf)' if r.user_agent.startswith('kopf') else ''}"
            for r in converging)
        return {
            "breakdown": {k: round(v / n, 2) for k, v in breakdown.most_common()},
            "n": n, "wall_s": wall, "p50_s": statistics.median(latencies),
            "p99_s": pct(latencies, 0.99), "requests_per_object": len(converging) / n,
            "writes_per_object": len(writes) / n,
            "reads_per_object": (len(converging) - len(writes)) / n,
            "noop_window_writes": sum(r.is_write for r in window),
            "noop_window_reads": sum(r.method == "GET" and r.verb != "watch" for r in window),
            "noop_window_passes": window_passes, "converge_passes": converge_passes,
            "operator_cpu_s": round(cpu[0], 2), "load": load, "emulator_cpu_s": round(cpu[1], 2),
            "rss_baseline_mib": baseline_rss / 1024, "rss_converged_mib": rss_converged[0] / 1024,
            "rss_end_mib": rss_end / 1024, "rss_peak_mib": rss_peak / 1024,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()
        api.close()
        server.stop()


def floor_client(kubeconfig: Path) -> None:
    """The minimal script (run as a subprocess, like the operator): list the ModelDeployments,
    render each offline, then time only the writes: apply Deployment, apply Service, patch
    status, create the event, with as many threads as the operator runs reconciles at once.
    Prints the seconds."""
    api = client(kubeconfig)
    custom = kubernetes.client.CustomObjectsApi(api)
    core = kubernetes.client.CoreV1Api(api)
    pool = GPUPool.model_validate(gpu_pool())
    facts = load_catalog().get("meta-llama/Llama-3.1-8B-Instruct")
    assert facts is not None
    work = []
    for body in custom.list_namespaced_custom_object("modeldeploy.dev", "v1alpha1", NS,
                                                     "modeldeployments")["items"]:
        md = ModelDeployment.model_validate(
            {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec")})
        plan = plan_deployment(md, facts, [pool])
        owner = Owner(md.metadata.name, NS, str(body["metadata"]["uid"]))
        work.append((md.metadata.name,
                     [owned(o, owner) for o in render_objects(md, plan, pool)]))
    paths = {"Deployment": "/apis/apps/v1", "Service": "/api/v1"}

    def converge(item: tuple[str, list[dict[str, Any]]]) -> None:
        name, objects = item
        for obj in objects:
            plural = obj["kind"].lower() + "s"
            request = api.param_serialize(
                "PATCH", f"{paths[obj['kind']]}/namespaces/{NS}/{plural}/{name}",
                query_params=[("fieldManager", "modeldeploy"), ("force", "true")],
                header_params={"Content-Type": "application/apply-patch+yaml"},
                body=obj, auth_settings=["BearerToken"])
            api.call_api(*request[:4]).read()
        custom.patch_namespaced_custom_object_status(
            "modeldeploy.dev", "v1alpha1", NS, "modeldeployments", name,
            {"status": {"observedGeneration": 1}}, _content_type="application/merge-patch+json")
        core.create_namespaced_event(NS, {
            "metadata": {"generateName": f"{name}."}, "type": "Normal", "reason": "Planned",
            "message": "planned", "involvedObject": {"kind": "ModelDeployment", "name": name,
                                                     "namespace": NS}})

    start, cpu_start = time.monotonic(), time.process_time()
    with concurrent.futures.ThreadPoolExecutor(FLOOR_WORKERS) as executor:
        list(executor.map(converge, work))
    print(time.monotonic() - start, time.process_time() - cpu_start)


def floor_bench(n: int) -> dict[str, Any]:
    server = EmulatorServer().start()
    workdir = Path(tempfile.mkdtemp(prefix="reconcile-floor-"))
    kubeconfig = server.write_kubeconfig(workdir / "kubeconfig")
    api = client(kubeconfig)
    custom = kubernetes.client.CustomObjectsApi(api)
    try:
        for i in range(n):
            custom.create_namespaced_custom_object("modeldeploy.dev", "v1alpha1", NS,
                                                   "modeldeployments", model_deployment(f"m{i}"))
        mark = server.emulator.log_mark()
        bench_cpu_start, load = cpu_s(os.getpid()), os.getloadavg()[0]
        out = subprocess.run([sys.executable, __file__, "--floor-client", str(kubeconfig)],
                             check=False, capture_output=True, text=True, timeout=1200)
        if out.returncode != 0:
            raise RuntimeError(f"floor client failed: {out.stderr[-2000:]}")
        requests = [r for r in server.emulator.requests_since(mark) if r.is_write]
        # The emulator's CPU includes serving the client's initial list (a few ms).
        emulator_cpu = cpu_s(os.getpid()) - bench_cpu_start
        wall, client_cpu = (float(v) for v in out.stdout.strip().splitlines()[-1].split())
        return {"n": n, "wall_s": wall, "requests_per_object": len(requests) / n,
                "client_cpu_s": round(client_cpu, 2), "emulator_cpu_s": round(emulator_cpu, 2),
                "load": load}
    finally:
        api.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[10, 100, 500, 2000])
    parser.add_argument("--resync", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--floor-client", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_client:
        floor_client(args.floor_client)
        return
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
          f", load average {os.getloadavg()[0]:.1f}")
    header = ("| N | converge all (s) | p50 (s) | p99 (s) | API req/object (reads + writes) | "
              "no-op resync: writes / reads / passes | RSS peak (MiB) | floor (s) | "
              "floor req/object | time ratio | CPU s: operator + emulator / floor client + "
              "emulator | load |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for n in args.n:
        op = run_operator_bench(n, args.resync, args.timeout)
        fl = floor_bench(n)
        print(f"| {n} | {op['wall_s']:.2f} | {op['p50_s']:.2f} | {op['p99_s']:.2f} | "
              f"{op['requests_per_object']:.1f} ({op['reads_per_object']:.1f} + "
              f"{op['writes_per_object']:.1f}) | {op['noop_window_writes']} / "
              f"{op['noop_window_reads']} / {op['noop_window_passes']} | "
              f"{op['rss_peak_mib']:.0f} | "
              f"{fl['wall_s']:.2f} | {fl['requests_per_object']:.1f} | "
              f"{op['wall_s'] / fl['wall_s']:.2f}x | {op['operator_cpu_s']:.1f} + "
              f"{op['emulator_cpu_s']:.1f} / {fl['client_cpu_s']:.1f} + {fl['emulator_cpu_s']:.1f} | "
              f"{op['load']:.1f}, {fl['load']:.1f} |", flush=True)
        print(f"<!-- {op} {fl} load average {os.getloadavg()[0]:.1f} -->", flush=True)


if __name__ == "__main__":
    main()
