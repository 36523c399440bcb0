"""The type aliases of the public signatures (numpy.typing). Annotations only: nothing here
runs a check; the functions validate their arguments themselves."""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Optional, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from ._checks import QParams

__all__ = ["ArrayLike", "Scale", "ZeroPoint", "Axis", "DTypeName", "PathOrFile", "FloatArray"]

#: Anything np.asarray accepts.
ArrayLike = npt.ArrayLike
#: A scale: a float, an array of the granularity's shape, or a QParams (which brings the zero
#: point, dtype, axis and group size along).
Scale = Union[float, npt.ArrayLike, "QParams"]
#: A zero point: None (0), an int or an integer array shaped like the scale.
ZeroPoint = Optional[Union[int, npt.ArrayLike]]
#: An axis (negative counts from the end) or None.
Axis = Optional[int]
#: "int8", "uint8", "int4" or "uint4".
DTypeName = str
#: A path or an open binary file.
PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]
#: A float32 result.
FloatArray = npt.NDArray[np.float32]
