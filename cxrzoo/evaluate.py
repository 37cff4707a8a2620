"""Per-disease AUC-ROC with Spark ML's BinaryClassificationEvaluator, and the mean."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cxrzoo.bootstrap import CHEXNET_AUC, CHEXNET_MEAN, SEED_MEAN, bootstrap_ci
from cxrzoo.labels import LABELS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AucReport:
    """AUC per label (None where the data has no positives or no negatives) and their mean."""

    auc: dict[str, float | None]
    positives: dict[str, int]
    n: int
    ci95: dict[str, tuple[float, float] | None] = field(default_factory=dict)

    @property
    def mean_auc(self) -> float | None:
        """Mean over the labels whose AUC is defined."""
        vals = [v for v in self.auc.values() if v is not None]
        return sum(vals) / len(vals) if vals else None

    def as_dict(self) -> dict:
        """``{"auc": {...}, "mean_auc": ..., "positives": {...}, "n": ...}``."""
        d = {"auc": dict(self.auc), "mean_auc": self.mean_auc, "positives": dict(self.positives), "n": self.n}
        if self.ci95:
            d["ci95"] = {k: (list(v) if v else None) for k, v in self.ci95.items()}
        return d

    def table(self) -> str:
        """A fixed-width text table with 95 % CIs (when computed) and published AUCs for reference."""
        def ci(key: str) -> str:
            v = self.ci95.get(key)
            return f"  [{v[0]:.3f}, {v[1]:.3f}]" if v else " " * 16

        lines = [f"{'label':<20}{'positives':>10}{'AUC':>9}{'95% CI':>16}{'CheXNet*':>10}"]
        for name in self.auc:
            v = self.auc[name]
            shown = f"{v:9.4f}" if v is not None else "      n/a"
            note = "" if v is not None else ("  (no positives)" if self.positives[name] == 0 else "  (no negatives)")
            ref = CHEXNET_AUC.get(name)
            lines.append(f"{name:<20}{self.positives[name]:>10}{shown}{ci(name)}"
                         f"{(f'{ref:10.4f}' if ref else ' ' * 10)}{note}")
        m = self.mean_auc
        lines.append(f"{'mean':<20}{self.n:>10}{(f'{m:9.4f}' if m is not None else '      n/a')}{ci('mean_auc')}"
                     f"{CHEXNET_MEAN:10.4f}")
        lines.append(f"* published figures on other data and splits, for reference only: CheXNet (DenseNet-121, NIH "
                     f"official patient-wise test split) mean {CHEXNET_MEAN}; the seed (Analytics Zoo ResNet-50, "
                     f"random image-wise validation split) mean {SEED_MEAN}.")
        return "\n".join(lines)


def evaluate_auc(df: DataFrame, label_col: str = "labels", prob_col: str = "probabilities",
                 labels: tuple[str, ...] = LABELS, bootstrap: int = 0, seed: int = 0) -> AucReport:
    """Compute AUC-ROC per label.

    Parameters
    ----------
    df : DataFrame
        Has ``label_col`` and ``prob_col``, both array<float> of ``len(labels)``;
        rows whose probabilities are null (undecodable images) are left out.
    bootstrap : int
        Resamples for 95 % percentile confidence intervals (0: none); the labels and
        probabilities are collected to the driver for it (14 floats twice per image).
    """
    scored = df.where(F.col(prob_col).isNotNull()).select(
        *[F.col(label_col)[i].cast("double").alias(f"y{i}") for i in range(len(labels))],
        *[F.col(prob_col)[i].cast("double").alias(f"p{i}") for i in range(len(labels))]).cache()
    try:
        agg = scored.agg(F.count(F.lit(1)).alias("n"),
                         *[F.sum(f"y{i}").alias(f"s{i}") for i in range(len(labels))]).first()
        n = int(agg["n"])
        auc: dict[str, float | None] = {}
        pos: dict[str, int] = {}
        for i, name in enumerate(labels):
            pos[name] = int(agg[f"s{i}"] or 0)
            if pos[name] == 0 or pos[name] == n:
                auc[name] = None
                continue
            ev = BinaryClassificationEvaluator(rawPredictionCol=f"p{i}", labelCol=f"y{i}", metricName="areaUnderROC")
            auc[name] = float(ev.evaluate(scored))
        ci: dict = {}
        if bootstrap > 0 and n > 0:
            rows = scored.collect()
            y = np.array([[r[f"y{i}"] for i in range(len(labels))] for r in rows])
            p = np.array([[r[f"p{i}"] for i in range(len(labels))] for r in rows])
            ci = bootstrap_ci(y, p, labels, n_boot=bootstrap, seed=seed)
    finally:
        scored.unpersist()
    return AucReport(auc, pos, n, ci)


def bce_loss(df: DataFrame, label_col: str = "labels", prob_col: str = "probabilities") -> float | None:
    """Mean binary cross-entropy of ``prob_col`` against ``label_col`` over every label and row (probabilities
    clipped to [1e-7, 1 − 1e-7]); None when no row is scored."""
    per_row = F.expr(
        f"aggregate(zip_with(`{label_col}`, `{prob_col}`, (y, p) -> -(y * ln(least(greatest(p, 1e-7), 1 - 1e-7)) "
        f"+ (1 - y) * ln(1 - least(greatest(p, 1e-7), 1 - 1e-7)))), 0D, (acc, v) -> acc + v) / size(`{label_col}`)")
    row = df.where(F.col(prob_col).isNotNull()).select(F.avg(per_row).alias("loss")).first()
    return None if row is None or row["loss"] is None else float(row["loss"])
