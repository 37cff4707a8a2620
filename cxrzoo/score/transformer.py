"""``OpenVINOScorer``: score images with an exported IR inside Spark, in one Arrow UDF.

The input column holds either gray uint8 images of the model's size (ingested data) or, with
``decode=True``, the encoded file bytes (PNG/JPEG/DICOM, Spark's ``binaryFile`` ``content``) — or no column
at all, the files being read from the local ``path``.  Decoding, preprocessing (inside the graph) and
inference then run in the same Python worker: chunks of ``batchSize`` images are decoded and submitted
as asynchronous infer requests, so decoding the next chunk overlaps inference of the previous ones.
"""
from __future__ import annotations

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
from cxrzoo.atomic import resolve_local
from cxrzoo.score.runtime import load_scorer, read_card
from cxrzoo.score.ship import executor_ir_dir, ship_ir
from cxrzoo.errors import InputError


def _voi(value) -> str:
    from cxrzoo.ingest.dicom import VOI_MODES

    v = TypeConverters.toString(value)
    if v not in VOI_MODES:
        raise InputError(f"voi must be one of {VOI_MODES}, got {v!r}")
    return v


def _gray(value, size: int, decode: bool, path: str | None, voi: str = "auto") -> tuple[np.ndarray | None, str | None]:
    """One row's image as (size, size) uint8, or an error message (:func:`cxrzoo.ingest.decode_udf.decode_file`:
    a bad file is its row's error, never the task's)."""
    from cxrzoo.ingest.decode_udf import decode_file
    from cxrzoo.ingest.sandbox import shared_decoder

    if not decode:
        if value is None:
            return None, "no image"
        if len(value) != size * size:
            return None, f"image has {len(value)} bytes, the model takes {size}x{size} gray"
        return np.frombuffer(value, np.uint8).reshape(size, size), None
    img, _, error = decode_file(value, path, size, voi=voi, sandbox=shared_decoder())
    return img, error


def _findings_array(probs: np.ndarray, ok: list[int], rows: int, labels: list[str], thresholds: dict) -> pa.Array:
    """Per row: the labels at or above their operating threshold (null where the row was not scored)."""
    from cxrzoo.thresholds import findings

    out: list[list[str] | None] = [None] * rows
    for i, found in zip(ok, findings(probs, labels, thresholds) if len(ok) else []):
        out[i] = found
    return pa.array(out, pa.list_(pa.string()))


def _heatmaps_array(heat: np.ndarray, ok: list[int], rows: int) -> pa.Array:
    """Per row: its (labels, h, w) float16 maps as little-endian bytes (null where the row was not scored)."""
    out: list[bytes | None] = [None] * rows
    for i, maps in zip(ok, heat.astype("<f2")):
        out[i] = maps.tobytes()
    return pa.array(out, pa.binary())


def _score_batches(ir_dir: str, size: int, precision: str | None, in_col: str, err_col: str, decode: bool,
                   chunk: int, names: list[str], out_col: str, threads: int | None, findings_col: str = "",
                   labels: list[str] | None = None, thresholds: dict | None = None, heat_col: str = "",
                   voi: str = "auto", shipped: str | None = None):
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # compiled once per Python worker, reused across tasks; on a cluster, from the IR shipped with the job
        scorer = load_scorer(executor_ir_dir(shipped, ir_dir), precision, threads, heatmaps=bool(heat_col))

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
                img, errors[i] = _gray(values[i], size, decode, paths[i], voi)
                if img is not None:
                    ok.append(i)
                    buf.append(img)
                    if len(buf) == chunk:
                        yield np.stack(buf)
                        buf = []
            if buf:
                yield np.stack(buf)

        # the next batch's images are decoded and submitted while the previous batch's finish inferring
        extra = [c for c in (findings_col, heat_col) if c]
        for (batch, ok, errors), probs, heat in scorer.infer_groups(groups()):
            arr = rows_to_list_array(probs, ok, batch.num_rows)
            out = [batch.column(n) for n in names] + [arr]
            if findings_col:
                out.append(_findings_array(probs, ok, batch.num_rows, labels, thresholds))
            if heat_col:
                out.append(_heatmaps_array(heat, ok, batch.num_rows))
            out.append(pa.array(errors, pa.string()))
            yield pa.RecordBatch.from_arrays(out, names=names + [out_col] + extra + [err_col])
    return run


class OpenVINOScorer(Transformer, HasInputCol, HasOutputCol, DefaultParamsReadable, DefaultParamsWritable):
    """Append ``probabilities`` (array<float>), ``findings`` and ``error`` computed by an OpenVINO IR directory.

    ``findings`` (array<string>) lists the labels whose probability reaches the operating threshold
    chosen on the validation set at training (the IR card's ``thresholds``); it is left out when the IR
    has none (a model trained without validation).  With ``heatmaps=True``, ``heatmaps`` (binary) holds
    each row's class activation maps, float16 little-endian of the card's ``heatmaps.shape[1:]``
    (labels, h, w) over the center crop; :func:`heatmaps_of` turns a cell back into an array.  A row whose
    image is missing, of the wrong size or undecodable gets null probabilities and findings and an
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
    heatmaps = Param(Params._dummy(), "heatmaps", "add the class activation maps (the IR's second output) as "
                     "heatmapsCol", TypeConverters.toBoolean)
    heatmapsCol = Param(Params._dummy(), "heatmapsCol", "column for the heatmaps (binary: float16 (labels, h, w))",
                        TypeConverters.toString)
    voi = Param(Params._dummy(), "voi", "with decode=True, DICOM's VOI rule (cxrzoo.ingest.dicom): 'auto', "
                "'window', 'percentile' or 'none'; use the one the training data was ingested with",
                typeConverter=_voi)
    findingsCol = Param(Params._dummy(), "findingsCol", "column for the labels at or above their operating "
                        "thresholds (array<string>); '' for none", TypeConverters.toString)

    @keyword_only
    def __init__(self, *, modelDir: str | None = None, inputCol: str = "image", outputCol: str = "probabilities",
                 precision: str = "", errorCol: str = "error", decode: bool = False, batchSize: int = 16,
                 threads: int = 0, findingsCol: str = "findings", heatmaps: bool = False,
                 heatmapsCol: str = "heatmaps", voi: str = "auto") -> None:
        super().__init__()
        self._setDefault(inputCol="image", outputCol="probabilities", precision="", errorCol="error", decode=False,
                         batchSize=16, threads=0, findingsCol="findings", heatmaps=False, heatmapsCol="heatmaps",
                         voi="auto")
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, modelDir: str | None = None, inputCol: str | None = None, outputCol: str | None = None,
                  precision: str | None = None, errorCol: str | None = None, decode: bool | None = None,
                  batchSize: int | None = None, threads: int | None = None,
                  findingsCol: str | None = None, heatmaps: bool | None = None,
                  heatmapsCol: str | None = None, voi: str | None = None) -> "OpenVINOScorer":
        """Set any of the constructor's params."""
        return self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def _transform(self, dataset: DataFrame) -> DataFrame:
        g = self.getOrDefault
        ir_dir = resolve_local(g(self.modelDir))  # the executors' working directories are not the driver's
        card = read_card(ir_dir)  # fail on the driver if the directory is wrong
        size = int(card["input"]["shape"][1])
        in_col, out_col, err_col = self.getInputCol(), self.getOutputCol(), g(self.errorCol)
        thresholds = card.get("thresholds") or {}
        f_col = g(self.findingsCol) if any(isinstance(v, dict) for v in thresholds.values()) else ""
        h_col = g(self.heatmapsCol) if g(self.heatmaps) else ""
        if h_col and not card.get("heatmaps"):
            from cxrzoo.score.runtime import NoHeatmapsError

            raise NoHeatmapsError(f"{ir_dir} was exported without heatmaps; re-export it with `cxrzoo export`")
        decode = g(self.decode)
        if in_col not in dataset.columns and not (decode and "path" in dataset.columns):
            raise InputError(f"OpenVINOScorer: no column {in_col!r} (and no 'path' to read files from with "
                             f"decode=True); columns: {dataset.columns}")
        drop = {out_col, err_col, f_col, h_col}
        drop |= {in_col, "content", "modificationTime", "length"} if decode else set()
        keep = [f for f in dataset.schema.fields if f.name not in drop]
        names = [f.name for f in keep]
        found = [T.StructField(f_col, T.ArrayType(T.StringType(), False), True)] if f_col else []
        found += [T.StructField(h_col, T.BinaryType(), True)] if h_col else []
        schema = T.StructType(keep + [T.StructField(out_col, T.ArrayType(T.FloatType(), False), True)] + found
                              + [T.StructField(err_col, T.StringType(), True)])
        threads = g(self.threads) or None
        run = _score_batches(ir_dir, size, g(self.precision) or None, in_col, err_col, decode,
                             max(1, g(self.batchSize)), names, out_col, threads, f_col, list(card["labels"]),
                             thresholds, h_col, g(self.voi), ship_ir(dataset.sparkSession.sparkContext, ir_dir))
        return dataset.mapInArrow(run, schema)

    def getVoi(self) -> str:
        """Gets the value of voi or its default value."""
        return self.getOrDefault(self.voi)

    def setVoi(self, value: str) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`voi`."""
        return self._set(voi=value)

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

    def getHeatmaps(self) -> bool:
        """Gets the value of heatmaps or its default value."""
        return self.getOrDefault(self.heatmaps)

    def setHeatmaps(self, value: bool) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`heatmaps`."""
        return self._set(heatmaps=value)

    def getHeatmapsCol(self) -> str:
        """Gets the value of heatmapsCol or its default value."""
        return self.getOrDefault(self.heatmapsCol)

    def setHeatmapsCol(self, value: str) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`heatmapsCol`."""
        return self._set(heatmapsCol=value)

    def getFindingsCol(self) -> str:
        """Gets the value of findingsCol or its default value."""
        return self.getOrDefault(self.findingsCol)

    def setFindingsCol(self, value: str) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`findingsCol`."""
        return self._set(findingsCol=value)

    def setInputCol(self, value: str) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`inputCol`."""
        return self._set(inputCol=value)

    def setOutputCol(self, value: str) -> "OpenVINOScorer":
        """Sets the value of :py:attr:`outputCol`."""
        return self._set(outputCol=value)


def heatmaps_of(cell: bytes, card: dict) -> np.ndarray:
    """A ``heatmaps`` cell back as its (labels, h, w) float16 array, by the IR card's shape."""
    shape = tuple(card["heatmaps"]["shape"][1:])
    arr = np.frombuffer(cell, "<f2")
    if arr.size != int(np.prod(shape)):
        raise InputError(f"a heatmaps cell of {arr.size} values does not fit the card's shape {shape}")
    return arr.reshape(shape)
