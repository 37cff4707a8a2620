"""Write the synthetic cohort in CheXpert's and MIMIC-CXR-JPG's on-disk layouts (offline fixtures).

The same cohort and phantoms as the NIH writer (:mod:`cxrzoo.synth.writer`), as JPEGs:

- **CheXpert**: ``DIR/CheXpert-v1.0-small/{train,valid}/patientPPPPP/studyS/view1_frontal.jpg`` and
  ``train.csv`` / ``valid.csv`` beside them, with CheXpert's header.  Uncertain (``-1.0``) and blank cells
  appear as in the real files: a drawn sign is written ``1.0``, or ``-1.0`` for about one in six; an absent
  one ``0.0`` or, more often, blank.
- **MIMIC-CXR-JPG**: ``DIR/files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg`` and ``mimic-cxr-2.0.0-metadata.csv.gz``,
  ``mimic-cxr-2.0.0-chexpert.csv.gz`` and ``mimic-cxr-2.0.0-split.csv.gz`` with MIMIC's headers.

NIH's signs map to the CheXpert labeler's observations by what is drawn (``docs/labels.md``): Effusion is
Pleural Effusion, Infiltration is Lung Opacity, Mass and Nodule are Lung Lesion; Emphysema, Fibrosis,
Pleural_Thickening and Hernia have no observation and are not written.  Every file is written atomically and
the same ``(n, size, seed)`` gives the same bytes.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cxrzoo.atomic import write_bytes, write_text
from cxrzoo.ingest.sources_csv import (CHEXPERT_HEADER, MIMIC_LABELS_HEADER, MIMIC_METADATA_HEADER,
                                       MIMIC_SPLIT_HEADER)
from cxrzoo.synth.cohort import Study, sample_cohort, split_patients
from cxrzoo.synth.phantom import render
from cxrzoo.errors import JobFailedError

FORMATS = ("nih", "chexpert", "mimic")
NIH_TO_CHEXPERT = {"Atelectasis": "Atelectasis", "Cardiomegaly": "Cardiomegaly", "Effusion": "Pleural Effusion",
                   "Infiltration": "Lung Opacity", "Mass": "Lung Lesion", "Nodule": "Lung Lesion",
                   "Pneumonia": "Pneumonia", "Pneumothorax": "Pneumothorax", "Consolidation": "Consolidation",
                   "Edema": "Edema"}
_OBSERVATIONS = CHEXPERT_HEADER[6:]  # the 13 after "No Finding"


@dataclass(frozen=True)
class FormatResult:
    """Where a CheXpert- or MIMIC-format dataset was written."""

    root: Path
    csvs: dict[str, Path]
    n: int
    seconds: float


def _write_jpeg(args: tuple[str, str, int, int, str]) -> None:
    path, findings, size, seed, view = args
    p = Path(path)
    if not p.exists():
        ok, buf = cv2.imencode(".jpg", render(findings, size, seed, view), [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise JobFailedError(f"OpenCV could not encode {p}")
        write_bytes(p, buf.tobytes())


def _render_all(jobs: list[tuple], workers: int | None) -> None:
    workers = workers or os.cpu_count() or 1
    for j in jobs:
        Path(j[0]).parent.mkdir(parents=True, exist_ok=True)
    if workers == 1:
        for j in jobs:
            _write_jpeg(j)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_jpeg, jobs, chunksize=8))


def observations(s: Study) -> dict[str, str]:
    """CheXpert-labeler cells (``1.0``, ``-1.0``, ``0.0`` or blank) for a study's drawn signs."""
    rng = np.random.default_rng([s.seed, 0xC4E])
    drawn = {NIH_TO_CHEXPERT[f] for f in s.findings.split("|") if f in NIH_TO_CHEXPERT}
    cells = {}
    for obs in _OBSERVATIONS:
        u = rng.random()
        if obs in drawn:
            cells[obs] = "-1.0" if u < 1 / 6 else "1.0"
        else:
            cells[obs] = "0.0" if u < 0.3 else ""
    cells["No Finding"] = "1.0" if s.findings == "No Finding" else ""
    return cells


def write_chexpert(out: str | os.PathLike, n: int = 500, size: int = 320, seed: int = 0,
                   workers: int | None = None) -> FormatResult:
    """The cohort of ``n`` images as CheXpert-v1.0-small (train.csv for the train side, valid.csv for the rest)."""
    t0 = time.perf_counter()
    root = Path(out) / "CheXpert-v1.0-small"
    studies = sample_cohort(n, seed)
    _, test = split_patients(studies, seed)
    test_set = set(test)
    rows: dict[str, list[str]] = {"train": [], "valid": []}
    jobs = []
    for s in studies:
        part = "valid" if s.image_index in test_set else "train"
        rel = f"CheXpert-v1.0-small/{part}/patient{s.patient_id:05d}/study{s.follow_up + 1}/view1_frontal.jpg"
        jobs.append((str(Path(out) / rel), s.findings, size, s.seed, s.view))
        cells = observations(s)
        sex = "Male" if s.gender == "M" else "Female"
        rows[part].append(",".join([rel, sex, str(s.age), "Frontal", s.view] + [cells[c] for c in CHEXPERT_HEADER[5:]]))
    _render_all(jobs, workers)
    csvs = {}
    for part, lines in rows.items():
        csvs[part] = root / f"{part}.csv"
        write_text(csvs[part], "\n".join([",".join(CHEXPERT_HEADER)] + sorted(lines)) + "\n")
    return FormatResult(Path(out), csvs, n, time.perf_counter() - t0)


def _dicom_id(s: Study) -> str:
    h = hashlib.sha1(f"{s.image_index}:{s.seed}".encode()).hexdigest()
    return "-".join(h[i:i + 8] for i in range(0, 40, 8))


def _gz(path: Path, header: tuple[str, ...], lines: list[str]) -> None:
    text = "\n".join([",".join(header)] + lines) + "\n"
    write_bytes(path, gzip.compress(text.encode(), mtime=0))  # mtime 0: the same bytes every run


def write_mimic(out: str | os.PathLike, n: int = 500, size: int = 320, seed: int = 0,
                workers: int | None = None) -> FormatResult:
    """The cohort of ``n`` images as MIMIC-CXR-JPG: ``files/`` and the metadata, CheXpert-label and split CSVs."""
    t0 = time.perf_counter()
    root = Path(out)
    studies = sample_cohort(n, seed)
    _, test = split_patients(studies, seed)
    test_set = set(test)
    meta, labels, split, jobs = [], [], [], []
    for s in studies:
        # follow-ups stay below 1,000 (sample_cohort caps a patient at n/8 and at NIH's largest series, 184)
        subject, study, dicom = 10_000_000 + s.patient_id, 50_000_000 + s.patient_id * 1000 + s.follow_up, _dicom_id(s)
        jobs.append((str(root / "files" / f"p{str(subject)[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg"),
                     s.findings, size, s.seed, s.view))
        date = f"2150{s.follow_up % 12 + 1:02d}15"
        meta.append(f"{dicom},{subject},{study},CHEST (PA AND LAT),{s.view},{size},{size},{date},120000.000,"
                    "CHEST (PA AND LAT),postero-anterior,Erect")
        cells = observations(s)
        labels.append(",".join([str(subject), str(study)] + [cells[c] for c in MIMIC_LABELS_HEADER[2:]]))
        part = "test" if s.image_index in test_set else ("validate" if s.patient_id % 10 == 0 else "train")
        split.append(f"{dicom},{study},{subject},{part}")
    _render_all(jobs, workers)
    csvs = {"metadata": root / "mimic-cxr-2.0.0-metadata.csv.gz", "labels": root / "mimic-cxr-2.0.0-chexpert.csv.gz",
            "split": root / "mimic-cxr-2.0.0-split.csv.gz"}
    _gz(csvs["metadata"], MIMIC_METADATA_HEADER, meta)
    _gz(csvs["labels"], MIMIC_LABELS_HEADER, sorted(labels))
    _gz(csvs["split"], MIMIC_SPLIT_HEADER, split)
    return FormatResult(root, csvs, n, time.perf_counter() - t0)
