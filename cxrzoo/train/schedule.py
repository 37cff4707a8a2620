"""Learning-rate schedules, one rate per epoch: linear warmup, then constant, plateau or cosine.

The seed's recipe is ``LRSchedule("plateau", peak=1e-4, warmup_epochs=5, warmup_start=1e-7, factor=0.1,
patience=1, epsilon=0.01, min_lr=1e-15)`` on the training loss; CheXNet's is a plateau on the
validation loss (``monitor="val_loss"``).  The schedule is plain data with a JSON-able state, so a
checkpoint records its position and a resumed run continues it exactly.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from cxrzoo.errors import InputError

KINDS = ("constant", "plateau", "cosine")
MONITORS = ("loss", "val_loss")


@dataclass
class LRSchedule:
    """Per-epoch learning rate.

    Parameters
    ----------
    kind : {'constant', 'plateau', 'cosine'}
        What follows the warmup.
    peak : float
        Rate at the end of the warmup (the base rate).
    epochs : int
        Total epochs of the run (the cosine's length).
    warmup_epochs : int
        Epochs of linear increase from ``warmup_start`` (epoch 0) towards ``peak`` (reached at epoch
        ``warmup_epochs``).
    warmup_start : float
        Rate of the first warmup epoch.
    factor, patience, epsilon : float, int, float
        Plateau: multiply the rate by ``factor`` once the monitored loss has not improved by more
        than ``epsilon`` (absolute) for ``patience`` epochs.
    min_lr : float
        Floor of the plateau decay and end point of the cosine.
    monitor : {'loss', 'val_loss'}
        Plateau's quantity: the epoch's mean training loss or the validation loss.
    """

    kind: str = "constant"
    peak: float = 1e-3
    epochs: int = 10
    warmup_epochs: int = 0
    warmup_start: float = 1e-7
    factor: float = 0.1
    patience: int = 1
    epsilon: float = 0.01
    min_lr: float = 1e-15
    monitor: str = "loss"
    state: dict = field(default_factory=lambda: {"rate": None, "best": None, "wait": 0})

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"lrSchedule must be one of {KINDS}, got {self.kind!r}")
        if self.monitor not in MONITORS:
            raise InputError(f"plateauMonitor must be one of {MONITORS}, got {self.monitor!r}")
        if not 0.0 < self.factor < 1.0:
            raise InputError(f"plateauFactor must be in (0, 1), got {self.factor}")
        if self.peak <= 0 or self.warmup_epochs < 0 or self.patience < 0:
            raise InputError("learningRate must be > 0, warmupEpochs and plateauPatience >= 0")

    def rate(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (counted from 0)."""
        w = self.warmup_epochs
        if epoch < w:
            return self.warmup_start + (self.peak - self.warmup_start) * epoch / w
        if self.kind == "plateau":
            return self.state["rate"] if self.state["rate"] is not None else self.peak
        if self.kind == "cosine":
            span = max(1, self.epochs - w)
            t = min(1.0, (epoch - w) / span)
            return self.min_lr + (self.peak - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
        return self.peak

    def observe(self, epoch: int, metrics: dict) -> None:
        """Feed the epoch's results (``loss`` and, with validation, ``val_loss``) to the plateau."""
        if self.kind != "plateau" or epoch < self.warmup_epochs:
            return
        value = metrics.get(self.monitor)
        if value is None:
            raise InputError(f"the plateau schedule monitors {self.monitor!r} but epoch {epoch + 1} has none "
                             "(val_loss needs a validation set: setValidation(df) / --validation)")
        s = self.state
        if s["rate"] is None:
            s["rate"] = self.peak
        if s["best"] is None or value < s["best"] - self.epsilon:
            s["best"], s["wait"] = float(value), 0
            return
        s["wait"] += 1
        if s["wait"] >= self.patience and s["rate"] > self.min_lr:
            s["rate"] = max(s["rate"] * self.factor, self.min_lr)
            s["wait"] = 0

    def to_dict(self) -> dict:
        """Settings and position (JSON-able)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LRSchedule":
        """Inverse of :meth:`to_dict`."""
        return cls(**d)
