"""MX block formats (OCP Microscaling v1.0) in the compiled API: ``quantize_mx`` and
``dequantize_mx``. The exponent pass reads block extremes from the minmax kernel; the element
codes are the formats kernels (fp8/fp4) or the int8 quantize kernel (mxint8) with one
power-of-two scale a block of 32. Semantics and the reference: lowbit._formats."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _checks, _core, _formats, _formats_api
from ._checks_formats import FORMATS, kernel_args
from ._typing import ArrayLike, FloatArray

_F32 = np.float32
BLOCK = _formats.BLOCK


def _scales_of(exps: np.ndarray) -> np.ndarray:
    """``X = float32(2**(exps - 127))`` from E8M0 codes by their bits (255: NaN), C-contiguous:
    ``exps << 23`` for 1..254, the subnormal 2**-127 for 0. The same values as
    lowbit._formats' ``np.ldexp``, in a fraction of its time."""
    e = exps.astype(np.uint32)
    bits = np.where(e == 0, np.uint32(0x00400000), e << np.uint32(23))  # 2**22 * 2**-149
    bits = np.where(e == 255, np.uint32(0x7FC00000), bits)
    return np.ascontiguousarray(bits.astype(np.uint32).view(_F32))


def _block_scales(xf: np.ndarray, gran) -> np.ndarray:
    """max |x| of every block (float32, of gran.scale_shape); NaN or infinity raise."""
    nslots = int(np.prod(gran.scale_shape))
    mn = np.full(nslots, np.inf, _F32)
    mx = np.full(nslots, -np.inf, _F32)
    if xf.size == 0:
        return np.zeros(gran.scale_shape, _F32)
    if _core.minmax(xf, gran.layout, mn, mx) or np.isinf(mn).any() or np.isinf(mx).any():
        raise _checks.nonfinite_error("MX quantization")
    return np.maximum(-mn, mx).reshape(gran.scale_shape)


def quantize_mx(x: ArrayLike, dtype: str = "mxfp4_e2m1", *, axis: int = -1,
                packed: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Quantize to an MX block format: blocks of 32 along ``axis`` share a power-of-two scale.

    Parameters
    ----------
    x : array_like of float, at least 1-D
        Finite values (NaN or infinity anywhere raise ValueError).
    dtype : {"mxfp8_e4m3", "mxfp8_e5m2", "mxfp4_e2m1", "mxint8"}
    axis : int
        The axis the blocks of 32 run along (the last block may be short).
    packed : bool
        ``mxfp4_e2m1`` only: two codes a byte along ``axis``, low nibble first.

    Returns
    -------
    codes : ndarray
        ``np.uint8`` element codes (fp formats: the format's bits), ``np.int8`` for mxint8.
    exps : ndarray of uint8
        E8M0 codes ``shared_exp + 127``, ``x``'s shape with ``axis`` replaced by
        ``ceil(n / 32)``.

    Notes
    -----
    Per block, ``amax = max |x|``; ``shared_exp = -127`` if ``amax == 0``, else
    ``clamp(floor(log2(amax)) - emax, -127, 127)`` (emax 8, 15, 2, 0 for e4m3, e5m2, e2m1,
    int8). With ``X = float32(2**shared_exp)`` each element is encoded from ``y = x / X`` as its
    element format (see :func:`quantize`); mxint8: ``clamp(round_half_to_even(y * 64), -127,
    127)``.

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> lb.quantize_mx(np.array([1.0, -3.0, 0.25], np.float32), "mxfp4_e2m1")
    (array([ 4, 15,  1], dtype=uint8), array([126], dtype=uint8))
    """
    mx = _formats._mx_dtype(dtype)
    xf = _checks.float_array(x, "x")
    if xf.ndim == 0:
        raise ValueError("x must have at least one dimension (the blocks run along axis)")
    a = _formats._axis(axis, xf.ndim)
    if packed and mx.element != "fp4_e2m1":
        raise ValueError(f"packed=True needs dtype 'mxfp4_e2m1', got {dtype!r}")
    gran = _checks.granularity(xf.shape, a, BLOCK)
    shared = _formats.mx_shared_exp(_block_scales(xf, gran), mx.emax)
    exps = (shared + 127).astype(np.uint8)
    scale = _scales_of(exps)
    if mx.element is None:
        # x / (X / 64) == (x / X) * 64: both are exact scalings by powers of two wherever the
        # result can round to a nonzero integer
        s = np.ascontiguousarray((scale / _F32(64)).astype(_F32))
        codes = np.empty(xf.shape, np.int8)
        zp = np.zeros(gran.scale_shape, np.int32)
        _core.quantize(xf, s, zp, gran.layout, -127, 127, False, codes.view(np.uint8))
        return codes, exps
    fmt = FORMATS[mx.element]
    last = a == xf.ndim - 1
    codes = _formats_api.quantize(xf, fmt, scale, a, BLOCK, None, packed and last)
    if packed and not last:
        from ._quant import pack_int4
        codes = pack_int4(codes, axis=a)
    return codes, exps


def dequantize_mx(codes: ArrayLike, exps: ArrayLike, dtype: str = "mxfp4_e2m1", *,
                  axis: int = -1, packed: bool = False, n: Optional[int] = None) -> FloatArray:
    """Values of MX-quantized data: ``float32(value(code)) * X`` (mxint8:
    ``float32(code) / 64 * X``), ``X = float32(2**(exps - 127))`` of the element's block.

    Parameters
    ----------
    codes : ndarray
        As :func:`quantize_mx` returns them (``packed=True``: two mxfp4 codes a byte along
        ``axis``; ``n`` is then the original length, default twice the packed one).
    exps : ndarray of uint8
        E8M0 codes, ``codes``' unpacked shape with ``axis`` replaced by ``ceil(n / 32)``; 255
        (NaN in OCP MX) decodes to NaN.

    Returns
    -------
    ndarray of float32

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> lb.dequantize_mx(np.array([4, 15, 1], np.uint8), np.array([126], np.uint8))
    array([ 1.  , -3.  ,  0.25], dtype=float32)
    """
    from ._quant import unpack_int4

    def unpack(p, axis, n):
        pa = np.asarray(p)
        if pa.dtype != np.uint8 or pa.ndim == 0:
            raise TypeError(f"packed codes of {dtype} must be a uint8 array of at least one "
                            f"dimension, got dtype {pa.dtype} and shape {pa.shape}")
        return unpack_int4(pa, signed=False, axis=axis, n=n)

    mx, c, ex, a = _formats.mx_codes(codes, exps, dtype, axis, packed, n, unpack)
    gran = _checks.granularity(c.shape, a, BLOCK)
    scale = _scales_of(ex)
    out = np.empty(c.shape, _F32)
    cc = np.ascontiguousarray(c)
    if mx.element is None:  # float32(code) * (X / 64): the same exact product, rounded once
        s = np.ascontiguousarray(scale / _F32(64), dtype=_F32)
        _core.dequantize(cc.view(np.uint8), 0, s, np.zeros(gran.scale_shape, np.int32),
                         gran.layout, out)
        return out
    fmt = FORMATS[mx.element]
    if fmt.bits == 4 and cc.size and int(cc.max()) > 15:
        raise ValueError(f"codes hold a value above 15, outside {dtype}'s 4-bit elements")
    _core.decode(cc, np.ascontiguousarray(scale), gran.layout, *kernel_args(fmt), False, out)
    return out


__all__ = ["quantize_mx", "dequantize_mx"]
