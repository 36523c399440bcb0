"""lowbit: INT8 and INT4 quantization kernels for NumPy.

Hand-written SIMD kernels (AVX2, AVX-512, AVX-512 VNNI, NEON, and a portable scalar path; chosen
at run time by CPU features) that agree bit for bit with the plain-NumPy implementations in
:mod:`lowbit.reference`. The contract is docs/api.md; ``python -m lowbit`` reports the CPU, the
paths and a self-check.
"""

from ._checks import QParams
from ._quant import (calibrate, dequantize, fake_quantize, fake_quantize_grad, pack_int4,
                     quantize, unpack_int4)
from ._runtime import (available_isas, cpu_info, get_num_threads, set_isa, set_num_threads)
from ._runtime import _apply_environment
from ._gemm import PackedMatrix, matmul_int, matmul_int4, pack_matrix
from ._qtensor import QTensor, load
from ._linear import linear
from ._observer import Observer
from ._mx import dequantize_mx, quantize_mx
from ._codebook import dequantize_codebook, fit_codebook, quantize_codebook
from ._safetensors import load_safetensors, save_safetensors
from . import mixed, qat, reference

__version__ = "0.1.0"

__all__ = [
    "QParams", "quantize", "dequantize", "calibrate", "pack_int4", "unpack_int4",
    "fake_quantize", "fake_quantize_grad",
    "matmul_int", "matmul_int4", "pack_matrix", "PackedMatrix",
    "QTensor", "load", "linear", "Observer", "mixed", "qat",
    "quantize_mx", "dequantize_mx", "fit_codebook", "quantize_codebook", "dequantize_codebook",
    "save_safetensors", "load_safetensors",
    "available_isas", "set_isa", "cpu_info", "set_num_threads", "get_num_threads",
    "reference",
]

_apply_environment()
del _apply_environment
