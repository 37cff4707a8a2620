"""Model selection: the best epoch by validation mean AUC is kept, thresholds are chosen on validation data and
travel through export to the scorer's findings; the reproducible engine trains the same weights twice."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import VALIDATED_RECIPE

from cxrzoo import jobs
from cxrzoo.train.checkpoint import CheckpointDir


def test_the_protected_checkpoint_survives_pruning(tmp_path):
    ck = CheckpointDir(tmp_path / "ck", keep=2)
    for done in range(1, 6):
        ck.write(done, {"epochs_done": done}, lambda p: (p / "w").write_text("x"), protect=2)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["epoch-0002", "epoch-0004", "epoch-0005"]
    assert (ck.fetch(2) / "w").read_text() == "x"
    with pytest.raises(FileNotFoundError, match="epoch-0001"):
        ck.fetch(1)


@pytest.fixture(scope="module")
def splits(val_splits):
    """The shared 60-image set split by patient into train (≈ 70 %) and validation (tests/conftest.py)."""
    return val_splits


def _train(spark, splits, out, **kw):
    return jobs.train(spark, splits["train"], str(out), validation=splits["val"], **{**VALIDATED_RECIPE, **kw})


def test_the_best_epoch_is_kept_and_its_thresholds_reach_the_scorer(spark, splits, validated_model, tmp_path):
    """The shared validated model (tests/conftest.py: 4 epochs with validation, the best kept) and its IR."""
    from pyspark.sql import functions as F

    model, model_dir, ir = validated_model
    hist = model.history
    aucs = [h["val_mean_auc"] for h in hist]
    chosen = [h["epoch"] for h in hist if h.get("selected")]
    assert chosen == [int(np.argmax(aucs))]  # the first epoch of the highest validation mean AUC
    # the saved model really holds that epoch's weights: its validation AUC is the one recorded for it
    rep = jobs.evaluate(spark, str(model_dir), splits["val"], bootstrap=0)
    assert rep.mean_auc == pytest.approx(aucs[chosen[0]], abs=1e-4)

    card = json.loads((model_dir / "model.json").read_text())
    th = card["thresholds"]
    assert set(th) == set(card["labels"]) and any(v is not None for v in th.values())
    for name, v in th.items():
        if v is not None:
            assert v["method"] == "youden" and 0 <= v["threshold"] <= 1 and v["positives"] > 0

    assert json.loads((ir / "cxrzoo.json").read_text())["thresholds"] == th
    out = str(tmp_path / "scores.parquet")
    jobs.score(spark, str(ir), out, data=splits["val"])
    rows = spark.read.parquet(out).where(F.col("error").isNull()).collect()
    assert rows
    for r in rows:
        expect = [n for n in card["labels"] if th[n] is not None and r[n] >= th[n]["threshold"]]
        assert list(r.findings) == expect
    _predict_files_without_spark(spark, splits, ir, th, tmp_path)


def _predict_files_without_spark(spark, splits, ir, th, tmp_path):
    """`cxrzoo predict` on PNG files (and one broken file): findings tables and overlays, OpenVINO only."""
    import subprocess
    import sys

    import cv2

    from cxrzoo.score import load_scorer

    rows = spark.read.parquet(splits["val"]).orderBy("image_index").limit(3).collect()
    files = []
    for r in rows:
        f = tmp_path / "files" / r.image_index
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(cv2.imencode(".png", np.frombuffer(r.image, np.uint8).reshape(72, 72))[1].tobytes())
        files.append(f)
    (tmp_path / "files" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    run = subprocess.run([sys.executable, "-m", "cxrzoo.cli", "predict", *map(str, files),
                          str(tmp_path / "files" / "broken.png"), "--model", str(ir), "--heatmaps",
                          str(tmp_path / "overlays")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    probs = load_scorer(ir).infer(np.stack([np.frombuffer(r.image, np.uint8).reshape(72, 72) for r in rows]))
    for f, p in zip(files, probs):
        found = [n for n, v in zip(th, p) if th[n] is not None and v >= th[n]["threshold"]]
        assert f"{f}: findings: {', '.join(found) if found else 'none'}" in run.stdout
    assert "broken.png: error:" in run.stdout and "1 of 4 files could not be scored" in run.stderr
    pngs = sorted((tmp_path / "overlays").glob("*.png"))
    assert len(pngs) >= 3 and all(cv2.imread(str(p)).shape == (72, 72, 3) for p in pngs)


@pytest.mark.profile("spark35")  # the loop's selection, the same whatever engine trains
def test_keep_last_keeps_the_last_epoch(spark, splits, tmp_path):
    model = _train(spark, splits, tmp_path / "model", keepBest=False, thresholdMethod="sensitivity",
                   targetSensitivity=0.75)
    assert not any(h.get("selected") for h in model.history)
    rep = jobs.evaluate(spark, str(tmp_path / "model"), splits["val"], bootstrap=0)
    assert rep.mean_auc == pytest.approx(model.history[-1]["val_mean_auc"], abs=1e-4)
    chosen = [v for v in model.thresholds.values() if v is not None]
    assert chosen and all(v["method"] == "sensitivity" and v["sensitivity"] >= 0.75 for v in chosen)


@pytest.mark.profile("spark4")  # the reproducible engine is torch in both profiles: once, in torch's own
def test_the_reproducible_engine_trains_the_same_weights_twice(spark, splits, tmp_path):
    from cxrzoo.engine.base import engine_class, resolve_engine
    from cxrzoo.models.weights import load_weights

    name = resolve_engine("auto", reproducible=True)
    if not engine_class(name).reproducible:
        pytest.skip(f"no reproducible engine installed ({name} is not)")
    for run in ("a", "b"):
        jobs.train(spark, splits["train"], str(tmp_path / run), crop=64, modelName="tiny", epochs=2, batchSize=8,
                   learningRate=3e-3, seed=9, engine=name)
    a, b = (load_weights(tmp_path / r / "weights.safetensors") for r in ("a", "b"))
    assert a.keys() == b.keys()
    for node in a:
        for k in a[node]:
            np.testing.assert_array_equal(a[node][k], b[node][k], err_msg=f"{node}/{k}")
