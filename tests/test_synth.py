"""Synthetic NIH-format data: layout, statistics, determinism, visible signs."""
import hashlib

import cv2
import numpy as np
import pandas as pd

from cxrzoo.labels import LABELS, encode_findings
from cxrzoo.synth import render, sample_cohort, split_patients, write_dataset
from cxrzoo.synth.cohort import nih_stats
from cxrzoo.synth.pngwrite import encode_gray_png
from cxrzoo.synth.writer import NIH_2017_HEADER


def test_layout_and_csv(synth_ds):
    header = synth_ds.labels_csv.read_text().splitlines()[0]
    assert header == NIH_2017_HEADER
    df = pd.read_csv(synth_ds.labels_csv)
    assert len(df) == 60 and df.columns[-1].startswith("Unnamed")  # NIH 2017's trailing empty column
    names = sorted(p.name for p in synth_ds.images.glob("*.png"))
    assert names == sorted(df["Image Index"])
    assert all(len(n) == 16 and n[8] == "_" for n in names)  # PPPPPPPP_FFF.png
    img = cv2.imread(str(synth_ds.images / names[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (128, 128) and img.dtype == np.uint8


def test_split_is_patient_wise_and_about_77_percent(synth_ds):
    train = set(synth_ds.train_val_list.read_text().split())
    test = set(synth_ds.test_list.read_text().split())
    assert not train & test and len(train) + len(test) == 60
    pid = lambda n: n.split("_")[0]  # noqa: E731
    assert not {pid(n) for n in train} & {pid(n) for n in test}
    studies = sample_cohort(3000, seed=1)
    tr, te = split_patients(studies, seed=1)
    assert 0.72 < len(tr) / 3000 < 0.82


def test_label_statistics_follow_nih():
    stats = nih_stats()
    studies = sample_cohort(20000, seed=0)
    multi = np.array([encode_findings(s.findings) for s in studies])
    assert abs((multi.sum(1) == 0).mean() - stats["no_finding_rate"]) < 0.02
    for i, name in enumerate(LABELS):
        assert abs(multi[:, i].mean() - stats["prevalence"][name]) < 0.015, name
    # co-occurrence: Effusion with Atelectasis is far more common than independence predicts
    both = (multi[:, 0] * multi[:, 2]).mean()
    assert both > 2 * multi[:, 0].mean() * multi[:, 2].mean()
    assert len({s.patient_id for s in studies}) < len(studies) / 1.5  # several follow-ups per patient
    views = {s.view for s in studies}
    assert views == {"PA", "AP"}


def test_deterministic_per_seed(tmp_path):
    a = write_dataset(tmp_path / "a", n=6, size=64, seed=5, workers=1)
    b = write_dataset(tmp_path / "b", n=6, size=64, seed=5, workers=2)
    digest = lambda d: [hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(d.glob("*.png"))]  # noqa: E731
    assert digest(a.images) == digest(b.images)
    assert a.labels_csv.read_text() == b.labels_csv.read_text()


def _mean_region(finding, ys, xs, n=24):
    return np.mean([render(finding, 128, seed=100 + i)[ys, xs].mean() for i in range(n)])


def test_signs_are_visible():
    lung_bases = (slice(80, 95), slice(20, 45))
    heart_side = (slice(70, 90), slice(78, 92))
    lungs = (slice(40, 80), slice(25, 50))
    assert _mean_region("Cardiomegaly", *heart_side) > _mean_region("No Finding", *heart_side) + 8
    assert _mean_region("Effusion", *lung_bases) > _mean_region("No Finding", *lung_bases) + 5
    assert _mean_region("Emphysema", *lungs) < _mean_region("No Finding", *lungs) - 5
    # every finding changes the image it is drawn on
    for finding in ("Mass", "Nodule", "Pneumothorax", "Hernia", "Fibrosis", "Edema", "Pleural_Thickening"):
        assert not np.array_equal(render(finding, 128, seed=1), render("No Finding", 128, seed=1)), finding


def test_png_writer_round_trips():
    img = render("Mass", 200, seed=2)
    back = cv2.imdecode(np.frombuffer(encode_gray_png(img), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, img)
