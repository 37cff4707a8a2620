"""The preprocessing chain against a plain per-image NumPy reference, and its Spark Transformer."""
import cv2
import numpy as np
import pytest

from cxrzoo.preprocess import ChainConfig, CXRPreprocessor, apply_chain, row_uniforms
from cxrzoo.preprocess.chain import row_params


def _reference(img, key, cfg, seed, epoch):
    """One image at a time, the obvious way, with OpenCV for crop and flip."""
    side = img.shape[0]
    p = row_params([key], side, cfg, seed, epoch)
    y0, x0 = int(p.y0[0]), int(p.x0[0])
    x = img[y0:y0 + cfg.crop, x0:x0 + cfg.crop].copy()
    if p.flip[0]:
        x = cv2.flip(x, 1)
    x = np.clip(x.astype(np.float32) * p.contrast[0] + p.delta[0], 0, 255)
    return np.stack([(x - np.float32(m)) / np.float32(s) for m, s in zip(cfg.mean, cfg.std)])


@pytest.mark.parametrize("augment", [True, False])
@pytest.mark.parametrize("random_crop", [True, False])
@pytest.mark.parametrize("contrast", [(1.0, 1.0), (0.8, 1.2)])
@pytest.mark.parametrize("norm", [((123.68, 116.779, 103.939), (1.0, 1.0, 1.0)),
                                  ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))])
def test_chain_matches_reference(augment, random_crop, contrast, norm):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (24, 40, 40), dtype=np.uint8)
    keys = [f"{i:08d}_000.png" for i in range(24)]
    cfg = ChainConfig(crop=32, mean=norm[0], std=norm[1], augment=augment, random_crop=random_crop,
                      contrast_range=contrast)
    out = apply_chain(imgs, keys, cfg, seed=4, epoch=2)
    assert out.shape == (24, 3, 32, 32) and out.dtype == np.float32
    for i in range(24):
        np.testing.assert_allclose(out[i], _reference(imgs[i], keys[i], cfg, 4, 2), atol=1e-6, rtol=0)
    if augment:  # the random decisions really vary
        p = row_params(keys, 40, cfg, 4, 2)
        assert 0 < p.flip.sum() < 24 and len(set(p.delta.tolist())) > 5
        if random_crop:
            assert len(set(p.y0.tolist())) > 3


def test_chain_writes_into_given_buffer():
    imgs = np.full((3, 36, 36), 200, np.uint8)
    buf = np.zeros((3, 3, 32, 32), np.float32)
    out = apply_chain(imgs, ["a", "b", "c"], ChainConfig(crop=32, augment=False), out=buf)
    assert out is buf and np.allclose(buf[:, 0], 200 - 123.68)
    with pytest.raises(ValueError, match="C-contiguous"):
        apply_chain(imgs, ["a", "b", "c"], ChainConfig(crop=32), out=np.zeros((3, 3, 32, 31), np.float32))


def test_randomness_reproducible_and_varies_by_epoch():
    keys = [f"k{i}" for i in range(2000)]
    a, b = row_uniforms(keys, 1, 0, 1), row_uniforms(keys, 1, 0, 1)
    np.testing.assert_array_equal(a, b)
    c = row_uniforms(keys, 1, 1, 1)
    assert (a != c).mean() > 0.99 and 0.45 < (a < 0.5).mean() < 0.55


def test_chain_checks_inputs():
    with pytest.raises(TypeError):
        apply_chain(np.zeros((2, 40, 40), np.float32), ["a", "b"], ChainConfig(crop=32))
    with pytest.raises(ValueError, match="smaller than the crop"):
        apply_chain(np.zeros((2, 20, 20), np.uint8), ["a", "b"], ChainConfig(crop=32))


def test_transformer_in_spark(spark, ingested, tmp_path):
    df = spark.read.parquet(ingested)
    prep = CXRPreprocessor(cropSize=64, augment=False)
    rows = prep.transform(df).select("image_index", "image", "features").orderBy("image_index").limit(3).collect()
    cfg = prep.chain_config()
    for r in rows:
        img = np.frombuffer(r.image, np.uint8).reshape(1, 72, 72)
        expect = apply_chain(img, [r.image_index], cfg)[0]
        np.testing.assert_allclose(np.array(r.features, np.float32).reshape(3, 64, 64), expect, atol=1e-6)
    path = str(tmp_path / "prep")
    prep.save(path)
    back = CXRPreprocessor.load(path)
    assert back.getCropSize() == 64 and back.getOrDefault(back.augment) is False


def test_transformer_keeps_error_rows(spark):
    df = spark.createDataFrame([("a.png", None, "a.png: not a decodable image"),
                                ("b.png", bytes(range(256)) * 16, None),
                                ("c.png", bytes(50 * 50), None)],
                               "image_index string, image binary, error string").coalesce(1)
    rows = {r.image_index: r for r in CXRPreprocessor(cropSize=48).transform(df).collect()}
    assert rows["a.png"].features is None and rows["a.png"].error == "a.png: not a decodable image"
    assert len(rows["b.png"].features) == 3 * 48 * 48 and rows["b.png"].error is None
    assert rows["c.png"].features is None and "one --size" in rows["c.png"].error


def test_invalid_params_rejected():
    with pytest.raises(ValueError, match="normalization"):
        CXRPreprocessor(normalization="zscore")
    with pytest.raises(ValueError, match="cropSize"):
        CXRPreprocessor(cropSize=0)


def test_features_rdd_packs_rows_exactly(spark):
    from cxrzoo.train.feed import features_rdd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3, 4, 4)).astype(np.float32)
    y = (rng.random((5, 14)) < 0.5).astype(np.float32)
    df = spark.createDataFrame([(x[i].ravel().tolist(), y[i].tolist()) for i in range(5)],
                               "features array<float>, labels array<float>")
    got = features_rdd(df, "features", "labels", side=4).collect()
    assert len(got) == 5
    for i, (gx, gy) in enumerate(got):
        np.testing.assert_array_equal(gx, x[i])
        np.testing.assert_array_equal(gy, y[i])


def test_features_of_the_wrong_length_name_the_row():
    import pyarrow as pa

    from cxrzoo.train.feed import FeatureDecoder

    batch = pa.RecordBatch.from_arrays([pa.array([[0.0] * 48, [0.0] * 12], pa.list_(pa.float32())),
                                        pa.array([[1.0] * 14, [0.0] * 14], pa.list_(pa.float32()))],
                                       names=["features", "labels"])
    with pytest.raises(ValueError, match="row 1 .* 12 values, expected 48"):
        FeatureDecoder((3, 4, 4))(batch)


def test_pack_batch_of_no_rows_and_null_rows():
    import pyarrow as pa

    from cxrzoo.train.feed import FeatureDecoder

    empty = pa.RecordBatch.from_arrays([pa.array([], pa.list_(pa.float32())), pa.array([], pa.list_(pa.float32()))],
                                       names=["features", "labels"])
    x, y = FeatureDecoder((3, 4, 4))(empty)
    assert x.shape == (0, 3, 4, 4) and len(y) == 0
    nulls = pa.RecordBatch.from_arrays([pa.array([[0.0] * 48, None], pa.list_(pa.float32())),
                                        pa.array([[1.0] * 14, [0.0] * 14], pa.list_(pa.float32()))],
                                       names=["features", "labels"])
    with pytest.raises(ValueError, match="row 1 .* no values, expected 48"):
        FeatureDecoder((3, 4, 4))(nulls)
