"""Progress bars with an ETA for the CLI: over training epochs, and over the tasks of Spark jobs.

Both draw on :func:`cxrzoo.console.terminal` (the terminal's stderr under :func:`cxrzoo.console.quiet_console`),
redrawn in place on a terminal with log lines printed above them, one final line elsewhere.

The epoch bar listens to the epoch loop's log records (each carries its history entry as ``epoch_record``),
so training needs no callback outside its Params: ``with EpochProgress(10).attached(): est.fit(df)``.
The task bar reads Spark's status tracker for the jobs a block starts: ``with SparkProgress(spark, "ingest"):``.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from typing import Any, Iterator, TextIO

from cxrzoo.console import Terminal, terminal

EPOCH_LOGGER = "cxrzoo.train.progress"  # the epoch loop logs each epoch here, the record as ``epoch_record``


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _bar(fraction: float, width: int) -> str:
    fill = round(width * min(1.0, max(0.0, fraction)))
    return f"[{'#' * fill}{'-' * (width - fill)}]"


class EpochProgress(logging.Handler):
    """Call with each epoch's history record (or attach it to the epoch loop's logger).

    Draws ``[####------] 4/10 epochs … ETA``.  On a terminal each epoch's log line is printed above the
    bar; elsewhere the bar is written as one line per epoch.

    Parameters
    ----------
    epochs : int
        Epochs of the run.
    stream : file, optional
        Where to draw (default: :func:`cxrzoo.console.terminal`).
    width : int
        Characters of the bar.
    """

    def __init__(self, epochs: int, stream: TextIO | None = None, width: int = 24) -> None:
        super().__init__(level=logging.INFO)
        self.epochs, self.width = epochs, width
        self.term = Terminal(stream) if stream is not None else terminal()
        self._t0 = time.monotonic()
        self._last: float | None = None
        self._durations: list[float] = []

    def line(self, record: dict) -> str:
        """The bar after ``record`` (an epoch's history entry)."""
        done = int(record["epoch"]) + 1
        now = time.monotonic()
        # epoch wall time: between calls (training + validation + checkpoint); the first from its record
        self._durations.append(now - self._last if self._last is not None else float(record.get("seconds", 0.0)))
        self._last = now
        elapsed = now - self._t0
        eta = sum(self._durations) / len(self._durations) * (self.epochs - done)
        parts = [f"{_bar(done / max(1, self.epochs), self.width)} {done}/{self.epochs} epochs"]
        if record.get("loss") is not None:
            parts.append(f"loss {record['loss']:.4f}")
        if record.get("val_mean_auc") is not None:
            parts.append(f"val AUC {record['val_mean_auc']:.4f}")
        if record.get("learning_rate") is not None:
            parts.append(f"lr {record['learning_rate']:.2g}")
        parts.append(f"{record.get('images_per_s', 0.0):.1f} img/s")
        parts.append(f"elapsed {_duration(elapsed)}" + (f", ETA {_duration(eta)}" if done < self.epochs else ""))
        return "  ".join(parts)

    def __call__(self, record: dict, message: str | None = None) -> None:
        text = self.line(record)
        if not self.term.tty:
            self.term.line(text)
            return
        if message:
            self.term.line(message)
        if int(record["epoch"]) + 1 >= self.epochs:
            self.term.end_bar(None if message else text)
        else:
            self.term.bar(text)

    def emit(self, record: logging.LogRecord) -> None:
        """Draw the bar for a log record of the epoch loop that carries an epoch's history entry."""
        entry = getattr(record, "epoch_record", None)
        if entry is not None:
            record.cxrzoo_drawn = True  # the console handler leaves it to the bar
            self(entry, record.getMessage())

    @contextlib.contextmanager
    def attached(self) -> Iterator["EpochProgress"]:
        """Draw the bar for every epoch the loop logs while the block runs."""
        logger = logging.getLogger(EPOCH_LOGGER)
        hidden = not logger.isEnabledFor(logging.INFO)  # e.g. `cxrzoo -q`: draw the bar, not the log line
        level, propagate = logger.level, logger.propagate
        if hidden:
            logger.setLevel(logging.INFO)
            logger.propagate = False
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.propagate = propagate


class SparkProgress:
    """A bar over the tasks of the Spark jobs started inside the block, with an ETA, from the status tracker.

    The block's jobs run in a job group of their own (the thread's previous group comes back after it).

    Parameters
    ----------
    spark : SparkSession or SparkContext
    label : str
        What the jobs do (``ingest``, ``score``).
    unit : str
        What a task is counted as in the final line.
    interval : float
        Seconds between polls.
    stream : file, optional
        Where to draw (default: :func:`cxrzoo.console.terminal`).
    """

    def __init__(self, spark: Any, label: str, interval: float = 0.5, width: int = 24,
                 stream: TextIO | None = None) -> None:
        self.sc = getattr(spark, "sparkContext", spark)
        self.label, self.interval, self.width = label, interval, width
        self.term = Terminal(stream) if stream is not None else terminal()
        self.group = f"cxrzoo-{label}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._seen: dict[int, tuple[int, int]] = {}  # stage → (tasks, completed)
        self.tasks = self.completed = 0

    def poll(self) -> tuple[int, int]:
        """(tasks, completed tasks) over the started stages of the group's jobs so far."""
        tracker = self.sc.statusTracker()
        for job in tracker.getJobIdsForGroup(self.group):
            info = tracker.getJobInfo(job)
            for stage in (info.stageIds if info else []):
                s = tracker.getStageInfo(stage)
                if s is not None and (s.numActiveTasks or s.numCompletedTasks or stage in self._seen):
                    self._seen[stage] = (s.numTasks, s.numCompletedTasks)
        self.tasks = sum(t for t, _ in self._seen.values())
        self.completed = sum(min(c, t) for t, c in self._seen.values())
        return self.tasks, self.completed

    def text(self, elapsed: float) -> str:
        """The bar for what :meth:`poll` saw ``elapsed`` seconds in."""
        frac = self.completed / self.tasks if self.tasks else 0.0
        eta = f", ETA {_duration(elapsed * (1 - frac) / frac)}" if 0 < frac < 1 else ""
        return (f"{self.label} {_bar(frac, self.width)} {self.completed}/{self.tasks} tasks  "
                f"elapsed {_duration(elapsed)}{eta}")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a bar must never break the job (the JVM may be going down)
                return
            if self.tasks:
                self.term.bar(self.text(time.monotonic() - self._t0))

    def __enter__(self) -> "SparkProgress":
        self._prev = {k: self.sc.getLocalProperty(k) for k in ("spark.jobGroup.id", "spark.job.description")}
        self.sc.setLocalProperty("spark.jobGroup.id", self.group)
        self.sc.setLocalProperty("spark.job.description", self.label)
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"cxrzoo-progress-{self.label}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for k, v in self._prev.items():
            self.sc.setLocalProperty(k, v)
        elapsed = time.monotonic() - self._t0
        try:
            self.poll()
        except Exception:  # noqa: BLE001
            pass
        self.seconds = elapsed
        self.term.end_bar(None if exc[0] is not None else
                          f"{self.label}: {self.completed}/{self.tasks} Spark tasks in {elapsed:.1f}s")
