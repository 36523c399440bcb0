"""Base classes by which the argument checks and :mod:`lowbit.reference` recognise the API's
objects without importing the modules that define them (those import the compiled extension,
and the reference must not).

Each is an empty marker (``__slots__ = ()``, no behaviour) from which the API's classes of that
kind derive; the checks and the reference test ``isinstance`` against it and read the attributes
its docstring lists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

if TYPE_CHECKING:
    import numpy as np

__all__ = ["PackedBase", "QTensorBase"]


class PackedBase:
    """Base of :class:`lowbit.PackedMatrix` (``lowbit._gemm``).

    Read by the checks and the reference: ``shape`` (``(K, N)``), ``dtype`` (a name of
    ``_checks.DTYPES``), ``bits`` and ``to_array()`` (the ``(K, N)`` values).
    """

    __slots__ = ()
    # what the subclass provides (declared for type checkers; no attributes here)
    shape: Tuple[int, int]
    dtype: str
    bits: int
    if TYPE_CHECKING:
        def to_array(self) -> np.ndarray: ...


class QTensorBase:
    """Base of :class:`lowbit.QTensor` (``lowbit._qtensor``) and of the weights in float and
    non-uniform formats that ``QTensor.quantize`` makes (``lowbit._fqtensor.FormatTensor``).

    Read by the checks and the reference: ``data``, ``scale``, ``zero_point``, ``dtype``,
    ``shape``, ``ndim``, ``axis`` and ``group_size``.
    """

    __slots__ = ()
    # what the subclass provides (declared for type checkers; no attributes here)
    data: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str
    shape: Tuple[int, ...]
    ndim: int
    axis: Optional[int]
    group_size: Optional[int]
