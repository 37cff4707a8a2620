"""``CXRPreprocessor``: the preprocessing chain as a Spark ML Transformer over Arrow batches."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol, HasSeed
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from cxrzoo.arrowutil import rows_to_list_array
from cxrzoo.normalization import NORMALIZATIONS
from cxrzoo.params import HasCropSize, HasNormalization
from cxrzoo.preprocess.chain import ChainConfig, apply_chain
from cxrzoo.preprocess.sides import side_of
from cxrzoo.errors import InputError


class CXRPreprocessor(Transformer, HasInputCol, HasOutputCol, HasSeed, HasCropSize, HasNormalization,
                      DefaultParamsReadable, DefaultParamsWritable):
    """Gray ``image`` bytes → ``features``: the seed's chain, CHW float32 flattened to array<float>.

    Rows whose image is null (a decode error) get null features; their ``error`` stays.

    Examples
    --------
    >>> prep = CXRPreprocessor(cropSize=224, augment=False)
    >>> prep.getCropSize(), prep.getNormalization()
    (224, 'caffe')
    """

    augment = Param(Params._dummy(), "augment", "random flip and brightness (training); False: center crop only",
                    typeConverter=TypeConverters.toBoolean)
    flipProb = Param(Params._dummy(), "flipProb", "probability of a horizontal flip", TypeConverters.toFloat)
    brightnessDelta = Param(Params._dummy(), "brightnessDelta", "brightness shift drawn from U[0, delta] (0–255)",
                            TypeConverters.toFloat)
    brightnessProb = Param(Params._dummy(), "brightnessProb", "probability of a brightness shift",
                           TypeConverters.toFloat)
    randomCrop = Param(Params._dummy(), "randomCrop", "random instead of center crop when augmenting",
                       TypeConverters.toBoolean)
    contrastRange = Param(Params._dummy(), "contrastRange", "contrast factor drawn from U[lo, hi]; [1, 1] is off",
                          TypeConverters.toListFloat)
    keyCol = Param(Params._dummy(), "keyCol", "column whose value keys each row's random decisions",
                   TypeConverters.toString)
    epoch = Param(Params._dummy(), "epoch", "epoch number mixed into the random decisions", TypeConverters.toInt)

    @keyword_only
    def __init__(self, *, inputCol: str = "image", outputCol: str = "features", cropSize: int = 224,
                 normalization: str = "caffe", augment: bool = True, flipProb: float = 0.5,
                 brightnessDelta: float = 32.0, brightnessProb: float = 0.5, randomCrop: bool = False,
                 contrastRange: list[float] | None = None, keyCol: str = "image_index", seed: int = 0,
                 epoch: int = 0) -> None:
        super().__init__()
        self._setDefault(inputCol="image", outputCol="features", augment=True, flipProb=0.5, brightnessDelta=32.0,
                         brightnessProb=0.5, randomCrop=False, contrastRange=[1.0, 1.0], keyCol="image_index",
                         seed=0, epoch=0)
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs) -> "CXRPreprocessor":
        """Set any of the constructor's params."""
        return self._set(**self._input_kwargs)

    def setAugment(self, value: bool) -> "CXRPreprocessor":
        """Sets the value of :py:attr:`augment`."""
        return self._set(augment=value)

    def chain_config(self) -> ChainConfig:
        """The chain's settings as a plain dataclass."""
        mean, std = NORMALIZATIONS[self.getNormalization()]
        lo, hi = self.getOrDefault(self.contrastRange)
        return ChainConfig(crop=self.getCropSize(), flip_prob=self.getOrDefault(self.flipProb),
                           random_crop=self.getOrDefault(self.randomCrop), contrast_range=(lo, hi),
                           brightness_delta=self.getOrDefault(self.brightnessDelta),
                           brightness_prob=self.getOrDefault(self.brightnessProb), mean=mean, std=std,
                           augment=self.getOrDefault(self.augment))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        cfg = self.chain_config()
        in_col, out_col = self.getInputCol(), self.getOutputCol()
        key_col = self.getOrDefault(self.keyCol)
        seed, epoch = self.getOrDefault(self.seed), self.getOrDefault(self.epoch)
        for col in (in_col, key_col):
            if col not in dataset.columns:
                raise InputError(f"CXRPreprocessor: input has no column {col!r}; columns: {dataset.columns}")
        fields = [f for f in dataset.schema.fields if f.name != out_col]
        schema = T.StructType(fields + [T.StructField(out_col, T.ArrayType(T.FloatType(), False), True)])
        names = [f.name for f in fields]

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                yield _process_batch(batch, names, in_col, key_col, out_col, cfg, seed, epoch)

        return dataset.mapInArrow(run, schema)

    def getAugment(self) -> bool:
        """Gets the value of augment or its default value."""
        return self.getOrDefault(self.augment)

    def getFlipProb(self) -> float:
        """Gets the value of flipProb or its default value."""
        return self.getOrDefault(self.flipProb)

    def setFlipProb(self, value: float) -> "CXRPreprocessor":
        """Sets the value of :py:attr:`flipProb`."""
        return self._set(flipProb=value)

    def getBrightnessDelta(self) -> float:
        """Gets the value of brightnessDelta or its default value."""
        return self.getOrDefault(self.brightnessDelta)

    def setBrightnessDelta(self, value: float) -> "CXRPreprocessor":
        """Sets the value of :py:attr:`brightnessDelta`."""
        return self._set(brightnessDelta=value)

    def getBrightnessProb(self) -> float:
        """Gets the value of brightnessProb or its default value."""
        return self.getOrDefault(self.brightnessProb)

    def setBrightnessProb(self, value: float) -> "CXRPreprocessor":
        """Sets the value of :py:attr:`brightnessProb`."""
        return self._set(brightnessProb=value)

    def getRandomCrop(self) -> bool:
        """Gets the value of randomCrop or its default value."""
        return self.getOrDefault(self.randomCrop)

    def setRandomCrop(self, value: bool) -> "CXRPreprocessor":
        """Sets the value of :py:attr:`randomCrop`."""
        return self._set(randomCrop=value)

    def getContrastRange(self) -> list[float]:
        """Gets the value of contrastRange or its default value."""
        return self.getOrDefault(self.contrastRange)

    def setContrastRange(self, value: list[float]) -> "CXRPreprocessor":
        """Sets the value of :py:attr:`contrastRange`."""
        return self._set(contrastRange=value)

    def getKeyCol(self) -> str:
        """Gets the value of keyCol or its default value."""
        return self.getOrDefault(self.keyCol)

    def setKeyCol(self, value: str) -> "CXRPreprocessor":
        """Sets the value of :py:attr:`keyCol`."""
        return self._set(keyCol=value)

    def getEpoch(self) -> int:
        """Gets the value of epoch or its default value."""
        return self.getOrDefault(self.epoch)

    def setEpoch(self, value: int) -> "CXRPreprocessor":
        """Sets the value of :py:attr:`epoch`."""
        return self._set(epoch=value)

    def setInputCol(self, value: str) -> "CXRPreprocessor":
        """Sets the value of :py:attr:`inputCol`."""
        return self._set(inputCol=value)

    def setOutputCol(self, value: str) -> "CXRPreprocessor":
        """Sets the value of :py:attr:`outputCol`."""
        return self._set(outputCol=value)

    def setSeed(self, value: int) -> "CXRPreprocessor":
        """Sets the value of :py:attr:`seed`."""
        return self._set(seed=value)


def _process_batch(batch: pa.RecordBatch, names: list[str], in_col: str, key_col: str, out_col: str,
                   cfg: ChainConfig, seed: int, epoch: int) -> pa.RecordBatch:
    images = batch.column(in_col).to_pylist()
    keys = [str(k) for k in batch.column(key_col).to_pylist()]
    valid = [i for i, b in enumerate(images) if b is not None]
    side = (side_of(len(images[valid[0]])) or 0) if valid else 0
    misfit = [i for i in valid if len(images[i]) != side * side or side < cfg.crop]
    valid = [i for i in valid if i not in set(misfit)]
    c = cfg.crop
    flat = np.empty(len(valid) * 3 * c * c, np.float32)  # the Arrow values buffer, filled in place
    if valid:
        stack = np.frombuffer(b"".join(images[i] for i in valid), np.uint8).reshape(len(valid), side, side)
        apply_chain(stack, [keys[i] for i in valid], cfg, seed, epoch, out=flat.reshape(len(valid), 3, c, c))
    features = rows_to_list_array(flat, valid, len(images))
    columns = [batch.column(n) for n in names]
    if misfit and "error" in names:  # a row that cannot be preprocessed says why; the job goes on
        errors = batch.column("error").to_pylist()
        for i in misfit:
            errors[i] = errors[i] or (f"{keys[i]}: image of {len(images[i])} bytes is not {side}x{side} gray "
                                      f"with side >= crop {cfg.crop}; ingest all images with one --size")
        columns[names.index("error")] = pa.array(errors, pa.string())
    return pa.RecordBatch.from_arrays(columns + [features], names=names + [out_col])
