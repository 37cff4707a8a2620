"""Image sizes read from codestream headers, without decoding: JPEG's start-of-frame, JPEG 2000's SIZ."""
from __future__ import annotations

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
MAX_JPEG_STEPS = 65536  # markers and fill bytes walked before the frame header: far more than any real file's


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's start-of-frame marker, or None if not found.

    Only the marker segments' headers before the frame are read, at most :data:`MAX_JPEG_STEPS` of them
    (fill bytes included), so a crafted file cannot make the walk long."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, n = 2, len(data)
    for _ in range(MAX_JPEG_STEPS):
        if pos + 4 > n:
            return None
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        seg = int.from_bytes(data[pos + 2: pos + 4], "big")
        if marker in _SOF and pos + 9 <= n:
            return int.from_bytes(data[pos + 5: pos + 7], "big"), int.from_bytes(data[pos + 7: pos + 9], "big")
        if marker in (0xD9, 0xDA) or seg < 2:  # end of image / start of scan: no frame header before it
            return None
        pos += 2 + seg
    return None


def j2k_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG 2000 codestream's SIZ segment (a bare ``.j2k`` stream or one inside a
    JP2 box, within the first 4 KiB), or None if not found."""
    at = bytes(data[:4096]).find(b"\xff\x4f\xff\x51")
    if at < 0 or at + 24 > len(data):
        return None
    p = at + 8  # after SOC, SIZ, Lsiz, Rsiz
    xsiz, ysiz, xo, yo = (int.from_bytes(data[p + 4 * i: p + 4 * i + 4], "big") for i in range(4))
    return ysiz - yo, xsiz - xo
