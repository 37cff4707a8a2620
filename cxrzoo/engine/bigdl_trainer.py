"""One BigDL training run, driven an epoch at a time.

BigDL's ``DistriOptimizer`` trains synchronous data-parallel SGD over the Spark
cluster (one model replica per executor core; gradients are aggregated every
iteration through the block manager).  It is created once per run with
``reserveOptim(true)``, so that every :meth:`BigDLTrainer.train_epoch` call
continues the same optimizer — Adam moments, iteration and epoch counters —
while the training data may be a new RDD each epoch (per-epoch augmentation).
BigDL caches each training RDD it is given; the previous epoch's copy is
unpersisted when the next one replaces it.  Loss and learning rate per iteration
are read back from BigDL's ``TrainSummary`` (TensorBoard format).
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from typing import Any

import numpy as np
from pyspark.rdd import RDD

from cxrzoo.engine.base import EpochStats, TrainConfig, Trainer
from cxrzoo.models.spec import NetSpec

log = logging.getLogger(__name__)


def _to_sample(pair):
    from bigdl.dllib.utils.common import Sample

    x, y = pair
    return Sample.from_ndarray(np.asarray(x, np.float32), np.asarray(y, np.float32))


def _persistent_ids(sc) -> set[int]:
    return {int(k) for k in sc._jsc.getPersistentRDDs().keys()}


def _unpersist(sc, ids: set[int]) -> None:
    jmap = sc._jsc.getPersistentRDDs()
    for rid in ids:
        if rid in jmap:
            jmap[rid].unpersist(False)


class BigDLTrainer(Trainer):
    """Epoch-at-a-time training of a BigDL graph with MultiLabelSoftMarginCriterion on the 14 logits."""

    def __init__(self, net: Any, spec: NetSpec, config: TrainConfig, summary_dir: str | None = None) -> None:
        self.net, self.spec, self.config = net, spec, config
        self._opt = None
        self._data: RDD | None = None
        self._cached: set[int] = set()
        self._own_summary = summary_dir is None
        self._summary_dir = summary_dir or tempfile.mkdtemp(prefix="cxrzoo-summary-")
        self._summary = None
        self._iterations = 0

    def _optim_method(self):
        from bigdl.dllib.optim.optimizer import SGD, Adam

        c = self.config
        if c.optimizer == "adam":
            return Adam(learningrate=c.learning_rate)
        return SGD(learningrate=c.learning_rate, momentum=0.9, nesterov=True, dampening=0.0)

    def train_epoch(self, data: RDD, epoch: int) -> EpochStats:
        from bigdl.dllib.nn.criterion import MultiLabelSoftMarginCriterion
        from bigdl.dllib.optim.optimizer import MaxEpoch, Optimizer, TrainSummary

        sc = data.context
        before = _persistent_ids(sc)
        new_data = data is not self._data
        samples = data.map(_to_sample) if new_data else None
        if self._opt is None:
            self._opt = Optimizer.create(self.net, samples, MultiLabelSoftMarginCriterion(), MaxEpoch(epoch + 1),
                                         self.config.batch_size, self._optim_method())
            self._opt.value.reserveOptim(True)  # keep optimizer state across optimize() calls
            self._summary = TrainSummary(self._summary_dir, "cxrzoo")
            self._opt.set_train_summary(self._summary)
        else:
            if new_data:
                self._opt.set_traindata(samples, self.config.batch_size)
            self._opt.set_end_when(MaxEpoch(epoch + 1))
        t0 = time.perf_counter()
        self._opt.optimize()
        seconds = time.perf_counter() - t0
        if new_data:  # drop the previous epoch's cached training set; keep this one for reuse
            _unpersist(sc, self._cached)
            self._cached = _persistent_ids(sc) - before
            self._data = data
        loss = self._summary.read_scalar("Loss")
        lr = self._summary.read_scalar("LearningRate")
        thr = self._summary.read_scalar("Throughput")
        steady = [v[1] for v in thr[self._iterations + 1:]] if len(thr) > self._iterations + 1 else []
        new = loss[self._iterations:] if len(loss) else loss
        n_iter = len(new)
        self._iterations = len(loss)
        mean_loss = float(np.mean([v[1] for v in new])) if n_iter else None
        last_lr = float(lr[-1][1]) if len(lr) else None
        return EpochStats(epoch=epoch, images=n_iter * self.config.batch_size, seconds=seconds, loss=mean_loss,
                          learning_rate=None if last_lr is None else abs(last_lr),
                          steady_images_per_s=float(np.median(steady)) if steady else None)

    def close(self) -> None:
        if self._data is not None:
            _unpersist(self._data.context, self._cached)
        self._cached.clear()
        self._opt = None
        if self._own_summary:
            shutil.rmtree(self._summary_dir, ignore_errors=True)
