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

from cxrzoo.errors import InputError

log = logging.getLogger(__name__)

WEIGHTINGS = ("none", "chexnet")


def chexnet_weights(positives: np.ndarray, total) -> tuple[np.ndarray, np.ndarray]:
    """``(w_pos, w_neg)`` per class from positive counts and the number of images.

    Parameters
    ----------
    positives : numpy.ndarray
        Positive count per class.
    total : int or numpy.ndarray
        Number of images, or per class the number whose label is known (masked labels left out).

    Returns
    -------
    tuple of numpy.ndarray
        float32 weights of positives and negatives, each of length ``len(positives)``.
    """
    pos = np.asarray(positives, np.float64)
    if pos.ndim != 1:
        raise InputError(f"positive counts must be a vector, got {positives!r}")
    tot = np.broadcast_to(np.asarray(total, np.float64), pos.shape)
    if (tot <= 0).all():
        raise InputError("class weights need a non-empty training set")
    if (pos < 0).any() or (pos > tot).any():
        raise InputError(f"positive counts must be a vector in [0, {total}], got {positives!r}")
    safe = np.where(tot > 0, tot, 1.0)  # a label known for no image: any weight, the loss never uses it
    return (np.where(tot > 0, (tot - pos) / safe, 1.0).astype(np.float32),
            np.where(tot > 0, pos / safe, 0.0).astype(np.float32))


def label_counts(df: DataFrame, label_col: str, num_classes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per class the positive count and the count of known (non-NaN) entries of ``df[label_col]``, and the row
    count (one Spark aggregation)."""
    aggs = []
    for i in range(num_classes):
        y = F.col(label_col)[i]
        aggs += [F.sum(F.when(~F.isnan(y), y)).alias(f"p{i}"), F.count(F.when(~F.isnan(y), 1)).alias(f"k{i}")]
    row = df.select(*aggs, F.count(F.lit(1)).alias("n")).first()
    pos = np.array([row[f"p{i}"] or 0.0 for i in range(num_classes)], np.float64)
    known = np.array([row[f"k{i}"] for i in range(num_classes)], np.int64)
    return pos, known, int(row["n"])


def class_weights(positives: np.ndarray, known: np.ndarray, weighting: str) -> tuple | None:
    """The loss weights ``weighting`` asks for, from :func:`label_counts`, or None for 'none'."""
    if weighting not in WEIGHTINGS:
        raise InputError(f"classWeighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if weighting == "none":
        return None
    w_pos, w_neg = chexnet_weights(positives, known)
    log.debug("CheXNet class weights from %s known labels: w+ %s", known.tolist(), np.round(w_pos, 3).tolist())
    return tuple(w_pos.tolist()), tuple(w_neg.tolist())


def loss_terms(df: DataFrame, target_col: str, labels, weighting: str, engine: str, masks_loss: bool) -> tuple:
    """(class weights or None, whether some targets are unknown) of the training rows ``df`` (one Spark job).

    ``target_col`` holds the model's ``labels``, NaN where unknown (:mod:`cxrzoo.targets`).  An engine whose
    loss cannot skip unknown targets (``masks_loss`` False) is refused now, not after the first epoch.
    """
    pos, known, n = label_counts(df.where(F.col(target_col).isNotNull()), target_col, len(labels))
    never = [name for name, k in zip(labels, known) if k == 0]
    if never and n:
        log.warning("no training image states %s (label_mask 0 everywhere): the model's output for it is "
                    "untrained; leave it out with labels=[...]", ", ".join(never))
    unknown = {name: n - int(k) for name, k in zip(labels, known) if k < n}
    if unknown and not masks_loss:
        raise InputError(f"the {engine!r} engine's loss cannot skip unknown labels, and the training data has some "
                         f"(label_mask 0, e.g. {dict(list(unknown.items())[:3])} images); use another engine, or "
                         "a policy other than 'ignore' and labels every row states")
    if unknown:
        log.info("training skips unknown labels (label_mask 0): %s",
                 ", ".join(f"{k} {v}" for k, v in unknown.items()))
    return class_weights(pos, known, weighting), bool(unknown)
