"""The target of training and evaluation: a model's labels picked from the harmonised ``labels`` column.

An ingested DataFrame holds ``labels`` and ``label_mask`` over :data:`cxrzoo.labels.ALL_LABELS`; a model
predicts a subset (NIH's 14 by default).  :func:`target_column` picks that subset by name and writes NaN
where ``label_mask`` is 0, so the loss and every metric skip those entries (``NaN`` means "not known").
A DataFrame without ``label_mask`` (ingested before masks existed, or built by hand), or a row whose mask is
null, counts every entry as known; a label array too short for the labels asked for is an error.
"""
from __future__ import annotations

from typing import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cxrzoo.labels import ALL_LABELS, label_indices

MASK_COL = "label_mask"


def target_column(df: DataFrame, names: Sequence[str], label_col: str = "labels", mask_col: str = MASK_COL) -> Column:
    """``array<float>`` of ``len(names)``: the labels ``names`` of ``label_col``, NaN where unknown.

    Parameters
    ----------
    df : DataFrame
        Has ``label_col`` (array<float> over :data:`~cxrzoo.labels.ALL_LABELS`, or a prefix of it such as
        NIH's 14) and optionally ``mask_col`` (the same length; 0 = unknown).
    names : sequence of str
        The model's labels, in its output order.  When any of them is not a harmonised label, ``label_col``
        is taken to hold exactly ``names``, in order (a caller's own label space).

    Raises
    ------
    cxrzoo.labels.UnknownLabelError
        For a harmonised label listed twice.
    """
    idx = label_indices(names) if all(n in ALL_LABELS for n in names) else list(range(len(names)))
    lab, nan = F.col(label_col), F.lit(float("nan")).cast("float")
    masked = mask_col in df.columns
    short = F.raise_error(F.concat(F.lit(f"{label_col!r} holds "), F.size(lab).cast("string"),
                                   F.lit(f" labels, fewer than the {max(idx) + 1} that {list(names)} need in the "
                                         "harmonised layout (cxrzoo.labels.ALL_LABELS); re-ingest it with cxrzoo")))
    out = []
    for i in idx:
        value = lab[i].cast("float")
        if masked:  # a null mask (a row of a source ingested before masks): every entry known
            mask = F.col(mask_col)
            value = F.when(mask.isNull(), value).when(F.size(mask) > i, F.when(mask[i] > 0, value).otherwise(nan)) \
                .otherwise(nan)
        # CASE WHEN reads the index only when it is in range (Spark 4's ANSI mode raises on an index past the end)
        out.append(F.when(F.size(lab) > i, F.coalesce(value, nan)).otherwise(short.cast("float")))
    return F.when(lab.isNull(), F.lit(None).cast("array<float>")).otherwise(F.array(*out))
