"""Small Arrow helpers shared by the Arrow UDFs."""
from __future__ import annotations

import numpy as np
import pyarrow as pa


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
        raise ValueError(f"expected a C-contiguous ({len(valid)}, k) uint8 array, got {values.dtype} {values.shape}")
    offsets = _offsets(valid, n_rows, values.shape[1])
    mask = np.zeros(n_rows, bool)
    mask[valid] = True
    validity = pa.array(mask).buffers()[1] if len(valid) < n_rows else None
    return pa.Array.from_buffers(pa.binary(), n_rows, [validity, pa.py_buffer(offsets), pa.py_buffer(values)],
                                 null_count=n_rows - len(valid))
