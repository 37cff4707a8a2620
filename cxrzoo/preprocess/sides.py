"""The side of square images, inferred in one place: from a value count, or from a DataFrame column.

Gray images are stored as ``S*S`` bytes (binary column, one channel); network inputs as ``C*S*S`` floats
(array column, three channels).
"""
from __future__ import annotations

import math

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cxrzoo.errors import InputError


class ImageSizeError(InputError):
    """A column does not hold square images of one size."""


def side_of(values: int, channels: int = 1) -> int | None:
    """``S`` when ``values == channels * S * S``, else None."""
    side = math.isqrt(values // channels) if values > 0 else 0
    return side if side > 0 and channels * side * side == values else None


def image_side(df: DataFrame, col: str = "image", sample: int = 64) -> int:
    """The side of the square images in ``col``: a binary column of gray bytes or an array column of CHW floats.

    Looks at up to ``sample`` non-null rows (a cheap job, not a pass over the data).

    Raises
    ------
    ImageSizeError
        No non-null rows, sizes that differ, or a length that is no square.
    """
    if col not in df.columns:
        raise ImageSizeError(f"no column {col!r}; columns: {df.columns}")
    dtype = df.schema[col].dataType
    if isinstance(dtype, T.BinaryType):
        length, channels, unit = F.length(col), 1, "bytes (gray S×S)"
    elif isinstance(dtype, T.ArrayType):
        length, channels, unit = F.size(col), 3, "values (3×S×S; run CXRPreprocessor first)"
    else:
        raise ImageSizeError(f"{col!r} is {dtype.simpleString()}, not gray image bytes or a float tensor")
    found = sorted({r["n"] for r in df.where(F.col(col).isNotNull()).select(length.alias("n")).limit(sample).collect()})
    if not found:
        raise ImageSizeError(f"no rows with {col!r}: every image failed to decode or the data is empty")
    side = side_of(found[0], channels)
    if len(found) > 1 or side is None:
        raise ImageSizeError(f"{col!r} must hold square images of one size; found lengths {found} in {unit} "
                             "(ingest with one --size)")
    return side
