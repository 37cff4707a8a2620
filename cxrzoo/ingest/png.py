"""A hardened PNG decoder to 8-bit gray: chunk checks in Python, libdeflate inflate, C++ unfilter.

Every malformation (bad signature, CRC, truncated or lying chunk lengths,
missing IHDR/IDAT/IEND, garbage after IEND, invalid header fields, dimensions
over a pixel cap, a stream that inflates to the wrong size, unknown filter
types) raises
:class:`PngError` with a message saying what is wrong; nothing reads or writes
out of bounds (lengths are checked before slicing, buffers are sized from the
header and the inflated size is verified).  Adam7-interlaced files are left to
OpenCV (:data:`NotHandled`).  Unfilter and downscale run in the C++ kernels of
:mod:`cxrzoo.ingest.native`, or in the numba kernels where those are not built.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import deflate
import numpy as np

from cxrzoo.ingest import _pngkernels as K
from cxrzoo.ingest import native
from cxrzoo.errors import InputError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_VALID_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_CHUNK_HEAD = struct.Struct(">I4s")
_U32 = struct.Struct(">I")


class PngError(InputError):
    """The bytes are not a valid PNG (the message says why)."""


class NotHandled(InputError):
    """A valid PNG this decoder leaves to OpenCV (interlaced)."""


@dataclass(frozen=True)
class PngHeader:
    """IHDR fields."""

    width: int
    height: int
    bit_depth: int
    color_type: int
    interlace: int

    @property
    def stride(self) -> int:
        """Bytes per unfiltered scanline."""
        return (self.width * _CHANNELS[self.color_type] * self.bit_depth + 7) // 8

    @property
    def bpp(self) -> int:
        """Filter byte distance: bytes per complete pixel, at least 1."""
        return max(1, _CHANNELS[self.color_type] * self.bit_depth // 8)


def is_png(data: bytes) -> bool:
    """True if ``data`` starts with the PNG signature."""
    return data[:8] == SIGNATURE


def parse(data: bytes, max_pixels: int) -> tuple[PngHeader, bytes | memoryview, np.ndarray]:
    """Check every chunk and return (header, concatenated IDAT, palette (n, 3) uint8)."""
    if not is_png(data):
        raise PngError("not a PNG (bad signature)")
    pos, n = 8, len(data)
    view = memoryview(data)  # chunk bodies are checked and collected without copies
    header: PngHeader | None = None
    idat: list[memoryview] = []
    palette = np.zeros((0, 3), np.uint8)
    seen_iend = False
    head, u32, crc32 = _CHUNK_HEAD.unpack_from, _U32.unpack_from, deflate.crc32  # ~50 chunks per NIH file
    while pos < n:
        if pos + 12 > n:
            raise PngError(f"truncated chunk header at byte {pos}")
        length, ctype = head(data, pos)
        end = pos + 8 + length
        if length > 0x7FFFFFFF or end + 4 > n:
            raise PngError(f"chunk {ctype!r} at byte {pos} claims {length} bytes, past the end of the file "
                           "(truncated file or lying length)")
        if crc32(view[pos + 4: end]) != u32(data, end)[0]:  # the CRC covers type and body
            raise PngError(f"CRC mismatch in chunk {ctype!r} at byte {pos} (corrupted file)")
        body = view[pos + 8: end]
        pos = end + 4
        if ctype == b"IDAT" and header is not None:
            idat.append(body)
            continue
        if header is None and ctype != b"IHDR":
            raise PngError(f"first chunk is {ctype!r}, not IHDR")
        if ctype == b"IHDR":
            header = _header(body, max_pixels, header is not None)
        elif ctype == b"PLTE":
            if len(palette):  # libpng refuses it too ("PLTE: duplicate")
                raise PngError("more than one PLTE chunk")
            if length % 3 or length == 0 or length > 768:
                raise PngError(f"PLTE chunk of {length} bytes is not 1–256 RGB entries")
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3).copy()
        elif ctype == b"IEND":
            seen_iend = True
            if pos != n:
                raise PngError(f"{n - pos} bytes of garbage after IEND (corrupted or concatenated file)")
            break
    if header is None:
        raise PngError("no IHDR chunk")
    if not idat:
        raise PngError("no IDAT chunk (no image data)")
    if not seen_iend:
        raise PngError("no IEND chunk: the file is truncated")
    if header.color_type == 3 and len(palette) == 0:
        raise PngError("palette image without a PLTE chunk")
    return header, idat[0] if len(idat) == 1 else b"".join(idat), palette


def _header(body: bytes, max_pixels: int, duplicate: bool) -> PngHeader:
    if duplicate:
        raise PngError("more than one IHDR chunk")
    if len(body) != 13:
        raise PngError(f"IHDR has {len(body)} bytes, expected 13")
    w, h, depth, ctype, comp, filt, inter = struct.unpack(">IIBBBBB", body)
    if w == 0 or h == 0 or w > 0x7FFFFFFF or h > 0x7FFFFFFF:
        raise PngError(f"invalid dimensions {w}x{h}")
    if w * h > max_pixels:
        raise PngError(f"{w}x{h} pixels is over the limit of {max_pixels} (raise max_pixels if this is intended)")
    if ctype not in _VALID_DEPTHS or depth not in _VALID_DEPTHS[ctype]:
        raise PngError(f"invalid colour type {ctype} with bit depth {depth}")
    if comp != 0 or filt != 0 or inter not in (0, 1):
        raise PngError(f"invalid IHDR method fields (compression {comp}, filter {filt}, interlace {inter})")
    return PngHeader(w, h, depth, ctype, inter)


def decode_png_gray(data: bytes, max_pixels: int, size: int | None = None) -> np.ndarray:
    """Decode PNG bytes to gray uint8, bit-exact with ``cv2.imdecode(..., IMREAD_GRAYSCALE)``.

    With ``size``, an 8-bit gray square image whose side is a multiple of ``size``
    comes back already downscaled to ``size``×``size`` (unfilter and block mean
    fused, equal to ``cv2.resize(..., INTER_AREA)``); anything else comes back at
    full size for the caller to resize.

    Raises
    ------
    PngError
        On any malformation.
    NotHandled
        For interlaced files (decode those with OpenCV).
    """
    hdr, idat, palette = parse(data, max_pixels)
    if hdr.interlace:
        raise NotHandled("Adam7 interlace")
    expected = hdr.height * (hdr.stride + 1)
    try:
        raw = deflate.zlib_decompress(idat, expected)
    except deflate.DeflateError as e:
        raise PngError(f"image data does not inflate ({e}); the file is corrupted or truncated") from None
    if len(raw) != expected:
        raise PngError(f"image data inflates to {len(raw)} bytes, expected {expected} for {hdr.width}x{hdr.height}")
    src = np.frombuffer(raw, np.uint8)
    gray8 = hdr.color_type == 0 and hdr.bit_depth == 8
    fused = gray8 and size and hdr.width == hdr.height and hdr.height % size == 0 and hdr.height > size
    if native.AVAILABLE:
        full = np.empty((hdr.height, hdr.stride), np.uint8)
        bad = native.unfilter(src, hdr.height, hdr.stride, hdr.bpp, full)
        if bad < 0 and fused:
            out = np.empty((size, size), np.uint8)
            native.area_down(full, hdr.height // size, out)
        else:
            out = full
    elif fused:
        out = np.empty((size, size), np.uint8)
        bad = K._unfilter_gray8_area(src, hdr.height, hdr.width, hdr.height // size, out)
    else:
        out = np.empty((hdr.height, hdr.stride), np.uint8)
        bad = K._unfilter_fast(src, hdr.height, hdr.stride, hdr.bpp, out)
    if bad >= 0:
        raise PngError(f"row {bad} has an invalid filter type")
    if gray8:
        return out
    gray = np.empty((hdr.height, hdr.width), np.uint8)
    pal = np.ascontiguousarray(palette) if len(palette) else np.zeros((1, 3), np.uint8)
    K._to_gray(out, hdr.color_type, hdr.bit_depth, hdr.width, pal, gray)
    return gray


def area_downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Downscale by an integer factor with block means, equal to ``cv2.resize(..., INTER_AREA)``.

    Parameters
    ----------
    img : numpy.ndarray
        ``(H, W)`` uint8, C-contiguous, with H and W multiples of ``factor``.
    factor : int
        Block side, >= 1.
    """
    if img.dtype != np.uint8 or img.ndim != 2:
        raise TypeError(f"expected a 2-D uint8 image, got {img.dtype} {img.shape}")
    if factor < 1 or img.shape[0] % factor or img.shape[1] % factor:
        raise InputError(f"factor {factor} does not divide the image shape {img.shape}")
    if factor == 1:
        return img
    out = np.empty((img.shape[0] // factor, img.shape[1] // factor), np.uint8)
    if native.AVAILABLE:
        native.area_down(np.ascontiguousarray(img), factor, out)
    else:
        K._area_down(np.ascontiguousarray(img), factor, out)
    return out
