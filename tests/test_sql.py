"""cxrzoo in Spark SQL: the registered functions give what OpenVINOScorer and the ingest give; bad input is a
null and a reason, never a failed query."""
import json

import cv2
import numpy as np
import pytest



@pytest.fixture(scope="module")
def sql_model(validated_model):
    """The shared validated model's IR (tests/conftest.py: it has operating thresholds) and its card."""
    ir = validated_model[2]
    card = json.loads((ir / "cxrzoo.json").read_text())
    assert any(isinstance(v, dict) for v in card["thresholds"].values())  # findings are really thresholded
    return ir, card


def test_sql_functions_score_like_the_transformer(spark, ingested, sql_model):
    from cxrzoo import OpenVINOScorer, register_functions

    ir, card = sql_model
    names = register_functions(spark)
    assert {"cxr_decode", "cxr_probabilities", "cxr_findings", "cxr_score", "cxr_error"} <= set(names)
    rows = spark.sql(f"SELECT image_index, cxr_findings(image, '{ir}') AS f, cxr_probabilities(image, '{ir}') AS p, "
                     f"cxr_error(image, '{ir}') AS e FROM parquet.`{ingested}`").collect()
    ref = {r.image_index: r for r in OpenVINOScorer(modelDir=str(ir)).transform(spark.read.parquet(ingested))
           .select("image_index", "probabilities", "findings", "error").collect()}
    assert len(rows) == len(ref) == 60
    nonempty = 0
    for r in rows:
        want = ref[r.image_index]
        assert want.error is None and r.e is None
        np.testing.assert_allclose(r.p, want.probabilities, rtol=0, atol=1e-6)
        assert list(r.f) == list(want.findings)
        nonempty += bool(r.f)
    assert 0 < nonempty  # some image has a finding: the comparison is not of empty lists only
    labels = spark.sql(f"SELECT cxr_labels('{ir}') AS l").first().l
    assert list(labels) == list(card["labels"])


def test_sql_decode_gives_the_ingested_image_and_reasons_for_bad_files(spark, synth_ds, ingested):
    from cxrzoo import register_functions

    register_functions(spark)
    files = spark.read.format("binaryFile").load(str(synth_ds.images / "*.png"))
    files.createOrReplaceTempView("cxr_files")
    got = {r.path.rsplit("/", 1)[1]: r.img for r in spark.sql(
        "SELECT path, cxr_decode(content, 72) AS img FROM cxr_files").collect()}
    want = {r.image_index: r.image for r in spark.read.parquet(ingested).select("image_index", "image").collect()}
    assert got.keys() == want.keys() and len(got) == 60
    for name, img in got.items():
        assert bytes(img) == bytes(want[name]), name
    # an independent look at one: OpenCV's decode of the file, area-resized, within rounding of cxrzoo's
    one = sorted(got)[0]
    ref = cv2.resize(cv2.imread(str(synth_ds.images / one), cv2.IMREAD_GRAYSCALE), (72, 72),
                     interpolation=cv2.INTER_AREA)
    mine = np.frombuffer(got[one], np.uint8).reshape(72, 72).astype(int)
    assert np.abs(mine - ref).max() <= 2
    bad = spark.sql("SELECT cxr_decode(x, 72) AS img, cxr_decode_error(x, 72) AS why, "
                    "cxr_decode_error(x, -1) AS why_size FROM VALUES (X'89504E470D0A1A0A0000'), "
                    "(CAST(NULL AS BINARY)) AS t(x)").collect()
    assert all(r.img is None for r in bad)
    assert bad[0].why and "size must be" in bad[0].why_size and bad[1].why == "no content"


def test_bad_images_and_model_dirs_are_nulls_with_reasons(spark, ingested, sql_model, tmp_path):
    from cxrzoo import register_functions

    ir, _ = sql_model
    register_functions(spark)
    spark.read.parquet(ingested).limit(2).createOrReplaceTempView("cxr_two")
    rows = spark.sql(
        f"SELECT cxr_score(image, '{ir}') AS good, cxr_score(substring(image, 1, 10), '{ir}') AS short, "
        f"cxr_score(CAST(NULL AS BINARY), '{ir}') AS missing, cxr_score(image, 'relative/ir') AS rel, "
        f"cxr_score(image, '{tmp_path}/no-such-ir') AS absent, "
        f"cxr_probabilities(image, '{tmp_path}/no-such-ir') AS p_absent FROM cxr_two").collect()
    assert len(rows) == 2
    for r in rows:
        assert r.good.error is None and len(r.good.probabilities) == 14
        assert r.short.probabilities is None and "the model takes 72x72" in r.short.error
        assert r.missing.probabilities is None and r.missing.error == "no image"
        assert r.rel.probabilities is None and "absolute" in r.rel.error
        assert r.absent.probabilities is None and "no-such-ir" in r.absent.error
        assert r.p_absent is None
