"""The executors' side of ingest: read and decode each file in an Arrow UDF, one error row per bad file.

:func:`decode_file` is the per-file boundary shared by ingest and by scoring with ``decode=True``
(:mod:`cxrzoo.score.transformer`): whatever goes wrong with one file becomes that row's ``error``
(``"<file name>: <why>"``), never a failed Spark task and never a missing row.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_type

from cxrzoo.arrowutil import rows_to_binary_array
from cxrzoo.ingest.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from cxrzoo.ingest.dicom import VOI_MODES
from cxrzoo.ingest.sandbox import DEFAULT_TIMEOUT, SandboxedDecoder, shared_decoder
from cxrzoo.errors import InputError

log = logging.getLogger(__name__)

DICOM_SCHEMA = T.StructType([
    T.StructField("patient_id", T.StringType(), True),
    T.StructField("study_uid", T.StringType(), True),
    T.StructField("series_uid", T.StringType(), True),
    T.StructField("sop_uid", T.StringType(), True),
    T.StructField("view_position", T.StringType(), True),
    T.StructField("pixel_spacing", T.ArrayType(T.DoubleType(), True), True),
    T.StructField("modality", T.StringType(), True),
    T.StructField("photometric", T.StringType(), True),
    T.StructField("bits_stored", T.IntegerType(), True),
    T.StructField("rows", T.IntegerType(), True),
    T.StructField("columns", T.IntegerType(), True),
    T.StructField("transfer_syntax", T.StringType(), True),
])  # the ``dicom`` column: a DICOM file's header fields (null for PNG/JPEG rows)


def read_local(path: str) -> bytes:
    """The bytes of the local file ``path`` (plain or ``file:``).

    Raises
    ------
    ImageDecodeError
        The file cannot be read (the OS's reason).
    """
    try:
        with open(path.removeprefix("file:"), "rb") as f:
            return f.read()
    except OSError as e:
        raise ImageDecodeError(f"cannot read the file ({e.strerror}); check it exists and is readable") from None


def decode_file(data: bytes | None, path: str | None, size: int | None, max_pixels: int = DEFAULT_MAX_PIXELS,
                voi: str = "auto", sandbox: SandboxedDecoder | None = None
                ) -> tuple[np.ndarray | None, dict | None, str | None]:
    """One file as ``(image, dicom fields, None)``, or ``(None, None, error)``: never raises for a bad file.

    Parameters
    ----------
    data : bytes, optional
        The file's bytes; ``None`` reads the local file at ``path`` (no path: an empty file).
    path : str, optional
        Where the file is; its base name starts the error message (``"image"`` without a path).
    size, max_pixels, voi, sandbox
        As in :func:`cxrzoo.ingest.decode.decode_image`.

    Returns
    -------
    tuple
        The ``(size, size)`` uint8 image and the DICOM header fields (None for PNG/JPEG), or Nones and the
        error ``"<file name>: <why>"``.
    """
    name = os.path.basename(path) if path else "image"
    try:
        if data is None:
            data = read_local(path) if path else b""
        img, meta = decode_image(data, size, max_pixels, voi, name, sandbox)
        return img, meta, None
    except ImageDecodeError as e:
        return None, None, f"{name}: {e}"
    except Exception as e:  # noqa: BLE001 -- one file's failure is its error row, never the whole task's
        # decode_image turns the decoding libraries' errors into ImageDecodeError: anything else is a bug on
        # this file, logged with its traceback on the executor and reported in the row
        log.exception("unexpected %s decoding %s", type(e).__name__, path)
        why = " ".join(str(e).split())[:300]
        return None, None, f"{name}: unexpected {type(e).__name__} while decoding ({why}); please report it"


def _decode_batches(size: int, max_pixels: int, keep: list[str], voi: str, timeout: float
                    ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    dicom_type = to_arrow_type(DICOM_SCHEMA)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        sandbox = shared_decoder(timeout)  # DICOM files: a child process with bounded memory and time
        for batch in batches:
            paths = batch.column("path").to_pylist()
            names = batch.schema.names
            contents = [c or b"" for c in batch.column("content").to_pylist()] if "content" in names \
                else [None] * len(paths)
            errors = batch.column("error").to_pylist() if "error" in names else [None] * len(paths)
            pixels = np.empty((len(paths), size * size), np.uint8)  # the images column's data buffer
            ok: list[int] = []
            metas: list[dict | None] = [None] * len(paths)
            for i, (data, path) in enumerate(zip(contents, paths)):
                if errors[i] is not None:  # refused on the driver (e.g. a duplicate name): not decoded
                    continue
                img, metas[i], errors[i] = decode_file(data, path, size, max_pixels, voi, sandbox)
                if img is not None:
                    pixels[len(ok)] = img.reshape(-1)
                    ok.append(i)
            images = rows_to_binary_array(pixels[:len(ok)], ok, len(paths))
            cols = [batch.column(k) for k in keep]
            yield pa.RecordBatch.from_arrays(
                cols + [images, pa.array(errors, pa.string()), pa.array(metas, dicom_type)],
                names=keep + ["image", "error", "dicom"])
    return run


def decode_images(files: DataFrame, size: int, max_pixels: int = DEFAULT_MAX_PIXELS, voi: str = "auto",
                  decode_timeout: float = DEFAULT_TIMEOUT) -> DataFrame:
    """Add ``image`` (size² gray uint8, row-major), ``error`` and ``dicom`` (a DICOM file's header fields,
    :data:`DICOM_SCHEMA`), from ``content`` bytes or, without that column, from the local file at ``path``;
    ``content`` is dropped.  A row whose ``error`` is already set is not decoded and keeps it.  ``voi`` is
    DICOM's VOI rule (:mod:`cxrzoo.ingest.dicom`); DICOM files are decoded in a child process
    (:mod:`cxrzoo.ingest.sandbox`) allowed ``decode_timeout`` seconds each."""
    if voi not in VOI_MODES:
        raise InputError(f"voi must be one of {VOI_MODES}, got {voi!r}")
    drop = ("content", "modificationTime", "length", "error")
    keep = [f.name for f in files.schema.fields if f.name not in drop]
    schema = T.StructType([files.schema[k] for k in keep] + [
        T.StructField("image", T.BinaryType(), True), T.StructField("error", T.StringType(), True),
        T.StructField("dicom", DICOM_SCHEMA, True)])
    return files.mapInArrow(_decode_batches(size, max_pixels, keep, voi, decode_timeout), schema)
