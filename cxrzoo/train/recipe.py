"""Params of the training recipe: LR schedule, SGD momentum, class weighting, checkpoints, summaries.

Mixins in the manner of ``pyspark.ml.param.shared``; the Estimator and its Model both carry them, so
they are persisted with the model and listed by ``explainParams()``.
"""
from __future__ import annotations

from pyspark.ml.param import Param, Params, TypeConverters

from cxrzoo.params import _non_negative_int, _one_of
from cxrzoo.train.schedule import KINDS, MONITORS, LRSchedule
from cxrzoo.train.weighting import WEIGHTINGS


class HasLRSchedule(Params):
    """Mixin for the learning-rate schedule (the base rate is ``learningRate``)."""

    lrSchedule = Param(Params._dummy(), "lrSchedule", f"after the warmup: {'|'.join(KINDS)} — constant rate, "
                       "reduce on plateau of the monitored loss, or cosine decay to minLR by the last epoch",
                       typeConverter=_one_of("lrSchedule", KINDS))
    warmupEpochs = Param(Params._dummy(), "warmupEpochs", "epochs of linear warmup from warmupStartLR to "
                         "learningRate (the seed: 5)", typeConverter=_non_negative_int("warmupEpochs"))
    warmupStartLR = Param(Params._dummy(), "warmupStartLR", "learning rate of the first warmup epoch",
                          typeConverter=TypeConverters.toFloat)
    plateauMonitor = Param(Params._dummy(), "plateauMonitor", "plateau watches 'loss' (training, the seed) or "
                           "'val_loss' (CheXNet; needs setValidation)",
                           typeConverter=_one_of("plateauMonitor", MONITORS))
    plateauFactor = Param(Params._dummy(), "plateauFactor", "plateau multiplies the rate by this factor",
                          typeConverter=TypeConverters.toFloat)
    plateauPatience = Param(Params._dummy(), "plateauPatience", "epochs without improvement before reducing",
                            typeConverter=_non_negative_int("plateauPatience"))
    plateauEpsilon = Param(Params._dummy(), "plateauEpsilon", "smallest decrease of the monitored loss that "
                           "counts as an improvement (absolute)", typeConverter=TypeConverters.toFloat)
    minLR = Param(Params._dummy(), "minLR", "floor of the plateau decay; end of the cosine",
                  typeConverter=TypeConverters.toFloat)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(lrSchedule="constant", warmupEpochs=0, warmupStartLR=1e-7, plateauMonitor="loss",
                         plateauFactor=0.1, plateauPatience=1, plateauEpsilon=0.01, minLR=1e-15)

    def lr_schedule(self, peak: float, epochs: int) -> LRSchedule:
        """The :class:`LRSchedule` these params describe."""
        g = self.getOrDefault
        return LRSchedule(kind=g(self.lrSchedule), peak=peak, epochs=epochs, warmup_epochs=g(self.warmupEpochs),
                          warmup_start=g(self.warmupStartLR), factor=g(self.plateauFactor),
                          patience=g(self.plateauPatience), epsilon=g(self.plateauEpsilon), min_lr=g(self.minLR),
                          monitor=g(self.plateauMonitor))

    def getLrSchedule(self) -> str:
        """Gets the value of lrSchedule or its default value."""
        return self.getOrDefault(self.lrSchedule)

    def setLrSchedule(self, value: str) -> "Params":
        """Sets the value of :py:attr:`lrSchedule`."""
        return self._set(lrSchedule=value)

    def getWarmupEpochs(self) -> int:
        """Gets the value of warmupEpochs or its default value."""
        return self.getOrDefault(self.warmupEpochs)

    def setWarmupEpochs(self, value: int) -> "Params":
        """Sets the value of :py:attr:`warmupEpochs`."""
        return self._set(warmupEpochs=value)

    def getWarmupStartLR(self) -> float:
        """Gets the value of warmupStartLR or its default value."""
        return self.getOrDefault(self.warmupStartLR)

    def setWarmupStartLR(self, value: float) -> "Params":
        """Sets the value of :py:attr:`warmupStartLR`."""
        return self._set(warmupStartLR=value)

    def getPlateauMonitor(self) -> str:
        """Gets the value of plateauMonitor or its default value."""
        return self.getOrDefault(self.plateauMonitor)

    def setPlateauMonitor(self, value: str) -> "Params":
        """Sets the value of :py:attr:`plateauMonitor`."""
        return self._set(plateauMonitor=value)

    def getPlateauFactor(self) -> float:
        """Gets the value of plateauFactor or its default value."""
        return self.getOrDefault(self.plateauFactor)

    def setPlateauFactor(self, value: float) -> "Params":
        """Sets the value of :py:attr:`plateauFactor`."""
        return self._set(plateauFactor=value)

    def getPlateauPatience(self) -> int:
        """Gets the value of plateauPatience or its default value."""
        return self.getOrDefault(self.plateauPatience)

    def setPlateauPatience(self, value: int) -> "Params":
        """Sets the value of :py:attr:`plateauPatience`."""
        return self._set(plateauPatience=value)

    def getPlateauEpsilon(self) -> float:
        """Gets the value of plateauEpsilon or its default value."""
        return self.getOrDefault(self.plateauEpsilon)

    def setPlateauEpsilon(self, value: float) -> "Params":
        """Sets the value of :py:attr:`plateauEpsilon`."""
        return self._set(plateauEpsilon=value)

    def getMinLR(self) -> float:
        """Gets the value of minLR or its default value."""
        return self.getOrDefault(self.minLR)

    def setMinLR(self, value: float) -> "Params":
        """Sets the value of :py:attr:`minLR`."""
        return self._set(minLR=value)


class HasMomentum(Params):
    """Mixin for SGD's momentum and Nesterov flag (ignored by Adam)."""

    momentum = Param(Params._dummy(), "momentum", "SGD momentum", typeConverter=TypeConverters.toFloat)
    nesterov = Param(Params._dummy(), "nesterov", "SGD with Nesterov momentum (needs momentum > 0)",
                     typeConverter=TypeConverters.toBoolean)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(momentum=0.9, nesterov=True)

    def getMomentum(self) -> float:
        """Gets the value of momentum or its default value."""
        return self.getOrDefault(self.momentum)

    def setMomentum(self, value: float) -> "Params":
        """Sets the value of :py:attr:`momentum`."""
        return self._set(momentum=value)

    def getNesterov(self) -> bool:
        """Gets the value of nesterov or its default value."""
        return self.getOrDefault(self.nesterov)

    def setNesterov(self, value: bool) -> "Params":
        """Sets the value of :py:attr:`nesterov`."""
        return self._set(nesterov=value)


class HasClassWeighting(Params):
    """Mixin for param classWeighting."""

    classWeighting = Param(Params._dummy(), "classWeighting", "BCE weighting: 'none', or 'chexnet' — per class, "
                           "positives weighted by N/(P+N) and negatives by P/(P+N), counted on the training set",
                           typeConverter=_one_of("classWeighting", WEIGHTINGS))

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(classWeighting="none")

    def getClassWeighting(self) -> str:
        """Gets the value of classWeighting or its default value."""
        return self.getOrDefault(self.classWeighting)

    def setClassWeighting(self, value: str) -> "Params":
        """Sets the value of :py:attr:`classWeighting`."""
        return self._set(classWeighting=value)


class HasCheckpointing(Params):
    """Mixin for checkpoints (resume, retry) and TensorBoard summaries."""

    checkpointDir = Param(Params._dummy(), "checkpointDir", "directory of training checkpoints (weights, "
                          "optimizer state, schedule position, epoch); a fit on a directory holding a checkpoint "
                          "of the same run resumes from it; '' uses a temporary one (retries only)",
                          typeConverter=TypeConverters.toString)
    checkpointInterval = Param(Params._dummy(), "checkpointInterval", "epochs between checkpoints (the last "
                               "epoch is always saved)", typeConverter=_non_negative_int("checkpointInterval"))
    summaryDir = Param(Params._dummy(), "summaryDir", "the engine's Train/Validation summaries for TensorBoard "
                       "(tensorboard --logdir DIR); '' writes none that outlive the run",
                       typeConverter=TypeConverters.toString)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(checkpointDir="", checkpointInterval=1, summaryDir="")

    def getCheckpointDir(self) -> str:
        """Gets the value of checkpointDir or its default value."""
        return self.getOrDefault(self.checkpointDir)

    def setCheckpointDir(self, value: str) -> "Params":
        """Sets the value of :py:attr:`checkpointDir`."""
        return self._set(checkpointDir=value)

    def getCheckpointInterval(self) -> int:
        """Gets the value of checkpointInterval or its default value."""
        return self.getOrDefault(self.checkpointInterval)

    def setCheckpointInterval(self, value: int) -> "Params":
        """Sets the value of :py:attr:`checkpointInterval`."""
        return self._set(checkpointInterval=value)

    def getSummaryDir(self) -> str:
        """Gets the value of summaryDir or its default value."""
        return self.getOrDefault(self.summaryDir)

    def setSummaryDir(self, value: str) -> "Params":
        """Sets the value of :py:attr:`summaryDir`."""
        return self._set(summaryDir=value)
