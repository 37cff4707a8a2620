"""``CXREstimator`` / ``CXRModel``: multi-label CNN training as a Spark ML Estimator."""
from __future__ import annotations

import json
import logging
import tempfile
import time
from typing import Any

from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasLabelCol, HasPredictionCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable, MLReadable, MLWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cxrzoo.engine.base import Engine, TrainConfig, get_engine
from cxrzoo.models import create_spec, get_config
from cxrzoo.models.spec import NetSpec
from cxrzoo.models.pretrained import load_pretrained
from cxrzoo.models.spec import layers_up_to
from cxrzoo.params import HasNormalization, keyword_signature
from cxrzoo.preprocess import CXRPreprocessor
from cxrzoo.preprocess.sides import image_side
from cxrzoo.train.checkpoint import CheckpointDir
from cxrzoo.train.feed import augmented_data, features_data
from cxrzoo.train.loop import LoopOptions, run_epochs
from cxrzoo.train.options import TrainingOptions, training_options
from cxrzoo.labels import LABELS
from cxrzoo.targets import MASK_COL, target_column
from cxrzoo.train.weighting import loss_terms
from cxrzoo.errors import InputError, JobFailedError

log = logging.getLogger(__name__)
TARGET = "_cxrzoo_target"  # the training target: the model's labels, NaN where unknown (cxrzoo.targets)


class _CXRParams(HasFeaturesCol, HasLabelCol, HasPredictionCol, HasNormalization, TrainingOptions):
    """Params shared by the estimator and its model.

    ``imageSize`` and ``normalization`` record how the features were made (the
    ingest size and the preprocessor's normalization) so that export can put
    the same preprocessing inside the OpenVINO graph.
    """

    preprocessor = Param(Params._dummy(), "preprocessor",
                         "JSON params of a CXRPreprocessor run on the image column every epoch with the epoch "
                         "number (augmentation differs per epoch); empty: train on featuresCol as given",
                         typeConverter=TypeConverters.toString)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(featuresCol="features", labelCol="labels", predictionCol="probabilities", preprocessor="")

    def setPreprocessor(self, prep: CXRPreprocessor | None):
        """Run ``prep`` on the image column each epoch (stored as its params; ``None`` clears it)."""
        if prep is None:
            return self._set(preprocessor="")
        params = {p.name: v for p, v in prep.extractParamMap().items()}
        return self._set(preprocessor=json.dumps(params, sort_keys=True))

    def getPreprocessor(self) -> CXRPreprocessor | None:
        """The per-epoch preprocessor, or None."""
        text = self.getOrDefault(self.preprocessor)
        return CXRPreprocessor(**json.loads(text)) if text else None

    def _engine(self) -> Engine:
        return get_engine(self.engine_name(), **self.engine_options())

    def _spec(self, input_size: int) -> NetSpec:
        return create_spec(self.getModelName(), num_classes=len(self.getLabels()), dropout=self.getDropout(),
                           input_size=input_size, l2=self.getL2())

    def setFeaturesCol(self, value: str) -> "Params":
        """Sets the value of :py:attr:`featuresCol`."""
        return self._set(featuresCol=value)

    def setLabelCol(self, value: str) -> "Params":
        """Sets the value of :py:attr:`labelCol`."""
        return self._set(labelCol=value)

    def setPredictionCol(self, value: str) -> "Params":
        """Sets the value of :py:attr:`predictionCol`."""
        return self._set(predictionCol=value)


class CXREstimator(Estimator, _CXRParams, DefaultParamsReadable, DefaultParamsWritable):
    """Train a registry network on ``features`` (3×S×S float) against ``labels`` (14 floats).

    Training is the ``engine``'s distributed synchronous mini-batch SGD over the
    Spark cluster (model replicas on the executors, gradients aggregated every
    iteration), with BCE on the 14 logits.

    Examples
    --------
    >>> est = CXREstimator(modelName="tiny", epochs=2, batchSize=16)
    >>> est.getModelName(), est.getEpochs()
    ('tiny', 2)
    """

    def __init__(self, **kwargs: Any) -> None:  # the signature is the table's (set below the class)
        super().__init__()
        self._set(**_keywords(type(self).__name__, kwargs))
        self._check()
        self._validation: DataFrame | None = None

    def _check(self) -> None:
        """Validate now what would otherwise fail after an hour of training."""
        get_config(self.getModelName())
        self.engine_options()  # an unknown engine name fails here
        self.lr_schedule(self.getLearningRate(), self.getEpochs())
        g = self.getOrDefault
        if g(self.optimizer) == "sgd" and g(self.nesterov) and g(self.momentum) <= 0:
            raise InputError("nesterov=True needs momentum > 0; set nesterov=False for plain SGD")
        if self.getFreezeUpTo():  # an unknown layer, refused now rather than once the network is built
            layers_up_to(create_spec(self.getModelName(), num_classes=len(self.getLabels())), self.getFreezeUpTo())

    def check_plan(self, validation: bool) -> None:
        """Refuse, before any Spark job, a run that would fail only after its warmup: :meth:`_check`'s checks and a
        plateau on ``val_loss`` without a validation set (``validation``: whether one will be given)."""
        self._check()
        g = self.getOrDefault
        if g(self.lrSchedule) == "plateau" and g(self.plateauMonitor) == "val_loss" and not validation:
            raise InputError("plateauMonitor='val_loss' needs a validation set: give one (setValidation(df); "
                             "cxrzoo train --validation VAL.parquet) or monitor the training loss "
                             "(plateauMonitor='loss'; --plateau-monitor loss)")

    def setValidation(self, df: DataFrame | None) -> "CXREstimator":
        """Score ``df`` (same columns as the training data) after every epoch: validation mean AUC in the
        log line and the model's history (not a Param: DataFrames are not persisted)."""
        self._validation = df
        return self

    def setParams(self, **kwargs: Any) -> "CXREstimator":
        """Set any of the constructor's params."""
        self._set(**_keywords("setParams", kwargs))
        self._check()
        return self

    def _fit(self, dataset: DataFrame) -> "CXRModel":
        self.check_plan(self._validation is not None)  # Params set since the constructor included
        prep = self.getPreprocessor()
        lcol = self.getLabelCol()
        val = self._validation
        if val is not None and "patient_id" in dataset.columns and "patient_id" in val.columns:
            from cxrzoo.splits import check_disjoint_patients

            check_disjoint_patients({"train": dataset, "validation": val},
                                    allow_overlap=self.getOrDefault(self.allowPatientOverlap))
        self._engine().check_batch(dataset.sparkSession.sparkContext, self.getBatchSize())
        _require(dataset, [lcol])
        labels = self.getLabels()
        # the model's labels out of the harmonised column, NaN where label_mask says unknown
        dataset = dataset.withColumn(TARGET, target_column(dataset, labels, lcol))
        if prep is not None:
            return self._fit_images(dataset, prep)
        fcol = self.getFeaturesCol()
        _require(dataset, [fcol, lcol])
        train = dataset.where(F.col(fcol).isNotNull()).select(fcol, TARGET)
        weights = self._loss_terms(train)
        size = image_side(train, fcol)
        ingest_side = None
        if "image" in dataset.columns and not self.isSet(self.imageSize):  # record the ingest size for export
            ingest_side = image_side(dataset, "image")
        data = features_data(train, fcol, TARGET, size)
        model = self._train(size, lambda epoch: data, weights, self._validation)
        return model._set(imageSize=ingest_side) if ingest_side else model

    def _loss_terms(self, train: DataFrame) -> tuple:
        """(class weights or None, whether some targets are unknown) of the training rows (one Spark job)."""
        engine = self._engine()
        return loss_terms(train, TARGET, self.getLabels(), self.getOrDefault(self.classWeighting), engine.name,
                          engine.masks_loss)

    def _fit_images(self, dataset: DataFrame, prep: CXRPreprocessor) -> "CXRModel":
        icol, kcol, lcol = prep.getInputCol(), prep.getOrDefault(prep.keyCol), TARGET
        _require(dataset, [icol, kcol, lcol])
        images = dataset.where(F.col(icol).isNotNull()).select(kcol, icol, lcol)
        side = image_side(images, icol)
        if side < prep.getCropSize():
            raise InputError(f"{icol!r} holds {side}² images, smaller than the crop {prep.getCropSize()}; ingest "
                             f"with --size >= {prep.getCropSize()} or crop smaller")
        cached = not images.is_cached
        if cached:
            images = images.persist()
        cfg, seed = prep.chain_config(), prep.getOrDefault(prep.seed)
        try:
            weights = self._loss_terms(images)  # the first pass over the persisted images
            val = self._validation
            if val is not None:
                val = prep.copy().setAugment(False).setParams(outputCol=self.getFeaturesCol()).transform(val)
            model = self._train(prep.getCropSize(),
                                lambda epoch: augmented_data(images, icol, kcol, lcol, cfg, seed, epoch), weights, val)
        finally:
            if cached:
                images.unpersist()
        return model._set(imageSize=side, normalization=prep.getNormalization())

    def _validator(self, engine: Engine, net: Any, spec: NetSpec, val: DataFrame | None):
        if val is None:
            return None
        from cxrzoo.evaluate import bce_loss, evaluate_auc

        fcol = self.getFeaturesCol()
        _require(val, [fcol, self.getLabelCol()])
        ok = val  # rows with features, persisted by _train

        labels = self.getLabels()

        def validate(epoch: int) -> dict:
            scored = engine.predict(net, spec, ok, fcol, "_val_probabilities", batch_size=max(2, self.getBatchSize()))
            keep = [c for c in (self.getLabelCol(), MASK_COL) if c in scored.columns]
            scored = scored.select(*keep, "_val_probabilities").cache()
            try:
                rep = evaluate_auc(scored, label_col=self.getLabelCol(), prob_col="_val_probabilities", labels=labels)
                loss = bce_loss(scored, label_col=self.getLabelCol(), prob_col="_val_probabilities", labels=labels)
            finally:
                scored.unpersist()
            return {"mean_auc": rep.mean_auc, "loss": loss}

        return validate

    def _train(self, size: int, epoch_data, weights: tuple, val: DataFrame | None = None) -> "CXRModel":
        """Train on ``epoch_data``; ``weights`` is (class weights or None, whether some targets are unknown)."""
        spec = self._spec(size)
        engine = self._engine()
        net = engine.build(spec, seed=self.getSeed())
        config = get_config(self.getModelName())
        if self.getPretrained():
            engine.set_weights(net, spec, load_pretrained(spec, config, self.getPretrained()))
        frozen = layers_up_to(spec, self.getFreezeUpTo() or config.feature_layer) if self.getFreezeEpochs() else None
        g = self.getOrDefault
        cfg = TrainConfig(epochs=self.getEpochs(), batch_size=self.getBatchSize(),
                          learning_rate=self.getLearningRate(), optimizer=self.getOptimizer(), seed=self.getSeed(),
                          momentum=g(self.momentum), nesterov=g(self.nesterov),
                          class_weights=weights[0], masked=weights[1], summary_dir=g(self.summaryDir) or None)
        if val is not None:
            # the validation features are the same every epoch (no augmentation): computed once and kept, so
            # each epoch's scoring stage runs one Python UDF over them rather than preprocessing chained into
            # prediction (two Python workers in one task, which hung once on 958 images of 224²)
            _require(val, [self.getFeaturesCol(), self.getLabelCol()])
            val = val.where(F.col(self.getFeaturesCol()).isNotNull()).persist()
            val.count()
        try:
            return self._train_loop(size, spec, engine, net, config, frozen, cfg, epoch_data, val)
        finally:
            if val is not None:
                val.unpersist()

    def _train_loop(self, size, spec, engine, net, config, frozen, cfg, epoch_data, val) -> "CXRModel":
        g = self.getOrDefault
        with tempfile.TemporaryDirectory(prefix="cxrzoo-ckpt-") as tmp:
            opts = LoopOptions(schedule=self.lr_schedule(cfg.learning_rate, cfg.epochs), frozen=frozen,
                               freeze_epochs=self.getFreezeEpochs(), validate=self._validator(engine, net, spec, val),
                               checkpoint=CheckpointDir(g(self.checkpointDir) or tmp),
                               checkpoint_interval=g(self.checkpointInterval), keep_best=self.getKeepBest(),
                               fingerprint={"model": self.getModelName(), "input_size": size,
                                            # NIH's 14 (the default) as before labels existed: old checkpoints
                                            **({} if self.getLabels() == list(LABELS) else
                                               {"labels": self.getLabels()}),
                                            "batch_size": cfg.batch_size, "engine": engine.name})
            t0 = time.perf_counter()
            history = run_epochs(engine, net, spec, cfg, epoch_data, opts)
        log.info("trained %s (%d² input) for %d epochs in %.1fs", self.getModelName(), size, cfg.epochs,
                 time.perf_counter() - t0)
        model = self._copyValues(CXRModel(net=net, spec=spec, backend=engine))._set(engine=engine.name)
        model.history = history
        if val is not None:
            model.thresholds = self._choose_thresholds(engine, net, spec, val, self.getLabels())
        return model

    def _choose_thresholds(self, engine: Engine, net: Any, spec: NetSpec, val: DataFrame, labels) -> dict:
        """Each label's operating threshold on the validation set, with the network as it ends."""
        from cxrzoo.evaluate import scored_arrays
        from cxrzoo.thresholds import choose_thresholds

        fcol, lcol = self.getFeaturesCol(), self.getLabelCol()
        scored = engine.predict(net, spec, val.where(F.col(fcol).isNotNull()), fcol, "_val_probabilities",
                                batch_size=max(2, self.getBatchSize()))
        y, p = scored_arrays(scored, lcol, "_val_probabilities", labels)
        chosen = choose_thresholds(y, p, labels, self.getThresholdMethod(), self.getTargetSensitivity())
        log.info("operating thresholds (%s) chosen on %d validation images for %d of %d labels",
                 self.getThresholdMethod(), len(y), sum(v is not None for v in chosen.values()), len(labels))
        return chosen


def _require(df: DataFrame, cols: list[str]) -> None:
    for col in cols:
        if col not in df.columns:
            raise InputError(f"CXREstimator: input has no column {col!r}; columns: {df.columns}")


# the keyword constructor, generated from the table of training options (cxrzoo.train.options), and the Params
# that are not training options: the columns, and how the given features were normalized (set from the
# preprocessor at fit when there is one)
_COLUMNS = {"featuresCol": "features", "labelCol": "labels", "predictionCol": "probabilities",
            "normalization": "caffe"}
CXREstimator.__init__.__signature__ = keyword_signature(training_options(), _COLUMNS)
CXREstimator.setParams.__signature__ = keyword_signature(training_options(), _COLUMNS)


def _keywords(where: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` if each names a training option or a column Param, else a TypeError naming the unknown ones."""
    known = set(_COLUMNS) | {o.name for o in training_options()}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"{where}() got unexpected keyword arguments {unknown}; the options are "
                        f"{sorted(known)} (cxrzoo.train.options)")
    return kwargs


class CXRModel(Model, _CXRParams, MLWritable, MLReadable):
    """A trained network; ``transform`` appends ``probabilities`` (array<float>, one per label of ``labels``)."""

    def __init__(self, net: Any = None, spec: NetSpec | None = None, backend: Engine | None = None) -> None:
        super().__init__()
        self.net, self.spec, self.backend = net, spec, backend
        self.history: list[dict] = []
        self.thresholds: dict[str, dict | None] = {}  # per label, chosen on the validation set

    def _transform(self, dataset: DataFrame) -> DataFrame:
        if self.net is None or self.spec is None or self.backend is None:
            raise JobFailedError("CXRModel has no trained network; fit a CXREstimator or CXRModel.load(path)")
        fcol = self.getFeaturesCol()
        prep = self.getPreprocessor()
        added = fcol not in dataset.columns and prep is not None
        if added:  # images in: the preprocessor's eval mode (center crop) first
            dataset = prep.setAugment(False).setParams(outputCol=fcol).transform(dataset)
        # one pass over the input (splitting it into scored and failed rows would run the preprocessing
        # twice): rows without features are scored on zeros and get null probabilities
        missing, pcol = "_cxrzoo_no_features", self.getPredictionCol()
        width = self.spec.in_channels * self.spec.input_size ** 2
        filled = dataset.withColumn(missing, F.col(fcol).isNull()).withColumn(
            fcol, F.coalesce(F.col(fcol), F.array_repeat(F.lit(0.0).cast("float"), width)))
        scored = self.backend.predict(self.net, self.spec, filled, fcol, pcol, batch_size=max(2, self.getBatchSize()))
        out = scored.withColumn(pcol, F.when(F.col(missing), F.lit(None).cast("array<float>")).otherwise(F.col(pcol)))
        out = out.drop(missing)
        return out.drop(fcol) if added else out

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
