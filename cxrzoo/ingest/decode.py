"""Decode an image file's bytes to a gray uint8 array at the requested size.

PNG (every colour type and bit depth) goes through cxrzoo's hardened fast path
(:mod:`cxrzoo.ingest.png`: libdeflate + numba), bit-exact with OpenCV's
``IMREAD_GRAYSCALE`` decode, with the area downscale fused as a block mean when
the size divides evenly.  Interlaced PNGs, JPEG and every other format go
through OpenCV.
"""
from __future__ import annotations

import cv2
import numpy as np

from cxrzoo.ingest.png import NotHandled, PngError, area_downscale, decode_png_gray, is_png

DEFAULT_MAX_PIXELS = 64 * 1024 * 1024  # decompression-bomb guard


class ImageDecodeError(ValueError):
    """The bytes are not a decodable image (the message says why)."""


def _opencv(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ImageDecodeError(f"not a decodable image (first bytes {bytes(data[:8])!r}); expected PNG or JPEG")
    return img


def resize_area(img: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size``×``size``: exact block means for an integer factor, else OpenCV (area or linear)."""
    h, w = img.shape
    if (h, w) == (size, size):
        return img
    if h == w and h % size == 0:
        return area_downscale(img, h // size)
    interp = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def decode_gray(data: bytes, size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode PNG/JPEG/... bytes to gray uint8, resized to ``size``×``size`` with area averaging.

    Colour and RGBA images are converted to gray as OpenCV's ``IMREAD_GRAYSCALE``
    does (alpha ignored); 16-bit images keep their high byte.  Resizing to a
    square, like NNImageReader did, does not keep the aspect ratio.

    Parameters
    ----------
    data : bytes
        The encoded file.
    size : int, optional
        Output side; ``None`` keeps the decoded size.
    max_pixels : int
        Refuse PNGs whose header declares more pixels than this.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` uint8, C-contiguous.

    Raises
    ------
    ImageDecodeError
        Empty, malformed or undecodable input, or a PNG over ``max_pixels``.
    """
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    if is_png(data):
        try:
            img = decode_png_gray(data, max_pixels, size)
        except PngError as e:
            raise ImageDecodeError(str(e)) from None
        except NotHandled:
            img = _opencv(data)
    else:
        img = _opencv(data)
    if size is not None:
        img = resize_area(img, size)
    return np.ascontiguousarray(img)
