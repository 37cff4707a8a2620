"""The source registry: NIH, CheXpert, MIMIC-CXR and plain folders register themselves; one ingest for all."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cxrzoo.errors import InputError
from cxrzoo.ingest.registry import OPTIONS, get_source, source_names

pytestmark = pytest.mark.profile("spark4")  # the same code on both Spark versions: one profile runs these


def test_every_source_registers_itself_from_its_module():
    assert source_names() == ["chexpert", "folder", "mimic", "nih"]
    for name in source_names():
        src = get_source(name)
        assert src.name == name and set(src.takes) <= set(OPTIONS) and set(src.requires) <= set(src.takes)
    with pytest.raises(InputError, match="unknown source 'padchest'; the sources are chexpert, folder, mimic, nih"):
        get_source("padchest")


def test_options_a_source_does_not_take_or_needs_are_named():
    with pytest.raises(InputError, match="CheXpert's splits are its two CSVs"):
        get_source("chexpert").options({"labels": "train.csv", "split": "x.txt"})
    with pytest.raises(InputError, match=r"source 'mimic' needs metadata \(--metadata\)"):
        get_source("mimic").options({"labels": "l.csv"})
    with pytest.raises(InputError, match="without labels"):
        get_source("folder").options({"labels": "l.csv"})
    assert get_source("nih").options({"labels": "l.csv", "policy": "ones"}) == {"labels": "l.csv", "split": None}
    assert get_source("chexpert").options({"labels": "t.csv"}) == {"labels": "t.csv", "policy": "ones",
                                                                    "unmentioned": "zeros"}


def test_the_cli_offers_the_registered_sources():
    run = subprocess.run([sys.executable, "-m", "cxrzoo.cli", "ingest", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "{chexpert,folder,mimic,nih}" in run.stdout


def test_a_folder_is_ingested_without_labels_with_its_report(spark, synth_ds, tmp_path):
    from cxrzoo.ingest import ingest

    out = str(tmp_path / "folder.parquet")
    outcome = ingest(spark, "folder", str(synth_ds.images), out, size=32)
    files = sorted(p.name for p in Path(synth_ds.images).iterdir())
    df = spark.read.parquet(out)
    assert sorted(r.image_index for r in df.select("image_index").collect()) == files
    assert "labels" not in df.columns and df.where("error is not null").count() == 0
    report = json.loads((Path(out) / "_ingest_report.json").read_text())
    assert report["source"] == "folder" and report["images_found"] == len(files) == outcome.rows
    assert report["label_rows"] == 0 and report["error_rows"] == 0
