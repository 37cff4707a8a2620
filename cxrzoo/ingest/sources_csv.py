"""Parse CheXpert's and MIMIC-CXR's label files into the harmonised labels (:data:`cxrzoo.labels.ALL_LABELS`).

Both use the CheXpert labeler's 14 observations, one column each, with ``1.0`` positive, ``0.0`` negative,
``-1.0`` uncertain and a blank for "not mentioned in the report".  ``policy`` decides what an uncertain
entry becomes (``ones``: positive, ``zeros``: negative, ``ignore``: masked out), ``unmentioned`` what a
blank becomes (``zeros``, the CheXpert paper's reading, or ``ignore``).  Labels a source never annotates
(NIH's Infiltration, Mass, Nodule, Emphysema, Fibrosis, Pleural_Thickening, Hernia) are masked.  The
mapping is in ``docs/labels.md``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from cxrzoo.ingest.labels_csv import LabelFileError
from cxrzoo.labels import ALL_LABELS
from cxrzoo.errors import InputError

log = logging.getLogger(__name__)

POLICIES = ("ones", "zeros", "ignore")
UNMENTIONED = ("zeros", "ignore")
# the CheXpert labeler's observations, as CheXpert's and MIMIC-CXR's CSVs name them → harmonised label
CHEXPERT_TO_HARMONISED = {
    "Enlarged Cardiomediastinum": "Enlarged Cardiomediastinum",
    "Cardiomegaly": "Cardiomegaly",
    "Lung Opacity": "Lung Opacity",
    "Lung Lesion": "Lung Lesion",
    "Edema": "Edema",
    "Consolidation": "Consolidation",
    "Pneumonia": "Pneumonia",
    "Atelectasis": "Atelectasis",
    "Pneumothorax": "Pneumothorax",
    "Pleural Effusion": "Effusion",
    "Pleural Other": "Pleural Other",
    "Fracture": "Fracture",
    "Support Devices": "Support Devices",
}
OBSERVATIONS = ("No Finding",) + tuple(CHEXPERT_TO_HARMONISED)  # "No Finding" is read, not a harmonised label
CHEXPERT_HEADER = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum",
                   "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia",
                   "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices")
MIMIC_LABELS_HEADER = ("subject_id", "study_id", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
                       "Enlarged Cardiomediastinum", "Fracture", "Lung Lesion", "Lung Opacity", "No Finding",
                       "Pleural Effusion", "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices")
MIMIC_METADATA_HEADER = ("dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
                         "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
                         "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning")
MIMIC_SPLIT_HEADER = ("dicom_id", "study_id", "subject_id", "split")
MIMIC_SPLITS = ("train", "validate", "test")
_VALUES = {"1.0": 1, "1": 1, "0.0": 0, "0": 0, "-1.0": -1, "-1": -1, "": None}
# CheXpert's patientP numbers (1-64,740) overlap NIH's Patient IDs (1-30,805); MIMIC's subject_ids are 10,000,000
# and up.  CheXpert's patient_id is P + this offset, so sources unioned into one DataFrame never share a patient.
CHEXPERT_PATIENT_OFFSET = 100_000_000
_PATIENT = re.compile(r"patient0*(\d+)$")


def _check_policy(policy: str, unmentioned: str) -> None:
    if policy not in POLICIES:
        raise InputError(f"policy must be one of {POLICIES} (what CheXpert's -1, uncertain, becomes), got {policy!r}")
    if unmentioned not in UNMENTIONED:
        raise InputError(f"unmentioned must be one of {UNMENTIONED} (what a blank cell becomes), got {unmentioned!r}")


def _require(df: pd.DataFrame, cols, path: Path, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise LabelFileError(f"{path}: missing column(s) {missing}; is this {what}? header seen: {list(df.columns)}")


def harmonised_labels(df: pd.DataFrame, path: Path, policy: str, unmentioned: str) -> tuple[list, list]:
    """``labels`` and ``label_mask`` lists (over :data:`ALL_LABELS`) of each row of a CheXpert-labeler table."""
    _check_policy(policy, unmentioned)
    index = {name: i for i, name in enumerate(ALL_LABELS)}
    cols = [(c, index[h]) for c, h in CHEXPERT_TO_HARMONISED.items()]
    labels, masks = [], []
    rows = df[["No Finding"] + [c for c, _ in cols]].itertuples(index=False, name=None)
    for line, (no_finding, *cells) in enumerate(rows, start=2):  # line 1 is the header
        y, m = [0.0] * len(ALL_LABELS), [0.0] * len(ALL_LABELS)
        # the labeler writes No Finding = 1 only when no pathology is positive or uncertain: its blanks are
        # negatives even under unmentioned="ignore" (Support Devices is not a pathology: its blank stays blank)
        normal = no_finding.strip() in ("1.0", "1")
        for (col, i), cell in zip(cols, cells):
            raw = cell.strip()
            if raw not in _VALUES:
                raise LabelFileError(f"{path}:{line}: column {col!r} holds {cell!r}; the CheXpert labeler writes "
                                     "1.0, 0.0, -1.0 or a blank")
            v = _VALUES[raw]
            if v is None:
                known = unmentioned == "zeros" or (normal and col != "Support Devices")
                m[i] = 1.0 if known else 0.0
            elif v == -1:
                y[i] = 1.0 if policy == "ones" else 0.0
                m[i] = 0.0 if policy == "ignore" else 1.0
            else:
                y[i], m[i] = float(v), 1.0
        labels.append(y)
        masks.append(m)
    return labels, masks


def _read(path: str | Path) -> tuple[Path, pd.DataFrame]:
    path = Path(path)
    return path, pd.read_csv(path, dtype=str, keep_default_na=False)  # .gz read transparently


def read_chexpert_csv(path: str | Path, policy: str = "ones", unmentioned: str = "zeros") -> pd.DataFrame:
    """Read CheXpert's ``train.csv`` / ``valid.csv``: one row per image.

    Returns
    -------
    pandas.DataFrame
        ``image_index`` (the CSV's ``Path``), ``key`` (its last four components, ``train/patientP/studyS/F``,
        which the files under the image root are matched on), ``patient_id`` (int: ``P`` plus
        :data:`CHEXPERT_PATIENT_OFFSET`, apart from NIH's and MIMIC's ids),
        ``study_id`` (``patientP/studyS``), ``view_position`` (``AP``, ``PA``, … or ``LATERAL``), ``sex``,
        ``age``, ``labels`` and ``label_mask`` (harmonised).

    Raises
    ------
    LabelFileError
        A missing column, a path without ``patientP/studyS``, a value the labeler does not write, or an image
        listed twice, naming the file and line.
    """
    _check_policy(policy, unmentioned)
    path, df = _read(path)
    _require(df, ("Path",) + OBSERVATIONS, path, "CheXpert's train.csv or valid.csv")
    keys, pids, studies = [], [], []
    for line, p in enumerate(df["Path"], start=2):
        parts = p.strip().split("/")
        m = _PATIENT.match(parts[-3]) if len(parts) >= 4 else None
        if m is None or not parts[-2].startswith("study"):
            raise LabelFileError(f"{path}:{line}: Path {p!r} is not .../train|valid/patientP/studyS/viewN_....jpg")
        keys.append("/".join(parts[-4:]))
        pids.append(CHEXPERT_PATIENT_OFFSET + int(m.group(1)))
        studies.append(f"{parts[-3]}/{parts[-2]}")
    labels, masks = harmonised_labels(df, path, policy, unmentioned)
    frontal = df["Frontal/Lateral"].str.strip() if "Frontal/Lateral" in df else pd.Series([""] * len(df))
    ap = df["AP/PA"].str.strip() if "AP/PA" in df else pd.Series([""] * len(df))
    view = [v if f != "Lateral" else "LATERAL" for f, v in zip(frontal, ap)]
    out = pd.DataFrame({"image_index": df["Path"].str.strip(), "key": keys, "patient_id": pids, "study_id": studies,
                        "view_position": [v or None for v in view], "labels": labels, "label_mask": masks})
    if "Sex" in df:
        out["sex"] = df["Sex"].str.strip()
    if "Age" in df:
        out["age"] = pd.to_numeric(df["Age"], errors="coerce").astype("Int32")
    _no_duplicates(out, "key", path)
    log.debug("read %d CheXpert rows for %d patients from %s (policy %s)", len(out), out["patient_id"].nunique(),
              path, policy)
    return out


def read_mimic_csvs(metadata_csv: str | Path, labels_csv: str | Path, split_csv: str | Path | None = None,
                    policy: str = "ones", unmentioned: str = "zeros") -> tuple[pd.DataFrame, int]:
    """Join MIMIC-CXR's metadata (one row per DICOM), its CheXpert labels (one row per study) and its split.

    Returns
    -------
    (pandas.DataFrame, int)
        One row per image of a labelled study: ``image_index`` (``dicom_id``; files are matched on it, with any
        suffix), ``patient_id`` (``subject_id``), ``study_id``, ``view_position``, ``split`` (when a split file
        is given), ``labels`` and ``label_mask``; and the number of images whose study has no label row.
    """
    _check_policy(policy, unmentioned)
    mpath, meta = _read(metadata_csv)
    _require(meta, ("dicom_id", "subject_id", "study_id"), mpath, "mimic-cxr-2.0.0-metadata.csv")
    lpath, lab = _read(labels_csv)
    _require(lab, ("subject_id", "study_id") + OBSERVATIONS, lpath, "mimic-cxr-2.0.0-chexpert.csv (or -negbio)")
    for p, df, cols in ((mpath, meta, ("subject_id", "study_id")), (lpath, lab, ("subject_id", "study_id"))):
        for col in cols:
            bad = ~df[col].str.strip().str.fullmatch(r"\d+")
            if bad.any():
                line = int(bad.to_numpy().nonzero()[0][0]) + 2
                raise LabelFileError(f"{p}:{line}: {col} {df[col][bad].iloc[0]!r} is not an integer")
    labels, masks = harmonised_labels(lab, lpath, policy, unmentioned)
    lab = pd.DataFrame({"study_id": lab["study_id"].str.strip(), "labels": labels, "label_mask": masks})
    _no_duplicates(lab, "study_id", lpath)
    meta = meta.assign(dicom_id=meta["dicom_id"].str.strip(), study_id=meta["study_id"].str.strip())
    _no_duplicates(meta, "dicom_id", mpath)
    joined = meta.merge(lab, on="study_id", how="left")
    unlabelled = int(joined["labels"].isna().sum())
    joined = joined[joined["labels"].notna()]
    out = pd.DataFrame({"image_index": joined["dicom_id"], "patient_id": joined["subject_id"].astype(int),
                        "study_id": joined["study_id"],
                        "view_position": ([v.strip() or None for v in joined["ViewPosition"]]
                                          if "ViewPosition" in joined else None),
                        "labels": joined["labels"], "label_mask": joined["label_mask"]})
    if split_csv is not None:
        spath, split = _read(split_csv)
        _require(split, ("dicom_id", "split"), spath, "mimic-cxr-2.0.0-split.csv")
        bad = ~split["split"].str.strip().isin(MIMIC_SPLITS)
        if bad.any():
            raise LabelFileError(f"{spath}:{int(bad.to_numpy().nonzero()[0][0]) + 2}: split "
                                 f"{split['split'][bad].iloc[0]!r} is not one of {MIMIC_SPLITS}")
        split = split.assign(dicom_id=split["dicom_id"].str.strip(), split=split["split"].str.strip())
        _no_duplicates(split, "dicom_id", spath)
        out = out.merge(split[["dicom_id", "split"]], left_on="image_index", right_on="dicom_id", how="left")
        out = out.drop(columns="dicom_id")
    return out.reset_index(drop=True), unlabelled


def _no_duplicates(df: pd.DataFrame, col: str, path: Path) -> None:
    dup = df[col].duplicated()
    if dup.any():
        raise LabelFileError(f"{path}: {col} listed twice, e.g. {df[col][dup].iloc[0]!r}")
