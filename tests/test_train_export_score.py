"""Training with real BigDL, save/load, per-disease AUC, OpenVINO export parity and Spark scoring."""
import json

import numpy as np
import pytest
from conftest import ENGINE, SHARED_RECIPE
from npref import pairwise_auc
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import functions as F

from cxrzoo import jobs
from cxrzoo.evaluate import evaluate_auc
from cxrzoo.export import WeightMismatchError
from cxrzoo.labels import LABELS
from cxrzoo.preprocess import CXRPreprocessor
from cxrzoo.score import NotAnIRDirError, OpenVINOScorer, load_scorer
from cxrzoo.models.modeldir import read_weights
from cxrzoo.train import CXREstimator, CXRModel, ModelDirError


@pytest.fixture(scope="module")
def trained(model_dir):
    """The shared model (tests/conftest.py: tiny, 3 epochs on 64² crops of the 72² set), loaded, and its path."""
    return CXRModel.load(model_dir), model_dir


def _features(spark, ingested, limit=None):
    df = spark.read.parquet(ingested).orderBy("image_index")
    if limit:
        df = df.limit(limit)
    return CXRPreprocessor(cropSize=64, augment=False).transform(df)


def test_transform_adds_probabilities(spark, ingested, trained):
    model, _ = trained
    out = model.transform(_features(spark, ingested)).select("image_index", "probabilities").collect()
    assert len(out) == 60
    p = np.array([r.probabilities for r in out])
    assert p.shape == (60, 14) and np.isfinite(p).all() and (p > 0).all() and (p < 1).all()


def test_training_lowers_the_loss(spark, ingested, model_dir, tmp_path):
    """The shared model's recipe for one epoch, then the shared model itself (three epochs of the same recipe):
    the loss on the training images is below chance after one epoch, and lower after three."""
    df = _features(spark, ingested).cache()
    y = np.array([r.labels[:14] for r in df.orderBy("image_index").select("labels").collect()])  # NIH: 14 of 20

    def bce(model):
        p = np.array([r.probabilities for r in model.transform(df).orderBy("image_index").collect()])
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    short = jobs.train(spark, ingested, str(tmp_path / "short"), **{**SHARED_RECIPE, "epochs": 1}, engine=ENGINE)
    longer = CXRModel.load(model_dir)
    assert longer.getEpochs() == SHARED_RECIPE["epochs"] == 3
    assert bce(longer) < bce(short) < 0.6931  # below chance after one epoch, lower after three
    df.unpersist()


def test_save_load_round_trip(spark, ingested, trained):
    model, path = trained
    back = CXRModel.load(path)
    assert back.getModelName() == "tiny" and back.getEpochs() == 3 and back.getImageSize() == 72
    assert "batchSize" in back.explainParams()
    feats = _features(spark, ingested, limit=8)
    a = np.array([r.probabilities for r in model.transform(feats).orderBy("image_index").collect()])
    b = np.array([r.probabilities for r in back.transform(feats).orderBy("image_index").collect()])
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(FileExistsError):
        model.save(path)
    with pytest.raises(ModelDirError):
        CXRModel.load(str(path) + "-missing")


def test_estimator_validates(spark, ingested):
    with pytest.raises(KeyError, match="tiny"):
        CXREstimator(modelName="resnet9999")
    with pytest.raises(ValueError, match="multiple of the 2 "):
        CXREstimator(batchSize=7).fit(_features(spark, ingested, limit=4))


def test_auc_reports_classes_without_positives(spark):
    rows = [([1.0] + [0.0] * 13, [0.9] + [0.5] * 13), ([0.0] * 14, [0.1] + [0.5] * 13),
            ([1.0] + [0.0] * 13, [0.8] + [0.5] * 13), ([0.0] * 14, [0.85] + [0.5] * 13)]
    df = spark.createDataFrame(rows, "labels array<float>, probabilities array<float>")
    rep = evaluate_auc(df, bootstrap=50)
    assert rep.auc["Atelectasis"] == pytest.approx(0.75)
    from cxrzoo.bootstrap import auc_from_ranks

    assert auc_from_ranks([1, 0, 1, 0], [0.9, 0.1, 0.8, 0.85]) == pytest.approx(0.75)  # same as Spark's
    assert rep.auc["Hernia"] is None and rep.positives["Hernia"] == 0
    assert rep.mean_auc == pytest.approx(0.75)
    assert "no positives" in rep.table() and "CheXNet" in rep.table() and "mean_auc" in rep.ci95


def test_export_matches_the_engine(spark, ingested, trained, exported_ir):
    model, path = trained
    ir = exported_ir
    card = json.loads((ir / "cxrzoo.json").read_text())
    assert card["labels"] == list(LABELS) and card["input"]["shape"] == [-1, 72, 72]
    assert card["preprocessing"]["center_crop"] == 64
    df = spark.read.parquet(ingested).orderBy("image_index").limit(16)
    rows = model.transform(CXRPreprocessor(cropSize=64, augment=False).transform(df)).orderBy("image_index")
    rows = rows.select("image", "probabilities").collect()
    images = np.stack([np.frombuffer(r.image, np.uint8).reshape(72, 72) for r in rows])
    ov = load_scorer(ir).infer(images)
    np.testing.assert_allclose(ov, np.array([r.probabilities for r in rows]), atol=1e-4)


def test_export_refuses_mismatched_weights(trained, tmp_path):
    from cxrzoo.export import build_openvino_model
    from cxrzoo.models import create_spec

    _, path = trained
    w = read_weights(path)
    del w["conv2"]
    w["fc"]["weight"] = w["fc"]["weight"][:, :5]
    with pytest.raises(WeightMismatchError, match=r"(?s)2 weight mismatch.*conv2/weight: missing.*fc/weight: shape"):
        build_openvino_model(create_spec("tiny", input_size=64), w, 72, (0, 0, 0), (1, 1, 1))


def test_score_in_spark_with_error_rows(spark, ingested, exported_ir, synth_ds, tmp_path):
    ir = str(exported_ir)
    images = tmp_path / "images"
    images.mkdir()
    for p in sorted(synth_ds.images.glob("*.png"))[:5]:
        (images / p.name).write_bytes(p.read_bytes())
    (images / "00000000_000.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = str(tmp_path / "scores.parquet")
    assert jobs.score(spark, ir, out, images=str(images)) == 6
    assert jobs.score(spark, ir, out, images=str(images)) == 6  # rerun replaces, never duplicates
    res = {r.image_index: r for r in spark.read.parquet(out).collect()}
    assert set(spark.read.parquet(out).columns) == {"image_index", "error", *LABELS}
    bad = res["00000000_000.png"]
    assert bad.error and bad.Atelectasis is None
    assert all(res[n].error is None and 0 < res[n].Cardiomegaly < 1 for n in res if n != "00000000_000.png")
    with pytest.raises(NotAnIRDirError):
        OpenVINOScorer(modelDir=str(tmp_path)).transform(spark.read.parquet(ingested))


def test_cli_evaluate_json(spark, ingested, trained, capsys, tmp_path):
    """``cxrzoo evaluate --json`` on a dataset with one undecodable image: each label's AUC as the pairwise
    definition gives it on the 59 others, and the one left out counted."""
    from cxrzoo.cli import main
    from cxrzoo.io import write_parquet_atomic

    model, path = trained
    first = spark.read.parquet(ingested).orderBy("image_index").first().image_index
    data = str(tmp_path / "one-undecodable.parquet")
    undecodable = F.when(F.col("image_index") == first, F.lit(None).cast("binary")).otherwise(F.col("image"))
    write_parquet_atomic(spark.read.parquet(ingested).withColumn("image", undecodable), data)
    main(["-q", "evaluate", "--model", path, "--data", data, "--json"])
    result = json.loads(capsys.readouterr().out)
    rows = model.transform(_features(spark, ingested)).where(F.col("image_index") != first) \
        .select("labels", "probabilities").collect()
    y = np.array([r.labels[:14] for r in rows])
    p = np.array([r.probabilities for r in rows], np.float64)
    expected = {name: pairwise_auc(y[:, j], p[:, j]) for j, name in enumerate(LABELS)}
    assert result["n"] == 59 and result["unscored"] == 1
    assert [k for k, v in result["auc"].items() if v is None] == [k for k, v in expected.items() if v is None]
    assert sum(v is not None for v in expected.values()) >= 5  # the synthetic set has both classes for most labels
    for name, v in expected.items():
        if v is not None:
            assert result["auc"][name] == pytest.approx(v, abs=1e-9), name
    defined = [v for v in expected.values() if v is not None]
    assert result["mean_auc"] == pytest.approx(sum(defined) / len(defined), abs=1e-9)
    assert set(result["ci95"]) == set(LABELS) | {"mean_auc"}
    for name, ci in result["ci95"].items():
        if ci is not None and result["auc"].get(name) is not None:
            assert ci[0] <= ci[1] and 0 <= ci[0] <= 1


def test_pipeline_model_save_load(spark, ingested, tmp_path):
    df = spark.read.parquet(ingested)
    pm = Pipeline(stages=[CXRPreprocessor(cropSize=64), CXREstimator(epochs=1, batchSize=8)]).fit(df)
    assert pm.stages[-1].getImageSize() == 72  # taken from the image column when not set
    uri = (tmp_path / "pipe").as_uri()  # file:///...: the writer and reader go through Hadoop paths
    assert uri.startswith("file://")
    pm.save(uri)
    back = PipelineModel.load(uri)
    assert isinstance(back.stages[-1], CXRModel) and back.stages[0].getCropSize() == 64
    assert [s.uid for s in back.stages] == [s.uid for s in pm.stages]
    a = {r.image_index: r.probabilities for r in pm.transform(df).collect()}
    b = {r.image_index: r.probabilities for r in back.transform(df).collect()}
    assert len(b) == 60 and all(v is not None for v in b.values())
    np.testing.assert_allclose([b[k] for k in sorted(a)], [a[k] for k in sorted(a)], atol=1e-6)


def test_transform_runs_the_preprocessing_once_and_keeps_undecodable_rows(spark, ingested, model_dir):
    """Images in: the model's own preprocessing runs once per row; a row without an image keeps its place with
    null probabilities."""
    counted = spark.sparkContext.accumulator(0)

    def tap(image):
        counted.add(1)
        return image

    first = spark.read.parquet(ingested).orderBy("image_index").first().image_index
    df = spark.read.parquet(ingested).withColumn("image", F.udf(tap, "binary")("image"))
    df = df.withColumn("image", F.when(F.col("image_index") == first, None).otherwise(F.col("image")))
    model = CXRModel.load(model_dir)
    assert model.getPreprocessor() is not None
    rows = model.transform(df).select("image_index", "probabilities").collect()
    assert len(rows) == 60 and counted.value == 60  # not 120: no second pass for the failed rows
    assert [r.probabilities for r in rows if r.image_index == first] == [None]
    assert sum(r.probabilities is not None for r in rows) == 59


def test_sgd_nesterov_trains(spark, ingested):
    df = _features(spark, ingested, limit=16)
    model = CXREstimator(epochs=1, batchSize=8, optimizer="sgd", learningRate=0.01).fit(df)
    p = np.array([r.probabilities for r in model.transform(df).collect()])
    assert p.shape == (16, 14) and np.isfinite(p).all()


def test_per_epoch_augmentation_trains_one_optimizer_across_epochs(spark, ingested, tmp_path):
    from cxrzoo.train.feed import augmented_rdd

    df = spark.read.parquet(ingested)
    prep = CXRPreprocessor(cropSize=64, augment=True, randomCrop=True, seed=3)
    cfg = prep.chain_config()
    first = {e: augmented_rdd(df.orderBy("image_index"), "image", "image_index", "labels", cfg, 3, e).first()[0]
             for e in (0, 1)}
    again = augmented_rdd(df.orderBy("image_index"), "image", "image_index", "labels", cfg, 3, 0).first()[0]
    assert first[0].shape == (3, 64, 64)
    np.testing.assert_array_equal(first[0], again)  # reproducible per (seed, epoch, row)
    assert not np.array_equal(first[0], first[1])  # epochs differ

    ck = tmp_path / "ck"
    est = (CXREstimator(epochs=3, batchSize=8, seed=1, learningRate=3e-3, allowPatientOverlap=True,  # val = train
                        checkpointDir=str(ck))
           .setPreprocessor(prep).setValidation(df))
    model = est.fit(df)
    assert [h["epoch"] for h in model.history] == [0, 1, 2]
    assert all(0 <= h["val_mean_auc"] <= 1 for h in model.history)
    assert all(h["images"] >= 56 and np.isfinite(h["loss"]) for h in model.history)  # >= 7 batches of 8 of 60
    assert model.history[-1]["loss"] < model.history[0]["loss"]  # it learns across the epochs
    # one Adam across the epochs: its step counters count every batch of the three epochs (BigDL: 3 × 8), where an
    # optimizer restarted per epoch would count one epoch's
    batches = [h["images"] // 8 for h in model.history]
    manifest = json.loads((ck / "epoch-0003" / "optim.json").read_text())
    steps = manifest["steps"] if manifest.get("engine") == "torch" else \
        [m["evalCounter"] for part in manifest["partitions"] for m in part.values()]
    assert steps and set(steps) == {sum(batches)} and sum(batches) > max(batches), (steps, batches)
    assert model.getImageSize() == 72 and model.spec.input_size == 64
    out = model.transform(df)  # images in: the eval-mode preprocessor runs first
    assert "features" not in out.columns
    p = np.array([r.probabilities for r in out.where(F.col("image").isNotNull()).collect()])
    assert p.shape == (60, 14) and np.isfinite(p).all()
    model.save(str(tmp_path / "m"))
    assert (tmp_path / "m" / "learning_curve.png").stat().st_size > 1000
    loaded = CXRModel.load(str(tmp_path / "m"))
    assert loaded.getPreprocessor().getCropSize() == 64 and len(loaded.history) == 3
