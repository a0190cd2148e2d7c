"""The performance model: TTFT, TPOT, throughput and KV-bound concurrency of a vLLM replica.

Pure physics on per-GPU bytes and FLOPs (`load.LayoutLoad`) and GPU specifications
(`model.Hardware`), with a few constants fitted to measured vLLM runs (`constants.FITTED`).
The planner builds the inputs (`modeldeploy.planner.performance`).
"""

from .constants import FITTED, PerfConstants
from .load import ComputeFormat, LayoutLoad
from .model import Hardware, Limits, Prediction, Workload, predict

__all__ = ["FITTED", "ComputeFormat", "Hardware", "LayoutLoad", "Limits", "PerfConstants", "Prediction", "Workload", "predict"]
