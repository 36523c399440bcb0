"""Plain-NumPy reference implementations of every lowbit kernel.

Same signatures as the compiled functions in :mod:`lowbit`, written to read like the formulas
of the API contract. They share argument validation with the compiled API (so both raise the
same errors) but never its kernels; the calibration formulas of :mod:`lowbit._calib` are the one
arithmetic both use. Every compiled path must match them bit for bit.

This module only gathers the reference functions: the element-wise kernels and calibration are
in ``_reference_quant.py``, the integer products in ``_reference_gemm.py``, ``linear`` in
``_reference_linear.py``. None of them imports the compiled API (``tests/test_imports.py``
checks it).
"""

from __future__ import annotations

# calibration_candidates, qparams_from_range, slot_mean_sq_error and dynamic_act_qparams are
# not in __all__ but stay importable from here, as they always were
from ._calib import calibration_candidates, qparams_from_range, slot_mean_sq_error  # noqa: F401
from ._checks import QParams
from ._reference_gemm import matmul_int, matmul_int4
from ._reference_linear import dynamic_act_qparams, linear  # noqa: F401
from ._reference_quant import (calibrate, dequantize, fake_quantize, fake_quantize_grad,
                               pack_int4, quantize, unpack_int4)
from ._formats import (dequantize_codebook, dequantize_mx, fit_codebook, quantize_codebook,
                       quantize_mx)

__all__ = ["quantize", "dequantize", "calibrate", "pack_int4", "unpack_int4",
           "fake_quantize", "fake_quantize_grad", "QParams", "matmul_int", "matmul_int4",
           "linear", "quantize_mx", "dequantize_mx", "fit_codebook", "quantize_codebook",
           "dequantize_codebook"]
