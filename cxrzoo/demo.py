"""The main job: every stage end to end on a synthetic NIH-format dataset (``make demo``)."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from pyspark.sql import functions as F

from cxrzoo.atomic import write_text

log = logging.getLogger("cxrzoo.demo")


class _Stage:
    """One line per stage when it ends: ``k/8 what (seconds)``."""

    def __init__(self, k: int, name: str) -> None:
        self.k, self.name = k, name

    def __enter__(self) -> "_Stage":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            log.info("%d/8 %s (%.1fs)", self.k, self.name, time.perf_counter() - self.t0)


def parity(spark, model_dir: str, ir_dir: str, data: str, limit: int = 64) -> float:
    """Max |OpenVINO − engine| probability on the same images (center crop, no augmentation)."""
    from cxrzoo.preprocess import CXRPreprocessor
    from cxrzoo.score import OpenVINOScorer
    from cxrzoo.train import CXRModel

    model = CXRModel.load(model_dir)
    df = spark.read.parquet(data).where(F.col("image").isNotNull()).orderBy("image_index").limit(limit).cache()
    feats = CXRPreprocessor(cropSize=model.spec.input_size, normalization=model.getNormalization(),
                            augment=False).transform(df)
    engine = {r.image_index: r.probabilities for r in
             model.transform(feats).select("image_index", "probabilities").collect()}
    ov = {r.image_index: r.ov for r in
          OpenVINOScorer(modelDir=ir_dir, outputCol="ov").transform(df).select("image_index", "ov").collect()}
    return float(max(np.max(np.abs(np.array(engine[k]) - np.array(ov[k]))) for k in engine))


def _split(spark, all_parquet: str, test_list: str, root: Path, seed: int) -> dict[str, str]:
    """Patient-wise train / validation / test Parquet (test: the generator's list), each written atomically."""
    from cxrzoo.io import write_parquet_atomic
    from cxrzoo.splits import split_by_patient

    df = spark.read.parquet(all_parquet)
    parts = split_by_patient(df, fractions=(0.8, 0.2, 0.0), seed=seed, test_list=test_list)
    paths = {}
    for name, part in zip(("train", "val", "test"), parts):
        paths[name] = str(root / f"{name}.parquet")
        write_parquet_atomic(part, paths[name])
    return paths


def run_demo(out: str = "demo-out", n: int = 1500, epochs: int = 10, seed: int = 0, master: str | None = None,
             image_size: int = 256, engine: str = "auto") -> dict:
    """Run synth → ingest → train → evaluate → export → score → report and return the summary.

    Writes everything under ``out``: ``data/`` (synthetic PNGs, CSV, box list, split lists),
    ``all.parquet`` and its patient-wise ``train``/``val``/``test`` splits, ``model/``, ``ir/``,
    ``scores.parquet``, ``report.html`` and ``summary.json``.  Training keeps the epoch of the best
    validation mean AUC and chooses each label's operating threshold on the validation split; the
    headline is the test mean AUC over the labels with at least 10 test positives.
    ``engine='auto'`` prefers a reproducible engine.
    """
    from cxrzoo import jobs
    from cxrzoo.engine.base import resolve_engine
    from cxrzoo.progress import EpochProgress
    from cxrzoo.session import get_spark
    from cxrzoo.synth import write_dataset

    t_all = time.perf_counter()
    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    engine = resolve_engine(engine, reproducible=True)
    with _Stage(1, f"synth: {n} NIH-format 1024² radiographs"):
        ds = write_dataset(root / "data", n=n, size=1024, seed=seed)
    with _Stage(2, f"Spark session ({engine} engine)"):
        spark = get_spark(master=master, engine=engine)
    p = {k: str(root / k) for k in ("all.parquet", "model", "ir", "scores.parquet")}
    with _Stage(3, f"ingest at {image_size}², split by patient into train / validation / test"):
        jobs.ingest(spark, str(ds.images), str(ds.labels_csv), p["all.parquet"], image_size)
        p.update(_split(spark, p["all.parquet"], str(ds.test_list), root, seed))
        counts = {k: spark.read.parquet(p[k]).count() for k in ("train", "val", "test")}
    log.info("    %d training, %d validation, %d test images", counts["train"], counts["val"], counts["test"])
    with _Stage(4, f"train the tiny CNN ({epochs} epochs, best by validation mean AUC)"):
        with EpochProgress(epochs).attached():
            model = jobs.train(spark, p["train"], p["model"], validation=p["val"], epochs=epochs, batchSize=32,
                               learningRate=2e-3, lrSchedule="plateau", warmupEpochs=1, warmupStartLR=2e-5,
                               plateauMonitor="val_loss", classWeighting="chexnet", seed=seed, engine=engine)
    with _Stage(5, "evaluate on the test split"):
        report = jobs.evaluate(spark, p["model"], p["test"])
    log.info("%s", report.table())
    with _Stage(6, "export to OpenVINO IR"):
        jobs.export(p["model"], p["ir"], metrics={"test": report.as_dict()})
        diff = parity(spark, p["model"], p["ir"], p["test"])
    log.info("    OpenVINO vs the training engine: max |Δ probability| = %.1e on the same images", diff)
    with _Stage(7, "score the test images with OpenVINO inside Spark"):
        rows = jobs.score(spark, p["ir"], p["scores.parquet"], data=p["test"])
    with _Stage(8, "HTML report (curves, calibration, thresholds, localisation, heatmaps)"):
        from cxrzoo.report import write_report

        p["report"] = str(write_report(spark, p["model"], p["test"], str(root / "report.html"),
                                       boxes=str(ds.bbox_csv), image_side=1024))
    selected = next((h["epoch"] + 1 for h in model.history if h.get("selected")), len(model.history))
    summary = {"headline_mean_auc": report.headline_auc, "headline_labels": report.measured,
               "too_few_positives": report.too_few, "mean_auc_all_labels": report.mean_auc, "auc": report.auc,
               "positives": report.positives, "selected_epoch": selected, "engine": engine, "seed": seed,
               "split": counts, "openvino_vs_engine_max_abs": diff, "scored_rows": rows,
               "seconds": round(time.perf_counter() - t_all, 1), "outputs": p}
    write_text(Path(root, "summary.json"), json.dumps(summary, indent=1) + "\n")
    head = report.headline_auc
    log.info("test mean AUC %s over the %d labels with >= 10 positives (%d test images; epoch %d of %d kept); "
             "total %.0fs", "n/a" if head is None else f"{head:.4f}", len(report.measured), report.n, selected,
             epochs, summary["seconds"])
    log.info("outputs: report %s, model %s, IR %s, scores %s, summary %s", p["report"], p["model"], p["ir"],
             p["scores.parquet"], root / "summary.json")
    return summary
