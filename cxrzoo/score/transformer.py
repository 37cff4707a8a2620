"""``OpenVINOScorer``: score gray images with an exported IR inside Spark (Arrow UDF)."""
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
from cxrzoo.score.runtime import load_scorer, read_card


class OpenVINOScorer(Transformer, HasInputCol, HasOutputCol, DefaultParamsReadable, DefaultParamsWritable):
    """Append ``probabilities`` (array<float>) computed by an OpenVINO IR from ``image`` (gray uint8 bytes).

    The IR is compiled once per Python worker and reused across batches and
    tasks. Rows whose image is null or of the wrong size get null probabilities
    and an ``error``.
    """

    modelDir = Param(Params._dummy(), "modelDir", "directory written by `cxrzoo export`", TypeConverters.toString)
    precision = Param(Params._dummy(), "precision", "OpenVINO inference precision hint: f32 or bf16",
                      TypeConverters.toString)
    errorCol = Param(Params._dummy(), "errorCol", "column for per-row errors (kept, and filled on failure)",
                     TypeConverters.toString)

    @keyword_only
    def __init__(self, *, modelDir: str | None = None, inputCol: str = "image", outputCol: str = "probabilities",
                 precision: str = "f32", errorCol: str = "error") -> None:
        super().__init__()
        self._setDefault(inputCol="image", outputCol="probabilities", precision="f32", errorCol="error")
        self._set(**self._input_kwargs)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        ir_dir = self.getOrDefault(self.modelDir)
        size = int(read_card(ir_dir)["input"]["shape"][1])  # fail on the driver if the directory is wrong
        in_col, out_col, err_col = self.getInputCol(), self.getOutputCol(), self.getOrDefault(self.errorCol)
        precision = self.getOrDefault(self.precision)
        keep = [f for f in dataset.schema.fields if f.name not in (out_col, err_col)]
        names = [f.name for f in keep]
        schema = T.StructType(keep + [T.StructField(out_col, T.ArrayType(T.FloatType(), False), True),
                                      T.StructField(err_col, T.StringType(), True)])
        has_err = err_col in dataset.columns

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            scorer = load_scorer(ir_dir, precision)
            for batch in batches:
                images = batch.column(in_col).to_pylist()
                errors = batch.column(err_col).to_pylist() if has_err else [None] * len(images)
                ok = [i for i, b in enumerate(images) if b is not None and len(b) == size * size]
                for i, b in enumerate(images):
                    if errors[i] is None and (b is None or len(b) != size * size):
                        errors[i] = ("no image" if b is None else
                                     f"image has {len(b)} bytes, the model takes {size}x{size} gray")
                stack = np.frombuffer(b"".join(images[i] for i in ok), np.uint8).reshape(len(ok), size, size)
                probs = scorer.infer(stack)
                arr = rows_to_list_array(probs, ok, len(images))
                cols = [batch.column(n) for n in names] + [arr, pa.array(errors, pa.string())]
                yield pa.RecordBatch.from_arrays(cols, names=names + [out_col, err_col])

        return dataset.mapInArrow(run, schema)
