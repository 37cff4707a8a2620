"""One BigDL training run, driven an epoch at a time.

BigDL's ``DistriOptimizer`` trains synchronous data-parallel SGD over the Spark
cluster (one model replica per executor core; gradients are aggregated every
iteration through the block manager).  It is created once per run with
``reserveOptim(true)`` and each :meth:`BigDLTrainer.train_epoch` call continues the
same optimizer — Adam moments, iteration and epoch counters, kept on the driver between
epochs — while the training data may be a new RDD each epoch (per-epoch augmentation).
BigDL caches each training RDD it is given; the previous epoch's copy is
unpersisted when the next one replaces it.  Loss and learning rate per iteration
are read back from BigDL's ``TrainSummary`` (TensorBoard format).
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.rdd import RDD

from cxrzoo.engine import bigdl_jvm as jvmu
from cxrzoo.engine import bigdl_optim
from cxrzoo.engine.bigdl_session import quiet_class
from cxrzoo.engine.base import EpochData, EpochFailedError, EpochStats, TrainConfig, Trainer
from cxrzoo.models.spec import NetSpec
from cxrzoo.models.weights import load_weights, save_weights

log = logging.getLogger(__name__)


def _to_sample(pair):
    from bigdl.dllib.utils.common import Sample

    x, y = pair
    return Sample.from_ndarray(np.asarray(x, np.float32), np.asarray(y, np.float32))


def _weighted_targets(w_pos: np.ndarray, w_neg: np.ndarray):
    """Map labels y to signed weights t = y·w+ − (1−y)·w− (what :func:`_weighted_bce` expects); an unknown
    label (NaN, :mod:`cxrzoo.targets`) to t = 0, which adds nothing to the loss or its gradient."""
    def encode(pair):
        x, y = pair
        y = np.asarray(y, np.float32)
        unknown = np.isnan(y)
        y0 = np.where(unknown, 0.0, y)
        return x, np.where(unknown, 0.0, y0 * w_pos - (1.0 - y0) * w_neg).astype(np.float32)
    return encode


def _weighted_bce(num_classes: int):
    """BCE on logits with per-class positive/negative weights carried by the target's sign and size.

    ``loss = mean(relu(t)·softplus(−z) + relu(−t)·softplus(z))``: for t = w+ (a positive) that is
    −w+·log σ(z), for t = −w− (a negative) −w−·log(1 − σ(z)).  Built with BigDL's autograd, so the
    gradient is BigDL's own.

    The autograd loss is wrapped in a ``TransformerCriterion`` (no transformers): on MKL-DNN, BigDL's
    training step back-propagates the criterion's stored ``gradInput`` field rather than the gradient
    ``backward`` returns, and ``CustomLoss`` never stores it (it stays empty, which the DNN graph reads
    as zeros: the net would not learn).  The wrapper stores the real gradient, and its loss is the
    wrapped one (``MultiCriterion`` would store it too, but sums its output across calls).  The
    wrapper takes ``forward(input=z, target=t)``, the usual criterion order.
    """
    import bigdl.dllib.keras.autograd as A
    from bigdl.dllib.nn.criterion import TransformerCriterion

    def loss(t, z):
        pos = (t + A.abs(t)) * 0.5
        neg = (A.abs(t) - t) * 0.5
        return A.mean(pos * A.softplus(-z) + neg * A.softplus(z), axis=1)

    return TransformerCriterion(A.CustomLoss(loss, [num_classes]))


@quiet_class
class BigDLTrainer(Trainer):
    """Epoch-at-a-time training of a BigDL graph with BCE on the 14 logits.

    Optimizer state between epochs lives on the driver: after each ``optimize()`` the
    per-partition optim methods (each holds the Adam moments of its slice of the parameters)
    are collected, and before the next they are handed back to BigDL as ``previousOptim`` —
    with the learning rate of the coming epoch.  That makes the LR schedule, checkpoints of the
    full optimizer state, and retries after a lost executor possible.
    """

    def __init__(self, net: Any, spec: NetSpec, config: TrainConfig, engine: Any) -> None:
        from pyspark import SparkContext

        self.net, self.spec, self.config, self.engine = net, spec, config, engine
        self._sc = SparkContext._active_spark_context
        self._opt = None
        self._data: RDD | None = None
        self._data_key = None
        self._cached: set[int] = set()
        self._own_summary = config.summary_dir is None
        self._summary_dir = config.summary_dir or tempfile.mkdtemp(prefix="cxrzoo-summary-")
        self._summary = None
        self._val_summary = None
        self._optim = self._optim_method()
        self._parts = None  # java.util.ArrayList of per-partition Map[name, OptimMethod]
        self._state_rdd = None  # the cached RDD handing self._parts to BigDL
        self._lr = config.learning_rate
        self._executors = jvmu.block_managers(self._sc)
        self._iterations = 0

    def _optim_method(self):
        from bigdl.dllib.optim.optimizer import SGD, Adam

        c = self.config
        if c.optimizer == "adam":
            return Adam(learningrate=c.learning_rate)
        return SGD(learningrate=c.learning_rate, momentum=c.momentum, nesterov=c.nesterov, dampening=0.0)

    def _criterion(self):
        from bigdl.dllib.nn.criterion import MultiLabelSoftMarginCriterion

        if self.config.class_weights is None and not self.config.masked:
            return MultiLabelSoftMarginCriterion()
        return _weighted_bce(self.spec.num_classes)

    def _samples(self, data: RDD) -> RDD:
        if self.config.class_weights is not None or self.config.masked:
            k = self.spec.num_classes  # unweighted but masked: weights of 1, the same BCE as MultiLabelSoftMargin
            w_pos, w_neg = ((np.asarray(w, np.float32) for w in self.config.class_weights)
                            if self.config.class_weights is not None else (np.ones(k, np.float32),) * 2)
            data = data.map(_weighted_targets(w_pos, w_neg))
        return data.map(_to_sample)

    def set_learning_rate(self, rate: float) -> None:
        self._lr = float(rate)

    def _push_optim_state(self) -> None:
        """Give BigDL the optimizer state of the previous epoch, at the current learning rate.

        BigDL zips its cached model replicas with ``previousOptim`` on every iteration and mutates
        the optim method it finds there, so partition i's state must be one cached object on the
        executor that holds model replica i — which BigDL builds where training partition i is
        cached.  The training data is cached first, then each state object is cached next to its
        partition.  A state read anywhere else would be a fresh copy whose updates are dropped.
        """
        getattr(self._optim.value, "learningRate_$eq")(self._lr)
        if self._parts is None:
            return
        for m in self._parts:
            for method in jvmu.scala_values(m):
                getattr(method, "learningRate_$eq")(self._lr)
        opt = self._opt.value
        opt.prepareInput()  # caches the training data now (optimize() would)
        where = jvmu.block_executors(self._sc, opt.dataset().toDistributed().originRDD())
        rdd = jvmu.cache_at(self._sc, list(self._parts), where)
        placed = jvmu.block_executors(self._sc, rdd)
        if placed != where:
            log.warning("optimizer state placed at %s, training partitions at %s", placed, where)
        getattr(opt, "previousOptim_$eq")(rdd)
        self._state_rdd = rdd

    def _pull_optim_state(self) -> None:
        """Collect the per-partition optimizer state BigDL left and check every partition kept its updates."""
        prev = self._opt.value.previousOptim()
        parts = self._sc._jvm.java.util.ArrayList()
        for m in prev.collect():
            parts.add(m)
        prev.unpersist(False)
        if self._state_rdd is not None:
            self._state_rdd.unpersist(False)
            self._state_rdd = None
        # each optimize() broadcasts the model anew; let Spark's ContextCleaner drop the old broadcasts
        # now (it acts on garbage-collected references) rather than let the driver heap grow per epoch
        self._sc._jvm.System.gc()
        steps = jvmu.option_value(self._optim.value.state().get("neval"))
        counts = jvmu.step_counts(parts)
        if steps is not None and any(c != steps - 1 for c in counts):
            # a partition's updates went to a copy of its state, not the cached one: Adam's moments
            # fell behind; the epoch must be redone from the last checkpoint
            raise EpochFailedError(f"optimizer state of some partitions missed updates: {counts} steps "
                                   f"recorded, {steps - 1} taken")
        self._parts = parts

    def train_epoch(self, data: EpochData, epoch: int) -> EpochStats:
        from py4j.protocol import Py4JError

        try:
            return self._train_epoch(data.pairs() if data.key != self._data_key else self._data, epoch, data.key)
        except Py4JError as e:  # a failed Spark job inside BigDL (lost executor, killed task)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise EpochFailedError(f"BigDL's epoch {epoch + 1} failed: {first}") from e

    def _train_epoch(self, data: RDD, epoch: int, key: Any) -> EpochStats:
        from bigdl.dllib.optim.optimizer import MaxEpoch, Optimizer, SeveralIteration, TrainSummary

        sc = data.context
        before = jvmu.persistent_ids(sc)
        new_data = data is not self._data
        samples = self._samples(data) if new_data else None
        if self._opt is None:
            if samples is None:
                samples = self._samples(data)
            self._opt = Optimizer.create(self.net, samples, self._criterion(), MaxEpoch(epoch + 1),
                                         self.config.batch_size, self._optim)
            self._opt.value.reserveOptim(True)
            if jvmu.node_number(sc) == 1:
                # one node: weights and gradients never leave the JVM, so BigDL's default fp16 compression
                # of both buys nothing and costs four conversions of every parameter per iteration
                self._opt.value.setCompressType("none")
            if self._summary is None:
                self._summary = TrainSummary(self._summary_dir, self.config.app_name)
                self._summary.set_summary_trigger("LearningRate", SeveralIteration(1))
                self._iterations = len(self._summary.read_scalar("Loss"))  # a resumed run appends
            self._opt.set_train_summary(self._summary)
        else:
            if new_data:
                self._opt.set_traindata(samples, self.config.batch_size)
            self._opt.set_end_when(MaxEpoch(epoch + 1))
        self._push_optim_state()
        executors = jvmu.executor_ids(sc)
        t0 = time.perf_counter()
        sc.setJobDescription(f"cxrzoo train: epoch {epoch + 1}/{self.config.epochs}")  # in Spark's UI
        try:
            self._opt.optimize()
        finally:
            sc.setJobDescription(None)
        seconds = time.perf_counter() - t0
        if new_data:  # drop the previous epoch's cached training set; keep this one for reuse
            jvmu.unpersist(sc, self._cached)
            self._cached = jvmu.persistent_ids(sc) - before
            self._data, self._data_key = data, key
        lost = executors - jvmu.executor_ids(sc)
        if lost:
            # Spark re-ran the lost tasks, but BigDL rebuilt that executor's slice of the weights from the
            # epoch's start: the epoch is inconsistent.  The loop retries it from the last checkpoint.
            raise EpochFailedError(f"executor(s) {sorted(lost)} lost during epoch {epoch + 1}")
        self._pull_optim_state()
        for fixed in getattr(self.net, "cxr_fixed_layers", []):
            fixed.apply()  # MKL-DNN ignores freeze: put the ReLU6 helpers back to their exact values
        return self._stats(epoch, seconds)

    def _stats(self, epoch: int, seconds: float) -> EpochStats:
        loss = self._summary.read_scalar("Loss")
        thr = [float(v[1]) for v in self._summary.read_scalar("Throughput")[self._iterations:]]
        steady = thr[1:]
        new = loss[self._iterations:] if len(loss) else loss
        n_iter = len(new)
        self._iterations = len(loss)
        mean_loss = float(np.mean([v[1] for v in new])) if n_iter else None
        return EpochStats(epoch=epoch, images=n_iter * self.config.batch_size, seconds=seconds, loss=mean_loss,
                          learning_rate=self._lr,
                          steady_images_per_s=float(np.median(steady)) if steady else None,
                          iteration_images_per_s=tuple(thr))

    def save_state(self, path: Path) -> None:
        save_weights(path / "weights.safetensors", self.engine.weights(self.net, self.spec))
        bigdl_optim.dump(path, self._optim.value, self._parts, jvmu.scala_values, self.config.optimizer)
        (path / "engine.json").write_text(json.dumps({"engine": "bigdl", "learning_rate": self._lr}) + "\n")

    def load_state(self, path: Path) -> None:
        driver, self._parts = bigdl_optim.load(path, lambda: self._optim_method().value, self.config.optimizer,
                                               self._sc)
        from bigdl.dllib.optim.optimizer import OptimMethod

        self.engine.set_weights(self.net, self.spec, load_weights(path / "weights.safetensors"))
        self._optim = OptimMethod(driver, "float")
        self._lr = json.loads((path / "engine.json").read_text())["learning_rate"]
        self._reset()

    def _reset(self) -> None:
        """Forget the DistriOptimizer (rebuilt on the next epoch) and its cached data."""
        if self._data is not None:
            jvmu.unpersist(self._sc, self._cached)
        self._cached.clear()
        self._data, self._data_key = None, None
        self._opt = None
        if self._summary is not None:
            self._iterations = len(self._summary.read_scalar("Loss"))

    def recover(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while jvmu.block_managers(self._sc) < self._executors and time.monotonic() < deadline:
            time.sleep(2.0)
        have = jvmu.block_managers(self._sc)
        if have < self._executors:
            log.warning("only %d of %d executors came back; retrying anyway", have - 1, self._executors - 1)
        self._reset()

    def record_validation(self, epoch: int, metrics: dict[str, float]) -> None:
        from bigdl.dllib.optim.optimizer import ValidationSummary

        if self._val_summary is None:
            self._val_summary = ValidationSummary(self._summary_dir, self.config.app_name)
        step = self._sc._jvm.java.lang.Long.valueOf(str(self._iterations))
        for tag, value in metrics.items():
            if value is not None:
                self._val_summary.value.addScalar(tag, float(value), step)

    def close(self) -> None:
        self._reset()
        self._parts = None
        if self._val_summary is not None:
            self._val_summary.value.close()
        if self._own_summary:
            shutil.rmtree(self._summary_dir, ignore_errors=True)
