"""A text progress bar over training epochs for the CLI (stderr; redrawn in place on a terminal).

The bar listens to the epoch loop's log records (each carries its history entry as ``epoch_record``), so
training needs no callback outside its Params: ``with EpochProgress(10).attached(): est.fit(df)``.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Iterator, TextIO

EPOCH_LOGGER = "cxrzoo.train.progress"  # the epoch loop logs each epoch here, the record as ``epoch_record``


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class EpochProgress(logging.Handler):
    """Call with each epoch's history record (or attach it to the epoch loop's logger).

    Draws ``[####------] 4/10 epochs … ETA``.

    Parameters
    ----------
    epochs : int
        Epochs of the run.
    stream : file, optional
        Where to draw (default stderr).  On a terminal the bar is redrawn in place,
        elsewhere one line per epoch is written.
    width : int
        Characters of the bar.
    """

    def __init__(self, epochs: int, stream: TextIO | None = None, width: int = 24) -> None:
        super().__init__(level=logging.INFO)
        self.epochs, self.width = epochs, width
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
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
        fill = round(self.width * done / max(1, self.epochs))
        elapsed = now - self._t0
        eta = sum(self._durations) / len(self._durations) * (self.epochs - done)
        parts = [f"[{'#' * fill}{'-' * (self.width - fill)}] {done}/{self.epochs} epochs"]
        if record.get("loss") is not None:
            parts.append(f"loss {record['loss']:.4f}")
        if record.get("val_mean_auc") is not None:
            parts.append(f"val AUC {record['val_mean_auc']:.4f}")
        if record.get("learning_rate") is not None:
            parts.append(f"lr {record['learning_rate']:.2g}")
        parts.append(f"{record.get('images_per_s', 0.0):.1f} img/s")
        parts.append(f"elapsed {_duration(elapsed)}" + (f", ETA {_duration(eta)}" if done < self.epochs else ""))
        return "  ".join(parts)

    def __call__(self, record: dict) -> None:
        text = self.line(record)
        done = int(record["epoch"]) + 1 >= self.epochs
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if done else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        """Draw the bar for a log record of the epoch loop that carries an epoch's history entry."""
        entry = getattr(record, "epoch_record", None)
        if entry is not None:
            self(entry)

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
