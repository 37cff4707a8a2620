"""Bindings of the C++ kernels in ``kernels/`` (built into ``cxrzoo._native`` by the package build).

The extension module is an empty CPython module; its shared object exports plain C
functions that are called here through :mod:`ctypes` (the call costs ~1 µs, the
kernels work on whole images).  Every public wrapper checks dtype, shape and sizes
before calling: the C side trusts its arguments.

When the extension is not built (a source tree used without ``pip install``), or
``CXRZOO_PNG_KERNEL=numba`` is set, :data:`AVAILABLE` is False and the PNG path uses
its numba kernels instead.
"""
from __future__ import annotations

import ctypes
import importlib.util
import logging
import os

import numpy as np

from cxrzoo.errors import InputError, JobFailedError

log = logging.getLogger(__name__)

_u8p = ctypes.POINTER(ctypes.c_uint8)
_long = ctypes.c_long


def _load() -> ctypes.CDLL | None:
    if os.environ.get("CXRZOO_PNG_KERNEL", "native") == "numba":
        return None
    try:
        spec = importlib.util.find_spec("cxrzoo._native")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        log.warning("cxrzoo._native is not built (install the package with pip); using the numba PNG kernels")
        return None
    lib = ctypes.CDLL(spec.origin)
    lib.cxr_unfilter.argtypes = [_u8p, _long, _long, _long, _u8p]
    lib.cxr_unfilter.restype = _long
    lib.cxr_area_down.argtypes = [_u8p, _long, _long, _long, _u8p]
    lib.cxr_area_down.restype = None
    return lib


_LIB = _load()
AVAILABLE: bool = _LIB is not None


def _ptr(a: np.ndarray) -> ctypes.POINTER(ctypes.c_uint8):
    return a.ctypes.data_as(_u8p)


def _check_u8(name: str, a: np.ndarray, ndim: int) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != ndim or not a.flags.c_contiguous:
        raise TypeError(f"{name} must be a C-contiguous {ndim}-D uint8 array, got "
                        f"{getattr(a, 'dtype', type(a))} {getattr(a, 'shape', '')}")


def unfilter(raw: np.ndarray, height: int, stride: int, bpp: int, out: np.ndarray) -> int:
    """Undo PNG filters: ``raw`` holds ``height`` × (1 + ``stride``) bytes, ``out`` is (height, stride).

    Returns -1, or the index of the first row with an invalid filter type.
    """
    if _LIB is None:
        raise JobFailedError("cxrzoo._native is not available")
    _check_u8("raw", raw, 1)
    _check_u8("out", out, 2)
    if height < 1 or stride < 1 or not 1 <= bpp <= 8:
        raise InputError(f"bad geometry: height {height}, stride {stride}, bpp {bpp}")
    if raw.size != height * (stride + 1) or out.shape != (height, stride):
        raise InputError(f"raw has {raw.size} bytes and out is {out.shape}; expected "
                         f"{height * (stride + 1)} and {(height, stride)}")
    if not out.flags.writeable:
        raise InputError("out must be writeable")
    return int(_LIB.cxr_unfilter(_ptr(raw), height, stride, bpp, _ptr(out)))


def area_down(img: np.ndarray, factor: int, out: np.ndarray) -> None:
    """Block-mean downscale by an integer ``factor`` into ``out``, rounded as ``cv2.INTER_AREA``."""
    if _LIB is None:
        raise JobFailedError("cxrzoo._native is not available")
    _check_u8("img", img, 2)
    _check_u8("out", out, 2)
    h, w = img.shape
    if factor < 1 or h % factor or w % factor or out.shape != (h // factor, w // factor):
        raise InputError(f"factor {factor} and out {out.shape} do not fit an image of {img.shape}")
    if not out.flags.writeable:
        raise InputError("out must be writeable")
    _LIB.cxr_area_down(_ptr(img), h, w, factor, _ptr(out))
