"""Derive the label statistics the synthetic generator samples from.

Reads NIH's real ``Data_Entry_2017_v2020.csv.gz`` once and writes
``cxrzoo/data/nih_stats.json``: the frequency of every distinct finding
combination (which fixes prevalence and co-occurrence at once), the number of
images per patient, the PA/AP mix, sex and age.  Run from the repository root::

    .venv/bin/python scripts/derive_nih_stats.py ../shared/data/Data_Entry_2017_v2020.csv.gz
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from cxrzoo.labels import LABELS, NO_FINDING, encode_findings

log = logging.getLogger("derive_nih_stats")


def derive(csv_path: Path) -> dict:
    """Compute the statistics dictionary from the NIH label CSV."""
    df = pd.read_csv(csv_path)
    df = df.loc[:, ~df.columns.str.startswith("Unnamed")]
    combos = df["Finding Labels"].value_counts()
    per_patient = df.groupby("Patient ID").size().value_counts().sort_index()
    multi = df["Finding Labels"].map(lambda s: encode_findings(s))
    prevalence = {name: float(sum(v[i] for v in multi) / len(df)) for i, name in enumerate(LABELS)}
    ages = df["Patient Age"].clip(1, 95)
    age_hist = ages.value_counts(bins=range(0, 100, 5), sort=False)
    return {
        "source": "NIH ChestX-ray14 Data_Entry_2017_v2020.csv",
        "n_images": int(len(df)),
        "n_patients": int(df["Patient ID"].nunique()),
        "labels": list(LABELS),
        "no_finding_rate": float((df["Finding Labels"] == NO_FINDING).mean()),
        "prevalence": prevalence,
        "combos": {k: int(v) for k, v in combos.items()},
        "images_per_patient": {str(k): int(v) for k, v in per_patient.items()},
        "view_position": {k: int(v) for k, v in df["View Position"].value_counts().items()},
        "gender": {k: int(v) for k, v in df["Patient Gender"].value_counts().items()},
        "age_bins": [[int(iv.left) + 1, int(iv.right)] for iv in age_hist.index],
        "age_counts": [int(v) for v in age_hist.values],
        "spacing_mm": float(df["OriginalImagePixelSpacing[x"].median()),
    }


def main() -> None:
    """Command-line entry point."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--out", type=Path, default=Path("cxrzoo/data/nih_stats.json"))
    args = ap.parse_args()
    stats = derive(args.csv)
    args.out.write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    log.info("wrote %s: %d combos, no-finding %.3f", args.out, len(stats["combos"]), stats["no_finding_rate"])


if __name__ == "__main__":
    main()
