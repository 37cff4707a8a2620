"""Per-label operating thresholds chosen on validation data: Youden's J, or a target sensitivity.

A label's finding is positive when its probability is ``>= threshold``.  :func:`choose_thresholds`
picks, per label, among the scores seen (NumPy, on the driver):

- ``youden``: the threshold maximising sensitivity + specificity − 1 (the highest of equals);
- ``sensitivity``: the highest threshold whose sensitivity reaches the target (the most specific one).

Labels without both positives and negatives in the data get no threshold (``None``): no decision is
made for them.
"""
from __future__ import annotations

import numpy as np

from cxrzoo.curves import roc_points
from cxrzoo.errors import InputError

METHODS = ("youden", "sensitivity")


def choose_thresholds(y: np.ndarray, p: np.ndarray, labels, method: str = "youden",
                      target_sensitivity: float = 0.9) -> dict[str, dict | None]:
    """Per label: ``{"threshold", "sensitivity", "specificity", "method", "positives", "negatives"}`` or None.

    Parameters
    ----------
    y, p : numpy.ndarray
        (N, L) labels (0/1, NaN where unknown: left out) and probabilities, L = ``len(labels)``.
    method : {"youden", "sensitivity"}
    target_sensitivity : float
        With ``method="sensitivity"``: the sensitivity to reach, in (0, 1].
    """
    if method not in METHODS:
        raise InputError(f"threshold method must be one of {METHODS}, got {method!r}")
    if not 0.0 < target_sensitivity <= 1.0:
        raise InputError(f"target sensitivity must be in (0, 1], got {target_sensitivity}")
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    if y.ndim != 2 or y.shape != p.shape or y.shape[1] != len(labels):
        raise InputError(f"labels {y.shape} and probabilities {p.shape} must both be (N, {len(labels)})")
    out: dict[str, dict | None] = {}
    for j, name in enumerate(labels):
        known = ~np.isnan(y[:, j])  # NaN: unknown for that image (cxrzoo.targets)
        yj = y[known, j] > 0.5
        npos = int(yj.sum())
        if npos == 0 or npos == yj.size:
            out[name] = None
            continue
        t, sens, spec = roc_points(yj, p[known, j])
        if method == "youden":
            k = int(np.argmax(sens + spec - 1.0))  # first maximum in descending thresholds: the highest
        else:
            k = int(np.flatnonzero(sens >= target_sensitivity - 1e-12)[0])
        out[name] = {"threshold": float(t[k]), "sensitivity": float(sens[k]), "specificity": float(spec[k]),
                     "method": method, "positives": npos, "negatives": int(yj.size - npos)}
        if method == "sensitivity":
            out[name]["target_sensitivity"] = float(target_sensitivity)
    return out


def findings(probabilities: np.ndarray, labels, thresholds: dict[str, dict | None]) -> list[list[str]]:
    """Per row of (N, L) ``probabilities``: the labels at or above their threshold (labels without one never)."""
    probs = np.asarray(probabilities, np.float64)
    cut = np.array([thresholds[n]["threshold"] if thresholds.get(n) else np.inf for n in labels])
    hit = probs >= cut[None, :]
    return [[labels[j] for j in np.flatnonzero(row)] for row in hit]
