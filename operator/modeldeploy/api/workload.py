"""`spec.serving.workload` and `spec.serving.slo`: the load a deployment serves and its targets.

With a workload the planner sizes the KV cache for the load (concurrency × (input + output)
tokens, at least one maxModelLen sequence), predicts TTFT/TPOT/throughput with the
performance model, and chooses pool × layout × replica count (docs/sizing.md).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import ApiModel


class Workload(ApiModel):
    """A typical request and how many of them: `concurrency` (requests in flight, a closed
    loop) or `requestsPerSecond` (arrivals, an open loop). Whole deployment, not per replica."""

    input_tokens: int = Field(ge=1, le=10_000_000, description="Prompt tokens of a typical request.")
    output_tokens: int = Field(ge=1, le=10_000_000, description="Generated tokens of a typical request.")
    concurrency: float | None = Field(default=None, gt=0, le=1_000_000, description="Requests in flight across the deployment (give this or requestsPerSecond).")
    requests_per_second: float | None = Field(default=None, gt=0, le=1_000_000, description="Requests arriving per second across the deployment (give this or concurrency).")

    @model_validator(mode="after")
    def _one_rate(self) -> Workload:
        if (self.concurrency is None) == (self.requests_per_second is None):
            raise ValueError("give exactly one of concurrency or requestsPerSecond")
        return self

    @property
    def tokens_per_request(self) -> int:
        return self.input_tokens + self.output_tokens


class Slo(ApiModel):
    """Latency targets per request at the workload (means, as vLLM's benchmarks report them)."""

    ttft_ms: float | None = Field(default=None, alias="ttftMs", gt=0, le=3_600_000, description="Time to first token, ms.")
    tpot_ms: float | None = Field(default=None, alias="tpotMs", gt=0, le=600_000, description="Time per output token after the first, ms.")

    @model_validator(mode="after")
    def _some_target(self) -> Slo:
        if self.ttft_ms is None and self.tpot_ms is None:
            raise ValueError("give ttftMs, tpotMs or both")
        return self
