"""Rules that depend on the GPU generation (compute capability). Pure.

vLLM checks a quantization method's `get_min_capability()` when it loads the config
(vllm/config/model.py `_verify_quantization` → "The quantization method X is not supported for
the current GPU. Minimum capability: N. Current capability: M."), and attention backends check
the device before the model loads. The planner refuses those pools up front. A GPU the catalog
does not know and whose pool gives no computeCapability is not judged (see the plan's reason).
"""

from __future__ import annotations

from ..api import GPUPool
from ..facts import ModelFacts
from ..facts.gpus import Vendor, effective_gpu_spec
from ..facts.quantization import AWQ, BITSANDBYTES, COMPRESSED_TENSORS, FP8, GPTQ, MXFP4, NVFP4
from .memory import Precision

# Minimum compute capability per method, as vLLM's QuantizationConfig.get_min_capability()
# says (vllm/model_executor/layers/quantization/<method>.py).
_MIN_CAPABILITY: dict[str, tuple[tuple[int, int], str]] = {
    # fp8.py Fp8Config: 80; on 8.0–8.6 vLLM runs FP8 weights as W8A16 through Marlin.
    FP8: ((8, 0), "fp8.py Fp8Config.get_min_capability"),
    AWQ: ((7, 5), "awq.py AWQConfig.get_min_capability"),
    GPTQ: ((6, 0), "gptq.py GPTQConfig.get_min_capability"),
    BITSANDBYTES: ((7, 0), "bitsandbytes.py BitsAndBytesConfig.get_min_capability"),
    # mxfp4.py Mxfp4Config: 80 (Marlin W4A16 below Hopper).
    MXFP4: ((8, 0), "mxfp4.py Mxfp4Config.get_min_capability"),
    # FP4 matmuls (W4A4) exist only on Blackwell (SM100); below it vLLM runs NVFP4 weights as
    # W4A16 through Marlin, so the hard floor is the method's: 75.
    NVFP4: ((7, 5), "modelopt.py ModelOptNvFp4Config.get_min_capability"),
}
# compressed-tensors: the scheme decides (compressed_tensors.py _check_scheme_supported).
_W8A8_INT8 = ((7, 5), "compressed_tensors.py CompressedTensorsW8A8Int8.get_min_capability")
_W_A16 = ((7, 5), "compressed_tensors.py CompressedTensorsWNA16.get_min_capability")
_ANY_FP8 = ((8, 0), "compressed_tensors.py CompressedTensorsW8A16Fp8.get_min_capability")
# DeepSeek-V3.2 sparse attention: FlashMLA sparse kernels for SM90 and SM100 only
# (vllm/v1/attention/backends/mla/flashmla_sparse.py; vllm-project/vllm#30644).
SPARSE_MLA_MAJORS = (9, 10)


def _requirement(precision: Precision) -> tuple[tuple[int, int], str] | None:
    quant = precision.quantization
    if quant is None:
        return None
    if quant.method != COMPRESSED_TENSORS:
        return _MIN_CAPABILITY.get(quant.method)
    if quant.float_weights and quant.bits == 4:
        return _MIN_CAPABILITY[NVFP4]
    if quant.float_weights:
        return _ANY_FP8
    return _W8A8_INT8 if quant.activation_bits == 8 else _W_A16


def _text(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"


def capability_rule(facts: ModelFacts, precision: Precision, cc: tuple[int, int] | None) -> str | None:
    """Why a GPU of compute capability `cc` cannot run this model's kernels, or None."""
    if cc is None:
        return None
    if facts.sparse_attention and cc[0] not in SPARSE_MLA_MAJORS:
        return (f"{facts.id}'s sparse attention (FlashMLA sparse) runs only on SM90/SM100 GPUs; this GPU is "
                f"compute capability {_text(cc)} (vLLM flashmla_sparse backend)")
    need = _requirement(precision)
    if need is not None and cc < need[0]:
        quant = precision.quantization
        what = quant.label if quant else precision.effective_quantization
        return (f"{what} needs compute capability ≥ {_text(need[0])}; this GPU is {_text(cc)} "
                f"(vLLM {need[1]})")
    return None


def weight_only_note(precision: Precision, cc: tuple[int, int] | None) -> str | None:
    """Low-precision float weights on GPUs without matching tensor cores run weight-only (Marlin):
    FP8 below 8.9 (W8A8 needs FP8 tensor cores), FP4 below 10.0. Same memory, slower matmuls."""
    quant = precision.quantization
    if cc is None or quant is None or not quant.float_weights:
        return None
    floor = (8, 9) if quant.bits == 8 else (10, 0)
    if cc < floor:
        return (f"{quant.label} runs weight-only (W{quant.bits}A16, Marlin) on compute capability {_text(cc)}: "
                f"{'FP8' if quant.bits == 8 else 'FP4'} matmuls need {_text(floor)}")
    return None


def pool_capability(pool: GPUPool) -> tuple[int, int] | None:
    """The pool GPU's compute capability: GPUPool override, else the GPU catalog; None if unknown
    or not an NVIDIA GPU (the capabilities above are CUDA's)."""
    spec = effective_gpu_spec(pool.spec.gpu)
    if spec is None or spec.vendor != Vendor.NVIDIA:
        return None
    return spec.compute_capability


def pool_rule(facts: ModelFacts, precision: Precision, pool: GPUPool) -> str | None:
    """Why no layout of this pool can run the model, given its GPU generation, or None."""
    return capability_rule(facts, precision, pool_capability(pool))
