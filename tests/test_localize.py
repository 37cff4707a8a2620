"""A trained model's class activation maps point at the synthetic signs: the heatmap's peak falls in a sign's
ground-truth box (synth's BBox_List_2017.csv) more often than a random point of the crop would."""
from __future__ import annotations

import pytest

from cxrzoo import jobs
from cxrzoo.localize import read_boxes

# the slow tier's full localisation (1,000 images, 10 epochs); it trains the reproducible engine, torch, in either
# profile, so it runs in one. The fast tier checks the maps themselves (test_heatmaps.py)
pytestmark = [pytest.mark.slow, pytest.mark.profile("spark4")]


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    from cxrzoo.engine.base import resolve_engine
    from cxrzoo.io import write_parquet_atomic
    from cxrzoo.splits import split_by_patient
    from cxrzoo.synth import write_dataset

    root = tmp_path_factory.mktemp("loc")
    ds = write_dataset(root / "data", n=1000, size=256, seed=11)
    jobs.ingest(spark, str(ds.images), str(ds.labels_csv), str(root / "all.parquet"), size=256)
    parts = split_by_patient(spark.read.parquet(str(root / "all.parquet")), fractions=(0.8, 0.2, 0.0), seed=11,
                             test_list=str(ds.test_list))
    for name, df in zip(("train", "val", "test"), parts):
        write_parquet_atomic(df, str(root / f"{name}.parquet"))
    engine = resolve_engine("auto", reproducible=True)
    jobs.train(spark, str(root / "train.parquet"), str(root / "model"), validation=str(root / "val.parquet"),
               epochs=10, batchSize=32, learningRate=2e-3, lrSchedule="cosine", warmupEpochs=1, warmupStartLR=2e-5,
               plateauMonitor="val_loss", classWeighting="chexnet", seed=11, engine=engine)
    ir = jobs.export(str(root / "model"), str(root / "ir"))
    return ds, ir, str(root / "test.parquet")


def test_the_heatmap_peak_lands_in_the_sign_box_more_often_than_chance(spark, trained):
    ds, ir, test = trained
    res = jobs.localize(spark, str(ir), test, str(ds.bbox_csv), image_side=256)
    boxes = read_boxes(ds.bbox_csv)
    tested = {r.image_index for r in spark.read.parquet(test).select("image_index").collect()}
    off, side = 256 * (1 - 0.875) / 2, 256 * 0.875  # the 224² center crop of the 256² image
    chance = hits = pairs = 0.0
    for image, items in boxes.items():
        if image not in tested:
            continue
        for label in {lab for lab, _ in items}:
            # a random point of the crop falls in one of the label's boxes with this probability (boxes of one
            # label rarely overlap; their sum bounds it from above)
            area = sum(max(0.0, min(x + w, off + side) - max(x, off)) * max(0.0, min(y + h, off + side) - max(y, off))
                       for lab, (x, y, w, h) in items if lab == label)
            chance += min(1.0, area / side ** 2)
            pairs += 1
    for r in res.values():
        hits += r["pointing"] * r["images"]
    assert pairs >= 40 and sum(r["images"] for r in res.values()) == pairs
    assert hits / pairs > 1.5 * chance / pairs, (hits / pairs, chance / pairs, res)
    assert hits / pairs > sum(r["centre_baseline"] * r["images"] for r in res.values()) / pairs
