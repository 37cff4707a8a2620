"""Private numba kernels of the PNG fast path: unfilter, gray conversion, area downscale.

Public entry points with dtype/shape checks live in :mod:`cxrzoo.ingest.png`.
Gray conversion reproduces OpenCV's PNG decode with ``IMREAD_GRAYSCALE`` (libpng's
``png_set_rgb_to_gray(1, 0.299, 0.587)``: coefficients 9797/19234/3737 over 2^15,
truncated, and pixels with r = g = b passed through; 16-bit RGB is converted at
16 bits with rounding), 16-bit samples keep their high byte
(``png_set_strip_16``), and 1/2/4-bit gray is scaled to 0–255.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_R, _G, _B = 9797, 19234, 3737


@njit(cache=True, nogil=True)
def _rgb_gray(r, g, b):
    if r == g and r == b:
        return r
    return (np.int32(r) * _R + np.int32(g) * _G + np.int32(b) * _B) >> 15


@njit("void(uint8[:, ::1], int64, int64, int64, uint8[:, ::1], uint8[:, ::1])", cache=True, nogil=True)
def _to_gray(rows, color_type, bit_depth, w, palette, out):
    """Unfiltered scanlines → 8-bit gray, as OpenCV decodes with IMREAD_GRAYSCALE."""
    h = rows.shape[0]
    step = 2 if bit_depth == 16 else 1  # 16-bit: keep the high byte
    if color_type == 0 and bit_depth < 8:
        per = 8 // bit_depth
        mask = (1 << bit_depth) - 1
        scale = 255 // mask
        for y in range(h):
            for x in range(w):
                byte = rows[y, x // per]
                shift = 8 - bit_depth * (x % per + 1)
                out[y, x] = ((byte >> shift) & mask) * scale
    elif color_type == 3:
        per = 8 // bit_depth
        mask = (1 << bit_depth) - 1
        n = palette.shape[0]
        for y in range(h):
            for x in range(w):
                byte = rows[y, x // per]
                idx = (byte >> (8 - bit_depth * (x % per + 1))) & mask
                if idx < n:
                    out[y, x] = _rgb_gray(palette[idx, 0], palette[idx, 1], palette[idx, 2])
                else:
                    out[y, x] = 0
    else:
        channels = 1 if color_type == 0 else 2 if color_type == 4 else 3 if color_type == 2 else 4
        px = channels * step
        for y in range(h):
            for x in range(w):
                o = x * px
                if channels <= 2:
                    out[y, x] = rows[y, o]
                elif step == 1:
                    out[y, x] = _rgb_gray(rows[y, o], rows[y, o + 1], rows[y, o + 2])
                else:  # libpng converts 16-bit RGB at 16 bits, rounded, then strips to the high byte
                    r = (np.int64(rows[y, o]) << 8) | rows[y, o + 1]
                    g = (np.int64(rows[y, o + 2]) << 8) | rows[y, o + 3]
                    b = (np.int64(rows[y, o + 4]) << 8) | rows[y, o + 5]
                    out[y, x] = ((r * _R + g * _G + b * _B + 16384) >> 15) >> 8


@njit("void(uint8[:, ::1], int64, uint8[:, ::1])", cache=True, nogil=True)
def _area_down(img, f, out):
    """Mean of f×f blocks, rounded as OpenCV's INTER_AREA does for an integer factor.

    OpenCV's 2× path rounds halves up; its other integer factors go through float
    weights and round halves to even.
    """
    oh, ow = out.shape
    area = f * f
    for oy in range(oh):
        for ox in range(ow):
            s = 0
            for dy in range(f):
                row = oy * f + dy
                for dx in range(f):
                    s += img[row, ox * f + dx]
            q = s // area
            r2 = 2 * (s - q * area)
            if r2 > area or (r2 == area and (f == 2 or q % 2 == 1)):
                q += 1
            out[oy, ox] = q


@njit(cache=True, nogil=True, inline="always")
def _unfilter_row(ft, src, start, prev, cur, n, bpp):
    """Undo one row's filter into ``cur`` given the previous unfiltered row ``prev``. False: bad type."""
    if ft == 0:
        for x in range(n):
            cur[x] = src[start + x]
    elif ft == 1:
        for x in range(bpp):
            cur[x] = src[start + x]
        for x in range(bpp, n):
            cur[x] = (src[start + x] + cur[x - bpp]) & 0xFF
    elif ft == 2:
        for x in range(n):
            cur[x] = (src[start + x] + prev[x]) & 0xFF
    elif ft == 3:
        for x in range(bpp):
            cur[x] = (src[start + x] + (prev[x] >> 1)) & 0xFF
        for x in range(bpp, n):
            cur[x] = (src[start + x] + ((np.int32(cur[x - bpp]) + np.int32(prev[x])) >> 1)) & 0xFF
    elif ft == 4:
        for x in range(bpp):
            cur[x] = (src[start + x] + prev[x]) & 0xFF  # a = c = 0: Paeth picks b
        for x in range(bpp, n):
            a = np.int32(cur[x - bpp])
            b = np.int32(prev[x])
            c = np.int32(prev[x - bpp])
            pa = abs(b - c)
            pb = abs(a - c)
            pc = abs(a + b - 2 * c)
            # branch-free select (the choice is data-dependent and mispredicts as a branch)
            use_a = np.int32((pa <= pb) & (pa <= pc))
            use_b = np.int32(pb <= pc) * (1 - use_a)
            pred = a * use_a + b * use_b + c * (1 - use_a - use_b)
            cur[x] = (src[start + x] + pred) & 0xFF
    else:
        return False
    return True


@njit("int64(uint8[::1], int64, int64, int64, uint8[:, ::1])", cache=True, nogil=True)
def _unfilter_fast(raw, h, stride, bpp, out):
    """Undo PNG filters row by row; ``raw`` is h × (1 + stride). Returns -1 or the first bad row."""
    zero = np.zeros(stride, np.uint8)
    for y in range(h):
        prev = out[y - 1] if y > 0 else zero
        if not _unfilter_row(raw[y * (stride + 1)], raw, y * (stride + 1) + 1, prev, out[y], stride, bpp):
            return y
    return -1


@njit("int64(uint8[::1], int64, int64, int64, uint8[:, ::1])", cache=True, nogil=True)
def _unfilter_gray8_area(raw, h, w, f, out):
    """8-bit gray: unfilter and f×f block-mean downscale fused, two rows of state. -1 or the bad row."""
    rows = np.zeros((2, w), np.uint8)
    acc = np.zeros(w, np.int32)
    area = f * f
    ow = w // f
    for y in range(h):
        cur = rows[y & 1]
        prev = rows[(y + 1) & 1]
        if not _unfilter_row(raw[y * (w + 1)], raw, y * (w + 1) + 1, prev, cur, w, 1):
            return y
        for x in range(w):
            acc[x] += cur[x]
        if y % f == f - 1:
            oy = y // f
            for ox in range(ow):
                s = 0
                for dx in range(f):
                    s += acc[ox * f + dx]
                q = s // area
                r2 = 2 * (s - q * area)
                if r2 > area or (r2 == area and (f == 2 or q % 2 == 1)):
                    q += 1
                out[oy, ox] = q
            acc[:] = 0
    return -1
