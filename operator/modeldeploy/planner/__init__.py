"""The layout planner: pure functions from (spec, model facts, pools) to a Plan."""

from .plan import MemoryPerGPU, Plan, Rejection, unplanned
from .planner import plan_deployment
from .pools import default_pools

__all__ = ["MemoryPerGPU", "Plan", "Rejection", "default_pools", "plan_deployment", "unplanned"]
