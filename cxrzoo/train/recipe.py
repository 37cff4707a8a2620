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


class HasMomentum(Params):
    """Mixin for SGD's momentum and Nesterov flag (ignored by Adam)."""

    momentum = Param(Params._dummy(), "momentum", "SGD momentum", typeConverter=TypeConverters.toFloat)
    nesterov = Param(Params._dummy(), "nesterov", "SGD with Nesterov momentum (needs momentum > 0)",
                     typeConverter=TypeConverters.toBoolean)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(momentum=0.9, nesterov=True)


class HasClassWeighting(Params):
    """Mixin for param classWeighting."""

    classWeighting = Param(Params._dummy(), "classWeighting", "BCE weighting: 'none', or 'chexnet' — per class, "
                           "positives weighted by N/(P+N) and negatives by P/(P+N), counted on the training set",
                           typeConverter=_one_of("classWeighting", WEIGHTINGS))

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(classWeighting="none")


class HasCheckpointing(Params):
    """Mixin for checkpoints (resume, retry) and TensorBoard summaries."""

    checkpointDir = Param(Params._dummy(), "checkpointDir", "directory of training checkpoints (weights, "
                          "optimizer state, schedule position, epoch); a fit on a directory holding a checkpoint "
                          "of the same run resumes from it; '' uses a temporary one (retries only)",
                          typeConverter=TypeConverters.toString)
    checkpointInterval = Param(Params._dummy(), "checkpointInterval", "epochs between checkpoints (the last "
                               "epoch is always saved)", typeConverter=_non_negative_int("checkpointInterval"))
    summaryDir = Param(Params._dummy(), "summaryDir", "BigDL Train/Validation summaries for TensorBoard "
                       "(tensorboard --logdir DIR); '' writes none that outlive the run",
                       typeConverter=TypeConverters.toString)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(checkpointDir="", checkpointInterval=1, summaryDir="")
