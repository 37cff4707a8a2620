"""Decode an image file's bytes to a gray uint8 array at the requested size."""
from __future__ import annotations

import cv2
import numpy as np

DEFAULT_MAX_PIXELS = 64 * 1024 * 1024  # decompression-bomb guard


class ImageDecodeError(ValueError):
    """The bytes are not a decodable image (the message says why)."""


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG header, or None for other formats."""
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


def decode_gray(data: bytes, size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode PNG/JPEG/... bytes to gray uint8, resized to ``size``×``size`` with area averaging.

    Colour and RGBA images are converted to gray with OpenCV's weights (alpha
    ignored); 16-bit images are scaled to 8 bits.  Resizing to a square, like
    NNImageReader did, does not keep the aspect ratio.

    Parameters
    ----------
    data : bytes
        The encoded file.
    size : int, optional
        Output side; ``None`` keeps the decoded size.
    max_pixels : int
        Refuse images whose header declares more pixels than this.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` uint8, C-contiguous.

    Raises
    ------
    ImageDecodeError
        Empty or undecodable input, or an image over ``max_pixels``.
    """
    if not data:
        raise ImageDecodeError("empty file")
    dims = _header_size(data)
    if dims is not None:
        w, h = dims
        if w == 0 or h == 0:
            raise ImageDecodeError(f"PNG header declares a {w}x{h} image")
        if w * h > max_pixels:
            raise ImageDecodeError(f"PNG header declares {w}x{h} pixels, over the limit of {max_pixels}")
        if data.rfind(b"IEND", max(0, len(data) - 4096)) < 0:
            raise ImageDecodeError("truncated PNG (no IEND chunk at the end); re-copy the file")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        head = bytes(data[:8])
        raise ImageDecodeError(f"not a decodable image (first bytes {head!r}); expected PNG or JPEG")
    if size is not None and img.shape != (size, size):
        interp = cv2.INTER_AREA if img.shape[0] >= size and img.shape[1] >= size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return np.ascontiguousarray(img)
