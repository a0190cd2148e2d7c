"""The startup watchdog on the vLLM simulator's own start: its download, weight-load and warm-up
lines (e2e/vllm-sim/sim_startup.py, each with its vLLM source) reach the operator through the
emulator's pods/log, and a start that hangs in one phase (SIM_STALL) is judged by the phase it
hung in. The stall window is minutes long: the operator decides on a clock the test moves
forward (tests/integration/test_startup_watchdog.py, `SkewedClock`)."""

from __future__ import annotations

import threading

import pytest

from .emulator import EmulatorServer
from .fleet import SimFleet
from .harness import Cluster, OperatorThread, SkewedClock, eventually
from .test_startup_watchdog import STALL, loading, passes_after, pod_deletes, read_since, warning_message

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

POD_IP = "127.0.0.9"


class Mirror:
    """Copies the simulator's startup log to the pod's log in the emulator (a kubelet's job)."""

    def __init__(self, fleet: SimFleet, server: EmulatorServer, namespace: str, pod: str) -> None:
        self.fleet, self.server, self.namespace, self.pod = fleet, server, namespace, pod
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log mirror", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.server.emulator.pod_logs.replace(self.namespace, self.pod, "vllm",
                                                  self.fleet.startup_log(POD_IP))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.mark.parametrize(("phase", "reason", "last"), [
    ("download", "DownloadStalled", ".safetensors:  50%"),
    ("load", "LoadStalled", "Loading safetensors checkpoint shards:  50% Completed | 2/4"),
    ("warmup", "LoadStalled", "Capturing CUDA graphs"),
])
def test_a_simulated_start_that_hangs_is_judged_by_its_phase(
        phase: str, reason: str, last: str, watchdog_operator: OperatorThread, cluster: Cluster,
        emulator_server: EmulatorServer, clock: SkewedClock, fleet: SimFleet) -> None:
    loading(cluster)
    fleet.start_sim(POD_IP, download_seconds=0.4, load_seconds=0.4, warmup_seconds=0.4,
                    stall=phase)
    mirror = Mirror(fleet, emulator_server, cluster.ns, "m-0")
    try:
        eventually(lambda: last in fleet.startup_log(POD_IP), what=f"the start hangs in {phase}")
        # The mirror copies the hung line into the pod's log up to 20 ms later: a read before that
        # would see the previous line, and the operator would first see the hang on the moved clock.
        eventually(lambda: last in emulator_server.emulator.pod_logs.text(cluster.ns, "m-0", "vllm"),
                   what="the hung line in the pod's log")
        mark = emulator_server.emulator.log_mark()
        eventually(lambda: read_since(emulator_server, "m-0", mark), what="a read of the hung log")
        clock.advance(STALL - 30)
        passes_after(emulator_server, "m-0")
        assert cluster.conditions("m")["Stalled"][0] == "False" and pod_deletes(emulator_server) == []
        clock.advance(60)
        # Stalled=True lasts only until the hung pod is deleted (no ReplicaSet recreates it here), which
        # can be a few ms: the deletion and the Warning event written with the condition persist.
        eventually(lambda: pod_deletes(emulator_server) == ["m-0"], what="the hung pod deleted")
        message = warning_message(cluster, reason)
        assert last.split(":")[0].strip() in message
    finally:
        mirror.stop()


def test_a_simulated_start_that_finishes_is_never_judged_stalled(
        watchdog_operator: OperatorThread, cluster: Cluster, emulator_server: EmulatorServer,
        clock: SkewedClock, fleet: SimFleet) -> None:
    loading(cluster)
    fleet.start_sim(POD_IP, download_seconds=0.3, load_seconds=0.3, warmup_seconds=0.3)
    mirror = Mirror(fleet, emulator_server, cluster.ns, "m-0")
    try:
        eventually(lambda: "Starting vLLM API server" in fleet.startup_log(POD_IP),
                   what="the simulated start finishes")
        passes_after(emulator_server, "m-0")
        clock.advance(STALL - 30)  # the readiness probe has not answered yet: still no stall
        passes_after(emulator_server, "m-0")
        assert cluster.conditions("m")["Stalled"][0] == "False" and pod_deletes(emulator_server) == []
    finally:
        mirror.stop()
