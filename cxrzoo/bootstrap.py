"""cxrzoo's one AUC: from ranks, per label, and bootstrap confidence intervals (NumPy, on the driver).

Evaluation, the bootstrap and the precision gates of export all compute AUC here.
"""
from __future__ import annotations

import numpy as np

# Published per-class AUROC, for side-by-side display only (other data, other splits):
# CheXNet (Rajpurkar et al. 2017, DenseNet-121, NIH official patient-wise test split) and
# the seed (Intel/Dell Analytics Zoo, ResNet-50, random image-wise validation split).
CHEXNET_AUC = {"Atelectasis": .8094, "Cardiomegaly": .9248, "Effusion": .8638, "Infiltration": .7345,
               "Mass": .8676, "Nodule": .7802, "Pneumonia": .7680, "Pneumothorax": .8887,
               "Consolidation": .7901, "Edema": .8878, "Emphysema": .9371, "Fibrosis": .8047,
               "Pleural_Thickening": .8062, "Hernia": .9164}
CHEXNET_MEAN = .8414
SEED_MEAN = .8093


def auc_from_ranks(y: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with tied scores averaged); None without both classes.

    NaN labels (unknown for that image, :mod:`cxrzoo.targets`) are left out with their scores."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    known = ~np.isnan(y)
    if not known.all():
        y, p = y[known], p[known]
    y = y > 0.5
    npos = int(y.sum())
    nneg = y.size - npos
    if npos == 0 or nneg == 0:
        return None
    _, inv, counts = np.unique(np.asarray(p, np.float64), return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = avg_rank[inv]
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def auc_table(y: np.ndarray, p: np.ndarray, labels) -> dict:
    """``{"auc": {label: AUC or None}, "mean_auc": …}`` for (N, L) labels and scores (None: one class only)."""
    auc = {name: auc_from_ranks(y[:, i], p[:, i]) for i, name in enumerate(labels)}
    vals = [v for v in auc.values() if v is not None]
    return {"auc": auc, "mean_auc": float(np.mean(vals)) if vals else None}


def bootstrap_ci(y: np.ndarray, p: np.ndarray, labels: tuple[str, ...], n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap CIs of each label's AUC and of the mean AUC (over labels defined in a resample).

    Parameters
    ----------
    y, p : numpy.ndarray
        (N, L) labels (0/1) and scores.
    """
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    per = {name: [] for name in labels}
    means = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        vals = []
        for j, name in enumerate(labels):
            a = auc_from_ranks(y[idx, j], p[idx, j])
            if a is not None:
                per[name].append(a)
                vals.append(a)
        if vals:
            means.append(float(np.mean(vals)))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out: dict[str, tuple[float, float] | None] = {
        name: (float(np.percentile(v, lo)), float(np.percentile(v, hi))) if len(v) >= n_boot // 2 else None
        for name, v in per.items()}
    out["mean_auc"] = (float(np.percentile(means, lo)), float(np.percentile(means, hi))) if means else None
    return out
