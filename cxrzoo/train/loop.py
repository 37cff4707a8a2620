"""The epoch loop: LR schedule, freeze policy, validation, checkpoints, resume and retry after failures.

One engine trainer runs the whole loop; each epoch gets fresh (augmented) data, the learning rate the
schedule gives, and ends with one log line (loss, images/s, LR, validation AUC).  With a checkpoint
directory, the state after every ``checkpoint_interval`` epochs is written atomically; a run started
again on the same directory resumes from the newest checkpoint and ends after the same number of
epochs, and an epoch that fails (an executor lost mid-way) is retried from the last checkpoint.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from cxrzoo.engine.base import Engine, EpochData, EpochFailedError, EpochStats, TrainConfig, Trainer
from cxrzoo.models.spec import NetSpec
from cxrzoo.train.checkpoint import CheckpointDir
from cxrzoo.train.schedule import LRSchedule

log = logging.getLogger(__name__)
progress_log = logging.getLogger("cxrzoo.train.progress")  # one record per epoch, carrying its history entry

Validator = Callable[[int], dict]


@dataclass
class LoopOptions:
    """How to drive the epochs (everything but the network and its data).

    ``validate(epoch)`` returns ``{"mean_auc": …, "loss": …}`` on the validation set.  Each epoch's
    log record carries its history entry as ``epoch_record`` (progress bars listen to it).  With
    ``keep_best`` (and ``validate``) the network ends with the weights of the epoch of the highest
    validation mean AUC (the first of equals), whose checkpoint is written and kept for that.
    """

    schedule: LRSchedule | None = None
    frozen: list[str] | None = None
    freeze_epochs: int = 0
    validate: Validator | None = None
    checkpoint: CheckpointDir | None = None
    checkpoint_interval: int = 1
    fingerprint: dict = field(default_factory=dict)
    retries: int = 2
    keep_best: bool = False


class _Run:
    """The mutable state of a loop: where it is, the schedule, the history."""

    def __init__(self, trainer: Trainer, config: TrainConfig, opts: LoopOptions) -> None:
        self.trainer, self.config, self.opts = trainer, config, opts
        self.schedule = opts.schedule or LRSchedule("constant", peak=config.learning_rate, epochs=config.epochs)
        self.history: list[dict] = []
        self.epoch = 0
        self.best: dict | None = None  # {"epochs_done", "val_mean_auc"} of the best epoch so far

    def restore(self, resumed: bool) -> bool:
        """Continue from the newest checkpoint, if any."""
        ck = self.opts.checkpoint
        found = ck.check(self.opts.fingerprint) if ck is not None else None
        if found is None:
            return False
        path, state = found
        self.trainer.load_state(path)
        self.schedule = LRSchedule.from_dict({**state["schedule"], "epochs": self.config.epochs})
        self.history = state["history"]
        self.epoch = int(state["epochs_done"])
        self.best = state.get("best")
        if resumed:
            log.info("resuming from %s: %d of %d epochs done", path, self.epoch, self.config.epochs)
        return True

    def save(self) -> None:
        ck = self.opts.checkpoint
        if ck is not None:
            state = {"schedule": self.schedule.to_dict(), "history": self.history, "fingerprint": self.opts.fingerprint,
                     "best": self.best}
            ck.write(self.epoch, state, self.trainer.save_state, protect=self.best and self.best["epochs_done"])

    def improved(self, record: dict) -> bool:
        """Whether ``record`` (just appended) is the new best epoch by validation mean AUC; remember it."""
        auc = record.get("val_mean_auc")
        if not self.opts.keep_best or auc is None or (self.best is not None and auc <= self.best["val_mean_auc"]):
            return False
        self.best = {"epochs_done": self.epoch + 1, "val_mean_auc": float(auc)}
        return True

    def select_best(self, engine: Engine, net: Any, spec: NetSpec) -> None:
        """End on the best epoch's weights (its checkpoint), marking its history entry ``selected``."""
        if not self.opts.keep_best or self.best is None or self.opts.checkpoint is None:
            return
        done = int(self.best["epochs_done"])
        for h in self.history:
            h["selected"] = int(h["epoch"]) + 1 == done
        if done != self.epoch:
            from cxrzoo.models.weights import load_weights

            path = self.opts.checkpoint.fetch(done)
            engine.set_weights(net, spec, load_weights(path / "weights.safetensors"))
            log.info("kept epoch %d of %d: the best validation mean AUC (%.4f)", done, self.epoch,
                     self.best["val_mean_auc"])


def _log_epoch(record: dict, epochs: int) -> None:
    loss, val, lr = record["loss"], record["val_mean_auc"], record["learning_rate"]
    progress_log.info("epoch %d/%d: loss %s, %.1f images/s, lr %s, validation mean AUC %s", record["epoch"] + 1,
                      epochs, "n/a" if loss is None else f"{loss:.4f}", record["images_per_s"],
                      "n/a" if lr is None else f"{lr:.3g}", "n/a" if val is None else f"{val:.4f}",
                      extra={"epoch_record": record})


def run_epochs(engine: Engine, net: Any, spec: NetSpec, config: TrainConfig,
               epoch_data: Callable[[int], EpochData], opts: LoopOptions | None = None) -> list[dict]:
    """Train ``net`` up to ``config.epochs`` epochs on ``epoch_data(epoch)``; return one dict per epoch.

    ``epoch_data`` may return the same data every epoch (fixed features; the engine keeps its
    cached copy) or new data (augmentation that differs per epoch).  The layers ``opts.frozen``
    are not updated during the first ``opts.freeze_epochs`` epochs.  Each returned dict holds the
    :class:`EpochStats` fields, ``images_per_s``, ``val_mean_auc`` and ``val_loss``.
    """
    opts = opts or LoopOptions()
    trainer = engine.trainer(net, spec, config)
    run = _Run(trainer, config, opts)
    failures = 0
    try:
        if not run.restore(resumed=True):
            run.save()  # epoch 0: what a failure in the first epoch goes back to
        frozen_now = None
        while run.epoch < config.epochs:
            epoch = run.epoch
            if opts.frozen and opts.freeze_epochs:
                want = epoch < opts.freeze_epochs
                if want != frozen_now:
                    engine.freeze(net, opts.frozen if want else None)
                    log.info("epoch %d: %s %d layers", epoch + 1, "freezing" if want else "unfreezing",
                             len(opts.frozen))
                    frozen_now = want
            trainer.set_learning_rate(run.schedule.rate(epoch))
            try:
                stats: EpochStats = trainer.train_epoch(epoch_data(epoch), epoch)
            except EpochFailedError as e:
                if opts.checkpoint is None or failures >= opts.retries:
                    raise
                failures += 1
                log.warning("epoch %d failed (%s); retry %d of %d from the last checkpoint", epoch + 1,
                            str(e).strip().splitlines()[0][:200], failures, opts.retries)
                trainer.recover()
                run.restore(resumed=False)
                continue
            metrics = opts.validate(epoch) if opts.validate is not None else {}
            record = {**asdict(stats), "images_per_s": stats.images_per_s,
                      "val_mean_auc": metrics.get("mean_auc"), "val_loss": metrics.get("loss")}
            run.schedule.observe(epoch, {"loss": stats.loss, "val_loss": record["val_loss"]})
            if metrics:
                trainer.record_validation(epoch, {"MeanAUC": record["val_mean_auc"], "Loss": record["val_loss"]})
            run.history.append(record)
            _log_epoch(record, config.epochs)
            better = run.improved(record)
            run.epoch += 1
            if better or run.epoch % max(1, opts.checkpoint_interval) == 0 or run.epoch == config.epochs:
                run.save()
        run.select_best(engine, net, spec)
    finally:
        trainer.close()
        if opts.checkpoint is not None:
            opts.checkpoint.release()
    return run.history
