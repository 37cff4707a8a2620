"""Gather what the report shows: score a dataset with the model (OpenVINO, heatmaps on) and summarise it."""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cxrzoo.bootstrap import auc_table, bootstrap_ci
from cxrzoo.curves import curves_with_bands, reliability
from cxrzoo.evaluate import AucReport, warn_unscored
from cxrzoo.export import export_openvino
from cxrzoo.heatmap import overlay
from cxrzoo.localize import localization, read_boxes
from cxrzoo.models.modeldir import read_card as read_model_card
from cxrzoo.score import OpenVINOScorer, heatmaps_of, read_card
from cxrzoo.targets import target_column
from cxrzoo.errors import InputError

log = logging.getLogger(__name__)
GALLERY = 3  # highest-scoring true and false positives shown per label


@dataclass
class ReportData:
    """Everything the HTML page shows, computed."""

    title: str
    model: dict
    summary: dict
    auc: AucReport
    curves: dict
    calibration: dict
    ece: dict
    operating: dict
    localization: dict | None
    gallery: dict = field(default_factory=dict)  # label → [(kind, image index, probability, jpeg bytes)]


def _ece(y: np.ndarray, p: np.ndarray) -> float | None:
    """One label's expected calibration error, None when no entry of it is known."""
    return reliability(y, p)["ece"] if (~np.isnan(y)).any() else None


def _summary(df: DataFrame, labels: list[str]) -> dict:
    """Images, patients, views and label prevalence (positives among the known entries) of the dataset."""
    n = df.count()
    t = target_column(df, labels)
    row = df.agg(F.countDistinct("patient_id").alias("patients"),
                 *[F.sum(F.when(~F.isnan(t[i]), t[i])).alias(f"l{i}") for i in range(len(labels))]).first()
    views = {r[0] or "unknown": r[1] for r in df.groupBy("view_position").count().collect()} \
        if "view_position" in df.columns else {}
    return {"images": n, "patients": row["patients"], "views": views,
            "prevalence": {name: int(row[f"l{i}"] or 0) for i, name in enumerate(labels)}}


def _operating(y: np.ndarray, p: np.ndarray, labels: list[str], thresholds: dict) -> dict:
    """Per label with a threshold: its sensitivity and specificity on this data (and on validation)."""
    out = {}
    for j, name in enumerate(labels):
        t = thresholds.get(name)
        if not t:
            continue
        pos, neg = y[:, j] > 0.5, y[:, j] <= 0.5  # NaN (unknown) is neither
        hit = p[:, j] >= t["threshold"]
        out[name] = {"threshold": t["threshold"], "method": t.get("method"),
                     "sensitivity": float(hit[pos].mean()) if pos.any() else None,
                     "specificity": float((~hit[neg]).mean()) if neg.any() else None,
                     "validation_sensitivity": t.get("sensitivity"), "validation_specificity": t.get("specificity")}
    return out


def _gallery(df: DataFrame, y: np.ndarray, p: np.ndarray, index: list[str], heat: dict, labels: list[str],
             fraction: float) -> dict:
    """Per label: overlays of the highest-scoring true positives and false positives."""
    picks: dict[str, list[tuple[str, str, float]]] = {}
    for j, name in enumerate(labels):
        order = np.argsort(-p[:, j], kind="stable")
        tp = [i for i in order if y[i, j] > 0.5][:GALLERY]
        fp = [i for i in order if y[i, j] <= 0.5][:GALLERY]
        picks[name] = [("true positive", index[i], float(p[i, j])) for i in tp] + \
                      [("false positive", index[i], float(p[i, j])) for i in fp]
    wanted = sorted({ix for v in picks.values() for _, ix, _ in v})
    images = {r.image_index: r.image for r in
              df.where(F.col("image_index").isin(wanted)).select("image_index", "image").collect()}
    out = {}
    for j, name in enumerate(labels):
        shown = []
        for kind, ix, prob in picks[name]:
            raw = images.get(ix)
            side = int(round(len(raw) ** 0.5)) if raw else 0
            if not raw or side * side != len(raw):
                continue
            gray = np.frombuffer(raw, np.uint8).reshape(side, side)
            shown.append((kind, ix, prob, overlay(gray, heat[ix][j], fraction=fraction, encoding="jpg")))
        out[name] = shown
    return out


def gather(spark, model_dir: str, data: str, boxes: str | None = None, image_side: int = 1024,
           bootstrap: int = 1000, title: str | None = None) -> ReportData:
    """Score ``data`` with ``model_dir`` (exported to a temporary IR with heatmaps) and compute the report."""
    card = read_model_card(model_dir)
    labels = list(card["labels"])
    undecoded = spark.read.parquet(data).where(F.col("image").isNull()).count()
    df = spark.read.parquet(data).where(F.col("image").isNotNull())
    with tempfile.TemporaryDirectory(prefix="cxrzoo-report-") as tmp:
        ir = export_openvino(model_dir, Path(tmp) / "ir")
        ir_card = read_card(ir)
        scored = OpenVINOScorer(modelDir=str(ir), heatmaps=True, findingsCol="").transform(df) \
            .select("image_index", target_column(df, labels).alias("target"), "probabilities", "heatmaps")
        every = scored.collect()
    rows = [r for r in every if r.probabilities is not None]
    unscored = undecoded + len(every) - len(rows)  # without an image, or the scorer could not score it
    warn_unscored(unscored, undecoded + len(every))
    if not rows:
        raise InputError(f"{data}: no image could be scored")
    index = [r.image_index for r in rows]
    y = np.array([r.target for r in rows], np.float64)  # NaN: unknown for that image
    p = np.array([r.probabilities for r in rows], np.float64)
    heat = {r.image_index: heatmaps_of(r.heatmaps, ir_card) for r in rows}
    table = auc_table(y, p, labels)
    ci = bootstrap_ci(y, p, tuple(labels), n_boot=bootstrap) if bootstrap else {}
    pos = {name: int(np.nansum(y[:, j])) for j, name in enumerate(labels)}
    fraction = ir_card["heatmaps"]["covers"]["fraction"]
    loc = None
    if boxes:
        loc = localization(read_boxes(boxes), heat, labels, dict.fromkeys(heat, float(image_side)), fraction)
    return ReportData(
        title=title or f"cxrzoo report: {card.get('model')} on {Path(data).name}",
        model=card, summary=_summary(df, labels), auc=AucReport(table["auc"], pos, len(y), ci, unscored=unscored),
        curves={name: curves_with_bands(y[:, j], p[:, j]) for j, name in enumerate(labels)},
        calibration=reliability(y, p), ece={name: _ece(y[:, j], p[:, j]) for j, name in enumerate(labels)},
        operating=_operating(y, p, labels, card.get("thresholds") or {}), localization=loc,
        gallery=_gallery(df, y, p, index, heat, labels, fraction))
