"""The driver side of a torch training run: one Spark barrier stage per epoch, state kept on the driver.

Each epoch the rows are dealt over ``workers`` partitions (once per distinct set of rows, round-robin
in the frame's order, so that a rerun puts every image where it was; cached), the driver broadcasts its state
blob (weights and optimizer slots, :mod:`cxrzoo.engine.torch_state`), and a barrier ``mapInArrow``
trains the epoch with DDP (:mod:`cxrzoo.engine.torch_worker`).  Rank 0's new state comes back and
becomes the driver's; every rank's losses and step times become the epoch's statistics and the
TensorBoard summaries.  A failed stage (a killed worker) raises :class:`EpochFailedError`: the
driver still holds the state of the epoch's start, and the loop retries from its last checkpoint.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cxrzoo.engine.base import EpochData, EpochFailedError, EpochStats, TrainConfig, Trainer
from cxrzoo.engine.tfevents import SummaryWriter, read_scalars
from cxrzoo.engine.torch_worker import RESULT_SCHEMA, EpochJob, run_task
from cxrzoo.models.spec import NetSpec
from cxrzoo.models.weights import load_safetensors, load_weights, save_safetensors, save_weights
from cxrzoo.errors import InputError, JobFailedError

log = logging.getLogger(__name__)


def _partition_keys(spark: Any, n: int) -> list[int]:
    """For each partition ``p < n``, a long that ``repartition(n, col)`` (Murmur3 hash mod n) sends to ``p``."""
    from pyspark.sql import functions as F

    rows = (spark.range(0, 64 * n + 64).select("id", F.pmod(F.hash("id"), F.lit(n)).alias("p"))
            .groupBy("p").agg(F.min("id").alias("id")).collect())
    keys = {r.p: r.id for r in rows}
    if len(keys) < n:
        raise JobFailedError(f"no key found for some of {n} partitions")
    return [keys[p] for p in range(n)]


def _reason(e: BaseException) -> str:
    """The telling line of a failed Spark job's error (why the task died, not py4j's call site)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for marker in ("Python worker exited", "Job aborted", "Caused by:", "Error:", "Exception:"):
        hit = next((ln for ln in lines if marker in ln and "py4j" not in ln), None)
        if hit:
            return hit[:300]
    return (lines or [type(e).__name__])[0][:300]


class TorchTrainer(Trainer):
    """Epoch-at-a-time DDP training of a :class:`~cxrzoo.engine.torch_net.SpecNet` over Spark barrier tasks."""

    def __init__(self, net: Any, spec: NetSpec, config: TrainConfig, engine: Any) -> None:
        from pyspark import SparkContext

        self.net, self.spec, self.config, self.engine = net, spec, config, engine
        self._sc = SparkContext._active_spark_context
        self._lr = config.learning_rate
        self._blob = b""  # weights and optimizer state at the end of the last epoch (b"": the net's, no moments)
        self._frame = None
        self._frame_key = None
        self._own_summary = config.summary_dir is None
        self._summary_dir = Path(config.summary_dir or tempfile.mkdtemp(prefix="cxrzoo-summary-"))
        self._train_dir = self._summary_dir / config.app_name / "train"
        self._val_dir = self._summary_dir / config.app_name / "validation"
        self._writer: SummaryWriter | None = None
        self._val_writer: SummaryWriter | None = None
        self._iterations = len(read_scalars(self._train_dir, "Loss")) if self._train_dir.is_dir() else 0
        self._layout = engine.layout(self._sc)

    def set_learning_rate(self, rate: float) -> None:
        self._lr = float(rate)

    def _spread(self, data: EpochData) -> Any:
        """The rows dealt round-robin over exactly ``workers`` partitions (sizes differ by at most one), each
        partition in the frame's order; cached while the rows stay the same (augmentation differs per epoch,
        rows do not).  Done in the JVM: the rows reach the Python workers only as the barrier stage's Arrow
        batches."""
        if data.rows_key == self._frame_key and self._frame is not None:
            return self._frame
        self._drop_frame()
        from pyspark.sql import functions as F

        n = self._layout.workers
        frame = data.frame.withColumn("_cxr_pid", F.spark_partition_id()).withColumn(
            "_cxr_pos", F.monotonically_increasing_id().bitwiseAND((1 << 33) - 1))  # row number in its partition
        counts = {r[0]: r[1] for r in frame.groupBy("_cxr_pid").count().collect()}
        total = sum(counts.values())
        if total < n:
            raise InputError(f"{total} training rows for {n} torch workers: every worker needs at least one row")
        offsets, acc = {}, 0
        for pid in sorted(counts):
            offsets[pid], acc = acc, acc + counts[pid]
        offset = F.element_at(F.array(*[F.lit(offsets.get(p, 0)) for p in range(max(counts) + 1)]),
                              F.col("_cxr_pid") + 1)
        index = (offset + F.col("_cxr_pos")).alias("_cxr_index")
        # a value per worker whose hash puts it in that worker's partition: repartition(n, col) then deals exactly
        keys = _partition_keys(data.frame.sparkSession, n)
        target = F.element_at(F.array(*[F.lit(k) for k in keys]), (F.col("_cxr_index") % n).cast("int") + 1)
        dealt = (frame.select("*", index).withColumn("_cxr_target", target).repartition(n, "_cxr_target")
                 .sortWithinPartitions("_cxr_index").drop("_cxr_pid", "_cxr_pos", "_cxr_index", "_cxr_target"))
        self._frame, self._frame_key = dealt.persist(), data.rows_key
        return self._frame

    def _drop_frame(self) -> None:
        if self._frame is not None:
            self._frame.unpersist()
        self._frame, self._frame_key = None, None

    def _job(self, data: EpochData, epoch: int) -> EpochJob:
        c, e = self.config, self.engine
        return EpochJob(spec=self.spec, decode=data.decode, epoch=epoch, seed=c.seed, batch_size=c.batch_size,
                        optimizer=c.optimizer, learning_rate=self._lr, momentum=c.momentum, nesterov=c.nesterov,
                        class_weights=c.class_weights, precision=e.resolved_precision(), channels_last=True,
                        threads=self._layout.threads, frozen=tuple(getattr(self.net, "cxr_frozen", ()) or ()),
                        compile=e.compile)

    def train_epoch(self, data: EpochData, epoch: int) -> EpochStats:
        from cxrzoo.engine.torch_state import load_into, pack_state

        import torch

        if self.config.batch_size % self._layout.workers:
            raise InputError(f"batchSize {self.config.batch_size} does not split over the {self._layout.workers} "
                             "torch workers the cluster has now; use a multiple of it")
        frame = self._spread(data)
        blob = self._blob or pack_state(torch, self.net, None)
        self._check_result_size(len(blob))
        state = self._sc.broadcast(blob)
        job = self._job(data, epoch)
        t0 = time.perf_counter()
        self._sc.setJobDescription(f"cxrzoo train: epoch {epoch + 1}/{self.config.epochs}")  # in Spark's UI
        try:
            rows = frame.mapInArrow(lambda batches: run_task(batches, job, state.value), RESULT_SCHEMA,
                                    barrier=True).collect()
        except Exception as e:  # noqa: BLE001 - py4j/Spark errors of a failed stage
            raise EpochFailedError(f"torch epoch {epoch + 1} failed: {_reason(e)}") from e
        finally:
            self._sc.setJobDescription(None)
            state.destroy()
        seconds = time.perf_counter() - t0
        stats = [json.loads(r.payload) for r in rows if r.part == -1]
        parts = sorted((r.part, r.payload) for r in rows if r.rank == 0 and r.part >= 0)
        if len(stats) != self._layout.workers or not parts:
            raise EpochFailedError(f"torch epoch {epoch + 1}: {len(stats)} of {self._layout.workers} workers "
                                   "reported")
        self._blob = b"".join(p for _, p in parts)
        load_into(torch, self.net, None, self._blob)
        self.net.cxr_version = getattr(self.net, "cxr_version", 0) + 1  # predict() broadcasts the new weights
        return self._record(epoch, stats, seconds)

    def _check_result_size(self, state_bytes: int) -> None:
        """The state comes back through ``collect()``: refuse now, not after the epoch, if it cannot."""
        limit = _bytes(self._sc.getConf().get("spark.driver.maxResultSize", "1g"))
        need = int(state_bytes * 1.5) + (16 << 20)  # Adam's moments double the weights the first epoch
        if limit and need > limit:
            raise InputError(f"the training state (~{need >> 20} MB with Adam's moments) exceeds "
                             f"spark.driver.maxResultSize ({limit >> 20} MB); start Spark with "
                             f"spark.driver.maxResultSize={max(2, (need >> 30) + 1)}g (or 0)")

    def _record(self, epoch: int, stats: list[dict], seconds: float) -> EpochStats:
        losses = np.mean([s["losses"] for s in stats], axis=0) if stats[0]["losses"] else np.zeros(0)
        times = np.max([s["times"] for s in stats], axis=0) if stats[0]["times"] else np.zeros(0)
        thr = tuple(float(self.config.batch_size / t) for t in times)
        if self._writer is None:
            self._writer = SummaryWriter(self._train_dir)
        for i, (loss, t) in enumerate(zip(losses, thr)):
            self._iterations += 1
            self._writer.add_scalars(self._iterations, {"Loss": float(loss), "LearningRate": self._lr,
                                                        "Throughput": t})
        return EpochStats(epoch=epoch, images=len(losses) * self.config.batch_size, seconds=seconds,
                          loss=float(np.mean(losses)) if len(losses) else None, learning_rate=self._lr,
                          steady_images_per_s=float(np.median(thr[1:])) if len(thr) > 1 else None,
                          iteration_images_per_s=thr)

    def save_state(self, path: Path) -> None:
        """``weights.safetensors`` (engine-neutral), ``optim.safetensors`` (each parameter's optimizer slots,
        keyed ``<parameter>/<slot>``) and ``optim.json`` (optimizer, learning rate, steps taken)."""
        from cxrzoo.engine.torch_state import unpack

        _, slots, _ = unpack(self._blob) if self._blob else ({}, {}, {})
        save_weights(path / "weights.safetensors", self.engine.weights(self.net, self.spec))
        save_safetensors(path / "optim.safetensors", {f"{n}/{k}": v for n, d in slots.items() for k, v in d.items()},
                         {"format": "cxrzoo-torch-optim/1"})
        steps = sorted({int(np.asarray(d["step"]).reshape(-1)[0]) for d in slots.values() if "step" in d})
        (path / "optim.json").write_text(json.dumps({"engine": "torch", "optimizer": self.config.optimizer,
                                                     "learning_rate": self._lr, "steps": steps,
                                                     "iterations": self._iterations}) + "\n")

    def load_state(self, path: Path) -> None:
        import torch

        from cxrzoo.engine.torch_state import pack_state

        meta = json.loads((path / "optim.json").read_text()) if (path / "optim.json").exists() else {}
        if meta.get("engine") != "torch":
            raise InputError(f"{path}: not a checkpoint of the torch engine ({meta.get('engine') or 'BigDL'}'s); "
                             "resume it with that engine or use a new checkpointDir")
        if meta.get("optimizer") != self.config.optimizer:
            raise InputError(f"{path}: optimizer state of {meta.get('optimizer')!r}, this run uses "
                             f"{self.config.optimizer!r}; use a new checkpointDir")
        self.engine.set_weights(self.net, self.spec, load_weights(path / "weights.safetensors"))
        slots: dict[str, dict[str, np.ndarray]] = {}
        for key, arr in load_safetensors(path / "optim.safetensors").items():
            name, _, slot = key.rpartition("/")
            slots.setdefault(name, {})[slot] = arr
        self._blob = pack_state(torch, self.net, None, slots=slots)
        self.net.cxr_version = getattr(self.net, "cxr_version", 0) + 1
        self._lr = meta["learning_rate"]
        self._iterations = int(meta.get("iterations", self._iterations))  # summaries continue from there

    def recover(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        want = self._layout.workers
        while time.monotonic() < deadline:
            self._layout = self.engine.layout(self._sc)
            if self._layout.workers >= want:
                break
            time.sleep(2.0)
        if self._layout.workers != want:
            log.warning("%d of %d torch workers available; retrying with %d", self._layout.workers, want,
                        self._layout.workers)
        self._drop_frame()

    def record_validation(self, epoch: int, metrics: dict[str, float]) -> None:
        if self._val_writer is None:
            self._val_writer = SummaryWriter(self._val_dir)
        self._val_writer.add_scalars(self._iterations, {k: float(v) for k, v in metrics.items() if v is not None})

    def close(self) -> None:
        self._drop_frame()
        for w in (self._writer, self._val_writer):
            if w is not None:
                w.close()
        self._writer = self._val_writer = None
        if self._own_summary:
            shutil.rmtree(self._summary_dir, ignore_errors=True)


def _bytes(text: str) -> int:
    """A Spark size ('1g', '512m', '4096k', '0') in bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kmgt]?)b?", text.strip().lower())
    if m is None:
        raise InputError(f"not a Spark size: {text!r}")
    return int(float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2)])
