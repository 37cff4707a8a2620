"""CheXNet-style class weighting of the binary cross-entropy.

For class c with P_c positive and N_c negative training images, a positive's loss is weighted by
``w+ = N_c / (P_c + N_c)`` and a negative's by ``w- = P_c / (P_c + N_c)`` (Rajpurkar et al., 2017),
so that rare findings are not drowned by the negatives.
"""
from __future__ import annotations

import logging

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

WEIGHTINGS = ("none", "chexnet")


def chexnet_weights(positives: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """``(w_pos, w_neg)`` per class from positive counts and the number of images.

    Parameters
    ----------
    positives : numpy.ndarray
        Positive count per class.
    total : int
        Number of images.

    Returns
    -------
    tuple of numpy.ndarray
        float32 weights of positives and negatives, each of length ``len(positives)``.
    """
    pos = np.asarray(positives, np.float64)
    if total <= 0:
        raise ValueError("class weights need a non-empty training set")
    if pos.ndim != 1 or (pos < 0).any() or (pos > total).any():
        raise ValueError(f"positive counts must be a vector in [0, {total}], got {positives!r}")
    return ((total - pos) / total).astype(np.float32), (pos / total).astype(np.float32)


def label_counts(df: DataFrame, label_col: str, num_classes: int) -> tuple[np.ndarray, int]:
    """Positive count per class and row count of ``df[label_col]`` (one Spark aggregation)."""
    aggs = [F.sum(F.col(label_col)[i]).alias(f"p{i}") for i in range(num_classes)]
    row = df.select(*aggs, F.count(F.lit(1)).alias("n")).first()
    pos = np.array([row[f"p{i}"] or 0.0 for i in range(num_classes)], np.float64)
    return pos, int(row["n"])


def class_weights(df: DataFrame, label_col: str, num_classes: int, weighting: str) -> tuple | None:
    """The loss weights ``weighting`` asks for on the training set ``df``, or None for 'none'."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"classWeighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if weighting == "none":
        return None
    pos, n = label_counts(df, label_col, num_classes)
    w_pos, w_neg = chexnet_weights(pos, n)
    log.debug("CheXNet class weights from %d images: w+ %s", n, np.round(w_pos, 3).tolist())
    return tuple(w_pos.tolist()), tuple(w_neg.tolist())
