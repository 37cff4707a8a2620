"""Ingest: label CSV variants, decoding in Spark, error rows, unmatched files, the real NIH sample."""
import gzip
import shutil

import cv2
import numpy as np
import pytest

from cxrzoo.ingest import (ImageDecodeError, LabelFileError, decode_gray, read_labels_csv, read_nih,
                           read_nih_with_report)
from cxrzoo.labels import ALL_LABELS

from conftest import NIH_CSV, NIH_SAMPLE, needs_nih


def test_schema_and_values(spark, ingested, synth_ds):
    df = spark.read.parquet(ingested)
    types = dict(df.dtypes)
    assert types["image_index"] == "string" and types["patient_id"] == "int"
    assert types["labels"] == "array<float>" and types["image"] == "binary" and types["error"] == "string"
    rows = {r.image_index: r for r in df.collect()}
    assert len(rows) == 60 and all(r.error is None for r in rows.values())
    name = sorted(rows)[0]
    img = np.frombuffer(rows[name].image, np.uint8).reshape(72, 72)
    ref = cv2.resize(cv2.imread(str(synth_ds.images / name), cv2.IMREAD_GRAYSCALE), (72, 72),
                     interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(img, ref)
    labels = read_labels_csv(synth_ds.labels_csv).set_index("image_index")["labels"]
    for name, row in rows.items():  # harmonised: NIH's 14 first, then the 6 NIH does not state (masked)
        assert list(row.labels) == labels[name] + [0.0] * 6, name
        assert list(row.label_mask) == [1.0] * 14 + [0.0] * 6, name
    assert df.columns[:6] == ["image_index", "patient_id", "labels", "label_mask", "image", "error"]


def test_split_restricts_rows(spark, synth_ds):
    df = read_nih(spark, str(synth_ds.images), str(synth_ds.labels_csv), size=32, split=str(synth_ds.test_list))
    assert sorted(r.image_index for r in df.select("image_index").collect()) == \
        sorted(synth_ds.test_list.read_text().split())


def test_bad_and_unmatched_files_are_reported(spark, synth_ds, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(synth_ds.images, images)
    victims = sorted(images.glob("*.png"))
    victims[0].write_bytes(b"this is not a png")
    data = victims[1].read_bytes()
    victims[1].write_bytes(data[: len(data) // 3])  # truncated
    victims[2].unlink()  # CSV row without an image
    (images / "99999999_000.png").write_bytes(victims[3].read_bytes())  # image without a CSV row
    df, report = read_nih_with_report(spark, str(images), str(synth_ds.labels_csv), size=32)
    rows = {r.image_index: r for r in df.collect()}
    assert report.rows_without_image == 1 and report.examples_without_image == [victims[2].name]
    assert report.images_without_row == 1 and report.examples_without_row == ["99999999_000.png"]
    assert len(rows) == 59 and report.matched == 59  # 60 rows, one image deleted
    bad = rows[victims[0].name]
    assert bad.image is None and victims[0].name in bad.error and "not a decodable image" in bad.error
    cut = rows[victims[1].name]
    assert cut.image is None and "truncated" in cut.error
    assert sum(r.error is None for r in rows.values()) == 57


def test_ingest_report_and_cli_count_error_rows(spark, synth_ds, tmp_path):
    """Truncated PNGs are error rows: the report and the CLI's line count them apart from the images ingested OK,
    by reason (the file's own numbers folded), with the files' names."""
    import json

    import pyarrow.parquet as pq

    from cxrzoo.cli import main

    images = tmp_path / "images"
    images.mkdir()
    names = sorted(p.name for p in synth_ds.images.glob("*.png"))[:7]  # 6 images and 1 label row without one
    for name in names[:6]:
        shutil.copy(synth_ds.images / name, images / name)
    for name in names[:2]:  # cut inside the IEND chunk: its header is incomplete
        data = (images / name).read_bytes()
        (images / name).write_bytes(data[:-5])
    data = (images / names[2]).read_bytes()
    (images / names[2]).write_bytes(data[: len(data) // 2])  # cut inside IDAT
    shutil.copy(synth_ds.images / names[0], images / "99999999_000.png")  # an image without a label row
    lines = synth_ds.labels_csv.read_text().splitlines()
    csv = tmp_path / "labels.csv"
    csv.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in names[:7]]) + "\n")
    out, log = tmp_path / "ds.parquet", tmp_path / "ingest.log"
    main(["-q", "--log-file", str(log), "ingest", "--images", str(images), "--labels", str(csv), "--out", str(out),
          "--size", "32"])
    errors = pq.read_table(out, columns=["error"]).column("error").to_pylist()
    assert len(errors) == 6 and sum(e is not None for e in errors) == 3  # as written
    report = json.loads((out / "_ingest_report.json").read_text())
    assert {k: report[k] for k in ("images_found", "label_rows", "matched", "rows", "decoded", "error_rows",
                                   "images_without_row", "rows_without_image", "outside_split")} == \
        {"images_found": 7, "label_rows": 7, "matched": 6, "rows": 6, "decoded": 3, "error_rows": 3,
         "images_without_row": 1, "rows_without_image": 1, "outside_split": 0}
    assert report["errors_by_reason"] == {"truncated chunk header at byte N": 2,
                                          "chunk b'IDAT' at byte N claims N bytes, past the end of the file": 1}
    assert report["examples_with_error"] == names[:3]
    assert report["examples_without_row"] == ["99999999_000.png"] and report["examples_without_image"] == [names[6]]
    assert (f"7 files listed, 3 ingested OK, 3 error rows (2 truncated chunk header at byte N; 1 chunk b'IDAT' at "
            f"byte N claims N bytes, past the end of the file; e.g. {names[0]}, {names[1]}, {names[2]}); 1 without a "
            "label row, 1 label rows without an image, 0 outside the split") in log.read_text()


def test_both_csv_variants(tmp_path, synth_ds):
    text = synth_ds.labels_csv.read_text()
    v2020 = "\n".join(line.rstrip(",") for line in text.splitlines()) + "\n"
    p = tmp_path / "Data_Entry_2017_v2020.csv.gz"
    with gzip.open(p, "wt") as f:
        f.write(v2020)
    a, b = read_labels_csv(synth_ds.labels_csv), read_labels_csv(p)
    assert a["image_index"].tolist() == b["image_index"].tolist()
    assert a["labels"].tolist() == b["labels"].tolist()


def test_unknown_label_error_names_the_row(tmp_path, synth_ds):
    lines = synth_ds.labels_csv.read_text().splitlines()
    parts = lines[5].split(",")
    parts[1] = "Cardiomegaly|Pneumonitis"
    lines[5] = ",".join(parts)
    p = tmp_path / "bad.csv"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelFileError, match=r"bad\.csv:6 .*Pneumonitis"):
        read_labels_csv(p)


def test_missing_column_is_explained(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(LabelFileError, match="missing column"):
        read_labels_csv(p)


def test_decode_rejects_garbage_and_bombs():
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_gray(b"")
    with pytest.raises(ImageDecodeError, match="not a decodable image"):
        decode_gray(b"GIF89a-nope")
    ok, buf = cv2.imencode(".png", np.zeros((64, 64), np.uint8))
    with pytest.raises(ImageDecodeError, match="over the limit"):
        decode_gray(buf.tobytes(), 32, max_pixels=1000)


def test_decode_rgba_to_gray():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 120, 250, 7
    ok, buf = cv2.imencode(".png", rgba)
    gray = decode_gray(buf.tobytes())
    assert gray.shape == (40, 40)
    assert gray[0, 0] == cv2.cvtColor(rgba[:1, :1, :3], cv2.COLOR_BGR2GRAY)[0, 0]


@needs_nih
def test_real_nih_sample(spark):
    df, report = read_nih_with_report(spark, str(NIH_SAMPLE), str(NIH_CSV), size=256)
    rows = {r.image_index: r for r in df.collect()}
    assert len(rows) == 14 and report.images_without_row == 0
    assert report.rows_without_image == 112120 - 14
    assert all(r.error is None and len(r.image) == 256 * 256 for r in rows.values())
    assert list(rows["00000001_000.png"].labels) == [1.0 if n == "Cardiomegaly" else 0.0 for n in ALL_LABELS]
    rgba = rows["00000004_000.png"]  # colour type 6 in the original release
    ref = cv2.resize(cv2.imread(str(NIH_SAMPLE / "00000004_000.png"), cv2.IMREAD_GRAYSCALE), (256, 256),
                     interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(np.frombuffer(rgba.image, np.uint8).reshape(256, 256), ref)
    assert rows["00027426_000.png"].patient_id == 27426


def test_spark_binaryfile_path_gives_the_same_rows(spark, synth_ds, monkeypatch):
    """Non-local file systems (hdfs://, s3a://) go through Spark's binaryFile source; same result."""
    from cxrzoo.ingest import reader

    local = {r.image_index: r.image for r in
             read_nih(spark, str(synth_ds.images), str(synth_ds.labels_csv), size=32).collect()}
    monkeypatch.setattr(reader, "_local_dir", lambda images: None)
    remote = read_nih(spark, f"file://{synth_ds.images}", str(synth_ds.labels_csv), size=32).collect()
    assert {r.image_index: r.image for r in remote} == local and len(local) == 60


def test_unreadable_local_file_is_an_error_row(spark, synth_ds, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(synth_ds.images, images)
    victim = sorted(images.glob("*.png"))[0]
    victim.unlink()
    victim.symlink_to(tmp_path / "gone.png")  # listed, but cannot be opened
    rows = {r.image_index: r for r in read_nih(spark, str(images), str(synth_ds.labels_csv), size=32).collect()}
    assert rows[victim.name].image is None and "cannot read the file" in rows[victim.name].error
    assert sum(r.error is None for r in rows.values()) == 59


def test_arrow_columns_from_buffers_keep_row_order_and_nulls():
    """The UDFs' output columns: rows of a contiguous buffer at the valid rows, nulls elsewhere."""
    from cxrzoo.arrowutil import rows_to_binary_array, rows_to_list_array

    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    col = rows_to_binary_array(pixels, [0, 2, 3], 5)
    assert col.to_pylist() == [bytes(range(4)), None, bytes(range(4, 8)), bytes(range(8, 12)), None]
    assert col.null_count == 2
    assert rows_to_binary_array(pixels[:0], [], 2).to_pylist() == [None, None]
    assert rows_to_list_array(np.ones((1, 2), np.float32), [1], 2).to_pylist() == [None, [1.0, 1.0]]
    with pytest.raises(ValueError, match="uint8"):
        rows_to_binary_array(pixels.astype(np.int16), [0, 1, 2], 3)
