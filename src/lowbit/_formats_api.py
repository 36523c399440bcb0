"""The element formats (fp8_e4m3, fp8_e5m2, fp4_e2m1, nf4) in the compiled API: one call of the
formats kernels (``_core.encode`` / ``_core.decode``) each. ``lowbit.quantize`` and friends route a
format dtype here (checks and tables: lowbit._checks_formats).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _checks, _core, _formats
from ._checks_formats import Format, code_array, kernel_args, packed_shape

_F32 = np.float32

def quantize(x: Any, fmt: Format, scale: Any, axis: Any, group_size: Any,
             out: Optional[np.ndarray], packed: bool) -> np.ndarray:
    xf = _checks.float_array(x, "x")
    gran = _checks.granularity(xf.shape, axis, group_size)
    s = _checks.scale_array(scale, gran)
    shape = packed_shape(xf.shape, fmt, bool(packed))
    layout = _checks.packed_layout(xf.shape, gran) if packed else gran.layout
    if packed and layout is None:  # scales varying along another axis: encode, then pack
        codes = quantize(xf, fmt, s, gran.axis, gran.group_size, None, False)
        out = _checks.check_out(out, shape, np.uint8, x)
        return _checks.finish(_formats.pack_nibbles(codes, axis=-1), out)
    out = _checks.check_out(out, shape, np.uint8, x)
    buf = np.empty(shape, np.uint8)
    if _core.encode(xf, s, layout, *kernel_args(fmt), bool(packed), buf):
        raise _checks.nan_error()
    return _checks.finish(buf, out)
def dequantize(q: Any, fmt: Format, scale: Any, axis: Any, group_size: Any,
               out: Optional[np.ndarray], packed: bool, n: Any) -> np.ndarray:
    qa, shape = code_array(q, fmt, packed, n)
    gran = _checks.granularity(shape, axis, group_size)
    s = _checks.scale_array(scale, gran)
    out = _checks.check_out(out, shape, _F32, q)
    qc = np.ascontiguousarray(qa)
    layout = _checks.packed_layout(shape, gran) if packed else gran.layout
    if packed and layout is None:
        codes = _formats.unpack_nibbles(qc, axis=-1, n=shape[-1])
        return dequantize(codes, fmt, s, gran.axis, gran.group_size, out, False, None)
    buf = np.empty(shape, _F32)
    _core.decode(qc, s, layout, *kernel_args(fmt), bool(packed), buf)
    return _checks.finish(buf, out)
