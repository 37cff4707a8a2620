"""Private numba kernel: the whole augmentation chain for a batch, in one pass over each output pixel."""
from __future__ import annotations

import numpy as np
from numba import njit, types

_V = types.Array(types.float32, 1, "C")
_SIGS = [types.void(types.Array(types.uint8, 3, "C", readonly=ro), types.Array(types.int64, 1, "C"),
                    types.Array(types.int64, 1, "C"), types.Array(types.boolean, 1, "C"), _V, _V, _V, _V,
                    types.Array(types.float32, 4, "C"))
         for ro in (False, True)]  # images may be a read-only view of an Arrow buffer


@njit(_SIGS, cache=True, nogil=True)
def _augment(images, y0, x0, flip, delta, contrast, mean, inv_std, out):
    """crop at (y0, x0) → optional h-flip → ×contrast → +delta → clip to [0, 255] → (v − mean[c]) · inv_std[c]."""
    n = images.shape[0]
    crop = out.shape[2]
    for i in range(n):
        oy, ox, f = y0[i], x0[i], flip[i]
        d, k = delta[i], contrast[i]
        m0, m1, m2 = mean[0], mean[1], mean[2]
        s0, s1, s2 = inv_std[0], inv_std[1], inv_std[2]
        for y in range(crop):
            row = images[i, oy + y]
            for x in range(crop):
                sx = ox + (crop - 1 - x if f else x)
                v = np.float32(row[sx]) * k + d
                if v > 255.0:
                    v = np.float32(255.0)
                elif v < 0.0:
                    v = np.float32(0.0)
                out[i, 0, y, x] = (v - m0) * s0
                out[i, 1, y, x] = (v - m1) * s1
                out[i, 2, y, x] = (v - m2) * s2
