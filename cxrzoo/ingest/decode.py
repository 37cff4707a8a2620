"""Decode an image file's bytes to a gray uint8 array at the requested size.

DICOM (``.dcm``, or any file with the ``DICM`` magic) goes through :mod:`cxrzoo.ingest.dicom`.
PNG (every colour type and bit depth) goes through cxrzoo's hardened fast path
(:mod:`cxrzoo.ingest.png`: libdeflate + numba), bit-exact with OpenCV's
``IMREAD_GRAYSCALE`` decode, with the area downscale fused as a block mean when
the size divides evenly.  JPEG goes through OpenCV with reduced-size DCT
decoding (1/2, 1/4, 1/8) when the target size allows; interlaced PNGs go through OpenCV too.

Every format's size is read from its header before any pixel is decoded (PNG's IHDR, JPEG's
start-of-frame, DICOM's Rows and Columns) and checked against ``max_pixels``: a file declaring
more pixels is refused without allocating its image.  Formats whose size cannot be read that
cheaply (TIFF, BMP, WebP, ... even under a ``.png`` name) are refused.  Whatever OpenCV or the
other decoding libraries raise on a damaged or crafted file becomes an :class:`ImageDecodeError`
saying so, the one exception a file's failure gives.
"""
from __future__ import annotations

import struct
from contextlib import contextmanager
from typing import Iterator

import cv2
import numpy as np

from cxrzoo.ingest._alloc import reuse_large_buffers
from cxrzoo.ingest.dicom import decode_dicom, is_dicom
from cxrzoo.ingest.errors import ImageDecodeError
from cxrzoo.ingest.markers import jpeg_size
from cxrzoo.ingest.png import NotHandled, PngError, area_downscale, decode_png_gray, is_png

reuse_large_buffers()  # decoding allocates MB-sized buffers per image: reuse them instead of mmap/munmap
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024  # decompression-bomb guard
DICOM_SUFFIXES = (".dcm", ".dicom")
JPEG_MAGIC = b"\xff\xd8"
# what decoding libraries raise on a bad file (anything else is a bug, left to the caller's boundary)
LIBRARY_ERRORS = (cv2.error, ValueError, ArithmeticError, LookupError, struct.error, EOFError)


_REDUCED = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
            8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def _reduction(dims: tuple[int, int] | None, size: int | None) -> int:
    k = 1
    while dims is not None and size and k < 8 and min(dims) // (2 * k) >= size:
        k *= 2
    return k


def jpeg_reduction(data: bytes, size: int | None) -> int:
    """The largest DCT-domain reduction (1, 2, 4 or 8) that still leaves both sides >= ``size``."""
    return _reduction(jpeg_size(data) if size else None, size)


@contextmanager
def library_errors() -> Iterator[None]:
    """Turn what a decoding library raises on a bad file into :class:`ImageDecodeError` (which passes as is)."""
    try:
        yield
    except ImageDecodeError:
        raise
    except MemoryError:
        raise ImageDecodeError("decoding needs more memory than this process has; a crafted header, or an image "
                               "too large for the executors' memory") from None
    except LIBRARY_ERRORS as e:
        why = " ".join(str(e).split())
        kind = type(e).__name__
        if isinstance(e, cv2.error):  # "OpenCV(4.x) /path/loadsave.cpp:79: error: (-215:Assertion failed) ..."
            kind, why = "OpenCV", why.split(" error: ", 1)[-1]
        raise ImageDecodeError(f"the decoder failed on this file ({kind}: {why[:300]}); "
                               "a damaged, truncated or crafted file?") from None


def check_pixels(h: int, w: int, max_pixels: int, what: str) -> None:
    """Refuse a header's ``h``×``w`` when a side is 0 or the pixels exceed ``max_pixels``."""
    if h <= 0 or w <= 0:
        raise ImageDecodeError(f"the {what} header declares {w}x{h} pixels: a damaged file")
    if h * w > max_pixels:
        raise ImageDecodeError(f"{w}x{h} pixels is over the limit of {max_pixels} (raise max_pixels if this is "
                               "intended)")


def _opencv(data: bytes, reduction: int = 1) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[reduction])
    if img is None:
        raise ImageDecodeError(f"not a decodable image (first bytes {bytes(data[:8])!r}); "
                               "expected PNG, JPEG or DICOM (.dcm, or the DICM magic)")
    return img


def _jpeg(data: bytes, size: int | None, max_pixels: int) -> np.ndarray:
    """A JPEG sized from its start-of-frame and checked before libjpeg decodes it (at 1/2, 1/4 or 1/8 scale
    when the target is that small)."""
    dims = jpeg_size(data)
    if dims is None:
        raise ImageDecodeError("JPEG without a readable frame header (SOFn) before its scan: truncated or damaged")
    check_pixels(*dims, max_pixels, "JPEG")
    return _opencv(data, _reduction(dims, size))


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
    """Decode PNG or JPEG bytes to gray uint8, resized to ``size``×``size`` with area averaging.

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
        Refuse images whose header declares more pixels than this (checked before decoding).

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` uint8, C-contiguous.

    Raises
    ------
    ImageDecodeError
        Empty, malformed, undecodable or other-format input, an image over ``max_pixels``, or whatever the
        decoding library raised on it.
    """
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    with library_errors():
        if is_png(data):
            try:
                img = decode_png_gray(data, max_pixels, size)  # IHDR checked against max_pixels first
            except PngError as e:
                raise ImageDecodeError(str(e)) from None
            except NotHandled:
                img = _opencv(data)
        elif data[:2] == JPEG_MAGIC:
            img = _jpeg(data, size, max_pixels)
        else:  # a format whose size cannot be checked before OpenCV allocates it
            raise ImageDecodeError(f"not a decodable image (first bytes {bytes(data[:8])!r}); "
                                   "expected PNG, JPEG or DICOM (.dcm, or the DICM magic)")
        if size is not None:
            img = resize_area(img, size)
        return np.ascontiguousarray(img)


def decode_image(data: bytes, size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, voi: str = "auto",
                 name: str = "", sandbox=None) -> tuple[np.ndarray, dict | None]:
    """Decode any supported file: DICOM (by its magic or a ``.dcm``/``.dicom`` name) with its header
    fields, else PNG/JPEG as :func:`decode_gray` (fields ``None``).

    ``sandbox`` (a :class:`~cxrzoo.ingest.sandbox.SandboxedDecoder`) decodes DICOM files in a child
    process with bounded memory and time; without it they are decoded in this process.

    Raises
    ------
    ImageDecodeError
        The file cannot be decoded (:class:`~cxrzoo.ingest.dicom.DicomError` for DICOM), including whatever
        OpenCV or another decoding library raised on it.
    """
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    if is_dicom(data) or name.lower().endswith(DICOM_SUFFIXES):
        if sandbox is not None:
            return sandbox.decode(data, size, max_pixels, voi)
        with library_errors():
            return decode_dicom_resized(data, size, max_pixels, voi)
    return decode_gray(data, size, max_pixels), None


def decode_dicom_resized(data: bytes, size: int | None, max_pixels: int, voi: str) -> tuple[np.ndarray, dict]:
    """:func:`~cxrzoo.ingest.dicom.decode_dicom`, then the area resize to ``size``² (``None`` keeps the size)."""
    img, meta = decode_dicom(data, max_pixels, voi)
    return (np.ascontiguousarray(resize_area(img, size)) if size is not None else img), meta
