"""Params of model selection: keep the best epoch, and how to choose each label's operating threshold."""
from __future__ import annotations

from pyspark.ml.param import Param, Params, TypeConverters

from cxrzoo.params import _one_of
from cxrzoo.thresholds import METHODS
from cxrzoo.errors import InputError


def _sensitivity(value: object) -> float:
    v = TypeConverters.toFloat(value)
    if not 0.0 < v <= 1.0:
        raise InputError(f"targetSensitivity must be in (0, 1], got {value!r}")
    return v


class HasModelSelection(Params):
    """Mixin for keepBest, thresholdMethod and targetSensitivity (all need a validation set)."""

    keepBest = Param(Params._dummy(), "keepBest", "with a validation set: end on the weights of the epoch of the "
                     "highest validation mean AUC (the first of equals) instead of the last epoch's",
                     typeConverter=TypeConverters.toBoolean)
    thresholdMethod = Param(Params._dummy(), "thresholdMethod", "per-label operating threshold chosen on the "
                            "validation set: 'youden' (max sensitivity + specificity − 1) or 'sensitivity' (the most "
                            "specific threshold reaching targetSensitivity)",
                            typeConverter=_one_of("thresholdMethod", METHODS))
    targetSensitivity = Param(Params._dummy(), "targetSensitivity", "sensitivity the 'sensitivity' threshold "
                              "method reaches, in (0, 1]", typeConverter=_sensitivity)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(keepBest=True, thresholdMethod="youden", targetSensitivity=0.9)

    def getKeepBest(self) -> bool:
        """Gets the value of keepBest or its default value."""
        return self.getOrDefault(self.keepBest)

    def setKeepBest(self, value: bool) -> "Params":
        """Sets the value of :py:attr:`keepBest`."""
        return self._set(keepBest=value)

    def getThresholdMethod(self) -> str:
        """Gets the value of thresholdMethod or its default value."""
        return self.getOrDefault(self.thresholdMethod)

    def setThresholdMethod(self, value: str) -> "Params":
        """Sets the value of :py:attr:`thresholdMethod`."""
        return self._set(thresholdMethod=value)

    def getTargetSensitivity(self) -> float:
        """Gets the value of targetSensitivity or its default value."""
        return self.getOrDefault(self.targetSensitivity)

    def setTargetSensitivity(self, value: float) -> "Params":
        """Sets the value of :py:attr:`targetSensitivity`."""
        return self._set(targetSensitivity=value)
