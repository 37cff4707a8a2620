"""The epoch loop: one engine trainer, fresh (augmented) data per epoch, one log line per epoch."""
from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Callable

from pyspark.rdd import RDD

from cxrzoo.engine.base import Engine, EpochStats, TrainConfig
from cxrzoo.models.spec import NetSpec

log = logging.getLogger(__name__)


def run_epochs(engine: Engine, net: Any, spec: NetSpec, config: TrainConfig,
               epoch_data: Callable[[int], RDD], frozen: list[str] | None = None,
               freeze_epochs: int = 0, validate: Callable[[int], float | None] | None = None) -> list[dict]:
    """Train ``net`` for ``config.epochs`` epochs on ``epoch_data(epoch)`` and return each epoch's stats.

    ``epoch_data`` may return the same RDD every epoch (fixed features; the engine
    keeps its cached copy) or a new one (augmentation that differs per epoch).
    The layers ``frozen`` are not updated during the first ``freeze_epochs`` epochs
    (fine-tuning: train the new head on a pretrained backbone first), then everything trains.
    ``validate(epoch)`` returns the validation mean AUC after each epoch.  Returns one dict per
    epoch: the :class:`EpochStats` fields plus ``val_mean_auc``.
    """
    trainer = engine.trainer(net, spec, config)
    history: list[dict] = []
    try:
        for epoch in range(config.epochs):
            if frozen and freeze_epochs and epoch in (0, freeze_epochs):
                engine.freeze(net, frozen if epoch < freeze_epochs else None)
                log.info("epoch %d: %s %d layers", epoch + 1, "freezing" if epoch < freeze_epochs else "unfreezing",
                         len(frozen))
            stats: EpochStats = trainer.train_epoch(epoch_data(epoch), epoch)
            val = validate(epoch) if validate is not None else None
            history.append({**asdict(stats), "val_mean_auc": val})
            log.info("epoch %d/%d: loss %s, %.1f images/s, lr %s, validation mean AUC %s", epoch + 1, config.epochs,
                     "n/a" if stats.loss is None else f"{stats.loss:.4f}", stats.images_per_s,
                     "n/a" if stats.learning_rate is None else f"{stats.learning_rate:.3g}",
                     "n/a" if val is None else f"{val:.4f}")
    finally:
        trainer.close()
    return history
