"""What reading configs through transformers costs: import, parse per config, CLI start to plan.

Run: .venv/bin/python bench/config_parse_bench.py [--repeat N]. Prints medians; results are
recorded in docs/PERFORMANCE.md with machine and date (decision:
docs/decisions/config-parsing-with-transformers.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "operator" / "modeldeploy" / "data" / "models"


def _seconds(argv: list[str], runs: int) -> float:
    """Median CPU seconds (user + system) of a child process: robust to a machine shared with
    other work, where wall time mostly measures the queue."""
    times = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--processes", type=int, default=5)
    args = parser.parse_args()
    python, cli = sys.executable, str(Path(sys.executable).parent / "modeldeploy")
    bare = _seconds([python, "-c", "import modeldeploy.planner"], args.processes)
    with_tf = _seconds([python, "-c", "from modeldeploy.facts.hf_config import _auto_config; _auto_config()"],
                       args.processes)
    plan = _seconds([cli, "plan", str(ROOT / "examples" / "llama-3.1-8b.yaml"), "--offline", "-o", "json"],
                    args.processes)
    from modeldeploy.facts.hf_config import facts_from_hf

    per_config = []
    for path in sorted(MODELS.glob("*.yaml")):
        entry = yaml.safe_load(path.read_text(encoding="utf-8"))
        facts_from_hf(entry["id"], entry["config"])  # warm
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            facts_from_hf(entry["id"], entry["config"])
            times.append((time.perf_counter() - start) * 1000)
        per_config.append((entry["id"], statistics.median(times)))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"CPU s, median of {args.processes} processes: start + import modeldeploy.planner {bare:.2f}; "
          f"+ transformers' AutoConfig {with_tf:.2f}; modeldeploy plan of one catalog model (offline, JSON) {plan:.2f}")
    medians = [ms for _, ms in per_config]
    worst = max(per_config, key=lambda r: r[1])
    print(f"facts_from_hf per config ({len(per_config)} catalog files): median {statistics.median(medians):.2f} ms, "
          f"slowest {worst[1]:.2f} ms ({worst[0]})")


if __name__ == "__main__":
    main()
