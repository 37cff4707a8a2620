"""The stages as plain functions over paths, shared by the CLI and the demo.

synth → ingest → (preprocess + train) → evaluate → export → score.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cxrzoo.errors import InputError
from cxrzoo.evaluate import AucReport, evaluate_auc
from cxrzoo.export import export_openvino
from cxrzoo.ingest import image_files
from cxrzoo.ingest.outcome import IngestOutcome
from cxrzoo.io import parquet_rows, write_parquet_atomic
from cxrzoo.labels import LABELS
from cxrzoo.models.modeldir import read_card as read_model_card
from cxrzoo.normalization import normalization_of
from cxrzoo.preprocess import CXRPreprocessor
from cxrzoo.preprocess.sides import image_side
from cxrzoo.progress import SparkProgress
from cxrzoo.score import OpenVINOScorer, read_card
from cxrzoo.train import CXREstimator, CXRModel

log = logging.getLogger(__name__)


def ingest(spark: SparkSession, images: str, labels: str | None, out: str, size: int = 256,
           split: str | None = None, voi: str = "auto", source: str = "nih", metadata: str | None = None,
           policy: str = "ones", unmentioned: str = "zeros", split_name: str | None = None) -> IngestOutcome:
    """:func:`cxrzoo.ingest.job.ingest` of ``source`` (the options it does not take left as not given), with a
    progress bar: the Parquet dataset, written atomically with its ``_ingest_report.json``."""
    from cxrzoo.ingest.job import ingest as ingest_source

    with SparkProgress(spark, "ingest"):
        return ingest_source(spark, source, images, out, size=size, voi=voi, labels=labels, split=split,
                             metadata=metadata, split_name=split_name, policy=policy, unmentioned=unmentioned)


def train(spark: SparkSession, data: str, out: str, validation: str | None = None, crop: int = 224,
          **params) -> CXRModel:
    """Train on an ingested Parquet dataset, augmenting afresh every epoch; save the model atomically.

    ``params`` are :class:`CXREstimator` params (``modelName``, ``epochs``, ``lrSchedule``, …).
    ``normalization`` defaults to the model's own (ImageNet mean/std for the torchvision backbones,
    the seed's Caffe means for ``tiny``).  Without a ``checkpointDir`` the checkpoints go to
    ``<out>.ckpt`` and are removed once the model is saved, so rerunning the same command after a
    kill resumes where the run stopped.  ``validation`` (ingested Parquet, other patients) is scored
    after every epoch.
    """
    from cxrzoo.models import get_config
    from cxrzoo.train.checkpoint import CheckpointDir

    model_name = params.get("modelName", "tiny")
    if params.get("normalization") is None:
        config = get_config(model_name)
        params["normalization"] = normalization_of(config.mean, config.std)
    own_ckpt = not params.get("checkpointDir")
    if own_ckpt:
        params["checkpointDir"] = out.rstrip("/") + ".ckpt"
    seed = params.get("seed", 0)
    df = spark.read.parquet(data)
    prep = CXRPreprocessor(cropSize=crop, normalization=params["normalization"], augment=True, seed=seed)
    est = CXREstimator(**params).setPreprocessor(prep)
    if validation:
        est.setValidation(spark.read.parquet(validation))
    model = est.fit(df)
    model.write().overwrite().save(out)
    if own_ckpt:
        CheckpointDir(params["checkpointDir"]).remove()
    return model


def model_engine(model_dir: str) -> str | None:
    """The engine that trained the model at ``model_dir`` when it is installed here, else None."""
    from cxrzoo.engine.base import engine_class

    name = read_model_card(model_dir).get("engine", "")
    try:
        return name if engine_class(name).available() is None else None
    except ValueError:  # an engine this cxrzoo does not know
        return None


def evaluate(spark: SparkSession, model_dir: str, data: str, bootstrap: int = 1000) -> AucReport:
    """Per-disease AUC (with ``bootstrap`` resamples for 95 % CIs) of a saved model on an ingested Parquet
    dataset (center crop, no augmentation).

    The forward pass runs on the engine that trained the model; where that engine is not installed,
    on OpenVINO, built from the directory's engine-neutral weights (the same graph ``cxrzoo export`` writes).
    """
    df = spark.read.parquet(data)
    if model_engine(model_dir) is None:
        card = read_model_card(model_dir)
        log.info("evaluate: the %r engine that trained %s is not installed here; running the forward pass "
                 "with OpenVINO from its engine-neutral weights", card.get("engine"), model_dir)
        with tempfile.TemporaryDirectory(prefix="cxrzoo-eval-ir-") as tmp:
            ir = export_openvino(model_dir, Path(tmp) / "ir")
            if image_side(df) != int(card.get("image_size") or 256):
                raise InputError(f"{data} holds {image_side(df)}² images but {model_dir} was trained on "
                                 f"{card.get('image_size')}² ones; re-ingest with --size {card.get('image_size')}")
            return evaluate_auc(OpenVINOScorer(modelDir=str(ir)).transform(df), bootstrap=bootstrap,
                                labels=tuple(card["labels"]))
    model = CXRModel.load(model_dir)
    if model.getPreprocessor() is None:  # trained on given features: apply the same chain without augmentation
        prep = CXRPreprocessor(cropSize=model.spec.input_size, normalization=model.getNormalization(), augment=False)
        df = prep.transform(df)
    return evaluate_auc(model.transform(df), bootstrap=bootstrap, labels=tuple(model.getLabels()))


def export(model_dir: str, out: str, metrics: dict | None = None, precision: str = "fp32",
           calibration: str | None = None, check: str | None = None) -> Path:
    """Export a saved model to an OpenVINO IR directory (``precision`` fp32, bf16 or int8; see
    :func:`cxrzoo.export.export_openvino`)."""
    return export_openvino(model_dir, out, metrics=metrics, precision=precision, calibration=calibration,
                           check=check)


def score(spark: SparkSession, ir_dir: str, out: str, images: str | None = None, data: str | None = None,
          batch_size: int = 16, precision: str | None = None, heatmaps: bool = False, voi: str = "auto") -> int:
    """Score a directory of images or an ingested Parquet dataset; write ``image_index``, one column per label,
    ``findings`` (the labels at or above their operating thresholds, where the IR has them), ``error`` as Parquet
    (atomically: a rerun after a kill leaves no partial or duplicated rows).

    Image files are decoded inside the scoring UDF (decode, preprocessing and inference in one pass, decoding
    overlapping inference).  With ``heatmaps`` a ``heatmaps`` column holds each image's class activation maps
    (float16 bytes of the IR card's ``heatmaps.shape[1:]``).  Returns the number of rows.
    """
    if (images is None) == (data is None):
        raise InputError("give exactly one of images= (a directory) or data= (a Parquet dataset)")
    card = read_card(ir_dir)
    size = int(card["input"]["shape"][1])
    scorer = OpenVINOScorer(modelDir=ir_dir, batchSize=batch_size, precision=precision or "", heatmaps=heatmaps,
                            voi=voi)
    if images:
        scored = scorer.setParams(decode=True, inputCol="content").transform(image_files(spark, images))
    else:
        df = spark.read.parquet(data)
        if image_side(df) != size:
            raise InputError(f"{data} holds {image_side(df)}² images but {ir_dir} takes {size}²; re-ingest with "
                             f"--size {size} or score with --images")
        scored = scorer.transform(df)
    cols = [F.col("probabilities")[i].alias(name) for i, name in enumerate(card.get("labels", LABELS))]
    found = [c for c in ("findings", "heatmaps") if c in scored.columns]
    result = scored.select("image_index", *cols, *found, "error")
    with SparkProgress(spark, "score"):
        write_parquet_atomic(result, out)
    return parquet_rows(spark, out)


def localize(spark: SparkSession, ir_dir: str, data: str, boxes_csv: str, image_side: int = 1024) -> dict:
    """Localisation of an IR's heatmaps on the images of ``data`` that have boxes in ``boxes_csv``
    (NIH's ``BBox_List_2017.csv`` layout, in pixels of ``image_side``² images): per label, the share of
    boxes hit at each T(IoBB), the pointing game and the image-centre baseline
    (:func:`cxrzoo.localize.localization`)."""
    from cxrzoo.localize import localization, read_boxes
    from cxrzoo.score import heatmaps_of

    boxes = read_boxes(boxes_csv)
    card = read_card(ir_dir)
    if not card.get("heatmaps"):
        raise InputError(f"{ir_dir} was exported without heatmaps; re-export it with `cxrzoo export`")
    df = spark.read.parquet(data).where(F.col("image_index").isin(list(boxes)))
    rows = OpenVINOScorer(modelDir=ir_dir, heatmaps=True, findingsCol="").transform(df) \
        .where(F.col("heatmaps").isNotNull()).select("image_index", "heatmaps").collect()
    maps = {r.image_index: heatmaps_of(r.heatmaps, card) for r in rows}
    return localization(boxes, maps, card["labels"], dict.fromkeys(maps, float(image_side)),
                        card["heatmaps"]["covers"]["fraction"])
