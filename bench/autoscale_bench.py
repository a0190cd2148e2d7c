"""Autoscaling benchmark: synthetic load traces through the real decision function.

A fluid model of a vLLM fleet over simulated time, one decision per scrape interval:

- demand D(t) is the number of requests that want to be in flight (arrival rate x service time);
- each Ready replica runs up to C requests at once (its max_num_seqs); the rest wait, spread over
  the Ready replicas (0 Ready: they wait at the gateway, the scale-from-zero signal);
- KV usage of a replica is 0.9 x running / C (a full batch fills ~90 % of the cache);
- a new replica serves after `load_s` (model load); a removed one stops at once;
- the pool holds at most `pool` replicas (the capacity cap).

Per trace and metric it reports: reaction (scrape-interval decisions from the first
under-provisioned tick to the first scale-up, in seconds), time to capacity (from the first
under-provisioned tick until Ready capacity covers demand, mean over episodes), replica-minutes
used vs. the ideal (ceil(D / C) replicas, no load time), request-minutes spent waiting, and
direction changes (up after down or down after up).

Run: python bench/autoscale_bench.py [--markdown]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

import itertools

from modeldeploy.api.deployment import Autoscaling
from modeldeploy.decisions.autoscale import ScalingHistory, ScalingObservation, decide
from modeldeploy.decisions.metrics import PodSample

MIN = 60.0
Trace = Callable[[float], float]


@dataclass(frozen=True)
class Fleet:
    per_replica: int = 16  # C: concurrent sequences per replica
    load_s: float = 180.0  # model load time of a new replica
    scrape_s: float = 15.0  # decision interval
    pool: int = 12  # replicas the GPU pool can hold
    duration_s: float = 120 * MIN


@dataclass(frozen=True)
class Result:
    trace: str
    metric: str
    reaction_s: float | None
    to_capacity_s: float | None
    used_min: float
    ideal_min: float
    waiting_req_min: float
    direction_changes: int
    peak: int

    @property
    def ratio(self) -> float:
        return self.used_min / self.ideal_min if self.ideal_min else math.inf


def step(t: float) -> float:
    return 120.0 if 20 * MIN <= t < 80 * MIN else 20.0


def ramp(t: float) -> float:
    if t < 20 * MIN:
        return 10.0
    if t < 60 * MIN:
        return 10.0 + 140.0 * (t - 20 * MIN) / (40 * MIN)
    if t < 100 * MIN:
        return 150.0 - 140.0 * (t - 60 * MIN) / (40 * MIN)
    return 10.0


def oscillation(t: float) -> float:
    return 80.0 + 60.0 * math.sin(2 * math.pi * t / (20 * MIN))


def burst(t: float) -> float:
    """Idle, two bursts, idle: the scale-to-zero case (the second burst finds a measured
    per-replica concurrency and wakes what it needs)."""
    return 40.0 if 30 * MIN <= t < 50 * MIN or 80 * MIN <= t < 95 * MIN else 0.0


TRACES: dict[str, Trace] = {"step": step, "ramp": ramp, "oscillation": oscillation}

METRICS: dict[str, dict[str, Any]] = {
    "requestsWaiting": {"metric": "requestsWaiting", "target": 2},
    "requestsRunning": {"metric": "requestsRunning", "target": 12},  # 75 % of C
    "kvCacheUsage": {"metric": "kvCacheUsage", "target": 0.7},
}


def simulate(name: str, trace: Trace, spec: Autoscaling, fleet: Fleet, start: int = 1) -> Result:
    c, dt = fleet.per_replica, fleet.scrape_s
    history = ScalingHistory()
    loading: list[float] = []  # ready-at times of replicas still loading
    ready = start
    used = ideal = waited = 0.0
    replicas_seen: list[int] = [start]
    reactions: list[float] = []
    to_capacity: list[float] = []
    short_since: float | None = None
    reacted = False
    t = 0.0
    while t < fleet.duration_s:
        ready += sum(1 for r in loading if r <= t)
        loading = [r for r in loading if r > t]
        current = ready + len(loading)
        demand = trace(t)
        running = min(demand, c * ready)
        waiting = demand - running
        if waiting > 1e-9 and short_since is None:
            short_since, reacted = t, False
        elif waiting <= 1e-9 and short_since is not None:
            to_capacity.append(t - short_since)
            short_since = None
        scrapes = tuple(
            PodSample(f"p{i}", running / ready, waiting / ready, 0.9 * running / ready / c) for i in range(ready)
        )
        gateway = round(waiting) if ready == 0 else None
        d = decide(spec, ScalingObservation(current, scrapes, gateway), history, t, fleet.pool)
        history = d.history
        if d.desired_replicas > current:
            if short_since is not None and not reacted:
                reactions.append(t - short_since)
                reacted = True
            loading += [t + fleet.load_s] * (d.desired_replicas - current)
        elif d.desired_replicas < current:
            drop = current - d.desired_replicas
            cut = min(drop, len(loading))  # cancel loading replicas first, then Ready ones
            loading = sorted(loading)[: len(loading) - cut]
            ready -= drop - cut
        replicas_seen.append(d.desired_replicas)
        used += current * dt / MIN
        floor = 0 if spec.scale_to_zero else spec.min_replicas
        ideal += max(floor, math.ceil(demand / c - 1e-9)) * dt / MIN
        waited += waiting * dt / MIN
        t += dt
    deltas = [b - a for a, b in itertools.pairwise(replicas_seen) if b != a]
    changes = sum(1 for a, b in itertools.pairwise(deltas) if (a > 0) != (b > 0))
    return Result(
        name,
        spec.metric,
        sum(reactions) / len(reactions) if reactions else None,
        sum(to_capacity) / len(to_capacity) if to_capacity else None,
        used,
        ideal,
        waited,
        changes,
        max(replicas_seen),
    )


def run_all(fleet: Fleet) -> list[Result]:
    results: list[Result] = []
    for tname, trace in TRACES.items():
        for metric in METRICS.values():
            spec = Autoscaling.model_validate({"minReplicas": 1, "maxReplicas": 12, **metric})
            results.append(simulate(tname, trace, spec, fleet, start=2))
    zero = Autoscaling.model_validate(
        {
            "minReplicas": 0,
            "maxReplicas": 12,
            "scaleToZero": True,
            "idleSeconds": 600,
            "metric": "requestsWaiting",
            "target": 2,
        }
    )
    results.append(simulate("burst (scale to zero)", burst, zero, fleet, start=1))
    return results


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def table(results: list[Result], markdown: bool) -> str:
    head = [
        "trace",
        "metric",
        "reaction s",
        "to capacity s",
        "replica-min",
        "ideal",
        "used/ideal",
        "waiting req-min",
        "dir. changes",
        "peak",
    ]
    rows = [
        [
            r.trace,
            r.metric,
            _fmt(r.reaction_s),
            _fmt(r.to_capacity_s),
            f"{r.used_min:.0f}",
            f"{r.ideal_min:.0f}",
            f"{r.ratio:.2f}",
            f"{r.waiting_req_min:.0f}",
            str(r.direction_changes),
            str(r.peak),
        ]
        for r in results
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--load-seconds", type=float, default=Fleet.load_s, help="model load time")
    args = parser.parse_args()
    fleet = Fleet(load_s=args.load_seconds)
    print(
        f"C={fleet.per_replica} seqs/replica, load {fleet.load_s:.0f}s, scrape {fleet.scrape_s:.0f}s, "
        f"pool {fleet.pool} replicas, {fleet.duration_s / MIN:.0f} min per trace, "
        "windows up 0s / down 300s"
    )
    print(table(run_all(fleet), args.markdown))


if __name__ == "__main__":
    main()
