"""Patient-wise splits: no patient's images on two sides of a train/validation/test split.

NIH ChestX-ray14 has ~4 images per patient (follow-ups), so a random *image* split leaks
patients between training and evaluation and inflates AUC (the seed's 0.809 was measured
that way).  :func:`split_by_patient` uses NIH's official test list when given and otherwise
assigns whole patients to sides by a hash of (seed, patient ID), deterministic across runs
and clusters; :func:`check_disjoint_patients` refuses data where a patient is on two sides.
"""
from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cxrzoo.errors import InputError


class PatientLeakError(InputError):
    """One patient has images on two sides of a split."""


def _read_list(path: str | Path) -> list[str]:
    return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]


def split_by_patient(df: DataFrame, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0,
                     test_list: str | Path | None = None, patient_col: str = "patient_id",
                     index_col: str = "image_index") -> tuple[DataFrame, DataFrame, DataFrame]:
    """Split ``df`` into (train, validation, test) with every patient on exactly one side.

    Parameters
    ----------
    df : DataFrame
        Ingested rows with a patient column.
    fractions : (train, validation, test)
        Shares of *patients*, summing to 1.  With ``test_list`` the test share comes from
        the list and the other two are renormalised over the remaining patients.
    seed : int
        Hash seed: the same seed gives the same split everywhere.
    test_list : path, optional
        NIH's official ``test_list.txt`` (image names).
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise InputError(f"fractions must be three non-negative shares summing to 1, got {fractions}")
    for col in (patient_col, index_col):
        if col not in df.columns:
            raise InputError(f"split_by_patient: no column {col!r}; columns: {df.columns}")
    # a uniform number in [0, 1) per patient, from a 64-bit hash of (seed, patient)
    u = (F.abs(F.xxhash64(F.lit(seed), F.col(patient_col).cast("string"))) % 1_000_000) / 1_000_000.0
    tr, va, te = fractions
    if test_list is not None:
        names = _read_list(test_list)
        in_test = F.col(index_col).isin(names)
        test = df.where(in_test)
        test_patients = test.select(patient_col).distinct()
        rest = df.join(test_patients, patient_col, "left_anti")  # whole patients stay out of train/val
        share = tr / (tr + va) if tr + va > 0 else 1.0
        with_u = rest.withColumn("_u", u)
        return (with_u.where(F.col("_u") < share).drop("_u"), with_u.where(F.col("_u") >= share).drop("_u"), test)
    with_u = df.withColumn("_u", u)
    return (with_u.where(F.col("_u") < tr).drop("_u"),
            with_u.where((F.col("_u") >= tr) & (F.col("_u") < tr + va)).drop("_u"),
            with_u.where(F.col("_u") >= tr + va).drop("_u"))


def check_disjoint_patients(sides: dict[str, DataFrame], patient_col: str = "patient_id",
                            allow_overlap: bool = False) -> int:
    """Raise :class:`PatientLeakError` when a patient appears in two of ``sides``; return the overlap count.

    With ``allow_overlap`` the overlap is only counted (an image-wise split, on purpose).
    """
    names = list(sides)
    overlap, examples = 0, []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = sides[a].select(patient_col).distinct().join(sides[b].select(patient_col).distinct(),
                                                                    patient_col)
            n = common.count()
            if n:
                overlap += n
                examples.append(f"{n} patients in both {a} and {b} (e.g. "
                                f"{[r[0] for r in common.limit(3).collect()]})")
    if overlap and not allow_overlap:
        raise PatientLeakError("; ".join(examples) + ": split by patient (cxrzoo.split_by_patient) or allow the "
                               "overlap explicitly")
    return overlap
