"""Outputs on a Hadoop file system other than the local one (viewfs, mounted on a temporary directory)."""
from __future__ import annotations

import uuid

import numpy as np
import pytest
from pyspark.sql import functions as F

from cxrzoo.export import export_openvino
from cxrzoo.io import write_parquet_atomic
from cxrzoo.train import CXREstimator, CXRModel
from cxrzoo.train.checkpoint import CheckpointDir


@pytest.fixture
def viewfs(spark, tmp_path):
    """``viewfs://<name>/data``: Hadoop's view file system over ``tmp_path`` (a URI cxrzoo cannot open locally)."""
    name = f"cxr{uuid.uuid4().hex[:8]}"
    spark.sparkContext._jsc.hadoopConfiguration().set(f"fs.viewfs.mounttable.{name}.link./data", tmp_path.as_uri())
    return f"viewfs://{name}/data"


def _names(path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_parquet_and_its_report_replace_atomically(spark, ingested, viewfs, tmp_path):
    df = spark.read.parquet(ingested)
    for _ in range(2):
        write_parquet_atomic(df, f"{viewfs}/copy.parquet", files={"_report.json": "{}\n"})
    assert spark.read.parquet(f"{viewfs}/copy.parquet").count() == 60
    assert _names(tmp_path) == ["copy.parquet"] and (tmp_path / "copy.parquet" / "_report.json").read_text() == "{}\n"


def test_model_directory_and_ir_on_hadoop(spark, ingested, model_dir, viewfs, tmp_path):
    model = CXRModel.load(model_dir)
    model.write().overwrite().save(f"{viewfs}/model")
    model.write().overwrite().save(f"{viewfs}/model")  # replaced, not duplicated
    back = CXRModel.load(f"{viewfs}/model")
    assert back.uid == model.uid and _names(tmp_path) == ["model"]
    df = spark.read.parquet(ingested).orderBy("image_index").limit(6)
    a = [r.probabilities for r in model.transform(df).orderBy("image_index").collect()]
    b = [r.probabilities for r in back.transform(df).orderBy("image_index").collect()]
    np.testing.assert_allclose(b, a, atol=1e-6)
    out = export_openvino(model_dir, f"{viewfs}/ir")
    assert out == f"{viewfs}/ir"
    assert {"model.xml", "model.bin", "cxrzoo.json", "card.toml"} <= set(_names(tmp_path / "ir"))


def test_checkpoints_on_hadoop_keep_two_and_resume(spark, ingested, viewfs, tmp_path):
    ck = CheckpointDir(f"{viewfs}/ck")
    for epoch in (1, 2, 3):
        ck.write(epoch, {"fingerprint": {"model": "tiny"}}, lambda d, e=epoch: (d / "x.txt").write_text(str(e)))
    assert _names(tmp_path / "ck") == ["epoch-0002", "epoch-0003"]
    local, state = ck.check({"model": "tiny"})
    assert state["epochs_done"] == 3 and (local / "x.txt").read_text() == "3"
    ck.release()
    assert not local.exists()  # the fetched copy is gone
    ck.remove()
    feats = spark.read.parquet(ingested).where(F.col("image").isNotNull())
    from cxrzoo.preprocess import CXRPreprocessor

    feats = CXRPreprocessor(cropSize=32, augment=False).transform(feats).limit(16).cache()
    kw = dict(batchSize=8, seed=4, checkpointDir=f"{viewfs}/run")
    CXREstimator(epochs=1, **kw).fit(feats)
    resumed = CXREstimator(epochs=2, **kw).fit(feats)
    assert [h["epoch"] for h in resumed.history] == [0, 1]
    assert _names(tmp_path / "run") == ["epoch-0001", "epoch-0002"]
