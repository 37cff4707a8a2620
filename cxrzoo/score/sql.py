"""cxrzoo in Spark SQL: vectorized functions for analysts, BI tools and SQL notebooks.

:func:`register_functions` registers, on a session:

========================================  ===================================================================
``cxr_decode(content, size)``             file bytes (PNG, JPEG, DICOM) → gray 8-bit ``size``² image bytes
``cxr_decode_error(content, size)``       why ``cxr_decode`` gave null (null when it did not)
``cxr_probabilities(image, model_dir)``   ingested image → array<float>, one per label of the model
``cxr_findings(image, model_dir)``        the labels at or above the model's operating thresholds
``cxr_score(image, model_dir)``           struct<probabilities, findings, error>, in one pass
``cxr_error(image, model_dir)``           why the two above gave null (null when they did not)
``cxr_labels(model_dir)``                 the model's label names, in output order
========================================  ===================================================================

``image`` is the ingest's ``image`` column (gray bytes at the model's size); ``model_dir`` an IR directory
from ``cxrzoo export``, as an absolute path every executor can read.  Each is a pandas (Arrow) UDF; the
compiled model is cached per Python worker (:func:`cxrzoo.score.runtime.load_scorer`, recompiled when the
directory's files change).  Bad input never fails the query: the result is null and the ``*_error``
function (or the struct's ``error`` field) says why::

    SELECT image_index, cxr_findings(image, '/models/ir') FROM parquet.`/data/ingested`
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql import types as T

CHUNK = 16  # images per infer request

SCORE_TYPE = T.StructType([T.StructField("probabilities", T.ArrayType(T.FloatType(), False), True),
                           T.StructField("findings", T.ArrayType(T.StringType(), False), True),
                           T.StructField("error", T.StringType(), True)])


def _decode_one(content: Any, size: Any) -> tuple[bytes | None, str | None]:
    from cxrzoo.ingest.decode_udf import decode_file
    from cxrzoo.ingest.sandbox import shared_decoder

    if content is None:
        return None, "no content"
    if size is None or pd.isna(size) or int(size) < 1 or int(size) > 8192:
        return None, f"size must be an integer from 1 to 8192, not {size!r}"
    img, _, error = decode_file(bytes(content), None, int(size), sandbox=shared_decoder())
    return (None, error) if img is None else (np.ascontiguousarray(img, np.uint8).tobytes(), None)


def _decode(content: pd.Series, size: pd.Series, want: str) -> pd.Series:
    out = [_decode_one(c, s) for c, s in zip(content, size)]
    return pd.Series([o[0] if want == "image" else o[1] for o in out], dtype=object)


def _model(model_dir: Any) -> tuple[Any, str | None]:
    """The compiled model of ``model_dir`` (cached per worker), or why it cannot be used."""
    from cxrzoo.score.runtime import load_scorer

    if model_dir is None or not str(model_dir).strip():
        return None, "no model_dir"
    path = str(model_dir).removeprefix("file://").removeprefix("file:")
    if "://" in path or not os.path.isabs(path):
        return None, (f"model_dir {model_dir!r} must be an absolute local path every executor can read "
                      "(executors have working directories of their own)")
    try:
        return load_scorer(path), None
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        return None, f"model_dir {model_dir}: {first}"


def _score(image: pd.Series, model_dir: pd.Series) -> list[tuple[list | None, list | None, str | None]]:
    """Per row: (probabilities, findings, error), grouped by model directory, CHUNK images per request."""
    from cxrzoo.thresholds import findings

    out: list[tuple[list | None, list | None, str | None]] = [(None, None, None)] * len(image)
    dirs = model_dir.astype(object).where(model_dir.notna(), None)
    for where in dict.fromkeys(dirs.tolist()):
        rows = [i for i, d in enumerate(dirs) if d == where]
        scorer, why = _model(where)
        if scorer is None:
            for i in rows:
                out[i] = (None, None, why)
            continue
        size, labels = scorer.image_size, list(scorer.labels)
        thresholds = scorer.card.get("thresholds") or {}
        has_thresholds = any(isinstance(v, dict) for v in thresholds.values())
        ok, imgs = [], []
        for i in rows:
            value = image.iat[i]
            if value is None:
                out[i] = (None, None, "no image")
            elif len(value) != size * size:
                out[i] = (None, None, f"image has {len(value)} bytes, the model takes {size}x{size} gray "
                          "(ingest at its size)")
            else:
                ok.append(i)
                imgs.append(np.frombuffer(bytes(value), np.uint8).reshape(size, size))
        if not ok:
            continue
        probs = scorer.infer_stream(np.stack(imgs[k:k + CHUNK]) for k in range(0, len(imgs), CHUNK))
        found = findings(probs, labels, thresholds) if has_thresholds else [None] * len(ok)
        why = None if has_thresholds else f"{where} has no operating thresholds (trained without validation)"
        for i, p, f in zip(ok, probs, found):
            out[i] = ([float(v) for v in p], f, why)
    return out


def _labels(model_dir: pd.Series) -> pd.Series:
    cache: dict = {}
    res = []
    for d in model_dir:
        if d not in cache:
            scorer, _ = _model(d)
            cache[d] = list(scorer.labels) if scorer is not None else None
        res.append(cache[d])
    return pd.Series(res, dtype=object)


def register_functions(spark: Any) -> list[str]:
    """Register cxrzoo's SQL functions (see the module's docstring) on ``spark``; their names.

    Examples
    --------
    >>> register_functions(spark)  # doctest: +SKIP
    >>> spark.sql("SELECT image_index, cxr_findings(image, '/models/ir') FROM parquet.`/data/ingested`")
    """
    @F.pandas_udf(T.BinaryType())
    def cxr_decode(content: pd.Series, size: pd.Series) -> pd.Series:
        return _decode(content, size, "image")

    @F.pandas_udf(T.StringType())
    def cxr_decode_error(content: pd.Series, size: pd.Series) -> pd.Series:
        return _decode(content, size, "error")

    @F.pandas_udf(T.ArrayType(T.FloatType(), False))
    def cxr_probabilities(image: pd.Series, model_dir: pd.Series) -> pd.Series:
        return pd.Series([r[0] for r in _score(image, model_dir)], dtype=object)

    @F.pandas_udf(T.ArrayType(T.StringType(), False))
    def cxr_findings(image: pd.Series, model_dir: pd.Series) -> pd.Series:
        return pd.Series([r[1] for r in _score(image, model_dir)], dtype=object)

    @F.pandas_udf(T.StringType())
    def cxr_error(image: pd.Series, model_dir: pd.Series) -> pd.Series:
        return pd.Series([r[2] for r in _score(image, model_dir)], dtype=object)

    @F.pandas_udf(SCORE_TYPE)
    def cxr_score(image: pd.Series, model_dir: pd.Series) -> pd.DataFrame:
        rows = _score(image, model_dir)
        return pd.DataFrame({"probabilities": [r[0] for r in rows], "findings": [r[1] for r in rows],
                             "error": [r[2] for r in rows]})

    @F.pandas_udf(T.ArrayType(T.StringType(), False))
    def cxr_labels(model_dir: pd.Series) -> pd.Series:
        return _labels(model_dir)

    functions = {"cxr_decode": cxr_decode, "cxr_decode_error": cxr_decode_error,
                 "cxr_probabilities": cxr_probabilities, "cxr_findings": cxr_findings, "cxr_error": cxr_error,
                 "cxr_score": cxr_score, "cxr_labels": cxr_labels}
    for name, udf in functions.items():
        spark.udf.register(name, udf)
    return list(functions)
