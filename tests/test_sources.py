"""Label sources: CheXpert and MIMIC-CXR layouts, uncertainty policies, harmonised labels and their mask,
masked loss and masked evaluation."""
import csv
import gzip
from pathlib import Path

import cv2
import numpy as np
import pytest

from cxrzoo import jobs
from cxrzoo.ingest import LabelFileError, read_chexpert, read_mimic_cxr, read_mimic_cxr_with_report
from cxrzoo.ingest.sources_csv import read_chexpert_csv
from cxrzoo.labels import ALL_LABELS, LABELS
from cxrzoo.synth.formats import write_chexpert, write_mimic

HEADER = ("Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
          "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
          "Fracture,Support Devices")  # CheXpert-v1.0's train.csv, as published
# written by hand: Cardiomegaly 1, Edema -1 (uncertain), Pleural Effusion 0, Lung Lesion -1, the rest blank
ROW = "CheXpert-v1.0-small/train/patient00042/study3/view2_lateral.jpg,Female,61,Lateral,,,,1.0,,-1.0,-1.0,,,,,0.0,,,"


def _pos(name: str) -> int:
    return ALL_LABELS.index(name)


@pytest.fixture(scope="module")
def one_row_csv(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("chexpert-csv") / "train.csv"
    p.write_text(HEADER + "\n" + ROW + "\n")
    return p


@pytest.mark.parametrize("policy, edema, edema_mask", [("ones", 1.0, 1.0), ("zeros", 0.0, 1.0), ("ignore", 0.0, 0.0)])
def test_uncertainty_policies(one_row_csv, policy, edema, edema_mask):
    row = read_chexpert_csv(one_row_csv, policy=policy).iloc[0]
    y, m = row["labels"], row["label_mask"]
    assert len(y) == len(m) == 20
    assert (y[_pos("Cardiomegaly")], m[_pos("Cardiomegaly")]) == (1.0, 1.0)
    assert (y[_pos("Edema")], m[_pos("Edema")]) == (edema, edema_mask)
    assert (y[_pos("Lung Lesion")], m[_pos("Lung Lesion")]) == (edema, edema_mask)  # also -1.0
    assert (y[_pos("Effusion")], m[_pos("Effusion")]) == (0.0, 1.0)  # CheXpert's "Pleural Effusion"
    assert (y[_pos("Fracture")], m[_pos("Fracture")]) == (0.0, 1.0)  # blank: not mentioned, negative
    for nih_only in ("Infiltration", "Mass", "Nodule", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"):
        assert m[_pos(nih_only)] == 0.0, nih_only  # CheXpert never states these
    assert row["patient_id"] == 100_000_042 and row["study_id"] == "patient00042/study3"  # apart from NIH's ids
    assert row["view_position"] == "LATERAL" and row["key"] == "train/patient00042/study3/view2_lateral.jpg"


def test_blank_cells_can_be_masked(one_row_csv):
    row = read_chexpert_csv(one_row_csv, unmentioned="ignore").iloc[0]
    assert row["label_mask"][_pos("Fracture")] == 0.0 and row["label_mask"][_pos("Effusion")] == 1.0


def test_bad_cells_name_the_line_and_column(tmp_path):
    p = tmp_path / "train.csv"
    p.write_text(HEADER + "\n" + ROW + "\n" + ROW.replace("patient00042", "patient00043").replace(",1.0,", ",yes,")
                 + "\n")
    with pytest.raises(LabelFileError, match=r"train.csv:3: column 'Cardiomegaly' holds 'yes'"):
        read_chexpert_csv(p)
    p.write_text(HEADER + "\n" + ROW.replace("patient00042/", "") + "\n")
    with pytest.raises(LabelFileError, match=r"train.csv:2: Path"):
        read_chexpert_csv(p)
    p.write_text("Path,Sex\nx.jpg,Male\n")
    with pytest.raises(LabelFileError, match="missing column"):
        read_chexpert_csv(p)
    with pytest.raises(ValueError, match="policy must be one of"):
        read_chexpert_csv(tmp_path / "train.csv", policy="maybe")


@pytest.fixture(scope="module")
def chexpert(tmp_path_factory):
    return write_chexpert(tmp_path_factory.mktemp("chexpert"), n=80, size=96, seed=4, workers=1)


@pytest.fixture(scope="module")
def mimic(tmp_path_factory):
    return write_mimic(tmp_path_factory.mktemp("mimic"), n=80, size=96, seed=4, workers=1)


def test_synth_chexpert_layout(chexpert):
    train = chexpert.csvs["train"]
    assert train.name == "train.csv" and train.parent.name == "CheXpert-v1.0-small"
    with open(train, newline="") as f:
        rows = list(csv.reader(f))
    assert ",".join(rows[0]) == HEADER
    values = {v for r in rows[1:] for v in r[5:]}
    assert values == {"1.0", "0.0", "-1.0", ""}  # uncertain and blank cells, as in the real file
    for r in rows[1:]:
        assert (chexpert.root / r[0]).is_file(), r[0]


def test_read_chexpert_decodes_and_labels_every_row(spark, chexpert):
    df = read_chexpert(spark, str(chexpert.root), str(chexpert.csvs["train"]), policy="ignore", size=64)
    assert df.columns[:6] == ["image_index", "patient_id", "labels", "label_mask", "image", "error"]
    rows = df.collect()
    with open(chexpert.csvs["train"], newline="") as f:
        expect = {r["Path"]: r for r in csv.DictReader(f)}
    assert sorted(r.image_index for r in rows) == sorted(expect)
    for r in rows:
        assert r.error is None, r.error
        cell = expect[r.image_index]
        for col, name in (("Cardiomegaly", "Cardiomegaly"), ("Pleural Effusion", "Effusion"), ("Edema", "Edema")):
            want = {"1.0": (1.0, 1.0), "0.0": (0.0, 1.0), "-1.0": (0.0, 0.0), "": (0.0, 1.0)}[cell[col]]
            assert (r.labels[_pos(name)], r.label_mask[_pos(name)]) == want, (r.image_index, col)
        assert r.patient_id == 100_000_000 + int(r.image_index.split("/")[2].removeprefix("patient"))
    first = sorted(rows, key=lambda r: r.image_index)[0]
    ref = cv2.resize(cv2.imread(str(chexpert.root / first.image_index), cv2.IMREAD_GRAYSCALE), (64, 64),
                     interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(np.frombuffer(first.image, np.uint8).reshape(64, 64), ref)


def test_synth_mimic_layout(mimic):
    heads = {k: gzip.decompress(p.read_bytes()).decode().splitlines()[0] for k, p in mimic.csvs.items()}
    assert heads["labels"] == ("subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,"
                               "Enlarged Cardiomediastinum,Fracture,Lung Lesion,Lung Opacity,No Finding,"
                               "Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices")
    assert heads["split"] == "dicom_id,study_id,subject_id,split"
    assert heads["metadata"].startswith("dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition")
    files = sorted((mimic.root / "files").rglob("*.jpg"))
    assert len(files) == 80
    rel = files[0].relative_to(mimic.root / "files").parts  # pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg
    assert rel[0] == rel[1][:3] and rel[1][1:].isdigit() and rel[2][0] == "s"


def test_read_mimic_joins_studies_and_keeps_one_split(spark, mimic):
    c = {k: str(v) for k, v in mimic.csvs.items()}
    df, rep = read_mimic_cxr_with_report(spark, str(mimic.root), c["metadata"], c["labels"], c["split"],
                                         split="train", size=32)
    rows = df.collect()
    split = [line.split(",") for line in gzip.decompress(mimic.csvs["split"].read_bytes()).decode().splitlines()[1:]]
    want = {d for d, _, _, s in split if s == "train"}
    assert {r.image_index for r in rows} == want and rep.outside_split == 80 - len(want)
    labels = {line.split(",")[1]: line.split(",")
              for line in gzip.decompress(mimic.csvs["labels"].read_bytes()).decode().splitlines()[1:]}
    for r in rows:
        assert r.error is None and r.split == "train"
        cells = labels[r.study_id]
        assert r.patient_id == int(cells[0])
        # the header's 4th column is Cardiomegaly; policy ones: -1.0 is positive
        assert r.labels[_pos("Cardiomegaly")] == (1.0 if cells[3] in ("1.0", "-1.0") else 0.0)


def test_sources_union_and_split_by_patient(spark, ingested, chexpert, mimic):
    from cxrzoo.splits import check_disjoint_patients, split_by_patient

    c = {k: str(v) for k, v in mimic.csvs.items()}
    frames = {"nih": spark.read.parquet(ingested),
              "chexpert": read_chexpert(spark, str(chexpert.root), str(chexpert.csvs["train"]), size=72),
              "mimic": read_mimic_cxr(spark, str(mimic.root), c["metadata"], c["labels"], size=72)}
    patients = {}
    for name, df in frames.items():
        train, val, test = split_by_patient(df, seed=1)
        check_disjoint_patients({"train": train, "validation": val, "test": test})
        sides = [{r.image_index for r in part.select("image_index").collect()} for part in (train, val, test)]
        assert set().union(*sides) == {r.image_index for r in df.select("image_index").collect()}, name
        patients[name] = {r.patient_id for r in df.select("patient_id").distinct().collect()}
    # synthetic patients are numbered from 1 in every source: their ids must still not meet in a union
    assert not patients["nih"] & patients["chexpert"] and not patients["nih"] & patients["mimic"]
    assert not patients["chexpert"] & patients["mimic"]
    cols = ["image_index", "patient_id", "labels", "label_mask", "image", "error"]
    assert all(df.columns[:6] == cols for df in frames.values())


def test_a_union_with_rows_without_masks_counts_them_known(spark):
    from cxrzoo.targets import target_column

    old = spark.createDataFrame([([1.0] + [0.0] * 13,)], "labels array<float>")  # ingested before masks: 14 long
    new = spark.createDataFrame([([0.0, 1.0] + [0.0] * 18, [1.0, 0.0] + [1.0] * 18)],
                                "labels array<float>, label_mask array<float>")
    both = old.unionByName(new, allowMissingColumns=True)
    rows = both.select(target_column(both, ["Atelectasis", "Cardiomegaly"]).alias("t")).collect()
    got = sorted(tuple(None if np.isnan(v) else v for v in r.t) for r in rows)
    assert got == [(0.0, None), (1.0, 0.0)]  # the new row's Cardiomegaly masked; the old row: every entry known
    with pytest.raises(Exception, match="fewer than the 16"):
        both.select(target_column(both, ["Lung Opacity"]).alias("t")).collect()  # index 15 of a 14-long row: refused


def test_no_finding_makes_blanks_negative_even_when_blanks_are_masked(tmp_path):
    p = tmp_path / "valid.csv"
    normal = "CheXpert-v1.0-small/valid/patient00007/study1/view1_frontal.jpg,Male,40,Frontal,PA,1.0" + "," * 13
    p.write_text(HEADER + "\n" + ROW + "\n" + normal + "\n")
    t = read_chexpert_csv(p, unmentioned="ignore").set_index("patient_id")
    sick, ok = t.loc[100_000_042], t.loc[100_000_007]
    assert sick["label_mask"][_pos("Fracture")] == 0.0  # blank, not a normal study: unknown
    assert ok["label_mask"][_pos("Fracture")] == 1.0 and ok["labels"][_pos("Fracture")] == 0.0
    assert ok["label_mask"][_pos("Support Devices")] == 0.0  # not a pathology: No Finding says nothing of it


def test_cli_ingest_mimic_source(spark, mimic, tmp_path):
    c = {k: str(v) for k, v in mimic.csvs.items()}
    out = str(tmp_path / "mimic.parquet")
    rep = jobs.ingest(spark, str(mimic.root), c["labels"], out, size=32, source="mimic", metadata=c["metadata"],
                      split=c["split"], split_name="test", policy="zeros")
    got = spark.read.parquet(out)
    assert got.count() == rep.matched > 0 and {r.split for r in got.select("split").collect()} == {"test"}
    with pytest.raises(ValueError, match="needs metadata"):
        jobs.ingest(spark, str(mimic.root), c["labels"], out, source="mimic")


def test_masked_loss_skips_unknown_entries():
    torch = pytest.importorskip("torch")
    from cxrzoo.engine.torch_worker import loss_fn

    z = torch.tensor([[0.3, -1.2, 2.0], [1.5, 0.1, -0.7]])
    y = torch.tensor([[1.0, float("nan"), 0.0], [float("nan"), 1.0, 1.0]])
    zn, yn = z.numpy().astype(np.float64), y.numpy().astype(np.float64)
    known = ~np.isnan(yn)
    p = 1 / (1 + np.exp(-zn))
    bce = -(np.where(known, yn, 0) * np.log(p) + (1 - np.where(known, yn, 0)) * np.log(1 - p))
    assert float(loss_fn(torch, None)(z, y)) == pytest.approx(bce[known].mean(), rel=1e-6)
    w_pos, w_neg = (0.9, 0.5, 0.2), (0.1, 0.5, 0.8)
    w = np.where(np.where(known, yn, 0) > 0.5, w_pos, w_neg)
    assert float(loss_fn(torch, (w_pos, w_neg))(z, y)) == pytest.approx((w * bce)[known].sum() / known.sum(),
                                                                        rel=1e-6)
    full = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    assert float(loss_fn(torch, None)(z, full)) == pytest.approx(
        float(torch.nn.functional.binary_cross_entropy_with_logits(z, full)))


def test_evaluation_skips_masked_entries(spark):
    from cxrzoo.evaluate import bce_loss, evaluate_auc

    # Cardiomegaly: the two masked rows would make the AUC 0.25 if counted as negatives
    rows = [([0, 1] + [0] * 18, [1, 1] + [1] * 12 + [0] * 6, [0.1, 0.9] + [0.5] * 12),
            ([0, 0] + [0] * 18, [1, 1] + [1] * 12 + [0] * 6, [0.2, 0.2] + [0.5] * 12),
            ([0, 0] + [0] * 18, [1, 0] + [1] * 12 + [0] * 6, [0.3, 0.95] + [0.5] * 12),
            ([1, 0] + [0] * 18, [1, 0] + [1] * 12 + [0] * 6, [0.8, 0.99] + [0.5] * 12)]
    df = spark.createDataFrame([tuple(list(map(float, v)) for v in r) for r in rows],
                               "labels array<float>, label_mask array<float>, probabilities array<float>")
    rep = evaluate_auc(df, labels=LABELS)
    assert rep.auc["Cardiomegaly"] == 1.0 and rep.positives["Cardiomegaly"] == 1  # rows 3-4 left out
    assert rep.auc["Atelectasis"] == 1.0  # 0.8 above 0.1, 0.2, 0.3
    assert rep.auc["Effusion"] is None  # no positives
    p_known = [0.1, 0.2, 0.3, 0.8] + [0.9, 0.2]  # Atelectasis, then Cardiomegaly's known rows
    y_known = [0, 0, 0, 1] + [1, 0]
    others = -np.log(0.5) * 12 * 4  # the 12 other NIH labels: y 0, p 0.5, on every row
    want = (sum(-np.log(p) if y else -np.log(1 - p) for p, y in zip(p_known, y_known)) + others) / (6 + 48)
    assert bce_loss(df, labels=LABELS) == pytest.approx(want, rel=1e-6)


@pytest.fixture(scope="module")
def chexpert_ignore(spark, chexpert, tmp_path_factory) -> str:
    """The CheXpert fixture ingested with uncertain and blank cells masked (and NIH-only labels)."""
    out = str(tmp_path_factory.mktemp("chexpert-ingest") / "train.parquet")
    jobs.ingest(spark, str(chexpert.root), str(chexpert.csvs["train"]), out, size=72, source="chexpert",
                policy="ignore", unmentioned="ignore")
    return out


# each engine in the profile where it is the default: BigDL is only in .venv, torch is .venv-spark4's engine
@pytest.mark.parametrize("engine", [pytest.param("torch", marks=pytest.mark.profile("spark4")),
                                    pytest.param("bigdl", marks=pytest.mark.profile("spark35"))])
def test_masked_training_and_evaluation(spark, chexpert_ignore, tmp_path, engine):
    from cxrzoo.engine.base import engine_class

    why = engine_class(engine).available()
    if why is not None:
        pytest.skip(f"{engine} is not installed in this profile: {why}")
    assert engine_class(engine).masks_loss
    model = jobs.train(spark, chexpert_ignore, str(tmp_path / "m"), crop=64, modelName="tiny", epochs=2,
                       batchSize=8, learningRate=3e-3, seed=2, engine=engine, classWeighting="chexnet")
    losses = [h["loss"] for h in model.history]
    assert len(losses) == 2 and all(np.isfinite(v) for v in losses)  # NaN targets would make the loss NaN
    rep = jobs.evaluate(spark, str(tmp_path / "m"), chexpert_ignore, bootstrap=0)
    assert rep.auc["Mass"] is None  # never stated by CheXpert: no entries at all
    from cxrzoo.train import CXRModel

    rows = CXRModel.load(str(tmp_path / "m")).transform(spark.read.parquet(chexpert_ignore)) \
        .select("labels", "label_mask", "probabilities").collect()
    checked = 0
    for name in ("Cardiomegaly", "Effusion", "Atelectasis", "Pneumonia", "Edema", "Consolidation", "Pneumothorax"):
        i, j = ALL_LABELS.index(name), LABELS.index(name)
        known = [(r.labels[i], r.probabilities[j]) for r in rows if r.label_mask[i] > 0]
        assert len(known) < len(rows), name  # blank and uncertain entries of this label are masked
        pos = [p for y, p in known if y > 0.5]
        neg = [p for y, p in known if y <= 0.5]
        if not pos or not neg:
            assert rep.auc[name] is None, name
            continue
        checked += 1
        pairs = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))  # Mann-Whitney
        assert rep.auc[name] == pytest.approx(pairs, abs=1e-12), name
        assert rep.positives[name] == len(pos)
    assert checked >= 3


@pytest.mark.profile("spark4")  # the console script's synth and ingest: the same on Spark 3.5 and 4
def test_cli_synth_then_ingest_chexpert(tmp_path):
    """The console script end to end: ``synth --format chexpert``, then ``ingest --source chexpert``."""
    import json
    import subprocess
    import sys

    cxrzoo = str(Path(sys.executable).parent / "cxrzoo")
    subprocess.run([cxrzoo, "-q", "synth", "--format", "chexpert", "--out", str(tmp_path / "ds"), "--n", "12",
                    "--size", "64", "--workers", "1"], check=True, timeout=120)
    csv_path = tmp_path / "ds" / "CheXpert-v1.0-small" / "valid.csv"
    n_valid = len(csv_path.read_text().splitlines()) - 1
    r = subprocess.run([cxrzoo, "ingest", "--source", "chexpert", "--images", str(tmp_path / "ds"), "--labels",
                        str(csv_path), "--out", str(tmp_path / "valid.parquet"), "--size", "32", "--policy", "zeros",
                        "--master", "local[1]", "--driver-memory", "1g"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "valid.parquet" / "_ingest_report.json").read_text())
    assert report["matched"] == n_valid > 0 and report["images_without_row"] == 0  # train/ is not counted
    assert f"{n_valid} files listed, {n_valid} ingested OK, 0 error rows; 0 without a label row" in r.stderr + r.stdout
    assert report["decoded"] == n_valid and report["error_rows"] == 0 and report["errors_by_reason"] == {}


def test_labels_param_trains_exports_and_scores_a_subset(spark, chexpert_ignore, tmp_path):
    import json

    from cxrzoo.engine.base import engine_class, engine_names
    from cxrzoo.labels import UnknownLabelError
    from cxrzoo.score import OpenVINOScorer
    from cxrzoo.train import CXREstimator

    with pytest.raises(UnknownLabelError, match="unknown label 'Pleural effusion'"):
        CXREstimator(labels=["Cardiomegaly", "Pleural effusion"])
    names = [n for n in engine_names() if engine_class(n).masks_loss and engine_class(n).available() is None]
    subset = ["Lung Opacity", "Effusion", "Support Devices"]  # two of CheXpert's own, one shared with NIH
    model = jobs.train(spark, chexpert_ignore, str(tmp_path / "m"), validation=chexpert_ignore, crop=64,
                       modelName="tiny", epochs=1, batchSize=8, learningRate=3e-3, seed=2, engine=names[0],
                       labels=subset, allowPatientOverlap=True)  # validation: thresholds, so findings
    assert model.getLabels() == subset
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["labels"] == subset
    rep = jobs.evaluate(spark, str(tmp_path / "m"), chexpert_ignore)
    assert list(rep.auc) == subset
    df = spark.read.parquet(chexpert_ignore)
    y = np.array([r.labels for r in df.select("labels").collect()])
    m = np.array([r.label_mask for r in df.select("label_mask").collect()])
    for name in subset:  # positives counted from the harmonised column by name, masked entries left out
        i = ALL_LABELS.index(name)
        assert rep.positives[name] == int(((y[:, i] > 0.5) & (m[:, i] > 0)).sum()), name
    ir = jobs.export(str(tmp_path / "m"), str(tmp_path / "ir"))
    scored = OpenVINOScorer(modelDir=str(ir)).transform(df).select("probabilities", "findings").collect()
    assert all(len(r.probabilities) == 3 for r in scored)
    assert set(model.thresholds) == set(subset)
    assert {f for r in scored for f in (r.findings or [])} <= set(subset)


def test_mimic_cxr_as_dicom(spark, mimic, tmp_path):
    """MIMIC-CXR proper stores DICOM (``DICOM_ID.dcm``): matched on the dicom_id, decoded like the JPEGs' pixels."""
    import shutil

    from dicommaker import dataset, to_bytes

    root = tmp_path / "mimic-dcm"
    shutil.copytree(mimic.root, root)
    jpegs = sorted((root / "files").rglob("*.jpg"))[:3]
    for p in jpegs:
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        # window 128/256: DICOM's linear rule maps 0..255 onto itself, so the pixels match the JPEG's
        ds = dataset(gray, patient_id=p.parent.parent.name[1:], WindowCenter=128, WindowWidth=256)
        p.with_suffix(".dcm").write_bytes(to_bytes(ds))
        p.unlink()
    c = {k: str(root / v.name) for k, v in mimic.csvs.items()}
    rows = {r.image_index: r for r in read_mimic_cxr(spark, str(root), c["metadata"], c["labels"], size=48)
            .collect()}
    assert len(rows) == 80
    for p in jpegs:
        r = rows[p.stem]
        assert r.error is None and r.path.endswith(".dcm") and r.dicom.patient_id == str(r.patient_id)
        ref = cv2.resize(cv2.imread(str(mimic.root / p.relative_to(root)), cv2.IMREAD_GRAYSCALE), (48, 48),
                         interpolation=cv2.INTER_AREA)
        assert np.abs(np.frombuffer(r.image, np.uint8).reshape(48, 48).astype(int) - ref).max() <= 1
