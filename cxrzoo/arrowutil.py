"""Small Arrow helpers shared by the Arrow UDFs."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from cxrzoo.errors import InputError


def _offsets(valid: list[int], n_rows: int, k: int) -> np.ndarray:
    """Arrow int32 offsets of ``n_rows`` rows where the rows ``valid`` hold ``k`` values and the others none."""
    lengths = np.zeros(n_rows, np.int32)
    lengths[valid] = k
    offsets = np.zeros(n_rows + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def rows_to_list_array(values: np.ndarray, valid: list[int], n_rows: int) -> pa.ListArray:
    """A ``list<float>`` column of ``n_rows`` rows: row ``valid[j]`` holds ``values[j]``, the others are null.

    ``values`` is ``(len(valid), k)`` float32 (or flattens to it); no per-row Python objects are built.
    """
    k = int(values.size // max(1, len(valid))) if len(valid) else 0
    offsets = _offsets(valid, n_rows, k)
    mask = np.ones(n_rows, bool)
    mask[valid] = False
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=pa.array(mask))


def rows_to_binary_array(values: np.ndarray, valid: list[int], n_rows: int) -> pa.BinaryArray:
    """A ``binary`` column of ``n_rows`` rows: row ``valid[j]`` holds the bytes of ``values[j]``, the others
    are null; the data buffer is ``values`` itself (no copy, no per-row Python objects).

    ``values`` is ``(len(valid), k)`` uint8, C-contiguous.
    """
    if values.dtype != np.uint8 or values.ndim != 2 or not values.flags.c_contiguous or len(values) != len(valid):
        raise InputError(f"expected a C-contiguous ({len(valid)}, k) uint8 array, got {values.dtype} {values.shape}")
    offsets = _offsets(valid, n_rows, values.shape[1])
    mask = np.zeros(n_rows, bool)
    mask[valid] = True
    validity = pa.array(mask).buffers()[1] if len(valid) < n_rows else None
    return pa.Array.from_buffers(pa.binary(), n_rows, [validity, pa.py_buffer(offsets), pa.py_buffer(values)],
                                 null_count=n_rows - len(valid))


def float_rows(column: pa.Array, width: int | None, what: str) -> np.ndarray:
    """A list<float> Arrow column of equal-length, non-null rows as a C-contiguous (rows, width) float32 array.

    Raises
    ------
    ValueError
        Naming the first null or misfit row (in the batch) and what to do.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = np.diff(np.asarray(column.offsets))
    if width is None:
        width = int(lengths[0]) if len(lengths) else 0
    nulls = np.asarray(column.is_null(), bool)
    bad = np.flatnonzero((lengths != width) | nulls)
    if len(bad):
        row = int(bad[0])
        got = "no" if nulls[row] else str(lengths[row])
        raise InputError(f"{what}: row {row} of an Arrow batch has {got} values, expected {width}; "
                         "drop null rows and preprocess every image to the same size")
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return np.ascontiguousarray(values).reshape(len(column), width)


def binary_rows(column: pa.Array, what: str) -> np.ndarray:
    """A binary Arrow column of equal-length, non-null rows as a C-contiguous (rows, width) uint8 array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    if n == 0:
        return np.zeros((0, 0), np.uint8)
    if column.null_count:
        row = int(np.flatnonzero(np.asarray(column.is_null(), bool))[0])
        raise InputError(f"{what}: row {row} of an Arrow batch is null; drop null rows first")
    offsets = np.frombuffer(column.buffers()[1], np.int32, n + 1, column.offset * 4)
    lengths = np.diff(offsets)
    width = int(lengths[0])
    if (lengths != width).any():
        row = int(np.flatnonzero(lengths != width)[0])
        raise InputError(f"{what}: row {row} of an Arrow batch has {lengths[row]} bytes, expected {width}; "
                         "ingest every image with one --size")
    data = np.frombuffer(column.buffers()[2], np.uint8)
    return data[offsets[0]: offsets[0] + n * width].reshape(n, width)
