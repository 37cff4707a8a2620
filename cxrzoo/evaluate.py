"""Per-disease AUC-ROC of scored DataFrames, and the mean (AUC from :mod:`cxrzoo.bootstrap`, cxrzoo's one)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cxrzoo.bootstrap import CHEXNET_AUC, CHEXNET_MEAN, SEED_MEAN, auc_table, bootstrap_ci
from cxrzoo.labels import LABELS
from cxrzoo.targets import MASK_COL, target_column

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AucReport:
    """AUC per label (None where the data has no positives or no negatives) and their mean, over ``n`` scored rows;
    ``unscored`` rows (no probabilities: undecodable images) are left out."""

    auc: dict[str, float | None]
    positives: dict[str, int]
    n: int
    ci95: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    min_positives: int = 10  # the headline counts only labels with at least this many positives
    unscored: int = 0

    @property
    def mean_auc(self) -> float | None:
        """Mean over the labels whose AUC is defined."""
        vals = [v for v in self.auc.values() if v is not None]
        return sum(vals) / len(vals) if vals else None

    @property
    def measured(self) -> list[str]:
        """Labels with at least ``min_positives`` positives and a defined AUC."""
        return [k for k, v in self.auc.items() if v is not None and self.positives[k] >= self.min_positives]

    @property
    def too_few(self) -> dict[str, int]:
        """Labels with fewer than ``min_positives`` positives (or no negatives), with their positive counts."""
        return {k: self.positives[k] for k in self.auc if k not in self.measured}

    @property
    def headline_auc(self) -> float | None:
        """Mean AUC over :attr:`measured` (None when no label has enough positives)."""
        vals = [self.auc[k] for k in self.measured]
        return sum(vals) / len(vals) if vals else None

    def as_dict(self) -> dict:
        """``{"auc": {...}, "mean_auc": ..., "headline": {...}, "positives": {...}, "n": ..., "unscored": ...}``."""
        d = {"auc": dict(self.auc), "mean_auc": self.mean_auc, "positives": dict(self.positives), "n": self.n,
             "unscored": self.unscored, "headline": {"mean_auc": self.headline_auc, "min_positives": self.min_positives,
                          "labels": self.measured, "too_few": self.too_few}}
        if self.ci95:
            d["ci95"] = {k: (list(v) if v else None) for k, v in self.ci95.items()}
        return d

    def table(self) -> str:
        """A fixed-width text table with 95 % CIs (when computed) and published AUCs for reference."""
        def ci(key: str) -> str:
            v = self.ci95.get(key)
            return f"  [{v[0]:.3f}, {v[1]:.3f}]" if v else " " * 16

        lines = [f"{'label':<28}{'positives':>10}{'AUC':>9}{'95% CI':>16}{'CheXNet*':>10}"]
        for name in self.auc:
            v = self.auc[name]
            shown = f"{v:9.4f}" if v is not None else "      n/a"
            note = "" if v is not None else ("  (no positives)" if self.positives[name] == 0 else "  (no negatives)")
            ref = CHEXNET_AUC.get(name)
            lines.append(f"{name:<28}{self.positives[name]:>10}{shown}{ci(name)}"
                         f"{(f'{ref:10.4f}' if ref else ' ' * 10)}{note}")
        m = self.mean_auc
        lines.append(f"{'mean':<28}{self.n:>10}{(f'{m:9.4f}' if m is not None else '      n/a')}{ci('mean_auc')}"
                     f"{CHEXNET_MEAN:10.4f}")
        h = self.headline_auc
        lines.append(f"mean over the {len(self.measured)} labels with >= {self.min_positives} positives: "
                     + (f"{h:.4f}" if h is not None else "n/a"))
        if self.unscored:
            lines.append(f"left out: {self.unscored} rows without probabilities (undecodable images)")
        if self.too_few:
            lines.append(f"too few positives to measure (< {self.min_positives}): "
                         + ", ".join(f"{k} ({v})" for k, v in self.too_few.items()))
        lines.append(f"* published figures on other data and splits, for reference only: CheXNet (DenseNet-121, NIH "
                     f"official patient-wise test split) mean {CHEXNET_MEAN}; the seed (Analytics Zoo ResNet-50, "
                     f"random image-wise validation split) mean {SEED_MEAN}.")
        return "\n".join(lines)


def scored_arrays(df: DataFrame, label_col: str, prob_col: str, labels: Sequence[str],
                  mask_col: str = MASK_COL) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) float64 labels and probabilities of the rows whose probabilities are not null, through Arrow.

    The labels are ``labels`` picked by name from the harmonised ``label_col`` (:func:`cxrzoo.targets.target_column`),
    NaN where ``mask_col`` marks them unknown.  :func:`scored_arrays_and_unscored` also counts the rows left out.
    """
    y, p, _ = scored_arrays_and_unscored(df, label_col, prob_col, labels, mask_col)
    return y, p


def scored_arrays_and_unscored(df: DataFrame, label_col: str, prob_col: str, labels: Sequence[str],
                               mask_col: str = MASK_COL) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`scored_arrays` and the number of rows left out for null probabilities, in one pass over ``df``."""
    width = len(labels)
    target = target_column(df, labels, label_col, mask_col)
    scored = df.select(target.alias("_y"), F.col(prob_col).alias("_p"))
    scored = scored.select(F.col("_p").isNull().alias("_unscored"),
                           *[F.col("_y")[i].cast("double").alias(f"y{i}") for i in range(width)],
                           *[F.col("_p")[i].cast("double").alias(f"p{i}") for i in range(width)])
    table = scored.toPandas()
    left_out = table["_unscored"].to_numpy(bool)
    table = table[~left_out]
    y = table[[f"y{i}" for i in range(width)]].to_numpy(np.float64).reshape(-1, width)
    p = table[[f"p{i}" for i in range(width)]].to_numpy(np.float64).reshape(-1, width)
    return y, p, int(left_out.sum())


def evaluate_auc(df: DataFrame, label_col: str = "labels", prob_col: str = "probabilities",
                 labels: tuple[str, ...] = LABELS, bootstrap: int = 0, seed: int = 0,
                 min_positives: int = 10) -> AucReport:
    """Compute AUC-ROC per label.

    Parameters
    ----------
    df : DataFrame
        Has ``label_col`` (harmonised, :data:`cxrzoo.labels.ALL_LABELS`, or NIH's 14) and ``prob_col``
        (array<float> of ``len(labels)``); rows whose probabilities are null (undecodable images) are left
        out (counted in :attr:`AucReport.unscored`, with a warning), and so, per label, are entries
        ``label_mask`` marks unknown.
    bootstrap : int
        Resamples for 95 % percentile confidence intervals (0: none).
    min_positives : int
        The report's headline mean counts only labels with at least this many positives.

    Notes
    -----
    The labels and probabilities are collected to the driver (14 doubles twice per image, about
    230 MB per million images) and ranked there with NumPy.
    """
    y, p, unscored = scored_arrays_and_unscored(df, label_col, prob_col, labels)
    n = len(y)
    warn_unscored(unscored, n + unscored)
    pos = {name: int(np.nansum(y[:, i])) for i, name in enumerate(labels)}
    auc = auc_table(y, p, labels)["auc"]
    ci = bootstrap_ci(y, p, labels, n_boot=bootstrap, seed=seed) if bootstrap > 0 and n > 0 else {}
    return AucReport(auc, pos, n, ci, min_positives, unscored)


def warn_unscored(unscored: int, rows: int) -> None:
    """Log a warning when ``unscored`` of ``rows`` rows had no probabilities and are left out of the AUC."""
    if unscored:
        log.warning("evaluate: %d of %d rows have no probabilities (undecodable images) and are left out of "
                    "the AUC", unscored, rows)


def bce_loss(df: DataFrame, label_col: str = "labels", prob_col: str = "probabilities",
             labels: Sequence[str] = LABELS) -> float | None:
    """Mean binary cross-entropy of ``prob_col`` against ``labels`` of ``label_col`` over every known label entry
    of every scored row (probabilities clipped to [1e-7, 1 − 1e-7]); None when no entry is."""
    y = target_column(df, labels, label_col)
    per = F.expr(
        "zip_with(`_y`, `_p`, (y, p) -> CASE WHEN isnan(y) THEN NULL ELSE -(y * ln(least(greatest(p, 1e-7), "
        "1 - 1e-7)) + (1 - y) * ln(1 - least(greatest(p, 1e-7), 1 - 1e-7))) END)")
    scored = df.where(F.col(prob_col).isNotNull()).select(y.alias("_y"), F.col(prob_col).alias("_p"))
    row = scored.select(F.explode(per).alias("v")).select(F.avg("v").alias("loss")).first()
    return None if row is None or row["loss"] is None else float(row["loss"])
