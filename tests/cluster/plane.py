"""A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler started from `KUBEBUILDER_ASSETS` (envtest's convention), no Docker, no root.

Flags follow ../shared/k8s/README.md: RBAC authorization, a static token for the admin, service
account keys (so the operator can run as the chart's ServiceAccount with a requested token),
loopback ports picked free, data in a tmp dir. kube-apiserver may ignore SIGTERM while watches
are open: every process gets SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
REQUIRED = ("etcd", "kube-apiserver")
STOP_GRACE_SECONDS = 5.0
# prctl(2) option that makes Linux send a signal to a child when its parent dies.
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Run in the child before exec: a pytest killed by a timeout or ^C must not leave etcd,
    kube-apiserver or an operator running on the 2-core machine (they would load every later run).
    Linux only (prctl PR_SET_PDEATHSIG); elsewhere the fixture's own stop() is the only cleanup."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assets() -> tuple[Path | None, str]:
    """The binaries folder and why it is unusable ("" when usable)."""
    raw = os.environ.get("KUBEBUILDER_ASSETS", "")
    if not raw:
        return None, ("KUBEBUILDER_ASSETS is not set (run `export KUBEBUILDER_ASSETS="
                      "\"$(../shared/k8s/unpack)\"` or `setup-envtest use -p path`)")
    folder = Path(raw)
    missing = [b for b in REQUIRED if not os.access(folder / b, os.X_OK)]
    if missing:
        return None, f"KUBEBUILDER_ASSETS={folder} lacks {', '.join(missing)}"
    if shutil.which("openssl") is None:
        return None, "openssl is needed to make the service-account signing key"
    return folder, ""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(grace)


def start(name: str, argv: list[str], workdir: Path,
          env: dict[str, str] | None = None) -> Process:
    """Start a process with its output in workdir/<name>.log (never a pipe that can fill)."""
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                 env=env, start_new_session=True,
                                 preexec_fn=_die_with_parent)
    return Process(name, popen, log)


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               process: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited ({process.popen.returncode}):\n"
                               f"{process.tail()}")
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not reached in {timeout}s" +
                       (f":\n{process.tail()}" if process else ""))


def kubeconfig(server: str, ca: Path, token: str, namespace: str = "default") -> dict[str, object]:
    """A kubeconfig with a bearer token, verifying the API server's self-signed certificate
    (kube-apiserver writes it with its CA to --cert-dir/apiserver.crt)."""
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server,
                                                   "certificate-authority": str(ca)}}],
        "users": [{"name": "test", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test",
                                                   "namespace": namespace}}],
    }


@dataclass
class ControlPlane:
    """The running processes, the admin kubeconfig and what is missing (for skips)."""

    workdir: Path
    folder: Path
    server: str = ""
    admin_token: str = ""
    admin_kubeconfig: Path = Path()
    processes: list[Process] = field(default_factory=list)
    started_seconds: float = 0.0

    @property
    def has_scheduler(self) -> bool:
        return any(p.name == "kube-scheduler" for p in self.processes)

    @property
    def has_controller_manager(self) -> bool:
        return any(p.name == "kube-controller-manager" for p in self.processes)

    def write_kubeconfig(self, name: str, token: str, namespace: str = "default") -> Path:
        path = self.workdir / f"{name}.kubeconfig"
        ca = self.workdir / "certs" / "apiserver.crt"
        path.write_text(yaml.safe_dump(kubeconfig(self.server, ca, token, namespace)))
        return path

    def _ready(self) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(f"{self.server}/readyz",
                                         headers={"Authorization": f"Bearer {self.admin_token}"})
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> None:
        began = time.monotonic()
        self._keys()
        self._etcd()
        self._apiserver()
        self.admin_kubeconfig = self.write_kubeconfig("admin", self.admin_token)
        if os.access(self.folder / "kube-controller-manager", os.X_OK):
            self.processes.append(start("kube-controller-manager", [
                str(self.folder / "kube-controller-manager"),
                f"--kubeconfig={self.admin_kubeconfig}", "--leader-elect=false",
                # No kubelets and no cloud: the node lifecycle controller would evict
                # everything from nodes that never heartbeat.
                "--controllers=*,-nodelifecycle,-nodeipam,-route,-service,-cloud-node-lifecycle",
                f"--service-account-private-key-file={self.workdir / 'sa.key'}",
                "--use-service-account-credentials=false", "--secure-port=0",
                "--concurrent-gc-syncs=5"], self.workdir))
        if os.access(self.folder / "kube-scheduler", os.X_OK):
            self.processes.append(start("kube-scheduler", [
                str(self.folder / "kube-scheduler"), f"--kubeconfig={self.admin_kubeconfig}",
                "--leader-elect=false", "--secure-port=0"], self.workdir))
        self.started_seconds = time.monotonic() - began

    def _keys(self) -> None:
        key, pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                       capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
                       check=True, capture_output=True)
        self.admin_token = secrets.token_hex(16)
        (self.workdir / "tokens.csv").write_text(
            f"{self.admin_token},admin,admin,system:masters\n")

    def _etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        etcd = start("etcd", [
            str(self.folder / "etcd"), f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync"], self.workdir)
        self.processes.append(etcd)

        def health() -> bool:
            try:
                with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=1) as r:
                    return b"true" in r.read()
            except (urllib.error.URLError, OSError):
                return False
        wait_until(health, 30, "etcd healthy", etcd)

    def _apiserver(self) -> None:
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        api = start("kube-apiserver", [
            str(self.folder / "kube-apiserver"), f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={port}", f"--cert-dir={certs}",
            "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={self.workdir / 'sa.pub'}",
            f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
            "--endpoint-reconciler-type=none", "--allow-privileged=true"], self.workdir)
        self.processes.append(api)
        wait_until(self._ready, 60, "kube-apiserver /readyz", api)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
