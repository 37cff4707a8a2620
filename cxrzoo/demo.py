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
    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        log.info("=== %s ...", self.name)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            log.info("=== %s done in %.1fs", self.name, time.perf_counter() - self.t0)


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


def run_demo(out: str = "demo-out", n: int = 600, epochs: int = 12, seed: int = 0, master: str | None = None,
             image_size: int = 256) -> dict:
    """Run synth → ingest → train → evaluate → export → score and return the summary.

    Writes everything under ``out``: ``data/`` (synthetic PNGs, CSV, split lists),
    ``train.parquet``, ``test.parquet``, ``model/``, ``ir/``, ``scores.parquet``
    and ``summary.json``.
    """
    from cxrzoo import jobs
    from cxrzoo.session import get_spark
    from cxrzoo.synth import write_dataset

    t_all = time.perf_counter()
    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with _Stage(f"1/7 synth: {n} NIH-format 1024² radiographs"):
        ds = write_dataset(root / "data", n=n, size=1024, seed=seed)
    with _Stage("2/7 Spark session"):
        spark = get_spark(master=master)
    p = {k: str(root / k) for k in ("train.parquet", "test.parquet", "model", "ir", "scores.parquet")}
    with _Stage(f"3/7 ingest at {image_size}² (train_val and test splits, patient-wise)"):
        jobs.ingest(spark, str(ds.images), str(ds.labels_csv), p["train.parquet"], image_size, str(ds.train_val_list))
        jobs.ingest(spark, str(ds.images), str(ds.labels_csv), p["test.parquet"], image_size, str(ds.test_list))
    with _Stage(f"4/7 preprocess + train tiny CNN ({epochs} epochs)"):
        jobs.train(spark, p["train.parquet"], p["model"], epochs=epochs, batchSize=32, learningRate=2e-3, seed=seed)
    with _Stage("5/7 evaluate on the test split"):
        report = jobs.evaluate(spark, p["model"], p["test.parquet"])
        log.info("per-disease AUC on the patient-wise test split:\n%s", report.table())
    with _Stage("6/7 export to OpenVINO IR"):
        jobs.export(p["model"], p["ir"], metrics={"test": report.as_dict()})
        diff = parity(spark, p["model"], p["ir"], p["test.parquet"])
        log.info("OpenVINO vs the training engine: max |Δ probability| = %.2e on the same images", diff)
    with _Stage("7/7 score the test images with OpenVINO inside Spark"):
        rows = jobs.score(spark, p["ir"], p["scores.parquet"], images=str(ds.images))
    summary = {"mean_auc": report.mean_auc, "auc": report.auc, "openvino_vs_engine_max_abs": diff,
               "scored_rows": rows, "seconds": round(time.perf_counter() - t_all, 1), "outputs": p}
    write_text(Path(root, "summary.json"), json.dumps(summary, indent=1) + "\n")
    log.info("mean AUC %.4f on %d test images; total %.0fs", report.mean_auc or float("nan"), report.n,
             summary["seconds"])
    log.info("outputs:\n  data     %s\n  model    %s\n  IR       %s\n  scores   %s\n  summary  %s",
             ds.root, p["model"], p["ir"], p["scores.parquet"], root / "summary.json")
    return summary
