"""Operating thresholds: Youden's J and a target sensitivity, against a brute-force reference; findings."""
from __future__ import annotations

import numpy as np
import pytest

from cxrzoo.thresholds import choose_thresholds, findings

LABELS = ("A", "B", "C")


def _brute(y: np.ndarray, p: np.ndarray):
    """Every candidate threshold t (predict p >= t), by direct counting: (t, sensitivity, specificity)."""
    rows = []
    for t in np.unique(p):
        pred = p >= t
        rows.append((t, (pred & y).sum() / y.sum(), (~pred & ~y).sum() / (~y).sum()))
    return rows


@pytest.fixture()
def data():
    rng = np.random.default_rng(5)
    y = (rng.random((400, 3)) < [0.3, 0.1, 0.0]).astype(float)
    p = np.clip(0.35 * y + rng.random((400, 3)) * 0.8, 0, 1).round(2)  # rounded: many tied scores
    return y, p


def test_youden_maximises_j_over_every_threshold(data):
    y, p = data
    got = choose_thresholds(y, p, LABELS)
    for j, name in enumerate(LABELS[:2]):
        rows = _brute(y[:, j] > 0.5, p[:, j])
        best_j = max(s + c - 1 for _, s, c in rows)
        t_best = max(t for t, s, c in rows if abs(s + c - 1 - best_j) < 1e-12)  # the highest of equals
        assert got[name]["threshold"] == pytest.approx(t_best)
        assert got[name]["sensitivity"] + got[name]["specificity"] - 1 == pytest.approx(best_j)
        assert got[name]["positives"] == int(y[:, j].sum())
    assert got["C"] is None  # no positives: no decision


def test_target_sensitivity_is_the_most_specific_threshold_reaching_it(data):
    y, p = data
    got = choose_thresholds(y, p, LABELS, method="sensitivity", target_sensitivity=0.8)
    for j, name in enumerate(LABELS[:2]):
        rows = [(t, s, c) for t, s, c in _brute(y[:, j] > 0.5, p[:, j]) if s >= 0.8]
        t, s, c = max(rows)  # highest threshold still reaching 0.8
        assert got[name]["threshold"] == pytest.approx(t) and got[name]["sensitivity"] >= 0.8
        assert got[name]["specificity"] == pytest.approx(c)


def test_findings_are_the_labels_at_or_above_their_thresholds():
    th = {"A": {"threshold": 0.5}, "B": {"threshold": 0.2}, "C": None}
    probs = np.array([[0.5, 0.1, 0.99], [0.49, 0.2, 0.0], [0.9, 0.9, 0.9]])
    assert findings(probs, LABELS, th) == [["A"], ["B"], ["A", "B"]]


def test_bad_arguments_say_what_is_wrong():
    y = np.zeros((4, 3))
    with pytest.raises(ValueError, match="one of"):
        choose_thresholds(y, y, LABELS, method="f1")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        choose_thresholds(y, y, LABELS, method="sensitivity", target_sensitivity=1.5)
    with pytest.raises(ValueError, match="must both be"):
        choose_thresholds(y, y[:, :2], LABELS)
