"""Fitting the performance constants: Nelder–Mead on positive parameters (log space). Pure.

Small and dependency-free (the operator image carries no numpy/scipy): the model has eight
constants and the calibration set a few hundred rows, so a simplex search converges in well
under a minute on one core.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from .constants import PerfConstants

Objective = Callable[[PerfConstants], float]


def nelder_mead(f: Callable[[list[float]], float], start: Sequence[float], step: float = 0.3,
                iterations: int = 600, tolerance: float = 1e-7) -> list[float]:
    """Minimise `f` from `start` (standard reflection/expansion/contraction/shrink)."""
    n = len(start)
    simplex = [list(start)] + [[x + (step if i == j else 0.0) for j, x in enumerate(start)] for i in range(n)]
    scores = [f(p) for p in simplex]
    for _ in range(iterations):
        order = sorted(range(n + 1), key=scores.__getitem__)
        simplex, scores = [simplex[i] for i in order], [scores[i] for i in order]
        if abs(scores[-1] - scores[0]) < tolerance:
            break
        centroid = [sum(p[j] for p in simplex[:-1]) / n for j in range(n)]
        worst = simplex[-1]

        def toward(t: float, w: list[float] = worst, c: list[float] = centroid) -> list[float]:
            return [c[j] + t * (w[j] - c[j]) for j in range(n)]

        reflected = toward(-1.0)
        r = f(reflected)
        if r < scores[0]:
            expanded = toward(-2.0)
            e = f(expanded)
            simplex[-1], scores[-1] = (expanded, e) if e < r else (reflected, r)
        elif r < scores[-2]:
            simplex[-1], scores[-1] = reflected, r
        else:
            contracted = toward(0.5)
            c = f(contracted)
            if c < scores[-1]:
                simplex[-1], scores[-1] = contracted, c
            else:  # shrink toward the best point
                best = simplex[0]
                simplex = [best] + [[best[j] + 0.5 * (p[j] - best[j]) for j in range(n)] for p in simplex[1:]]
                scores = [scores[0]] + [f(p) for p in simplex[1:]]
    return simplex[min(range(n + 1), key=scores.__getitem__)]


def _bounded(names: Sequence[str]) -> list[bool]:
    """Efficiencies are shares (0–1): searched through a logistic, the rest through exp."""
    return [name.endswith("_efficiency") for name in names]


def _to_search(value: float, share: bool) -> float:
    if share:
        value = min(max(value, 1e-6), 1 - 1e-6)
        return math.log(value / (1 - value))
    return math.log(value)


def _from_search(value: float, share: bool) -> float:
    return 1 / (1 + math.exp(-value)) if share else math.exp(value)


def fit_constants(objective: Objective, start: PerfConstants, iterations: int = 600) -> PerfConstants:
    """Constants minimising `objective`; every constant stays > 0 and every efficiency ≤ 1."""
    shares = _bounded(start.names())

    def decode(values: list[float]) -> PerfConstants:
        return PerfConstants.from_vector([_from_search(v, s) for v, s in zip(values, shares, strict=True)])

    best = nelder_mead(lambda v: objective(decode(v)),
                       [_to_search(v, s) for v, s in zip(start.as_vector(), shares, strict=True)],
                       iterations=iterations)
    return PerfConstants.from_vector([round(v, 4) for v in decode(best).as_vector()])
