"""Per-disease AUC-ROC with Spark ML's BinaryClassificationEvaluator, and the mean."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cxrzoo.labels import LABELS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AucReport:
    """AUC per label (None where the data has no positives or no negatives) and their mean."""

    auc: dict[str, float | None]
    positives: dict[str, int]
    n: int

    @property
    def mean_auc(self) -> float | None:
        """Mean over the labels whose AUC is defined."""
        vals = [v for v in self.auc.values() if v is not None]
        return sum(vals) / len(vals) if vals else None

    def as_dict(self) -> dict:
        """``{"auc": {...}, "mean_auc": ..., "positives": {...}, "n": ...}``."""
        return {"auc": dict(self.auc), "mean_auc": self.mean_auc, "positives": dict(self.positives), "n": self.n}

    def table(self) -> str:
        """A fixed-width text table."""
        lines = [f"{'label':<20}{'positives':>10}{'AUC':>9}"]
        for name in self.auc:
            v = self.auc[name]
            shown = f"{v:9.4f}" if v is not None else "      n/a"
            note = "" if v is not None else ("  (no positives)" if self.positives[name] == 0 else "  (no negatives)")
            lines.append(f"{name:<20}{self.positives[name]:>10}{shown}{note}")
        m = self.mean_auc
        lines.append(f"{'mean':<20}{self.n:>10}{(f'{m:9.4f}' if m is not None else '      n/a')}")
        return "\n".join(lines)


def evaluate_auc(df: DataFrame, label_col: str = "labels", prob_col: str = "probabilities",
                 labels: tuple[str, ...] = LABELS) -> AucReport:
    """Compute AUC-ROC per label.

    Parameters
    ----------
    df : DataFrame
        Has ``label_col`` and ``prob_col``, both array<float> of ``len(labels)``;
        rows whose probabilities are null (undecodable images) are left out.
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
    finally:
        scored.unpersist()
    return AucReport(auc, pos, n)
