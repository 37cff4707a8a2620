"""Write PNGs of any colour type, bit depth and filter type, for tests (a plain, slow reference encoder)."""
from __future__ import annotations

import struct
import zlib

import numpy as np

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def pack_rows(samples: np.ndarray, bit_depth: int) -> np.ndarray:
    """(H, W*C) integer samples → (H, stride) bytes."""
    h, n = samples.shape
    if bit_depth == 8:
        return samples.astype(np.uint8)
    if bit_depth == 16:
        return samples.astype(">u2").view(np.uint8).reshape(h, n * 2)
    per = 8 // bit_depth
    stride = (n * bit_depth + 7) // 8
    out = np.zeros((h, stride), np.uint8)
    for x in range(n):
        out[:, x // per] |= (samples[:, x].astype(np.uint8) << (8 - bit_depth * (x % per + 1))).astype(np.uint8)
    return out


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filter_rows(rows: np.ndarray, bpp: int, filters: list[int]) -> bytes:
    """Apply PNG filter ``filters[y % len(filters)]`` to each row (the obvious loops)."""
    h, stride = rows.shape
    out = bytearray()
    r = rows.astype(np.int64)
    for y in range(h):
        ft = filters[y % len(filters)]
        out.append(ft)
        for x in range(stride):
            a = r[y, x - bpp] if x >= bpp else 0
            b = r[y - 1, x] if y > 0 else 0
            c = r[y - 1, x - bpp] if y > 0 and x >= bpp else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][ft]
            out.append((r[y, x] - pred) & 0xFF)
    return bytes(out)


def make_png(samples: np.ndarray, color_type: int, bit_depth: int, filters=(0, 1, 2, 3, 4),
             palette: np.ndarray | None = None, trns: bytes | None = None) -> bytes:
    """Encode ``samples`` (H, W, C) or (H, W) integers as a PNG with the given layout."""
    if samples.ndim == 2:
        samples = samples[:, :, None]
    h, w, c = samples.shape
    assert c == CHANNELS[color_type]
    rows = pack_rows(samples.reshape(h, w * c), bit_depth)
    bpp = max(1, c * bit_depth // 8)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
    if palette is not None:
        png += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    if trns is not None:
        png += chunk(b"tRNS", trns)
    png += chunk(b"IDAT", zlib.compress(filter_rows(rows, bpp, list(filters))))
    return png + chunk(b"IEND", b"")


ADAM7 = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]


def make_interlaced_gray8(img: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit gray PNG (filter 0 on every row)."""
    h, w = img.shape
    raw = bytearray()
    for y0, x0, dy, dx in ADAM7:
        sub = img[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.astype(np.uint8).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw)))
            + chunk(b"IEND", b""))
