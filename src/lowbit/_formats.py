"""Plain-NumPy reference ("oracle") arithmetic of the floating-point, NormalFloat, MX block and
learned-codebook formats of API.md ("Floating-point and non-uniform formats", "MX block
formats", "Learned codebooks").

Written to be read beside the contract: each function states its formula, and the arithmetic is
done the way the formula says (integers on float32 bit patterns, exact power-of-two scaling),
never through float64 shortcuts that could round twice. Compiled paths must match these
functions bit for bit.

The module imports only NumPy and the standard library (no ``ml_dtypes``, no ``lowbit``), so it
can be loaded as a standalone file. Its tests compare it with ``ml_dtypes``.

Element formats (``fmt``):

============  =====================================================  ===========  =======
name          format                                                 largest M    codes
============  =====================================================  ===========  =======
fp8_e4m3      OCP FP8 E4M3FN: 1-4-3, bias 7, no inf, S.1111.111 NaN  448          0..255
fp8_e5m2      OCP FP8 E5M2: 1-5-2, bias 15, IEEE-like inf / NaN      57344        0..255
fp4_e2m1      OCP FP4 E2M1: ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}, bias 1    6            0..15
nf4           QLoRA NormalFloat: the 16 levels of ``NF4_LEVELS``     1            0..15
============  =====================================================  ===========  =======
"""

from __future__ import annotations

import operator
from typing import NamedTuple, Optional

import numpy as np

from . import _checks

__all__ = [
    "FORMATS", "MX_DTYPES", "NF4_LEVELS", "BLOCK",
    "value_table", "encode", "decode", "thresholds", "encode_thresholds",
    "pack_nibbles", "unpack_nibbles",
    "mx_shared_exp", "quantize_mx", "dequantize_mx",
    "fit_codebook", "quantize_codebook", "dequantize_codebook",
]

_F32 = np.float32
_F64 = np.float64


# ============================================================================ element formats


class FloatFormat(NamedTuple):
    """A small binary floating-point format: 1 sign bit, ``exp_bits`` exponent bits (``bias``),
    ``man_bits`` mantissa bits. ``max_value`` is the largest finite value M; ``nan_code`` is
    the canonical positive NaN code (None if the format has no NaN); ``has_inf``: exponent all
    ones with a zero mantissa is infinity (E5M2 only)."""

    name: str
    exp_bits: int
    man_bits: int
    bias: int
    max_value: float
    nan_code: Optional[int]
    has_inf: bool

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits


FORMATS = {
    "fp8_e4m3": FloatFormat("fp8_e4m3", 4, 3, 7, 448.0, 0x7F, False),
    "fp8_e5m2": FloatFormat("fp8_e5m2", 5, 2, 15, 57344.0, 0x7E, True),
    "fp4_e2m1": FloatFormat("fp4_e2m1", 2, 1, 1, 6.0, None, False),
}
"""The fp element formats by name (``"nf4"`` is a codebook, see ``NF4_LEVELS``)."""

NF4_LEVELS = np.array(
    [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
     -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
     0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
     0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0],
    dtype=_F32)
"""QLoRA's NormalFloat-4 levels, index = code (float32, sorted ascending)."""
NF4_LEVELS.flags.writeable = False

_ELEMENT_NAMES = (*FORMATS, "nf4")


def _fmt(fmt) -> str:
    if not isinstance(fmt, str) or fmt not in _ELEMENT_NAMES:
        raise ValueError(f"fmt must be one of {list(_ELEMENT_NAMES)}, got {fmt!r}")
    return fmt


def _float32(x, name: str) -> np.ndarray:
    """``x`` as a float32 array; float16/float64 are cast (one rounding), anything else refused."""
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array (float16, float32 or float64), "
                        f"got dtype {arr.dtype}")
    return arr.astype(_F32, copy=False)


def _require_finite(x: np.ndarray, purpose: str) -> None:
    if not np.isfinite(x).all():
        raise ValueError(f"x contains NaN or infinity; {purpose} needs finite values")


def value_table(fmt: str) -> np.ndarray:
    """The value of every code of ``fmt``, as a float32 array indexed by code.

    For the fp formats, code ``c`` has sign ``s = c >> (e + m)``, exponent field
    ``E = (c >> m) & (2**e - 1)`` and mantissa field ``F = c & (2**m - 1)``; its value is

    * ``(-1)**s * F * 2**(1 - bias - m)`` if ``E == 0`` (zero and subnormals; code ``s << (e+m)``
      with ``s = 1`` is -0.0),
    * ``(-1)**s * (2**m + F) * 2**(E - bias - m)`` otherwise,
    * except NaN for fp8_e4m3 codes 0x7F / 0xFF (S.1111.111: E4M3FN has no infinity) and, for
      fp8_e5m2, ``E == 31``: infinity if ``F == 0`` else NaN (as IEEE). A NaN keeps the code's
      sign bit.

    ``"nf4"`` gives ``NF4_LEVELS``. The result has 256 entries (fp8) or 16 (fp4, nf4).

    Examples
    --------
    >>> value_table("fp4_e2m1")[:8]
    array([0. , 0.5, 1. , 1.5, 2. , 3. , 4. , 6. ], dtype=float32)
    """
    if _fmt(fmt) == "nf4":
        return NF4_LEVELS.copy()
    f = FORMATS[fmt]
    e, m = f.exp_bits, f.man_bits
    code = np.arange(1 << f.bits, dtype=np.int64)
    sign = code >> (e + m)
    big_e = (code >> m) & ((1 << e) - 1)
    frac = code & ((1 << m) - 1)
    # Every value is an integer times a power of two with at most m + 1 significant bits, so
    # float64 (and the float32 cast below) hold it exactly.
    magnitude = np.where(big_e == 0,
                         np.ldexp(frac.astype(_F64), 1 - f.bias - m),
                         np.ldexp(((1 << m) + frac).astype(_F64), big_e - f.bias - m))
    exp_all_ones = big_e == (1 << e) - 1
    if f.has_inf:                                               # fp8_e5m2: IEEE specials
        magnitude = np.where(exp_all_ones & (frac == 0), np.inf, magnitude)
        magnitude = np.where(exp_all_ones & (frac != 0), np.nan, magnitude)
    elif f.nan_code is not None:                                # fp8_e4m3: only S.1111.111
        magnitude = np.where((code & 0x7F) == f.nan_code, np.nan, magnitude)
    return np.where(sign == 1, -magnitude, magnitude).astype(_F32)   # -0.0 and -NaN kept


def encode(y, fmt: str) -> np.ndarray:
    """The ``np.uint8`` code of each float32 ``y`` (already divided by its scale) in ``fmt``.

    fp8 / fp4 (API.md): ``c = clip(y, -M, M)``, then ``c`` rounded to the nearest value of the
    format, ties to the even significand, and the code is that value's bit pattern: the same as
    ``c.astype(ml_dtypes.float8_e4m3fn)`` (``float8_e5m2``, ``float4_e2m1fn``). Done in integer
    arithmetic on the float32 bits ``b`` of ``c`` (sign ``b >> 31``, magnitude
    ``a = b & 0x7FFFFFFF``), with ``e``, ``m``, ``bias`` the format's:

    * normal range, ``|c| >= 2**(1 - bias)``: round the 23-bit float32 mantissa to ``m`` bits,
      ties to even, on the bit pattern: with ``k = 23 - m``,
      ``r = (a + (1 << (k - 1)) - 1 + ((a >> k) & 1)) >> k`` (a carry out of the mantissa bumps
      the exponent, as it should), then rebias the exponent:
      ``code = r - ((127 - bias) << m)``. Since ``|c| <= M`` and M is a format value, ``r`` never
      passes M's code.
    * below it (zero and the format's subnormals): ``code = rint(|c| * 2**(bias - 1 + m))``, an
      exact power-of-two scaling followed by ties-to-even rounding; the result 0..2**m is the
      code itself (``2**m`` is exponent field 1, mantissa 0: the smallest normal).
    * the sign bit is ``b >> 31`` shifted to bit ``e + m``: -0.0 and every negative value that
      rounds to zero give the negative-zero code (0x80 for fp8, 0x8 for fp4), as ml_dtypes does.
      ``±inf`` saturate to ``±M`` through the clip.

    NaN input (callers raise before, so this is only documented, matching ml_dtypes 0.7): fp8
    gives the canonical NaN code with the NaN's sign (0x7F / 0xFF for e4m3, 0x7E / 0xFE for
    e5m2); fp4, which has no NaN, gives 0x8 for a positive NaN and 0x0 for a negative one.

    ``"nf4"``: ``encode_thresholds(y, thresholds(NF4_LEVELS))``.

    Examples
    --------
    >>> encode(np.array([1.0, -0.0, 500.0, 0.75, 1.25], np.float32), "fp4_e2m1")
    array([2, 8, 7, 2, 2], dtype=uint8)
    """
    y = _float32(y, "y")
    if _fmt(fmt) == "nf4":
        return encode_thresholds(y, thresholds(NF4_LEVELS))
    f = FORMATS[fmt]
    e, m, bias = f.exp_bits, f.man_bits, f.bias
    big_m = _F32(f.max_value)
    c = np.clip(y, -big_m, big_m)                  # ±inf -> ±M; NaN stays NaN (handled below)
    b = np.ascontiguousarray(c).view(np.uint32).astype(np.int64)
    sign = b >> 31
    a = b & 0x7FFFFFFF                             # the float32 bits of |c|

    # Normal range: round-half-even of the mantissa on the bit pattern, then rebias.
    k = 23 - m
    lsb = (a >> k) & 1
    r = (a + (1 << (k - 1)) - 1 + lsb) >> k        # (float32 exponent << m) | m-bit mantissa
    normal_code = r - ((127 - bias) << m)

    # Subnormal range: |c| * 2**(bias - 1 + m) is exact in float32 (scaling a value below
    # 2**(1 - bias) by a power of two up to below 2**m cannot overflow or lose bits). Computed
    # for every element and used only below 2**(1 - bias); NaN is zeroed to keep the cast quiet.
    nan = np.isnan(c)
    scaled = np.abs(np.where(nan, _F32(0), c)) * _F32(2.0 ** (bias - 1 + m))
    sub_code = np.rint(scaled).astype(np.int64)  # ties to even: 0..2**m

    smallest_normal_bits = (127 + 1 - bias) << 23  # float32 bits of 2**(1 - bias)
    magnitude = np.where(a >= smallest_normal_bits, normal_code, sub_code)
    code = (sign << (e + m)) | magnitude

    if nan.any():
        if f.nan_code is not None:
            nan_code = (sign << (e + m)) | f.nan_code
        else:                                      # fp4: no NaN; ml_dtypes' stand-in is -0
            nan_code = (sign ^ 1) << (e + m)
        code = np.where(nan, nan_code, code)
    return code.astype(np.uint8).reshape(y.shape)


def decode(codes, fmt: str) -> np.ndarray:
    """``value(code)`` as float32: ``value_table(fmt)[codes]`` (see ``value_table``).

    Examples
    --------
    >>> decode(np.array([0x38, 0x80, 0x7F], np.uint8), "fp8_e4m3")
    array([ 1., -0., nan], dtype=float32)
    """
    table = value_table(fmt)
    c = np.asarray(codes)
    if c.dtype.kind not in "ui":
        raise TypeError(f"codes must be an integer array, got dtype {c.dtype}")
    if c.size and (c.min() < 0 or c.max() >= table.size):
        raise ValueError(f"codes of {fmt} must lie in 0..{table.size - 1}")
    return table[c]


# ======================================================================== threshold rule


def thresholds(levels) -> np.ndarray:
    """Decision thresholds between consecutive sorted levels, along the last axis:
    ``t[i] = float32((float64(L[i]) + float64(L[i + 1])) / 2)``.

    The float64 sum and halving are exact (no overflow, no rounding), so the only rounding is
    the final cast to float32 (ties to even). Equal levels give a threshold equal to them.

    Examples
    --------
    >>> thresholds(np.array([0.0, 1.0, 1.0, 4.0], np.float32))
    array([0.5, 1. , 2.5], dtype=float32)
    """
    lv = np.asarray(levels, dtype=_F32).astype(_F64)
    return ((lv[..., :-1] + lv[..., 1:]) / 2).astype(_F32)


def encode_thresholds(y, t) -> np.ndarray:
    """The threshold rule: ``code = #{i : y > t[i]}`` as ``np.uint8``, for 1-D sorted ``t``.

    A value exactly on a threshold takes the lower code; ``-inf`` gives 0 and ``+inf`` gives
    ``len(t)``. Up to 15 thresholds (16 levels) this is the count itself; past that it is
    ``np.searchsorted(t, y, side="left")``, which for sorted ``t`` (duplicates included) is the
    same number: the index of the first ``t[i] >= y``, i.e. how many ``t[i] < y``.
    NaN ``y`` is not defined (callers raise before): the count gives 0, searchsorted ``len(t)``.

    Examples
    --------
    >>> encode_thresholds(np.array([-5, 0.5, 0.6, 9], np.float32), np.array([0.5, 2], np.float32))
    array([0, 0, 1, 2], dtype=uint8)
    """
    y = _float32(y, "y")
    t = np.asarray(t, dtype=_F32)
    if t.ndim != 1 or t.size > 255:
        raise ValueError(f"t must be 1-D with at most 255 thresholds, got shape {t.shape}")
    if t.size <= 15:
        code = np.zeros(y.shape, np.uint8)
        for ti in t:
            code += y > ti
        return code
    return np.searchsorted(t, y, side="left").astype(np.uint8)


# ============================================================================ nibble packing


def _axis(axis, ndim: int) -> int:
    try:
        a = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer, got {axis!r}") from None
    if not -ndim <= a < ndim:
        raise ValueError(f"axis {a} is out of bounds for an array of dimension {ndim}")
    return a % ndim


def _unpacked_length(packed_len: int, n) -> int:
    return _checks.unpacked_length(packed_len, n)


def pack_nibbles(codes, axis: int = -1) -> np.ndarray:
    """4-bit codes (0..15) two a byte along ``axis``: element ``2i`` in bits 0-3, ``2i + 1`` in
    bits 4-7; an odd length is padded with a zero nibble.

    Examples
    --------
    >>> pack_nibbles(np.array([1, 2, 3], np.uint8))
    array([33,  3], dtype=uint8)
    """
    c = np.asarray(codes)
    if c.ndim == 0:
        raise ValueError("packed=True needs an array with at least one dimension")
    if c.dtype.kind not in "ui" or (c.size and (c.min() < 0 or c.max() > 15)):
        raise ValueError("only 4-bit codes (0..15) can be packed two a byte")
    a = _axis(axis, c.ndim)
    v = np.moveaxis(c.astype(np.uint8), a, -1)
    if v.shape[-1] % 2:
        v = np.concatenate([v, np.zeros(v.shape[:-1] + (1,), np.uint8)], axis=-1)
    packed = v[..., 0::2] | (v[..., 1::2] << 4)
    return np.ascontiguousarray(np.moveaxis(packed, -1, a))


def unpack_nibbles(packed, axis: int = -1, n: Optional[int] = None) -> np.ndarray:
    """Inverse of ``pack_nibbles``: ``n`` uint8 codes along ``axis`` (default
    ``2 * packed.shape[axis]``; ``n`` may be that or one less)."""
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise TypeError(f"packed codes must be a uint8 array, got dtype {p.dtype}")
    if p.ndim == 0:
        raise ValueError("packed codes must have at least one dimension")
    a = _axis(axis, p.ndim)
    n = _unpacked_length(p.shape[a], n)
    p = np.moveaxis(p, a, -1)
    nib = np.stack([p & 0x0F, p >> 4], axis=-1).reshape(p.shape[:-1] + (2 * p.shape[-1],))
    return np.ascontiguousarray(np.moveaxis(nib[..., :n], -1, a))


# ========================================================================== MX block formats

BLOCK = 32
"""Elements per MX block (OCP Microscaling v1.0)."""


class _MXType(NamedTuple):
    element: Optional[str]   # fp element format, or None for mxint8
    emax: int                # exponent of the element format's largest power of two


MX_DTYPES = {
    "mxfp8_e4m3": _MXType("fp8_e4m3", 8),
    "mxfp8_e5m2": _MXType("fp8_e5m2", 15),
    "mxfp4_e2m1": _MXType("fp4_e2m1", 2),
    "mxint8": _MXType(None, 0),
}


def _mx_dtype(dtype) -> _MXType:
    if not isinstance(dtype, str) or dtype not in MX_DTYPES:
        raise ValueError(f"dtype must be one of {list(MX_DTYPES)}, got {dtype!r}")
    return MX_DTYPES[dtype]


def mx_shared_exp(amax, emax: int) -> np.ndarray:
    """The shared exponent of MX blocks whose ``max |x|`` is ``amax`` (finite, >= 0), as int32:

    ``-127`` if ``amax == 0``, else ``clamp(e - emax, -127, 127)`` with ``e = floor(log2(amax))``
    taken exactly as ``np.frexp(amax)[1] - 1`` (float32 subnormals included: ``2**-149`` gives
    ``e = -149``). The E8M0 code stored in ``exps`` is ``shared_exp + 127``.

    Examples
    --------
    >>> mx_shared_exp(np.array([0.0, 1.0, 6.0, 1e-45], np.float32), 2)
    array([-127,   -2,    0, -127], dtype=int32)
    """
    amax = np.asarray(amax, dtype=_F32)
    e = np.frexp(amax)[1].astype(np.int32) - 1      # amax = f * 2**(e + 1), 0.5 <= f < 1
    return np.where(amax == 0, -127, np.clip(e - emax, -127, 127)).astype(np.int32)


def _pow2_f32(shared_exp) -> np.ndarray:
    """``X = float32(2**shared_exp)`` built exactly (2**-127 is a float32 subnormal)."""
    return np.ldexp(np.ones(np.shape(shared_exp), _F32), np.asarray(shared_exp, np.int32))


def quantize_mx(x, dtype: str = "mxfp4_e2m1", axis: int = -1, packed: bool = False):
    """MX block quantization (OCP Microscaling v1.0): ``(codes, exps)``.

    Blocks of ``BLOCK = 32`` consecutive elements along ``axis`` (the last may be short) share
    ``shared_exp = mx_shared_exp(max |x| over the block, emax)``; ``emax`` is 8 (mxfp8_e4m3),
    15 (mxfp8_e5m2), 2 (mxfp4_e2m1), 0 (mxint8). With ``X = float32(2**shared_exp)`` and
    ``y = x / X`` (IEEE float32 division), each code is ``encode(y, element format)``
    (``np.uint8``), or for ``"mxint8"`` ``np.int8(clamp(round_half_to_even(y * 64), -127, 127))``.
    ``exps = np.uint8(shared_exp + 127)`` (E8M0), of ``x``'s shape with ``axis`` replaced by
    ``ceil(n / 32)``. ``packed=True`` (mxfp4_e2m1 only) packs the codes two a byte along
    ``axis`` (``pack_nibbles``).

    Raises ``ValueError`` if ``x`` holds a NaN or an infinity (any block), or has no dimension.

    Examples
    --------
    >>> codes, exps = quantize_mx(np.array([1.0, -3.0, 0.25], np.float32), "mxfp4_e2m1")
    >>> codes, exps
    (array([ 4, 15,  1], dtype=uint8), array([126], dtype=uint8))
    """
    mx = _mx_dtype(dtype)
    x = _float32(x, "x")
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension (the blocks run along axis)")
    a = _axis(axis, x.ndim)
    if packed and mx.element != "fp4_e2m1":
        raise ValueError(f"packed=True needs dtype 'mxfp4_e2m1', got {dtype!r}")
    _require_finite(x, "MX quantization")

    xl = np.moveaxis(x, a, -1)                       # blocks run along the last axis
    n = xl.shape[-1]
    nblocks = -(-n // BLOCK)
    pad = [(0, 0)] * (xl.ndim - 1) + [(0, nblocks * BLOCK - n)]
    blocks = np.pad(xl, pad).reshape(xl.shape[:-1] + (nblocks, BLOCK))   # zeros: amax unchanged

    amax = np.max(np.abs(blocks), axis=-1, initial=_F32(0))
    shared_exp = mx_shared_exp(amax, mx.emax)
    scale = _pow2_f32(shared_exp)[..., None]         # X, one per block
    # |x| < 2**(e + 1) and X >= 2**(e - emax) keep |y| < 2**(emax + 1): no overflow. Only a
    # y far below the element format's smallest subnormal can underflow (round) here.
    with np.errstate(under="ignore"):
        y = blocks / scale
    if mx.element is None:
        with np.errstate(under="ignore"):
            codes = np.clip(np.rint(y * _F32(64)), -127, 127).astype(np.int8)  # y * 64 exact
    else:
        codes = encode(y, mx.element)

    codes = codes.reshape(xl.shape[:-1] + (nblocks * BLOCK,))[..., :n]
    codes = np.ascontiguousarray(np.moveaxis(codes, -1, a))
    exps = np.ascontiguousarray(np.moveaxis((shared_exp + 127).astype(np.uint8), -1, a))
    if packed:
        codes = pack_nibbles(codes, axis=a)
    return codes, exps


def mx_codes(codes, exps, dtype, axis, packed, n, unpack=None):
    """The checks of ``dequantize_mx``: ``(MX type, codes unpacked, exps, axis)``; ``unpack``
    (default ``unpack_nibbles``) unpacks packed mxfp4 codes along the axis."""
    mx = _mx_dtype(dtype)
    c = np.asarray(codes)
    ex = np.asarray(exps)
    if packed:
        if mx.element != "fp4_e2m1":
            raise ValueError(f"packed=True needs dtype 'mxfp4_e2m1', got {dtype!r}")
        c = (unpack or unpack_nibbles)(c, axis=axis, n=n)
    elif n is not None:
        raise ValueError("n is only meaningful with packed=True")
    want = np.int8 if mx.element is None else np.uint8
    if c.dtype != want:
        raise TypeError(f"codes of {dtype} must be {np.dtype(want)}, got dtype {c.dtype}")
    if ex.dtype != np.uint8:
        raise TypeError(f"exps must be a uint8 array (E8M0 codes), got dtype {ex.dtype}")
    if c.ndim == 0:
        raise ValueError("codes must have at least one dimension")
    a = _axis(axis, c.ndim)
    length = c.shape[a]
    block_shape = c.shape[:a] + (-(-length // BLOCK),) + c.shape[a + 1:]
    if ex.shape != block_shape:
        raise ValueError(f"exps has shape {ex.shape}; expected {block_shape} "
                         f"(codes' shape with axis {a} replaced by ceil({length} / {BLOCK}))")
    return mx, c, ex, a


def dequantize_mx(codes, exps, dtype: str = "mxfp4_e2m1", axis: int = -1, packed: bool = False,
                  n: Optional[int] = None) -> np.ndarray:
    """Inverse of ``quantize_mx``: ``float32(value(code)) * X`` in float32, with
    ``X = float32(2**(exps - 127))`` of the element's block (``mxint8``:
    ``float32(code) / 64 * X``).

    X is a power of two, so the product is exact whenever it is in float32's range: it never
    falls below 2**-149 (the smallest element step times 2**-127), and for what ``quantize_mx``
    writes it never overflows (``shared_exp <= 127 - emax`` for the fp formats, and mxint8's
    ``127/64 * 2**127 < 2**128``). Hand-made (codes, exps) beyond that give ±inf, as IEEE
    multiplication does. E8M0 code 255 is NaN in OCP MX v1.0 and decodes to NaN here.

    ``packed=True`` (mxfp4_e2m1) unpacks ``codes`` along ``axis`` first; ``n`` is then the
    original length (default ``2 * codes.shape[axis]``).

    Examples
    --------
    >>> dequantize_mx(np.array([4, 15, 1], np.uint8), np.array([126], np.uint8))
    array([ 1.  , -3.  ,  0.25], dtype=float32)
    """
    mx, c, ex, a = mx_codes(codes, exps, dtype, axis, packed, n)
    length = c.shape[a]
    if mx.element is None:
        values = c.astype(_F32) / _F32(64)            # exact: a 7-bit integer over 2**6
    else:
        values = decode(c, mx.element)
    scale = _pow2_f32(np.minimum(ex, 254).astype(np.int32) - 127)
    scale = np.where(ex == 255, _F32(np.nan), scale)
    scale = np.take(np.repeat(scale, BLOCK, axis=a), np.arange(length), axis=a)  # X per element
    with np.errstate(over="ignore"):
        return (values * scale).astype(_F32, copy=False)


# ========================================================================== learned codebooks


def _bits(bits) -> int:
    try:
        b = operator.index(bits)
    except TypeError:
        raise TypeError(f"bits must be an integer, got {bits!r}") from None
    if not 2 <= b <= 8:
        raise ValueError(f"bits must be 2..8, got {b}")
    return b


def _levels(levels, x_shape, axis) -> np.ndarray:
    """``levels`` checked: float32, ``(K,)`` (axis None) or ``(x.shape[axis], K)``,
    K = 2**bits with bits 2..8, sorted ascending along the last axis."""
    lv = np.asarray(levels)
    if lv.dtype.kind != "f":
        raise TypeError(f"levels must be a floating-point array, got dtype {lv.dtype}")
    lv = lv.astype(_F32, copy=False)
    want_ndim = 1 if axis is None else 2
    k = lv.shape[-1] if lv.ndim else 0
    if lv.ndim != want_ndim or k not in [1 << b for b in range(2, 9)] or (
            axis is not None and lv.shape[0] != x_shape[axis]):
        what = "(2**bits,)" if axis is None else f"({x_shape[axis]}, 2**bits)"
        raise ValueError(f"levels has shape {lv.shape}; expected {what} with bits 2..8")
    if not np.all(lv[..., 1:] >= lv[..., :-1]):      # also refuses NaN levels
        raise ValueError("levels must be sorted ascending")
    return lv


def quantize_codebook(x, levels, axis: Optional[int] = None, packed: bool = False) -> np.ndarray:
    """Codes of ``x`` in a learned codebook: the threshold rule with ``y = x``,
    ``code = #{i : x > t[i]}``, ``t = thresholds(levels)`` (``np.uint8``).

    ``levels``: float32, sorted ascending, ``(2**bits,)`` for one codebook (``axis=None``) or
    ``(x.shape[axis], 2**bits)`` for one codebook per slice ``x[..., i, ...]`` along ``axis``.
    ``packed=True`` (bits <= 4) packs the codes two a byte along the last axis.

    Raises ``ValueError`` for NaN or infinity in ``x``, levels of the wrong shape, unsorted
    levels, or ``packed`` with more than 16 levels.

    Examples
    --------
    >>> quantize_codebook(np.array([0.1, 0.5, 2.0], np.float32),
    ...                   np.array([0.0, 1.0, 2.0, 3.0], np.float32))
    array([0, 0, 2], dtype=uint8)
    """
    x = _float32(x, "x")
    a = None if axis is None else _axis(axis, x.ndim)
    lv = _levels(levels, x.shape, a)
    if packed and lv.shape[-1] > 16:
        raise ValueError("packed=True needs at most 16 levels (bits <= 4)")
    _require_finite(x, "codebook quantization")
    t = thresholds(lv)
    if a is None:
        codes = encode_thresholds(x, t)
    else:
        codes = np.empty(x.shape, np.uint8)
        for i in range(x.shape[a]):                   # slice i uses codebook levels[i]
            index = (slice(None),) * a + (i,)
            codes[index] = encode_thresholds(x[index], t[i])
    if packed:
        codes = pack_nibbles(codes, axis=-1)
    return codes


def dequantize_codebook(codes, levels, axis: Optional[int] = None, packed: bool = False,
                        n: Optional[int] = None) -> np.ndarray:
    """``levels[code]`` as float32 (``levels[i][code]`` in slice ``i`` along ``axis``).

    ``packed=True`` unpacks ``codes`` along the last axis first (``n``: the original length,
    default ``2 * codes.shape[-1]``).

    Examples
    --------
    >>> dequantize_codebook(np.array([0, 3], np.uint8), np.array([0, 1, 2, 3], np.float32))
    array([0., 3.], dtype=float32)
    """
    c = np.asarray(codes)
    if packed:
        c = unpack_nibbles(c, axis=-1, n=n)
    elif n is not None:
        raise ValueError("n is only meaningful with packed=True")
    if c.dtype != np.uint8:
        raise TypeError(f"codes must be a uint8 array, got dtype {c.dtype}")
    a = None if axis is None else _axis(axis, c.ndim)
    lv = _levels(levels, c.shape, a)
    if c.size and c.max() >= lv.shape[-1]:
        raise ValueError(f"codes must lie in 0..{lv.shape[-1] - 1}")
    if a is None:
        return lv[c]
    out = np.empty(c.shape, _F32)
    for i in range(c.shape[a]):
        index = (slice(None),) * a + (i,)
        out[index] = lv[i][c[index]]
    return out


def _lloyd(x, k: int, iters: int, history: Optional[list] = None, assign=None) -> np.ndarray:
    """Lloyd's k-means of the float32 values ``x`` (1-D) into ``k`` float32 levels.

    Start: ``levels = float32(np.quantile(x64, (2j + 1) / (2k)))``, ``j < k``. Then up to
    ``iters`` rounds of: ``codes = quantize_codebook(x, levels)``; stop if no code changed since
    the previous round; else ``levels[j] = float32(sum_j / count_j)`` with
    ``sum = np.bincount(codes, weights=x64, minlength=k)`` (float64), a level with no members
    unchanged. ``history``, if given, receives a copy of the start and of the levels after each
    update (the tests check that the squared error never grows). ``assign(x, levels)`` is the
    assignment step (default ``quantize_codebook``; lowbit.fit_codebook passes the compiled one,
    which gives the same codes, so the one iteration serves both).

    The levels stay sorted. The start is sorted because quantiles grow with their probability
    (the sort below only guards a one-ulp wobble of np.quantile's interpolation and is a no-op
    otherwise). Each update keeps the order too: codes come from thresholds, so member ``j``
    lies in ``(t[j-1], t[j]]`` and bincount's float64 sum of ``n_j < 2**29`` float32 values
    ``<= t[j]`` is ``<= n_j * t[j]`` (that product is exact, rounding is monotone), so the
    mean rounds to ``<= t[j]`` (likewise ``>= t[j-1]``), and an empty level ``L[j]`` lies in
    ``[t[j-1], t[j]]`` itself. The assert checks it.
    """
    x64 = x.astype(_F64)
    q = (2 * np.arange(k) + 1) / (2 * k)
    levels = np.sort(np.quantile(x64, q).astype(_F32))
    if history is not None:
        history.append(levels.copy())
    previous = None
    assign = quantize_codebook if assign is None else assign
    for _ in range(iters):
        codes = assign(x, levels)
        if previous is not None and np.array_equal(codes, previous):
            break
        sums = np.bincount(codes, weights=x64, minlength=k)
        counts = np.bincount(codes, minlength=k)
        members = counts > 0
        levels = levels.copy()
        levels[members] = (sums[members] / counts[members]).astype(_F32)
        assert np.all(levels[1:] >= levels[:-1]), "Lloyd update broke the level order"
        if history is not None:
            history.append(levels.copy())
        previous = codes
    return levels


def fit_codebook(x, bits: int = 4, axis: Optional[int] = None, iters: int = 20,
                 assign=None) -> np.ndarray:
    """Fit ``2**bits`` float32 levels to ``x`` by Lloyd's k-means (see ``_lloyd``): start at
    ``np.quantile(x64, (2j + 1) / (2K))``, then up to ``iters`` rounds of threshold-rule
    assignment and float64 means cast to float32 (an empty level unchanged), stopping when no
    code changes. Levels are sorted ascending; equal levels are allowed.

    ``axis=None``: one codebook over all of ``x``, shape ``(K,)``; ``axis=a``: one per slice
    ``x[..., i, ...]`` along ``a``, shape ``(x.shape[a], K)``.

    Raises ``ValueError`` for bits outside 2..8, a negative ``iters``, NaN or infinity in
    ``x``, or an empty slice.

    Examples
    --------
    >>> fit_codebook(np.array([0, 0, 1, 1, 5, 5, 9, 9], np.float32), bits=2)
    array([0., 1., 5., 9.], dtype=float32)
    """
    k = 1 << _bits(bits)
    try:
        iters = operator.index(iters)
    except TypeError:
        raise TypeError(f"iters must be an integer, got {iters!r}") from None
    if iters < 0:
        raise ValueError(f"iters must be >= 0, got {iters}")
    x = _float32(x, "x")
    _require_finite(x, "codebook fitting")
    if axis is None:
        if x.size == 0:
            raise ValueError("fit_codebook needs at least one value")
        return _lloyd(x.ravel(), k, iters, assign=assign)
    a = _axis(axis, x.ndim)
    slices = np.moveaxis(x, a, 0).reshape(x.shape[a], -1)
    if slices.shape[1] == 0:
        raise ValueError("fit_codebook needs at least one value per slice along axis")
    out = np.empty((x.shape[a], k), _F32)
    for i, row in enumerate(slices):
        out[i] = _lloyd(row, k, iters, assign=assign)
    return out


def _fit_codebook_history(x, bits: int = 4, iters: int = 20) -> list:
    """The levels of ``fit_codebook(x, bits, iters=iters)`` (axis None) at the start and after
    each round, last = the result. For tests."""
    history: list = []
    x = _float32(x, "x").ravel()
    _lloyd(x, 1 << _bits(bits), iters, history)
    return history
