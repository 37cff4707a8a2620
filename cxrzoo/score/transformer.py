"""``OpenVINOScorer``: score images with an exported IR inside Spark, in one Arrow UDF.

The input column holds either gray uint8 images of the model's size (ingested data) or, with
``decode=True``, the encoded file bytes (PNG/JPEG, Spark's ``binaryFile`` ``content``) — or no column
at all, the files being read from the local ``path``.  Decoding, preprocessing (inside the graph) and
inference then run in the same Python worker: chunks of ``batchSize`` images are decoded and submitted
as asynchronous infer requests, so decoding the next chunk overlaps inference of the previous ones.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import pyarrow as pa
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from cxrzoo.arrowutil import rows_to_list_array
from cxrzoo.score.runtime import load_scorer, read_card


def _gray(value, size: int, decode: bool, path: str | None) -> tuple[np.ndarray | None, str | None]:
    """One row's image as (size, size) uint8, or an error message."""
    from cxrzoo.ingest.decode import ImageDecodeError, decode_gray
    from cxrzoo.ingest.reader import _read_local

    name = os.path.basename(path) if path else "image"
    if not decode:
        if value is None:
            return None, "no image"
        if len(value) != size * size:
            return None, f"image has {len(value)} bytes, the model takes {size}x{size} gray"
        return np.frombuffer(value, np.uint8).reshape(size, size), None
    try:
        data = value if value is not None else (_read_local(path) if path else b"")
        return decode_gray(data, size), None
    except ImageDecodeError as e:
        return None, f"{name}: {e}"


def _score_batches(ir_dir: str, size: int, precision: str | None, in_col: str, err_col: str, decode: bool,
                   chunk: int, names: list[str], out_col: str, threads: int | None):
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        scorer = load_scorer(ir_dir, precision, threads)  # compiled once per Python worker, reused across tasks

        def groups() -> Iterator[tuple[tuple, Iterator[np.ndarray]]]:
            for batch in batches:
                cols = batch.schema.names
                values = batch.column(in_col).to_pylist() if in_col in cols else [None] * batch.num_rows
                paths = batch.column("path").to_pylist() if "path" in cols else [None] * batch.num_rows
                errors = batch.column(err_col).to_pylist() if err_col in cols else [None] * batch.num_rows
                ok: list[int] = []
                yield (batch, ok, errors), _chunks(batch.num_rows, values, paths, errors, ok)

        def _chunks(rows: int, values: list, paths: list, errors: list, ok: list[int]) -> Iterator[np.ndarray]:
            buf: list[np.ndarray] = []
            for i in range(rows):
                if errors[i] is not None:
                    continue
                img, errors[i] = _gray(values[i], size, decode, paths[i])
                if img is not None:
                    ok.append(i)
                    buf.append(img)
                    if len(buf) == chunk:
                        yield np.stack(buf)
                        buf = []
            if buf:
                yield np.stack(buf)

        # the next batch's images are decoded and submitted while the previous batch's finish inferring
        for (batch, ok, errors), probs in scorer.infer_groups(groups()):
            arr = rows_to_list_array(probs, ok, batch.num_rows)
            out = [batch.column(n) for n in names] + [arr, pa.array(errors, pa.string())]
            yield pa.RecordBatch.from_arrays(out, names=names + [out_col, err_col])
    return run


class OpenVINOScorer(Transformer, HasInputCol, HasOutputCol, DefaultParamsReadable, DefaultParamsWritable):
    """Append ``probabilities`` (array<float>) and ``error`` computed by an OpenVINO IR directory.

    A row whose image is missing, of the wrong size or undecodable gets null probabilities and an
    ``error`` saying why; the job never fails on bad images.
    """

    modelDir = Param(Params._dummy(), "modelDir", "directory written by `cxrzoo export`", TypeConverters.toString)
    precision = Param(Params._dummy(), "precision", "OpenVINO inference precision hint, f32 or bf16; '' uses "
                      "the one the export recorded", TypeConverters.toString)
    errorCol = Param(Params._dummy(), "errorCol", "column for per-row errors (kept, and filled on failure)",
                     TypeConverters.toString)
    decode = Param(Params._dummy(), "decode", "inputCol holds encoded PNG/JPEG bytes (or is absent and the "
                   "local file at 'path' is read), decoded at the model's size in the same UDF",
                   TypeConverters.toBoolean)
    batchSize = Param(Params._dummy(), "batchSize", "images per infer request", TypeConverters.toInt)
    threads = Param(Params._dummy(), "threads", "OpenVINO threads per Python worker; 0: OpenVINO's default (all "
                    "cores: measured faster under local[2] than one thread per task)", TypeConverters.toInt)

    @keyword_only
    def __init__(self, *, modelDir: str | None = None, inputCol: str = "image", outputCol: str = "probabilities",
                 precision: str = "", errorCol: str = "error", decode: bool = False, batchSize: int = 16,
                 threads: int = 0) -> None:
        super().__init__()
        self._setDefault(inputCol="image", outputCol="probabilities", precision="", errorCol="error", decode=False,
                         batchSize=16, threads=0)
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, modelDir: str | None = None, inputCol: str | None = None, outputCol: str | None = None,
                  precision: str | None = None, errorCol: str | None = None, decode: bool | None = None,
                  batchSize: int | None = None, threads: int | None = None) -> "OpenVINOScorer":
        """Set any of the constructor's params."""
        return self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def _transform(self, dataset: DataFrame) -> DataFrame:
        g = self.getOrDefault
        ir_dir = g(self.modelDir)
        size = int(read_card(ir_dir)["input"]["shape"][1])  # fail on the driver if the directory is wrong
        in_col, out_col, err_col = self.getInputCol(), self.getOutputCol(), g(self.errorCol)
        decode = g(self.decode)
        if in_col not in dataset.columns and not (decode and "path" in dataset.columns):
            raise ValueError(f"OpenVINOScorer: no column {in_col!r} (and no 'path' to read files from with "
                             f"decode=True); columns: {dataset.columns}")
        drop = {out_col, err_col} | ({in_col, "content", "modificationTime", "length"} if decode else set())
        keep = [f for f in dataset.schema.fields if f.name not in drop]
        names = [f.name for f in keep]
        schema = T.StructType(keep + [T.StructField(out_col, T.ArrayType(T.FloatType(), False), True),
                                      T.StructField(err_col, T.StringType(), True)])
        threads = g(self.threads) or None
        run = _score_batches(ir_dir, size, g(self.precision) or None, in_col, err_col, decode,
                             max(1, g(self.batchSize)), names, out_col, threads)
        return dataset.mapInArrow(run, schema)

    def getModelDir(self) -> str:
        """Gets the value of modelDir or its default value."""
        return self.getOrDefault(self.modelDir)

    def setModelDir(self, value: str) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`modelDir`."""
        return self._set(modelDir=value)

    def getPrecision(self) -> str:
        """Gets the value of precision or its default value."""
        return self.getOrDefault(self.precision)

    def setPrecision(self, value: str) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`precision`."""
        return self._set(precision=value)

    def getErrorCol(self) -> str:
        """Gets the value of errorCol or its default value."""
        return self.getOrDefault(self.errorCol)

    def setErrorCol(self, value: str) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`errorCol`."""
        return self._set(errorCol=value)

    def getDecode(self) -> bool:
        """Gets the value of decode or its default value."""
        return self.getOrDefault(self.decode)

    def setDecode(self, value: bool) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`decode`."""
        return self._set(decode=value)

    def getBatchSize(self) -> int:
        """Gets the value of batchSize or its default value."""
        return self.getOrDefault(self.batchSize)

    def setBatchSize(self, value: int) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`batchSize`."""
        return self._set(batchSize=value)

    def getThreads(self) -> int:
        """Gets the value of threads or its default value."""
        return self.getOrDefault(self.threads)

    def setThreads(self, value: int) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`threads`."""
        return self._set(threads=value)

    def setInputCol(self, value: str) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`inputCol`."""
        return self._set(inputCol=value)

    def setOutputCol(self, value: str) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`outputCol`."""
        return self._set(outputCol=value)
