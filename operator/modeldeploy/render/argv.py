"""The vLLM command line and environment, and the checks on what a user adds to them.

The plan owns the layout flags; `spec.serving.extraArgs` may add anything else but never restate
or contradict a flag the plan controls. vLLM parses with argparse, which also accepts
`--flag=value`, `--flag_with_underscores` and `--flag.key value` (vLLM normalises both),
unambiguous prefixes of long flags, and attached values for two-character aliases (`-qfp8`).
Every one of those forms is checked.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..api import ModelDeployment
from ..errors import InvalidSpec
from ..planner import Plan

PORT = 8000

# Long flags the plan or the renderer sets, with where the user sets the same thing instead.
RESERVED_LONG: dict[str, str] = {
    "--model": "the model comes from spec.model.name",
    "--served-model-name": "the served name is spec.model.name",
    "--revision": "set spec.model.revision",
    "--tensor-parallel-size": "the planner chooses it; pin spec.placement.tensorParallelSize",
    "--pipeline-parallel-size": "the planner chooses it; pin spec.placement.pipelineParallelSize",
    "--data-parallel-size": "replicas are separate pods; set spec.replicas or spec.autoscaling",
    "--max-model-len": "set spec.serving.maxModelLen",
    "--max-num-seqs": "set spec.serving.maxNumSeqs",
    "--max-num-batched-tokens": "set spec.serving.maxNumBatchedTokens",
    "--gpu-memory-utilization": "set spec.serving.gpuMemoryUtilization",
    "--quantization": "set spec.model.quantization",
    "--dtype": "set spec.model.dtype",
    "--kv-cache-dtype": "set spec.serving.kvCacheDtype",
    "--enable-expert-parallel": "the planner enables it for MoE models across GPUs",
    "--no-enable-expert-parallel": "the planner enables it for MoE models across GPUs",
    "--distributed-executor-backend": "the renderer chooses it (ray across nodes)",
    "--port": f"the server listens on {PORT}, where the probes and the Service point",
    "--host": "the server listens on every interface of the pod",
    "--config": "a config file could set any flag the plan controls",
    "--api-key": "it would make the /v1/models probes fail; authenticate at the gateway",
    "--headless": "the serving pod must run the API server",
}
# Single-dash aliases of reserved flags.
RESERVED_SHORT: dict[str, str] = {
    "-tp": "--tensor-parallel-size",
    "-pp": "--pipeline-parallel-size",
    "-dp": "--data-parallel-size",
    "-ep": "--enable-expert-parallel",
    "-q": "--quantization",
}
# Environment variables the renderer sets or that carry secrets; LWS_* belong to LeaderWorkerSet.
RESERVED_ENV: dict[str, str] = {
    "HF_HOME": "the model cache location is set by the operator (spec.cache)",
    "HF_TOKEN": "use spec.credentials.huggingFaceToken (a Secret)",
    "HUGGING_FACE_HUB_TOKEN": "use spec.credentials.huggingFaceToken (a Secret)",
    "VLLM_API_KEY": "it would make the /v1/models probes fail; authenticate at the gateway",
}
RESERVED_ENV_PREFIXES = ("LWS_",)

def _quote(value: str) -> str:
    """A user string shown in a one-line message: repr (escapes newlines), bounded."""
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _reserved_flag(token: str) -> tuple[str, str] | None:
    """(reserved flag, why) if argparse could read `token` as a flag the plan controls."""
    # `--flag=value`; vLLM also expands `--flag.key value` into a JSON value for `--flag`
    name = token.split("=", 1)[0].split(".", 1)[0]
    if name.startswith("--"):
        name = "--" + name[2:].replace("_", "-")
        if len(name) <= 2:
            return None
        for flag, why in RESERVED_LONG.items():
            # exact, or an abbreviation argparse would expand to it
            if flag == name or flag.startswith(name):
                return flag, why
        return None
    for short, long in RESERVED_SHORT.items():
        # exact, abbreviated (-t for -tp), or a 2-character alias with its value attached (-qfp8)
        abbreviation = len(name) > 1 and short.startswith(name)
        attached = len(short) == 2 and name.startswith(short)
        if short == name or abbreviation or attached:
            return short, RESERVED_LONG[long]
    return None


def check_extra_args(args: Sequence[str], plan_values: dict[str, str]) -> None:
    """Refuse extraArgs that are positional or set a flag the plan controls (InvalidSpec)."""
    for i, arg in enumerate(args):
        where = f"spec.serving.extraArgs[{i}]"
        if arg in ("-", "--") or (i == 0 and not arg.startswith("-")):
            raise InvalidSpec(
                f"{where}: {_quote(arg)} is a positional argument; extraArgs must be vLLM options "
                "(--flag value or --flag=value) because the model is set by spec.model.name"
            )
        if not arg.startswith("-"):
            continue  # the value of the preceding option
        hit = _reserved_flag(arg)
        if hit is not None:
            flag, why = hit
            planned = plan_values.get(RESERVED_SHORT.get(flag, flag))
            detail = f" (the plan sets {planned})" if planned is not None else ""
            raise InvalidSpec(
                f"{where}: {_quote(arg)} sets {flag}, which modeldeploy controls{detail}: {why}"
            )


def check_env(md: ModelDeployment) -> None:
    for i, env in enumerate(md.spec.serving.env):
        why = RESERVED_ENV.get(env.name)
        if why is None and env.name.startswith(RESERVED_ENV_PREFIXES):
            why = "LeaderWorkerSet sets the LWS_* variables"
        if why is not None:
            raise InvalidSpec(f"spec.serving.env[{i}]: {env.name} is reserved: {why}")


def kube_escape(value: str) -> str:
    """Escape `$` so the kubelet's $(VAR) expansion hands the process exactly `value`."""
    return value.replace("$", "$$")


def _number(value: float) -> str:
    return format(value, "g")


def vllm_args(
    md: ModelDeployment, plan: Plan, multi_node: bool
) -> tuple[list[str], dict[str, str]]:
    """argv after `vllm serve`: the model, the plan's flags, then extraArgs (one element each).

    Returns the argv and the plan's value for each reserved flag (for error messages).
    """
    serving = md.spec.serving
    flags: list[tuple[str, str | None]] = [
        ("--served-model-name", md.spec.model.name),
    ]
    if md.spec.model.revision:
        flags.append(("--revision", md.spec.model.revision))
    flags += [
        ("--port", str(PORT)),
        ("--tensor-parallel-size", str(plan.tensor_parallel_size)),
        ("--pipeline-parallel-size", str(plan.pipeline_parallel_size)),
        ("--max-model-len", str(plan.max_model_len)),
        ("--gpu-memory-utilization", _number(serving.gpu_memory_utilization)),
        ("--dtype", plan.requested_dtype),  # as asked: auto lets vLLM resolve what the plan sized
        ("--kv-cache-dtype", plan.kv_cache_dtype),
    ]
    if plan.max_num_seqs is not None:
        flags.append(("--max-num-seqs", str(plan.max_num_seqs)))
    if plan.max_num_batched_tokens is not None:
        flags.append(("--max-num-batched-tokens", str(plan.max_num_batched_tokens)))
    if plan.online_quantization:  # a pre-quantized checkpoint: vLLM picks its kernel from the config
        flags.append(("--quantization", str(plan.quantization)))
    if plan.expert_parallel:
        flags.append(("--enable-expert-parallel", None))
    if multi_node:
        flags.append(("--distributed-executor-backend", "ray"))
    # The model is positional: `vllm serve --model` is deprecated, and with the positional slot
    # taken a stray positional in extraArgs makes vLLM exit instead of replacing the model.
    argv = [plan.model]
    for flag, value in flags:
        argv.append(flag)
        if value is not None:
            argv.append(value)
    planned = {flag: (value if value is not None else "it") for flag, value in flags}
    planned["--model"] = plan.model
    check_extra_args(serving.extra_args, planned)
    argv += [kube_escape(a) for a in serving.extra_args]
    return argv, planned
