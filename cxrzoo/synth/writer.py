"""Write a synthetic dataset in NIH's on-disk layout.

``DIR/images/PPPPPPPP_FFF.png``, ``DIR/Data_Entry_2017.csv`` (NIH's 2017 header,
trailing empty column included) and the patient-wise ``train_val_list.txt`` /
``test_list.txt``.  Images are rendered in parallel; every file is written
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
from cxrzoo.synth.phantom import render
from cxrzoo.synth.pngwrite import encode_gray_png

log = logging.getLogger(__name__)

NIH_2017_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)


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


def _render_one(args: tuple[str, str, int, int, str]) -> str:
    path, findings, size, seed, view = args
    p = Path(path)
    if not p.exists():
        write_bytes(p, encode_gray_png(render(findings, size, seed, view)))
    return path


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
    done = 0
    if workers == 1:
        for j in jobs:
            _render_one(j)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done, _ in enumerate(pool.map(_render_one, jobs, chunksize=8), 1):
                if done % 200 == 0:
                    log.info("synth: %d/%d images", done, n)
    spacing = nih_stats()["spacing_mm"] * 2500 / size  # NIH originals are ~2500 px wide
    rows = [NIH_2017_HEADER] + [_csv_row(s, size, spacing) for s in studies]
    labels_csv = root / "Data_Entry_2017.csv"
    write_text(labels_csv, "\n".join(rows) + "\n")
    train, test = split_patients(studies, seed)
    tv, te = root / "train_val_list.txt", root / "test_list.txt"
    write_text(tv, "\n".join(train) + "\n")
    write_text(te, "\n".join(test) + "\n")
    dt = time.perf_counter() - t0
    log.info("synth: wrote %d images (%d²) to %s in %.1fs (%.0f images/s)", n, size, images, dt, n / dt)
    return SynthResult(root, images, labels_csv, tv, te, n, dt)
