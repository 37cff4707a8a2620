"""Small Arrow helpers shared by the Arrow UDFs."""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def rows_to_list_array(values: np.ndarray, valid: list[int], n_rows: int) -> pa.ListArray:
    """A ``list<float>`` column of ``n_rows`` rows: row ``valid[j]`` holds ``values[j]``, the others are null.

    ``values`` is ``(len(valid), k)`` float32 (or flattens to it); no per-row Python objects are built.
    """
    k = int(values.size // max(1, len(valid))) if len(valid) else 0
    lengths = np.zeros(n_rows, np.int32)
    lengths[valid] = k
    offsets = np.zeros(n_rows + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    mask = np.ones(n_rows, bool)
    mask[valid] = False
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=pa.array(mask))
