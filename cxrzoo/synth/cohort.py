"""Sample a synthetic NIH-style cohort: patients, follow-ups, findings, views.

Statistics come from ``cxrzoo/data/nih_stats.json`` (derived once from NIH's
real label file by ``scripts/derive_nih_stats.py``).  Every image's finding
combination is drawn from the real distribution of combinations, so label
prevalence and co-occurrence match ChestX-ray14; follow-ups of one patient are
correlated (a follow-up repeats the previous study's findings with probability
``persistence``), which keeps the marginal distribution unchanged but makes a
patient-wise split matter, as it does on the real data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from cxrzoo.labels import NO_FINDING
from cxrzoo.errors import InputError


@dataclass(frozen=True)
class Study:
    """One synthetic image's metadata (one row of ``Data_Entry_2017.csv``)."""

    image_index: str
    patient_id: int
    follow_up: int
    findings: str
    age: int
    gender: str
    view: str
    seed: int


@lru_cache(maxsize=1)
def nih_stats() -> dict:
    """Load the committed ChestX-ray14 statistics."""
    text = resources.files("cxrzoo.data").joinpath("nih_stats.json").read_text()
    return json.loads(text)


def _probabilities(counts: dict[str, int]) -> tuple[list[str], np.ndarray]:
    keys = list(counts)
    p = np.array([counts[k] for k in keys], dtype=np.float64)
    return keys, p / p.sum()


def sample_cohort(n: int, seed: int, persistence: float = 0.5) -> list[Study]:
    """Draw ``n`` studies grouped into patients.

    Parameters
    ----------
    n : int
        Number of images.
    seed : int
        Seed; the cohort is a pure function of ``(n, seed, persistence)``.
    persistence : float
        Probability that a follow-up keeps the previous study's findings.

    Returns
    -------
    list of Study
        In file-name order (patient, then follow-up).
    """
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    stats = nih_stats()
    rng = np.random.default_rng([seed, 0x5EED])
    combos, p_combo = _probabilities(stats["combos"])
    sizes, p_size = _probabilities(stats["images_per_patient"])
    sizes_int = np.array([int(s) for s in sizes])
    views, p_view = _probabilities(stats["view_position"])
    genders, p_gender = _probabilities(stats["gender"])
    age_p = np.array(stats["age_counts"], dtype=np.float64)
    age_p /= age_p.sum()
    cap = max(1, n // 8)  # a small cohort must not be one patient's series
    studies: list[Study] = []
    patient = 0
    while len(studies) < n:
        patient += 1
        k = int(min(sizes_int[rng.choice(len(sizes), p=p_size)], cap, n - len(studies)))
        lo, hi = stats["age_bins"][rng.choice(len(age_p), p=age_p)]
        age0 = int(rng.integers(lo, hi + 1))
        gender = str(genders[rng.choice(len(genders), p=p_gender)])
        findings = NO_FINDING
        for fu in range(k):
            if fu == 0 or rng.random() >= persistence:
                findings = combos[rng.choice(len(combos), p=p_combo)]
            studies.append(
                Study(
                    image_index=f"{patient:08d}_{fu:03d}.png",
                    patient_id=patient,
                    follow_up=fu,
                    findings=findings,
                    age=min(age0 + fu // 3, 95),
                    gender=gender,
                    view=str(views[rng.choice(len(views), p=p_view)]),
                    seed=int(rng.integers(0, 2**31 - 1)),
                )
            )
    return studies


def split_patients(studies: list[Study], seed: int, train_fraction: float = 0.77) -> tuple[list[str], list[str]]:
    """Patient-wise train/val vs test split, about ``train_fraction`` of images on the train side.

    Returns
    -------
    (train_val, test) : tuple of list of str
        Image file names; no patient appears on both sides.
    """
    by_patient: dict[int, list[str]] = {}
    for s in studies:
        by_patient.setdefault(s.patient_id, []).append(s.image_index)
    order = np.random.default_rng([seed, 0x5B17]).permutation(sorted(by_patient))
    target = train_fraction * len(studies)
    train: list[str] = []
    test: list[str] = []
    for pid in order:
        side = train if len(train) + len(by_patient[pid]) / 2 <= target else test
        side.extend(by_patient[int(pid)])
    return sorted(train), sorted(test)
