"""Decode a DICOM radiograph's bytes to gray uint8, with the header fields a data engineer joins on.

The pixel pipeline follows DICOM's grayscale display chain (PS3.3 C.11, PS3.4 N.2):

1. stored values, ``BitsStored`` respected (pydicom masks and sign-extends them; compressed transfer
   syntaxes go through pylibjpeg's plugins: JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE);
2. the modality LUT (rescale slope/intercept, or a Modality LUT Sequence);
3. the VOI transform chosen by ``voi``:

   - ``"auto"``: the VOI LUT Sequence if there is one, else the first window (centre/width, with its
     ``VOILUTFunction``), else ``"percentile"``;
   - ``"window"``: the first window; an image without one is an error;
   - ``"percentile"``: the 0.5th–99.5th percentile range mapped linearly (robust to burnt-in text);
   - ``"none"``: the image's own min–max range;
4. MONOCHROME1 inverted (its minimum is white), so every output has white bone;
5. scaled to 8 bits (round half up); :func:`cxrzoo.ingest.decode.decode_image` then resizes it with the
   same area kernel as PNGs.

Anything that is not a single-frame grayscale image, or whose pixel data is missing, truncated, over the
pixel cap or in a transfer syntax no installed decoder handles, raises :class:`DicomError` saying so.
"""
from __future__ import annotations

import io
import logging
import warnings

import numpy as np

from cxrzoo.ingest.errors import ImageDecodeError
from cxrzoo.ingest.markers import j2k_size, jpeg_size
from cxrzoo.errors import InputError

log = logging.getLogger(__name__)

VOI_MODES = ("auto", "window", "percentile", "none")
PERCENTILES = (0.5, 99.5)
_MAGIC_AT = 128
_META_FIELDS = ("patient_id", "study_uid", "series_uid", "sop_uid", "view_position", "pixel_spacing", "modality",
                "photometric", "bits_stored", "rows", "columns", "transfer_syntax")


class DicomError(ImageDecodeError):
    """The bytes are not a DICOM radiograph cxrzoo can decode (the message says why and what to do)."""


def is_dicom(data: bytes) -> bool:
    """True when ``data`` carries the DICOM Part 10 magic: ``DICM`` after the 128-byte preamble."""
    return len(data) >= _MAGIC_AT + 4 and data[_MAGIC_AT:_MAGIC_AT + 4] == b"DICM"


def _text(ds, keyword: str) -> str | None:
    v = ds.get(keyword)
    return None if v is None or str(v).strip() == "" else str(v).strip()


def dicom_meta(ds) -> dict:
    """The header fields cxrzoo keeps for a dataset (None where absent)."""
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        spacing = [float(v) for v in spacing] if spacing is not None else None
    except (TypeError, ValueError):
        spacing = None
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return {"patient_id": _text(ds, "PatientID"), "study_uid": _text(ds, "StudyInstanceUID"),
            "series_uid": _text(ds, "SeriesInstanceUID"), "sop_uid": _text(ds, "SOPInstanceUID"),
            "view_position": _text(ds, "ViewPosition"), "pixel_spacing": spacing, "modality": _text(ds, "Modality"),
            "photometric": _text(ds, "PhotometricInterpretation"), "bits_stored": _int(ds, "BitsStored"),
            "rows": _int(ds, "Rows"), "columns": _int(ds, "Columns"),
            "transfer_syntax": str(tsyntax) if tsyntax else None}


def _int(ds, keyword: str) -> int | None:
    v = ds.get(keyword)
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _parse(data: bytes):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns on every non-conformance; the error row says what matters
            return pydicom.dcmread(io.BytesIO(data), force=not is_dicom(data))
    except InvalidDicomError as e:
        raise DicomError(f"not a DICOM file ({e})") from None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, EOFError, OSError, UnicodeError,
            NotImplementedError, AttributeError) as e:  # a malformed header: pydicom's parser raises all of these
        raise DicomError(f"malformed DICOM header ({type(e).__name__}: {e})") from None


def _check_image(ds, max_pixels: int) -> None:
    if len(ds) == 0:
        raise DicomError("no DICOM elements could be read after the header; the file is damaged or not DICOM")
    if "PixelData" not in ds:
        kinds = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds]
        what = f"float pixel data ({kinds[0]})" if kinds else "no pixel data"
        raise DicomError(f"{what}: a non-image object (SOP class {ds.get('SOPClassUID', '?')}, "
                         f"modality {ds.get('Modality', '?')}); cxrzoo reads grayscale radiographs")
    frames = _int(ds, "NumberOfFrames") or 1
    if frames > 1:
        raise DicomError(f"multi-frame image ({frames} frames); cxrzoo reads single-frame radiographs: "
                         "split the frames into separate instances first")
    photometric = _text(ds, "PhotometricInterpretation") or "?"
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError(f"colour photometric interpretation {photometric}; cxrzoo reads MONOCHROME1/2 radiographs")
    if (_int(ds, "SamplesPerPixel") or 1) != 1:
        raise DicomError(f"{ds.SamplesPerPixel} samples per pixel; a grayscale radiograph has 1")
    rows, cols, bits = _int(ds, "Rows"), _int(ds, "Columns"), _int(ds, "BitsAllocated")
    if not rows or not cols or bits not in (1, 8, 16, 32):
        raise DicomError(f"bad image header: Rows {rows}, Columns {cols}, BitsAllocated {bits}")
    if rows * cols > max_pixels:
        raise DicomError(f"{cols}x{rows} = {rows * cols} pixels is over the cap of {max_pixels} "
                         "(raise max_pixels if such images are expected)")
    bits_stored = _int(ds, "BitsStored") or bits
    if not 1 <= bits_stored <= bits:
        raise DicomError(f"BitsStored {bits_stored} outside 1..BitsAllocated ({bits})")
    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if tsyntax is not None and not tsyntax.is_compressed:
        need = (rows * cols * bits + 7) // 8
        have = len(ds.PixelData)
        if have < need:
            raise DicomError(f"truncated pixel data: {have} of {need} bytes")
    elif tsyntax is not None:
        _check_decoder(tsyntax)
        _check_codestream(ds.PixelData, tsyntax, rows, cols)


def _check_codestream(pixel_data: bytes, tsyntax, rows: int, cols: int) -> None:
    """Refuse a compressed frame whose codestream declares another size than the header, before a codec
    allocates for it (a lying dimension)."""
    head = bytes(pixel_data[:8192])
    if tsyntax.startswith("1.2.840.10008.1.2.4.9"):  # JPEG 2000 family
        dims, what = j2k_size(head), "JPEG 2000"
    elif tsyntax.startswith("1.2.840.10008.1.2.4.") and (at := head.find(b"\xff\xd8\xff")) >= 0:
        dims, what = jpeg_size(head[at:]), "JPEG"
    else:
        return
    if dims is not None and dims != (rows, cols):
        raise DicomError(f"lying dimensions: the {what} codestream is {dims[1]}x{dims[0]} but the header says "
                         f"{cols}x{rows}")


def _check_decoder(tsyntax) -> None:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise DicomError(f"unsupported transfer syntax {tsyntax.name} ({tsyntax}): no decoder for it") from None
    if not decoder.is_available:
        missing = "; ".join(f"{k}: {', '.join(v)}" for k, v in decoder.missing_dependencies.items()) \
            if hasattr(decoder, "missing_dependencies") else "a plugin"
        raise DicomError(f"transfer syntax {tsyntax.name} ({tsyntax}) needs a decoder that is not installed "
                         f"({missing})")


def _pixels(ds) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except MemoryError:
        raise DicomError("pixel data too large to decode in memory") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 -- the codecs raise any type on corrupt data, even pyo3's
        # PanicException (a BaseException) from pylibjpeg-rle's Rust decoder
        why = " ".join(line.strip() for line in str(e).splitlines() if line.strip())[:300]
        raise DicomError(f"pixel data cannot be decoded ({type(e).__name__}: {why})") from None
    if arr.ndim != 2:
        raise DicomError(f"decoded pixel array has shape {arr.shape}; expected one grayscale frame")
    return arr


def window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM's VOI window (PS3.3 C.11.2.1.2) mapping ``values`` to [0, 1].

    ``function`` is the ``VOILUTFunction``: ``LINEAR`` (the default), ``LINEAR_EXACT`` or ``SIGMOID``.
    """
    x = np.asarray(values, np.float64)
    if function == "SIGMOID":
        if width <= 0:
            raise DicomError(f"window width {width} must be > 0")
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise DicomError(f"window width {width} must be > 0")
        return np.clip((x - center) / width + 0.5, 0.0, 1.0)
    if width < 1:
        raise DicomError(f"window width {width} must be >= 1 for a LINEAR window")
    if width == 1:
        return (x > center - 0.5).astype(np.float64)
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _first(value) -> float:
    try:
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError):
        raise DicomError(f"unreadable window value {value!r}") from None


def _stretch(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise DicomError("pixel values are not finite after the modality LUT")
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(x)


def voi_transform(values: np.ndarray, ds, voi: str = "auto",
                  value_range: tuple[float, float] | None = None) -> np.ndarray:
    """The VOI stage: modality-LUT output → [0, 1] by the ``voi`` rule (see the module's docstring).

    ``value_range`` is the image's (low, high) for the ``percentile`` and ``none`` rules when ``values`` is
    not the image itself (a lookup table's domain); by default it is taken from ``values``.
    """
    if voi not in VOI_MODES:
        raise InputError(f"voi must be one of {VOI_MODES}, got {voi!r}")
    x = np.asarray(values, np.float64)
    if voi == "auto" and "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        from pydicom.pixels import apply_voi

        item = ds.VOILUTSequence[0]
        out_bits = int(item.LUTDescriptor[2]) if "LUTDescriptor" in item else 16
        try:
            return np.clip(np.asarray(apply_voi(values, ds, 0), np.float64) / (2 ** out_bits - 1), 0.0, 1.0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            raise DicomError(f"unreadable VOI LUT Sequence ({type(e).__name__}: {e})") from None
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    if voi == "window" and not has_window:
        raise DicomError("voi='window' but the file has no WindowCenter/WindowWidth; use voi='auto' or 'percentile'")
    if voi in ("auto", "window") and has_window:
        function = (_text(ds, "VOILUTFunction") or "LINEAR").upper()
        return window(x, _first(ds.WindowCenter), _first(ds.WindowWidth), function)
    if value_range is None:
        value_range = (float(x.min()), float(x.max())) if voi == "none" else \
            tuple(float(v) for v in np.percentile(x, PERCENTILES))
    return _stretch(x, *value_range)


def _needs_range(ds, voi: str) -> bool:
    if voi == "auto" and "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        return False
    return voi in ("percentile", "none") or not ("WindowCenter" in ds and "WindowWidth" in ds)


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's percentile interpolation, to the bit (``numpy.lib._function_base_impl._lerp``)."""
    d = b - a
    return b - d * (1 - t) if t >= 0.5 else a + d * t


def _range_from_histogram(counts: np.ndarray, domain_values: np.ndarray, voi: str) -> tuple[float, float]:
    """The image's (low, high) for ``percentile``/``none`` from the histogram of its stored values:
    the same numbers as ``np.percentile`` / min / max over the image's modality values."""
    present = counts > 0
    if voi == "none":
        v = domain_values[present]
        return float(v.min()), float(v.max())
    order = np.argsort(domain_values, kind="stable")
    cum = np.cumsum(counts[order])
    n = int(cum[-1])

    def at(rank: int) -> float:
        return float(domain_values[order[int(np.searchsorted(cum, rank, side="right"))]])
    out = []
    for p in PERCENTILES:
        virtual = p / 100.0 * (n - 1)
        lo = int(np.floor(virtual))
        out.append(_lerp(at(lo), at(min(lo + 1, n - 1)), virtual - lo))
    return out[0], out[1]


def _lut_index(stored: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(index into a lookup table, the stored value of each entry) for 8/16-bit integer pixels, else None."""
    kind, size = stored.dtype.kind, stored.dtype.itemsize
    if kind not in "ui" or size > 2:
        return None
    if not stored.dtype.isnative:  # big-endian files decode to '>' arrays
        stored = stored.astype(stored.dtype.newbyteorder("="))
    bits = 8 * size
    if kind == "u":
        return stored, np.arange(2 ** bits, dtype=np.int64)
    utype = np.uint8 if size == 1 else np.uint16
    unsigned = stored.view(utype) ^ utype(1 << (bits - 1))  # two's complement → offset binary, order kept
    return unsigned, np.arange(-(2 ** (bits - 1)), 2 ** (bits - 1), dtype=np.int64)


def display(stored: np.ndarray, ds, voi: str = "auto") -> np.ndarray:
    """Stored values → the 8-bit gray image: modality LUT, VOI, MONOCHROME1 inverted, rounded.

    Every stage is a function of the stored value alone, so 8/16-bit images go through one lookup table
    built over all stored values (the image's percentiles from its histogram); other images are
    computed pixel by pixel.  Both give the same bytes.
    """
    from pydicom.pixels import apply_modality_lut

    invert = ds.PhotometricInterpretation == "MONOCHROME1"
    indexed = None if "ModalityLUTSequence" in ds else _lut_index(stored)
    try:
        if indexed is None:
            unit = voi_transform(apply_modality_lut(stored, ds), ds, voi)
            return to_uint8(1.0 - unit if invert else unit)
        index, domain = indexed
        values = np.asarray(apply_modality_lut(domain, ds), np.float64)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        raise DicomError(f"unreadable modality LUT ({type(e).__name__}: {e})") from None
    value_range = None
    if _needs_range(ds, voi):
        value_range = _range_from_histogram(np.bincount(index.ravel(), minlength=len(domain)), values, voi)
    unit = voi_transform(values, ds, voi, value_range)
    lut = to_uint8(1.0 - unit if invert else unit)
    return lut[index]


def to_uint8(unit: np.ndarray) -> np.ndarray:
    """[0, 1] floats → uint8, rounding half up."""
    return np.floor(np.clip(unit, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def decode_dicom(data: bytes, max_pixels: int = 64 * 1024 * 1024, voi: str = "auto") -> tuple[np.ndarray, dict]:
    """Decode a DICOM radiograph to gray uint8 and its header fields.

    Parameters
    ----------
    data : bytes
        The file (Part 10 with its ``DICM`` magic, or a bare dataset).
    max_pixels : int
        Refuse images whose header declares more pixels than this (before decoding them).
    voi : {"auto", "window", "percentile", "none"}
        The VOI rule (see the module's docstring).

    Returns
    -------
    (numpy.ndarray, dict)
        ``(Rows, Columns)`` uint8 C-contiguous (not resized), and the header fields of :func:`dicom_meta`.

    Raises
    ------
    DicomError
        Not a single-frame grayscale radiograph, or its pixels cannot be decoded (the message says why).
    """
    if voi not in VOI_MODES:
        raise InputError(f"voi must be one of {VOI_MODES}, got {voi!r}")
    from pydicom.errors import BytesLengthException

    try:  # pydicom converts elements when they are first read: a malformed one raises here
        ds = _parse(data)
        _check_image(ds, max_pixels)
        return np.ascontiguousarray(display(_pixels(ds), ds, voi)), dicom_meta(ds)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, UnicodeError,
            NotImplementedError, BytesLengthException) as e:
        if isinstance(e, DicomError):
            raise
        raise DicomError(f"malformed DICOM element ({type(e).__name__}: {str(e)[:200]})") from None


__all__ = ["DicomError", "VOI_MODES", "decode_dicom", "dicom_meta", "display", "is_dicom", "to_uint8",
           "voi_transform", "window"]
