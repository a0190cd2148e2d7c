"""Startup watchdog benchmark: what judging one starting pod costs a pass.

`decisions.startup.judge_start` on the log tails the shell reads (at most `tailLines` 200 and
`limitBytes` 256 KiB, shell/starts.py), 300 timed runs each after one warm-up, with
`time.perf_counter` around the call (pure: no I/O):

- typical: 200 lines of a vLLM 0.11 start, the newest a startup milestone (found at once);
- no milestone: 200 lines of request logs, no startup line (every line tried against every
  pattern: the worst case of a log of that length);
- worst: 256 KiB of tqdm redraws separated by carriage returns, no milestone.

Each log is timed three ways: the whole judgement (`judge_start`, which also looks for vLLM's
errors), finding the newest milestone (`last_step`, keyword search), and the plain line-by-line
search it replaced (every line, newest first, against every pattern) for the ratio.

Run: python bench/startup_bench.py
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from modeldeploy.decisions.startup import _MILESTONES, judge_start, last_step

POD = {"metadata": {"name": "m-0"}, "status": {"containerStatuses": [
    {"name": "vllm", "ready": False, "restartCount": 0, "state": {"running": {"startedAt": "x"}}}]}}
ACCESS = ('(APIServer pid=1) INFO 11-30 09:00:00 [loggers.py:123] Engine 000: Avg prompt '
          'throughput: 0.0 tokens/s, Avg generation throughput: 0.0 tokens/s, Running: 0 reqs\n')
MILESTONE = ("(EngineCore_DP0 pid=212) INFO 11-30 09:05:00 [kv_cache_utils.py:1087] "
             "GPU KV cache size: 49,152 tokens\n")
LOGS = {
    "typical": ACCESS * 199 + MILESTONE,
    "no milestone": ACCESS * 200,
    "worst (256 KiB, carriage returns)": ("\rProcessed prompts:  42%|####2     | 42/100 "
                                          "[00:10<00:14, 4.1it/s]" * 4000)[: 256 * 1024],
}


def line_by_line(log: str) -> object:
    for segment in reversed(re.split(r"[\r\n]+", log)):
        text = segment.strip()
        for pattern, phase in _MILESTONES:
            if text and pattern.search(text):
                return phase
    return None


def median_us(call: Callable[[int], object]) -> float:
    call(0)
    times = []
    for i in range(300):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def main() -> None:
    print("| log | bytes | judge_start µs | last_step µs | line by line µs | ratio |")
    print("|---|---|---|---|---|---|")
    for name, log in LOGS.items():
        judge = median_us(lambda i, log=log: judge_start(POD, log, None, float(i), 600, 16_060_522_496))
        step = median_us(lambda _, log=log: last_step(log))
        plain = median_us(lambda _, log=log: line_by_line(log))
        print(f"| {name} | {len(log.encode())} | {judge:.0f} | {step:.0f} | {plain:.0f} | "
              f"{plain / step:.0f}x |")


if __name__ == "__main__":
    main()
