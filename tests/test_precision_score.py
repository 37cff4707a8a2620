"""Reduced-precision export (INT8 by NNCF, BF16 where the CPU has it) and the fused, asynchronous scorer."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from npref import pairwise_auc

from cxrzoo import jobs
from cxrzoo.export import PrecisionRefusedError, cpu_supports_bf16, export_openvino
from cxrzoo.export.precision import check_precision, read_labelled_images
from cxrzoo.labels import LABELS
from cxrzoo.score import load_scorer


def _mean_auc(y: np.ndarray, p: np.ndarray) -> float:
    aucs = [pairwise_auc(y[:, j], p[:, j]) for j in range(y.shape[1])]
    return float(np.mean([a for a in aucs if a is not None]))


def test_int8_export_is_checked_against_fp32(ingested, model_dir, exported_ir, tmp_path):
    """INT8 is quantized (FakeQuantize nodes, which FP32 has none of) and accepted exactly when its mean AUC on the
    check images, by the pairwise definition, is within 0.005 of FP32's; refused, it says by how much and leaves
    nothing behind."""
    import openvino as ov

    from cxrzoo.export.precision import CALIBRATION_IMAGES, MAX_AUC_DROP, infer_all, quantize_int8

    fp32_ir = exported_ir
    core = ov.Core()
    fp32 = core.read_model(str(fp32_ir / "model.xml"))
    calib, _ = read_labelled_images(ingested, 72, limit=CALIBRATION_IMAGES)
    int8 = quantize_int8(fp32.clone(), calib)  # what the export quantizes: the same graph, the same images

    def fake_quantize(model) -> int:
        return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())

    assert fake_quantize(fp32) == 0 and fake_quantize(int8) > 0
    x, y = read_labelled_images(ingested, 72)

    def probabilities(model) -> np.ndarray:
        return infer_all(core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), x)

    drop = _mean_auc(y, probabilities(fp32)) - _mean_auc(y, probabilities(int8))
    accepted = drop <= MAX_AUC_DROP
    try:
        ir = export_openvino(model_dir, tmp_path / "int8", precision="int8", calibration=ingested, check=ingested)
    except PrecisionRefusedError as e:
        assert not accepted, f"refused at a drop of {drop:.4f}: {e}"
        assert f"lowers the mean AUC by {drop:.4f}" in str(e) and "FP32" in str(e)
        assert not (tmp_path / "int8").exists()
    else:
        assert accepted, f"accepted at a drop of {drop:.4f}"
        card = json.loads((ir / "cxrzoo.json").read_text())
        assert card["precision"] == "int8" and card["runtime"]["inference_precision_hint"] == "f32"
        chk = card["precision_check"]
        assert chk["images"] == 60 and chk["mean_auc_drop"] == pytest.approx(drop, abs=1e-9)
        assert set(chk["fp32"]["auc"]) == set(LABELS) and set(chk["int8"]["auc"]) == set(LABELS)
        assert fake_quantize(core.read_model(str(ir / "model.xml"))) > 0


def test_precision_check_refuses_a_large_auc_drop(ingested, model_dir):
    from cxrzoo.export.graph import build_openvino_model
    from cxrzoo.models import create_spec
    from cxrzoo.normalization import NORMALIZATIONS
    from cxrzoo.models.modeldir import read_weights

    mean, std = NORMALIZATIONS["caffe"]
    good = build_openvino_model(create_spec("tiny", input_size=64), read_weights(model_dir), 72,
                                mean, std)
    w = read_weights(model_dir)
    w["fc"]["weight"] = -w["fc"]["weight"]  # a "reduced" model that ranks everything the other way round
    bad = build_openvino_model(create_spec("tiny", input_size=64), w, 72, mean, std)
    x, y = read_labelled_images(ingested, 72)
    assert check_precision(good, good, "int8", x, y, list(LABELS)).drop == 0.0
    with pytest.raises(PrecisionRefusedError, match=r"lowers the mean AUC by 0\.\d+ \(> 0.005\)"):
        check_precision(good, bad, "int8", x, y, list(LABELS))


def test_bf16_needs_native_support(ingested, model_dir, tmp_path):
    if cpu_supports_bf16():
        try:
            ir = export_openvino(model_dir, tmp_path / "bf16", precision="bf16", check=ingested)
        except PrecisionRefusedError as e:  # BF16 may cost a tiny model on 60 images more than 0.005: said why
            assert "lowers the mean AUC by" in str(e) and not (tmp_path / "bf16").exists()
        else:
            card = json.loads((ir / "cxrzoo.json").read_text())
            assert card["runtime"]["inference_precision_hint"] == "bf16" and card["precision"] == "bf16"
            chk = card["precision_check"]
            assert chk["images"] == 60 and chk["mean_auc_drop"] <= 0.005 and set(chk["bf16"]["auc"]) == set(LABELS)
    else:
        with pytest.raises(PrecisionRefusedError, match="no native BF16"):
            export_openvino(model_dir, tmp_path / "bf16", precision="bf16", check=ingested)
    with pytest.raises(ValueError, match="--calibration"):
        export_openvino(model_dir, tmp_path / "x", precision="int8")


def test_fused_file_scoring_equals_ingested_scoring(spark, ingested, synth_ds, exported_ir, tmp_path):
    ir = str(exported_ir)
    images = tmp_path / "images"
    images.mkdir()
    for p in sorted(synth_ds.images.glob("*.png"))[:12]:
        shutil.copy(p, images / p.name)
    (images / "00000000_001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # truncated
    from_files = str(tmp_path / "files.parquet")
    assert jobs.score(spark, ir, from_files, images=str(images), batch_size=5) == 13
    from_parquet = str(tmp_path / "parquet.parquet")
    jobs.score(spark, ir, from_parquet, data=ingested)
    a = {r.image_index: r for r in spark.read.parquet(from_files).collect()}
    b = {r.image_index: r for r in spark.read.parquet(from_parquet).collect()}
    assert a["00000000_001.png"].error and "00000000_001.png" in a["00000000_001.png"].error
    for name, row in a.items():
        if name != "00000000_001.png":
            assert row.error is None
            np.testing.assert_allclose([row[k] for k in LABELS], [b[name][k] for k in LABELS], atol=1e-6)


def test_rerun_after_a_killed_write_leaves_no_partial_rows(spark, ingested, exported_ir, tmp_path):
    ir = str(exported_ir)
    out = tmp_path / "scores.parquet"
    stale = tmp_path / "scores.parquet._tmp-deadbeef"  # what a run killed mid-write leaves behind
    stale.mkdir()
    (stale / "part-00000.parquet").write_bytes(b"partial")
    assert jobs.score(spark, ir, str(out), data=ingested) == 60
    assert jobs.score(spark, ir, str(out), data=ingested) == 60
    rows = spark.read.parquet(str(out)).select("image_index").collect()
    assert len({r.image_index for r in rows}) == 60


def test_async_stream_equals_sync(ingested, exported_ir):
    ir = exported_ir
    x, _ = read_labelled_images(ingested, 72)
    scorer = load_scorer(ir)
    np.testing.assert_allclose(scorer.infer_stream(x[i:i + 7] for i in range(0, len(x), 7)), scorer.infer(x),
                               atol=1e-6)


def test_the_ir_directory_is_self_contained(ingested, exported_ir, tmp_path):
    ir = tmp_path / "ir"  # a copy of the shared IR: this test moves it
    shutil.copytree(exported_ir, ir)
    moved = tmp_path / "elsewhere" / "ir"
    shutil.copytree(ir, moved)
    shutil.rmtree(ir)
    x, _ = read_labelled_images(ingested, 72, limit=8)
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np\n"
            "from cxrzoo.score.runtime import load_scorer\n"
            f"p = load_scorer({str(moved)!r}).infer(np.load({str(tmp_path / 'x.npy')!r}))\n"
            "assert 'bigdl' not in sys.modules and 'cxrzoo.train' not in sys.modules, sorted(sys.modules)\n"
            "import pyspark; assert pyspark.SparkContext._active_spark_context is None\n"
            f"np.save({str(tmp_path / 'p.npy')!r}, p)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), load_scorer(moved).infer(x), atol=1e-6)


def test_dicom_files_are_scored_with_the_voi_they_were_ingested_with(spark, synth_ds, exported_ir, tmp_path):
    """``score --images --voi`` decodes DICOM as ``ingest --voi`` did: the same probabilities as scoring the
    ingested rows; another VOI rule changes the pixels, and so the scores."""
    import cv2

    from cxrzoo.score import OpenVINOScorer
    from dicommaker import dataset, to_bytes

    ir = str(exported_ir)
    images = tmp_path / "dicoms"
    images.mkdir()
    for i, p in enumerate(sorted(synth_ds.images.glob("*.png"))[:4]):
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.uint16) * 16  # 12 bits stored
        # a window over the darker half: "window" and "none" (min-max) give different images
        ds = dataset(gray, bits_stored=12, WindowCenter=1200, WindowWidth=2000)
        (images / f"{p.stem}.dcm").write_bytes(to_bytes(ds))
    csv = tmp_path / "labels.csv"
    rows = [f"{p.stem}.dcm,No Finding,0,{i + 1},50,M,PA" for i, p in enumerate(sorted(images.glob("*.dcm")))]
    csv.write_text("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"
                   + "\n".join(rows) + "\n")
    parquet = str(tmp_path / "ingested.parquet")
    jobs.ingest(spark, str(images), str(csv), parquet, size=72, voi="none")
    from_parquet, same, other = (str(tmp_path / f"{k}.parquet") for k in ("p", "same", "other"))
    jobs.score(spark, ir, from_parquet, data=parquet)
    jobs.score(spark, ir, same, images=str(images), voi="none")
    jobs.score(spark, ir, other, images=str(images), voi="window")
    b = {r.image_index: r for r in spark.read.parquet(from_parquet).collect()}
    for out, equal in ((same, True), (other, False)):
        a = {r.image_index: r for r in spark.read.parquet(out).collect()}
        assert sorted(a) == sorted(b) and all(r.error is None for r in a.values())
        diff = max(abs(a[n][k] - b[n][k]) for n in a for k in LABELS)
        assert (diff < 1e-6) == equal, (out, diff)
    with pytest.raises(ValueError, match="voi must be one of"):
        OpenVINOScorer(modelDir=ir, voi="lut")
