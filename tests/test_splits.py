"""Patient-wise splits and the leak check."""
from __future__ import annotations

import pytest

import cxrzoo
from cxrzoo.splits import PatientLeakError, check_disjoint_patients, split_by_patient


def test_split_keeps_patients_whole_and_is_deterministic(spark, ingested):
    df = spark.read.parquet(ingested)
    train, val, test = split_by_patient(df, (0.6, 0.2, 0.2), seed=5)
    assert train.count() + val.count() + test.count() == df.count()
    assert check_disjoint_patients({"train": train, "validation": val, "test": test}) == 0
    again = split_by_patient(df, (0.6, 0.2, 0.2), seed=5)[0]
    assert sorted(r.image_index for r in again.collect()) == sorted(r.image_index for r in train.collect())
    other = split_by_patient(df, (0.6, 0.2, 0.2), seed=6)[0]
    assert sorted(r.image_index for r in other.collect()) != sorted(r.image_index for r in train.collect())


def test_official_test_list_is_honoured(spark, ingested, synth_ds):
    df = spark.read.parquet(ingested)
    names = set(synth_ds.test_list.read_text().split())
    train, val, test = split_by_patient(df, test_list=synth_ds.test_list)
    assert {r.image_index for r in test.collect()} == names & {r.image_index for r in df.collect()}
    assert check_disjoint_patients({"train": train, "validation": val, "test": test}) == 0


def test_image_wise_split_is_refused_unless_allowed(spark, ingested):
    df = spark.read.parquet(ingested)
    a, b = df.randomSplit([0.5, 0.5], seed=1)  # by image: follow-ups land on both sides
    with pytest.raises(PatientLeakError, match="patients in both train and validation"):
        check_disjoint_patients({"train": a, "validation": b})
    assert check_disjoint_patients({"train": a, "validation": b}, allow_overlap=True) > 0
    assert cxrzoo.split_by_patient is split_by_patient
    with pytest.raises(ValueError, match="fractions"):
        split_by_patient(df, (0.5, 0.5, 0.5))


def test_estimator_refuses_a_validation_set_that_shares_patients(spark, ingested):
    from cxrzoo.train import CXREstimator

    df = spark.read.parquet(ingested)
    a, b = df.randomSplit([0.5, 0.5], seed=1)
    est = CXREstimator(epochs=1, batchSize=8).setValidation(b)
    with pytest.raises(PatientLeakError, match="split by patient"):
        est.fit(a)
    assert CXREstimator(allowPatientOverlap=True).getOrDefault("allowPatientOverlap") is True
