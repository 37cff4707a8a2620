"""``CXREstimator`` / ``CXRModel``: multi-label CNN training as a Spark ML Estimator."""
from __future__ import annotations

import logging
import math
import time
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasLabelCol, HasPredictionCol, HasSeed
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable, MLReadable, MLWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cxrzoo.engine.base import Engine, TrainConfig, get_engine
from cxrzoo.models import create_spec, get_config
from cxrzoo.models.spec import NetSpec
from cxrzoo.params import HasModelName, HasNormalization, HasTrainingParams

log = logging.getLogger(__name__)


class _CXRParams(HasFeaturesCol, HasLabelCol, HasPredictionCol, HasSeed, HasModelName, HasTrainingParams,
                 HasNormalization):
    """Params shared by the estimator and its model.

    ``imageSize`` and ``normalization`` record how the features were made (the
    ingest size and the preprocessor's normalization) so that export can put
    the same preprocessing inside the OpenVINO graph.
    """

    imageSize = Param(Params._dummy(), "imageSize", "side of the ingested gray images the features were cropped "
                      "from (recorded for export)", typeConverter=TypeConverters.toInt)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(featuresCol="features", labelCol="labels", predictionCol="probabilities", seed=0,
                         imageSize=256)

    def getImageSize(self) -> int:
        """Gets the value of imageSize or its default value."""
        return self.getOrDefault(self.imageSize)

    def _spec(self, input_size: int) -> NetSpec:
        return create_spec(self.getModelName(), dropout=self.getDropout(), input_size=input_size)


def _input_size(df: DataFrame, features_col: str) -> int:
    row = df.select(F.size(features_col).alias("n")).where(F.col("n") > 0).first()
    if row is None:
        raise ValueError(f"no rows with {features_col!r}: every image failed to decode or the data is empty")
    side = math.isqrt(row["n"] // 3)
    if 3 * side * side != row["n"]:
        raise ValueError(f"{features_col!r} has {row['n']} values per row, not 3×S×S (run CXRPreprocessor first)")
    return side


class CXREstimator(Estimator, _CXRParams, DefaultParamsReadable, DefaultParamsWritable):
    """Train a registry network on ``features`` (3×S×S float) against ``labels`` (14 floats).

    Training is BigDL's distributed synchronous mini-batch SGD over the Spark
    cluster (one model replica per executor core, gradients all-reduced every
    iteration), with BCE on the 14 logits (``MultiLabelSoftMarginCriterion``).

    Examples
    --------
    >>> est = CXREstimator(modelName="tiny", epochs=2, batchSize=16)
    >>> est.getModelName(), est.getEpochs()
    ('tiny', 2)
    """

    @keyword_only
    def __init__(self, *, featuresCol: str = "features", labelCol: str = "labels",
                 predictionCol: str = "probabilities", modelName: str = "tiny", epochs: int = 10,
                 batchSize: int = 32, learningRate: float = 1e-3, optimizer: str = "adam", dropout: float = 0.2,
                 engine: str = "bigdl", seed: int = 0, imageSize: int = 256,
                 normalization: str = "caffe") -> None:
        super().__init__()
        self._set(**self._input_kwargs)
        get_config(self.getModelName())  # validate against the registry now, not after an hour

    @keyword_only
    def setParams(self, **kwargs: Any) -> "CXREstimator":
        """Set any of the constructor's params."""
        self._set(**self._input_kwargs)
        get_config(self.getModelName())
        return self

    def _fit(self, dataset: DataFrame) -> "CXRModel":
        fcol, lcol = self.getFeaturesCol(), self.getLabelCol()
        for col in (fcol, lcol):
            if col not in dataset.columns:
                raise ValueError(f"CXREstimator: input has no column {col!r}; columns: {dataset.columns}")
        train = dataset.where(F.col(fcol).isNotNull()).select(fcol, lcol)
        cores = dataset.sparkSession.sparkContext.defaultParallelism
        batch = self.getBatchSize()
        if batch % cores:
            raise ValueError(f"batchSize {batch} is not a multiple of the {cores} executor cores; "
                             f"use e.g. {max(cores, round(batch / cores) * cores)}")
        size = _input_size(train, fcol)
        spec = self._spec(size)
        ingest_side = None
        if "image" in dataset.columns and not self.isSet(self.imageSize):  # record the ingest size for export
            row = dataset.where(F.col("image").isNotNull()).select(F.length("image").alias("n")).first()
            ingest_side = math.isqrt(row["n"]) if row is not None else None
        engine = get_engine(self.getEngine())
        net = engine.build(spec, seed=self.getSeed())
        cfg = TrainConfig(epochs=self.getEpochs(), batch_size=batch, learning_rate=self.getLearningRate(),
                          optimizer=self.getOptimizer(), seed=self.getSeed())
        t0 = time.perf_counter()
        net = engine.fit(net, spec, train, fcol, lcol, cfg)
        log.info("trained %s (%d² input) for %d epochs in %.1fs", self.getModelName(), size, cfg.epochs,
                 time.perf_counter() - t0)
        model = self._copyValues(CXRModel(net=net, spec=spec, backend=engine))
        return model._set(imageSize=ingest_side) if ingest_side else model


class CXRModel(Model, _CXRParams, MLWritable, MLReadable):
    """A trained network; ``transform`` appends ``probabilities`` (array<float> of 14)."""

    def __init__(self, net: Any = None, spec: NetSpec | None = None, backend: Engine | None = None) -> None:
        super().__init__()
        self.net, self.spec, self.backend = net, spec, backend

    def _transform(self, dataset: DataFrame) -> DataFrame:
        if self.net is None or self.spec is None or self.backend is None:
            raise RuntimeError("CXRModel has no trained network; fit a CXREstimator or CXRModel.load(path)")
        fcol = self.getFeaturesCol()
        ok = dataset.where(F.col(fcol).isNotNull())
        bad = dataset.where(F.col(fcol).isNull())
        scored = self.backend.predict(self.net, self.spec, ok, fcol, self.getPredictionCol(),
                                     batch_size=max(2, self.getBatchSize()))
        return scored.unionByName(bad.withColumn(self.getPredictionCol(), F.lit(None).cast("array<float>")))

    def weights(self) -> dict:
        """Trained parameters by node name (engine-neutral numpy arrays)."""
        return self.backend.weights(self.net, self.spec)

    def write(self):
        """An MLWriter that saves the model atomically (see :mod:`cxrzoo.train.persist`)."""
        from cxrzoo.train.persist import CXRModelWriter

        return CXRModelWriter(self)

    @classmethod
    def read(cls):
        """An MLReader for :meth:`load`."""
        from cxrzoo.train.persist import CXRModelReader

        return CXRModelReader(cls)

    @classmethod
    def load(cls, path: str) -> "CXRModel":
        """Load a model saved by :meth:`save`."""
        return cls.read().load(path)
