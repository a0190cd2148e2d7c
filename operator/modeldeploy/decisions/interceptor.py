"""The KEDA HTTP add-on interceptor's request count for one model. Pure.

Each interceptor pod serves its counts on its admin port at `/queue` as JSON, keyed by the
HTTPScaledObject's `namespace/name`: `{"models/llama": {"Concurrency": 3, "RPS": 0.5}}`
(kedacore/http-add-on v0.11.0 pkg/queue/queue_rpc.go and queue_counts.go; the key is
`k8s.NamespacedNameFromObject(httpso)`, interceptor/middleware/counting.go). Concurrency is the
requests that pod holds or forwards right now. The add-on's own scaler sums it over every
interceptor pod (scaler/queue_pinger.go); so does `interceptor_in_flight`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable


def queue_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def pod_count(body: str | bytes, key: str) -> int | None:
    """One interceptor pod's Concurrency for `key`: 0 when the key is absent (nothing routed
    yet), None when the body is not the add-on's JSON."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    entry = data.get(key)
    if entry is None:
        return 0
    value = entry.get("Concurrency") if isinstance(entry, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return max(0, value)


def interceptor_in_flight(bodies: Iterable[str | bytes], key: str) -> int | None:
    """The model's count summed over the interceptor pods that answered; None when none did
    or any answer is unreadable (a partial count would look idler than it is)."""
    total, seen = 0, False
    for body in bodies:
        count = pod_count(body, key)
        if count is None:
            return None
        total, seen = total + count, True
    return total if seen else None
