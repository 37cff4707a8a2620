"""Listing image directories: files sharing a name are each accounted for; relative paths are the driver's."""
import shutil

import cv2
import numpy as np
import pytest

from cxrzoo.ingest import read_images, read_nih, read_nih_with_report
from cxrzoo.ingest.labels_csv import read_labels_csv


@pytest.fixture
def shared_name(synth_ds, tmp_path):
    """The synthetic set under ``a/``, and under ``b/`` another image under the name of one of them."""
    images = tmp_path / "images"
    shutil.copytree(synth_ds.images, images / "a")
    first, second = sorted((images / "a").glob("*.png"))[:2]
    (images / "b").mkdir()
    twin = images / "b" / first.name
    shutil.copy(second, twin)  # the same name, another picture
    return images, first, twin


@pytest.mark.parametrize("remote", [False, True])
def test_files_sharing_a_labelled_name_each_get_an_error_row(spark, synth_ds, shared_name, remote, monkeypatch):
    from cxrzoo.ingest import reader

    images, first, twin = shared_name
    uri = str(images)
    if remote:  # listed and read by Spark's binaryFile, as on hdfs:// or s3a://
        monkeypatch.setattr(reader, "_local_dir", lambda images: None)
        uri = f"file://{images}"
    df, report = read_nih_with_report(spark, uri, str(synth_ds.labels_csv), size=32)
    rows = df.collect()
    dup = sorted((r for r in rows if r.image_index == first.name), key=lambda r: r.path)
    assert [r.path.removeprefix("file:") for r in dup] == [str(first), str(twin)]
    labels = read_labels_csv(synth_ds.labels_csv).set_index("image_index").loc[first.name, "labels"]
    for row, other in zip(dup, (twin, first)):
        assert row.image is None and row.labels[:14] == list(labels)
        assert row.error.startswith(f"{first.name}: duplicate file name {first.name!r} (also at ")
        assert str(other) in row.error and "rename or remove all but one" in row.error
    assert len(rows) == 61 and sum(r.error is None for r in rows) == 59
    assert report.images_found == 61 and report.matched == 61 == len(rows)  # files, as the rows are
    assert report.duplicate_names == 1 and report.examples_duplicate_names == [first.name]


def test_files_sharing_a_name_are_told_apart_by_their_path_when_unlabelled(spark, tmp_path):
    images = tmp_path / "images"
    for sub, value in (("p1/s1", 10), ("p2/s1", 200)):  # CheXpert-like: the same name in every study
        (images / sub).mkdir(parents=True)
        cv2.imwrite(str(images / sub / "view1.png"), np.full((16, 16), value, np.uint8))
    cv2.imwrite(str(images / "alone.png"), np.full((16, 16), 5, np.uint8))
    rows = {r.image_index: r for r in read_images(spark, str(images), size=8).collect()}
    assert sorted(rows) == ["alone.png", "p1/s1/view1.png", "p2/s1/view1.png"]
    assert rows["p1/s1/view1.png"].image == bytes([10]) * 64 and rows["p2/s1/view1.png"].image == bytes([200]) * 64
    assert all(r.error is None for r in rows.values())


def test_a_relative_images_path_is_resolved_on_the_driver(spark, synth_ds, tmp_path, monkeypatch):
    """The driver's working directory is not the executors' (here: the Python workers keep the JVM's)."""
    shutil.copytree(synth_ds.images, tmp_path / "images")
    monkeypatch.chdir(tmp_path)
    rows = read_nih(spark, "images", str(synth_ds.labels_csv), size=32).collect()
    assert len(rows) == 60 and [r.error for r in rows if r.error] == []
    assert all(r.path.startswith(str(tmp_path / "images")) for r in rows)
