"""cxrzoo's one AUC: ranks against the pairwise definition and Spark's evaluator; bootstrap intervals."""
from __future__ import annotations

import numpy as np

from cxrzoo.bootstrap import auc_from_ranks, bootstrap_ci


def test_rank_auc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    p = np.round(rng.random(300) + 0.3 * y, 1)  # many ties
    pos, neg = p[y], p[~y]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg))
    assert abs(auc_from_ranks(y, p) - pairwise) < 1e-12
    assert auc_from_ranks(np.zeros(5), np.arange(5)) is None


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(1)

    def width(n):
        y = (rng.random((n, 2)) < 0.3).astype(float)
        p = rng.random((n, 2)) + 0.5 * y
        ci = bootstrap_ci(y, p, ("a", "b"), n_boot=200, seed=0)
        a = auc_from_ranks(y[:, 0], p[:, 0])
        assert ci["a"][0] <= a <= ci["a"][1] and ci["mean_auc"][0] < ci["mean_auc"][1]
        return ci["a"][1] - ci["a"][0]

    assert width(2000) < width(200)


def test_evaluate_auc_agrees_with_sparks_evaluator(spark):
    """cxrzoo's one AUC (ranks, on the driver) against Spark ML's BinaryClassificationEvaluator, with ties."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.sql import functions as F

    from cxrzoo.evaluate import evaluate_auc

    rng = np.random.default_rng(5)
    y = (rng.random((400, 3)) < [0.1, 0.3, 0.0]).astype(float)  # the third label has no positives
    p = np.round(rng.random((400, 3)) * 0.6 + 0.4 * y, 2)  # ties
    df = spark.createDataFrame([(list(map(float, a)), list(map(float, b))) for a, b in zip(y, p)],
                               "labels array<double>, probabilities array<double>")
    rep = evaluate_auc(df, labels=("a", "b", "c"))
    for i, name in enumerate(("a", "b")):
        col = df.select(F.col("labels")[i].alias("y"), F.col("probabilities")[i].alias("p"))
        spark_auc = BinaryClassificationEvaluator(rawPredictionCol="p", labelCol="y").evaluate(col)
        assert abs(rep.auc[name] - spark_auc) < 1e-9, (name, rep.auc[name], spark_auc)
    assert rep.auc["c"] is None and rep.positives["c"] == 0 and rep.n == 400


def test_evaluate_auc_counts_the_rows_it_leaves_out(spark, caplog):
    """Rows without probabilities (undecodable images) are left out of the AUC and counted, with a warning."""
    import logging

    from cxrzoo.evaluate import evaluate_auc

    scored = [([1.0, 0.0], [0.9, 0.2]), ([0.0, 1.0], [0.1, 0.7]), ([1.0, 0.0], [0.8, 0.4]), ([0.0, 1.0], [0.85, 0.6])]
    unscored = [([1.0, 1.0], None), ([0.0, 0.0], None), ([1.0, 0.0], None)]
    df = spark.createDataFrame(scored + unscored, "labels array<double>, probabilities array<double>")
    with caplog.at_level(logging.WARNING, logger="cxrzoo.evaluate"):
        rep = evaluate_auc(df, labels=("a", "b"))
    # by hand: a's positives 0.9, 0.8 against negatives 0.1, 0.85 win 3 of 4 pairs; b's 0.7, 0.6 beat 0.2, 0.4
    assert rep.auc == {"a": 0.75, "b": 1.0} and rep.positives == {"a": 2, "b": 2}
    assert rep.n == 4 and rep.unscored == 3 and rep.as_dict()["unscored"] == 3
    assert "left out: 3 rows without probabilities" in rep.table()
    assert "3 of 7 rows have no probabilities" in caplog.text
