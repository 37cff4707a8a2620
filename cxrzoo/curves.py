"""ROC and precision-recall curves with bootstrap bands, and calibration (NumPy, on the driver).

cxrzoo's one place for operating points: :func:`roc_points` is what the threshold choice
(:mod:`cxrzoo.thresholds`) and the report's curves both read.  A score ``>= t`` counts as positive.
"""
from __future__ import annotations

import numpy as np

from cxrzoo.errors import InputError

GRID = np.linspace(0.0, 1.0, 101)


def roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct thresholds (descending) with the sensitivity (TPR) and specificity (1 − FPR) of ``p >= t``.

    ``y`` must hold both classes.
    """
    y = np.asarray(y, np.float64) > 0.5
    p = np.asarray(p, np.float64)
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ps) != 0), ps.size - 1]  # last index of each run of equal scores
    tp = np.cumsum(ys)[last]
    fp = (last + 1) - tp
    npos, nneg = ys.sum(), ys.size - ys.sum()
    return ps[last], tp / npos, 1.0 - fp / nneg


def pr_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at each distinct threshold, descending thresholds (``y`` needs a positive)."""
    y = np.asarray(y, np.float64) > 0.5
    order = np.argsort(-np.asarray(p, np.float64), kind="stable")
    ps, ys = np.asarray(p, np.float64)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ps) != 0), ps.size - 1]
    tp = np.cumsum(ys)[last]
    return tp / ys.sum(), tp / (last + 1)


def _roc_on_grid(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    _, tpr, spec = roc_points(y, p)
    fpr = np.r_[0.0, 1.0 - spec]
    return np.interp(GRID, fpr, np.r_[0.0, tpr])


def _pr_on_grid(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    rec, prec = pr_points(y, p)
    # interpolated precision: the best precision at any recall >= r (the usual PR envelope)
    env = np.maximum.accumulate(prec[::-1])[::-1]
    idx = np.searchsorted(rec, GRID, side="left")
    return np.where(idx < len(env), env[np.minimum(idx, len(env) - 1)], 0.0)


def _known(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y`` and ``p`` (float64) without the entries whose label is NaN (unknown, :mod:`cxrzoo.targets`)."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    keep = ~np.isnan(y)
    return (y, p) if keep.all() else (y[keep], p[keep])


def curves_with_bands(y: np.ndarray, p: np.ndarray, n_boot: int = 200, seed: int = 0,
                      level: float = 0.95) -> dict | None:
    """ROC (TPR on an FPR grid) and PR (precision on a recall grid), each with a percentile bootstrap band.

    Returns ``{"grid", "roc", "roc_lo", "roc_hi", "pr", "pr_lo", "pr_hi", "prevalence"}`` (arrays over
    :data:`GRID`), or None when ``y`` lacks a class.  Resamples that lack a class are skipped.
    """
    y, p = _known(y, p)
    y = y > 0.5
    if y.all() or not y.any():
        return None
    rng = np.random.default_rng(seed)
    rocs, prs = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        yb = y[idx]
        if yb.all() or not yb.any():
            continue
        rocs.append(_roc_on_grid(yb, p[idx]))
        prs.append(_pr_on_grid(yb, p[idx]))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {"grid": GRID, "roc": _roc_on_grid(y, p), "pr": _pr_on_grid(y, p), "prevalence": float(y.mean())}
    for name, runs in (("roc", rocs), ("pr", prs)):
        arr = np.array(runs) if runs else np.array([out[name]])
        out[f"{name}_lo"], out[f"{name}_hi"] = np.percentile(arr, lo, axis=0), np.percentile(arr, hi, axis=0)
    return out


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict:
    """Calibration over equal-width probability bins: per bin the mean probability, the observed rate and the
    count, and the expected calibration error ECE = Σ (n_b / N) |rate_b − mean_b|."""
    y, p = np.asarray(y, np.float64).ravel(), np.asarray(p, np.float64).ravel()
    if y.shape == p.shape:
        y, p = _known(y, p)
    if y.shape != p.shape or y.size == 0:
        raise InputError(f"need matching, non-empty labels and probabilities, got {y.shape} and {p.shape}")
    which = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    mean_p = np.bincount(which, weights=p, minlength=bins) / np.maximum(count, 1)
    rate = np.bincount(which, weights=y, minlength=bins) / np.maximum(count, 1)
    ece = float(np.sum(count / y.size * np.abs(rate - mean_p)))
    return {"edges": np.linspace(0, 1, bins + 1), "mean_probability": mean_p, "observed": rate, "count": count,
            "ece": ece}
