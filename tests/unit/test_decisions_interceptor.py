"""The KEDA HTTP add-on interceptor's `/queue` counts (kedacore/http-add-on v0.11.0
pkg/queue/queue_counts.go: a JSON map from `namespace/name` to {Concurrency, RPS})."""

from __future__ import annotations

from modeldeploy.decisions.interceptor import interceptor_in_flight, pod_count, queue_key

KEY = queue_key("models", "llama")
BODY = '{"models/llama": {"Concurrency": 3, "RPS": 0.25}, "other/x": {"Concurrency": 9, "RPS": 1}}\n'


def test_one_pod() -> None:
    assert pod_count(BODY, KEY) == 3
    assert pod_count("{}", KEY) == 0  # nothing routed to this host yet
    assert pod_count("error getting queue size", KEY) is None
    assert pod_count('{"models/llama": {"Concurrency": "3"}}', KEY) is None


def test_summed_over_interceptor_pods_and_none_when_any_is_unreadable() -> None:
    assert interceptor_in_flight([BODY, BODY, "{}"], KEY) == 6
    assert interceptor_in_flight([BODY, "<html>"], KEY) is None
    assert interceptor_in_flight([], KEY) is None
