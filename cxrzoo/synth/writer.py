"""Write a synthetic dataset in NIH's on-disk layout.

``DIR/images/PPPPPPPP_FFF.png``, ``DIR/Data_Entry_2017.csv`` (NIH's 2017 header,
trailing empty column included), ``DIR/BBox_List_2017.csv`` (where each localised sign was drawn, in
NIH's layout: ``Image Index,Finding Label,Bbox [x,y,w,h]``, pixels of the written image) and the
patient-wise ``train_val_list.txt`` / ``test_list.txt``.  Images are rendered in parallel; every file is written
atomically (temporary name, then rename), so an interrupted run leaves no
truncated PNG behind and a rerun completes it.
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cxrzoo.atomic import write_bytes, write_text
from cxrzoo.synth.cohort import Study, nih_stats, sample_cohort, split_patients
from cxrzoo.synth.phantom import render_with_boxes
from cxrzoo.synth.pngwrite import encode_gray_png

log = logging.getLogger(__name__)

NIH_2017_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h]"


@dataclass(frozen=True)
class SynthResult:
    """Where a synthetic dataset was written and how long it took."""

    root: Path
    images: Path
    labels_csv: Path
    train_val_list: Path
    test_list: Path
    n: int
    seconds: float
    bbox_csv: Path | None = None


def _render_one(args: tuple[str, str, int, int, str]) -> list[tuple]:
    """Render one image (written unless a previous run did) and return its boxes."""
    path, findings, size, seed, view = args
    p = Path(path)
    img, boxes = render_with_boxes(findings, size, seed, view)  # the boxes are needed on a rerun too
    if not p.exists():
        write_bytes(p, encode_gray_png(img))
    return [(p.name, *b) for b in boxes]


def _csv_row(s: Study, size: int, spacing: float) -> str:
    return (f"{s.image_index},{s.findings},{s.follow_up},{s.patient_id},{s.age},{s.gender},{s.view},"
            f"{size},{size},{spacing:.3f},{spacing:.3f},")


def write_dataset(out: str | os.PathLike, n: int = 500, size: int = 1024, seed: int = 0,
                  workers: int | None = None) -> SynthResult:
    """Generate ``n`` synthetic radiographs with NIH-format labels and splits.

    Parameters
    ----------
    out : path
        Output directory (created).
    n : int
        Number of images.
    size : int
        Side length of each square PNG.
    seed : int
        Seed: the same ``(n, size, seed)`` gives byte-identical files.
    workers : int, optional
        Processes to render with (default: all cores).

    Returns
    -------
    SynthResult
    """
    t0 = time.perf_counter()
    root = Path(out)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    studies = sample_cohort(n, seed)
    jobs = [(str(images / s.image_index), s.findings, size, s.seed, s.view) for s in studies]
    workers = workers or os.cpu_count() or 1
    boxes: list[tuple] = []
    if workers == 1:
        for j in jobs:
            boxes += _render_one(j)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done, got in enumerate(pool.map(_render_one, jobs, chunksize=8), 1):
                boxes += got
                if done % 500 == 0:
                    log.debug("synth: %d/%d images", done, n)
    spacing = nih_stats()["spacing_mm"] * 2500 / size  # NIH originals are ~2500 px wide
    rows = [NIH_2017_HEADER] + [_csv_row(s, size, spacing) for s in studies]
    labels_csv = root / "Data_Entry_2017.csv"
    write_text(labels_csv, "\n".join(rows) + "\n")
    bbox_csv = root / "BBox_List_2017.csv"
    write_text(bbox_csv, "\n".join([BBOX_HEADER] + [f"{i},{lab},{x:.3f},{y:.3f},{w:.3f},{h:.3f}"
                                                     for i, lab, x, y, w, h in boxes]) + "\n")
    train, test = split_patients(studies, seed)
    tv, te = root / "train_val_list.txt", root / "test_list.txt"
    write_text(tv, "\n".join(train) + "\n")
    write_text(te, "\n".join(test) + "\n")
    dt = time.perf_counter() - t0
    log.debug("synth: wrote %d images (%d²) to %s in %.1fs (%.0f images/s)", n, size, images, dt, n / dt)
    return SynthResult(root, images, labels_csv, tv, te, n, dt, bbox_csv)
