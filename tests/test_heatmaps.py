"""Class activation maps: a second IR output whose maps average to the logits, a scorer column, overlays,
synthetic ground-truth boxes, and NIH's localisation metrics."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from cxrzoo.localize import heatmap_box, iobb, localization, peak_point, read_boxes


@pytest.fixture(scope="module")
def ir(exported_ir):
    """The shared model's IR, with heatmaps (tests/conftest.py)."""
    return exported_ir


def _images(spark, ingested, n=12):
    rows = spark.read.parquet(ingested).orderBy("image_index").limit(n).select("image_index", "image").collect()
    return [r.image_index for r in rows], np.stack([np.frombuffer(r.image, np.uint8).reshape(72, 72) for r in rows])


def test_each_label_map_averages_to_its_logit(spark, ingested, ir):
    from cxrzoo.score import load_scorer, read_card

    _, x = _images(spark, ingested)
    card = read_card(ir)
    assert card["heatmaps"]["shape"][1:] == [14, 4, 4] and card["heatmaps"]["dtype"] == "float16"  # 64² crop / 16
    p, maps = load_scorer(ir, heatmaps=True).infer_with_heatmaps(x)
    assert maps.dtype == np.float16 and maps.shape == (len(x), 14, 4, 4)
    logit = np.log(p / (1 - p))  # CAM_k = w_k·F + b_k, so its spatial mean is the k-th logit
    np.testing.assert_allclose(maps.astype(np.float64).mean(axis=(2, 3)), logit, atol=2e-2, rtol=2e-3)
    np.testing.assert_allclose(load_scorer(ir).infer(x), p, atol=1e-6)  # the heatmap branch changes nothing


def test_the_scorer_adds_a_heatmaps_column(spark, ingested, ir):
    from cxrzoo.score import OpenVINOScorer, heatmaps_of, load_scorer, read_card

    idx, x = _images(spark, ingested)
    df = spark.read.parquet(ingested).orderBy("image_index").limit(len(idx))
    rows = {r.image_index: r for r in OpenVINOScorer(modelDir=str(ir), heatmaps=True).transform(df).collect()}
    _, maps = load_scorer(ir, heatmaps=True).infer_with_heatmaps(x)
    for k, i in enumerate(idx):
        np.testing.assert_array_equal(heatmaps_of(rows[i].heatmaps, read_card(ir)), maps[k])
    plain = OpenVINOScorer(modelDir=str(ir)).transform(df)
    assert "heatmaps" not in plain.columns and "findings" not in plain.columns  # trained without validation


def test_heatmaps_of_an_ir_without_them_are_refused(spark, ingested, model_dir, tmp_path):
    from cxrzoo.export import export_openvino
    from cxrzoo.score import NoHeatmapsError, OpenVINOScorer

    bare = export_openvino(model_dir, tmp_path / "ir", heatmaps=False)
    with pytest.raises(NoHeatmapsError, match="exported without heatmaps"):
        OpenVINOScorer(modelDir=str(bare), heatmaps=True).transform(spark.read.parquet(ingested))


def test_overlay_puts_the_hot_spot_where_the_map_peaks(tmp_path):
    from cxrzoo import overlay

    img = np.full((400, 400), 120, np.uint8)
    hm = np.zeros((7, 7), np.float32)
    hm[1, 5] = 4.0  # top right cell of the map
    png = overlay(img, hm, fraction=0.875, path=tmp_path / "o.png")
    out = cv2.imdecode(np.frombuffer((tmp_path / "o.png").read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert png == (tmp_path / "o.png").read_bytes() and out.shape == (400, 400, 3)
    red = out[:, :, 2].astype(int) - out[:, :, 0].astype(int)
    y, x = np.unravel_index(int(np.argmax(red)), red.shape)
    side, off = 350, 25  # the crop: 87.5 % of 400, centered
    assert off + side * 5 / 7 <= x <= off + side * 6 / 7 and off + side * 1 / 7 <= y <= off + side * 2 / 7
    assert (out[:10, :10] == 120).all()  # outside the crop the radiograph is untouched
    with pytest.raises(ValueError, match="uint8 gray"):
        overlay(img.astype(np.float32), hm)


def test_every_boxed_sign_is_drawn_inside_its_box():
    """Each sign function draws on a blank image; ≥ 97 % of what it adds lies in the boxes it returns."""
    from cxrzoo.synth.draw import Anatomy
    from cxrzoo.synth.signs import SIGNS

    r = 512
    for seed in range(4):
        for name, sign in SIGNS.items():
            rng = np.random.default_rng(seed)
            a = Anatomy(rng, "PA")
            lungs = np.zeros((r, r), np.float32)
            for side in (0, 1):
                cv2.fillPoly(lungs, [(a.lung_polygon(side) * r).astype(np.int32)], 1.0)
            img = np.zeros((r, r), np.float32)
            boxes = sign(img, lungs, a, rng, 0.8)
            mass = np.abs(img)
            if name in ("Edema", "Fibrosis", "Pleural_Thickening"):
                assert boxes == [] and mass.sum() > 0
                continue
            inside = np.zeros((r, r), bool)
            for x0, y0, x1, y1 in boxes:  # 2 px of slack for anti-aliased edges
                ys = slice(max(0, int(y0 * r) - 2), int(np.ceil(y1 * r)) + 2)
                inside[ys, max(0, int(x0 * r) - 2):int(np.ceil(x1 * r)) + 2] = True
            assert boxes and mass[inside].sum() >= 0.97 * mass.sum(), (name, seed, mass[inside].sum() / mass.sum())


def test_synth_writes_nih_box_lists(synth_ds):
    boxes = read_boxes(synth_ds.bbox_csv)
    with open(synth_ds.bbox_csv) as f:
        assert f.readline().strip() == "Image Index,Finding Label,Bbox [x,y,w,h]"
    with open(synth_ds.labels_csv) as f:
        findings = {r["Image Index"]: r["Finding Labels"].split("|") for r in csv.DictReader(f)}
    assert boxes
    for image, items in boxes.items():
        for label, (x, y, w, h) in items:
            assert label in findings[image]
            assert 0 <= x and 0 <= y and x + w <= 128.001 and y + h <= 128.001 and w > 0 and h > 0


def test_read_boxes_takes_nih_own_file_layout(tmp_path):
    f = tmp_path / "BBox_List_2017.csv"
    f.write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
                 "00013118_008.png,Atelectasis,225.08,547.02,86.78,79.19,,,\n"
                 "00014716_007.png,Infiltrate,686.0,332.0,183.0,200.0,,,\n")
    got = read_boxes(f)
    assert got == {"00013118_008.png": [("Atelectasis", (225.08, 547.02, 86.78, 79.19))],
                   "00014716_007.png": [("Infiltration", (686.0, 332.0, 183.0, 200.0))]}


def test_localisation_metrics_on_known_maps():
    assert iobb((0, 0, 10, 10), (5, 5, 10, 10)) == pytest.approx(25 / 100)
    hm = np.zeros((8, 8), np.float32)
    hm[1:3, 5:7] = 1.0  # a hot patch at rows 1-2, cols 5-6 of an 8×8 map over the whole 800 px image
    x, y = peak_point(hm, 800, 1.0)
    assert 500 <= x <= 700 and 100 <= y <= 300
    bx, by, bw, bh = heatmap_box(hm, 800, 1.0)
    assert 450 <= bx <= 520 and 50 <= by <= 120 and 180 <= bw <= 320 and 180 <= bh <= 320
    maps = {"a.png": np.stack([hm, hm[::-1]])}
    res = localization({"a.png": [("A", (480.0, 80.0, 260.0, 260.0)), ("B", (480.0, 80.0, 260.0, 260.0))]},
                       maps, ["A", "B"], {"a.png": 800.0}, 1.0)
    assert res["A"]["pointing"] == 1.0 and res["A"]["iobb"]["0.5"] == 1.0 and res["A"]["centre_baseline"] == 0.0
    assert res["B"]["pointing"] == 0.0 and res["B"]["iobb"]["0.1"] == 0.0  # B's map is flipped away
