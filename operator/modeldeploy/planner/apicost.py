"""Self-hosting against hosted APIs: $/M tokens, monthly cost, break-even volume. Pure.

For a plan with a `performance` block (spec.serving.workload): the request mix (input and
output tokens per request) prices each API as a blend; the deployment costs its replicas'
GPU-hours whatever the traffic, so it breaks even at the daily volume where the API bill
equals that fixed cost: tokens/day = (replicas × $/h × 24) / (API $ per token). Above it
self-hosting is cheaper — up to what the replicas can serve within the SLO (capacity), which the
table shows; a break-even volume above capacity is still a number, marked as such (self-hosting
costs more per token even at capacity). When the replicas miss the SLO at the workload, the
workload is above capacity, and Self $/M (at the workload) can be below the API's while the
break-even is above capacity: both are true, and the CLI says which load each is at.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from ..api import Workload
from ..errors import InvalidSpec
from ..kubeyaml import KubectlLoader, YamlError
from .plan import Plan

HOURS_PER_MONTH = 730  # 8,760 h / 12
API_PRICES_RESOURCE = "data/api-prices.yaml"


class ApiPrice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    input_per_million: float = Field(ge=0, le=10_000)
    output_per_million: float = Field(ge=0, le=10_000)
    source: str = ""

    def blended(self, input_tokens: int, output_tokens: int) -> float:
        """$ per million tokens for requests of this shape."""
        total = input_tokens + output_tokens
        return (self.input_per_million * input_tokens + self.output_per_million * output_tokens) / total


class PriceList(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    date: str = Field(min_length=1)
    prices: list[ApiPrice] = Field(min_length=1)

    @field_validator("date", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        """`date: 2026-11-30` unquoted is a YAML date; keep it as the ISO text it was written as."""
        return value.isoformat() if isinstance(value, datetime.date) else value


def parse_price_list(text: str, origin: str) -> PriceList:
    """A price list from YAML read as kubectl reads it (kubeyaml: exponent numbers, no key given
    twice); InvalidSpec naming the file and field when malformed."""
    try:
        data: Any = yaml.load(text, Loader=KubectlLoader)  # KubectlLoader is a SafeLoader
        return PriceList.model_validate(data)
    except YamlError as exc:
        raise InvalidSpec(f"{origin}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise InvalidSpec(f"{origin}: invalid YAML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise InvalidSpec(f"{origin}: {where}: {first['msg']}") from exc


@cache
def builtin_prices() -> PriceList:
    text = resources.files("modeldeploy").joinpath(API_PRICES_RESOURCE).read_text(encoding="utf-8")
    return parse_price_list(text, API_PRICES_RESOURCE)


@dataclass(frozen=True)
class Comparison:
    """One plan against one API. Money in USD; volume in tokens per day."""

    plan: str
    api: str
    api_per_million: float  # blended for the workload's request mix
    self_per_million: float | None  # at the workload
    self_per_million_full_load: float | None  # one replica at its capacity
    self_monthly: float | None  # the replicas serving the workload, 24/7
    api_monthly: float  # the workload's tokens at the API's prices
    break_even_tokens_per_day: float | None  # None: never (a free API)
    capacity_tokens_per_day: float | None  # what those replicas serve at capacity
    break_even_above_capacity: bool | None = None  # the replicas cannot serve that volume within the SLO


def compare(plan: Plan, workload: Workload | None, prices: PriceList) -> list[Comparison]:
    """Every API price against the plan; [] without a performance prediction or a price."""
    perf = plan.performance
    if perf is None or workload is None or plan.cost_per_hour is None:
        return []
    inputs, outputs = workload.input_tokens, workload.output_tokens
    replicas = max(perf.replicas, 1)
    tokens_per_day = perf.requests_per_second * replicas * (inputs + outputs) * 86_400
    hourly = plan.cost_per_hour * replicas
    capacity = None
    if perf.capacity_output_tokens_per_second is not None:  # 0: not even one request meets the SLO
        capacity = perf.capacity_output_tokens_per_second / outputs * (inputs + outputs) * 86_400 * replicas
    out = []
    for price in prices.prices:
        blended = price.blended(inputs, outputs)
        break_even = hourly * 24 / (blended / 1e6) if blended > 0 else None
        out.append(Comparison(
            plan=plan.name, api=price.name, api_per_million=round(blended, 4),
            self_per_million=perf.cost_per_million_tokens,
            self_per_million_full_load=perf.capacity_cost_per_million_tokens,
            self_monthly=round(hourly * HOURS_PER_MONTH, 2),
            api_monthly=round(tokens_per_day * 30.4 * blended / 1e6, 2),
            break_even_tokens_per_day=break_even,
            capacity_tokens_per_day=capacity,
            break_even_above_capacity=None if break_even is None or capacity is None else break_even > capacity,
        ))
    return out

