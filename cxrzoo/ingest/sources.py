"""Read CheXpert and MIMIC-CXR (JPEG or DICOM) into the same DataFrame contract as :func:`read_nih`.

Each returns :data:`cxrzoo.ingest.reader.FIRST` (``image_index``, ``patient_id``, ``labels``, ``label_mask``,
``image``, ``error``) and then ``path``, ``study_id``, ``view_position``, ``dicom`` and the source's own columns,
so DataFrames of different sources can be unioned (``unionByName(..., allowMissingColumns=True)``) and split
patient-wise (:mod:`cxrzoo.splits`).  The label files are parsed by :mod:`cxrzoo.ingest.sources_csv`.
"""
from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession

from cxrzoo.errors import InputError
from cxrzoo.ingest.decode import DEFAULT_MAX_PIXELS
from cxrzoo.ingest.reader import IngestReport, check_size, ingest_table, list_image_paths, match_report
from cxrzoo.ingest.registry import MIMIC_ONLY, Source, register_source
from cxrzoo.ingest.sandbox import DEFAULT_TIMEOUT
from cxrzoo.ingest.sources_csv import MIMIC_SPLITS, read_chexpert_csv, read_mimic_csvs

log = logging.getLogger(__name__)


def read_chexpert_with_report(spark: SparkSession, root: str, csv: str, policy: str = "ones",
                              unmentioned: str = "zeros", size: int = 256, max_pixels: int = DEFAULT_MAX_PIXELS,
                              voi: str = "auto", decode_timeout: float = DEFAULT_TIMEOUT
                              ) -> tuple[DataFrame, IngestReport]:
    """Like :func:`read_chexpert`, and also return the :class:`~cxrzoo.ingest.reader.IngestReport`."""
    check_size(size)
    table = read_chexpert_csv(csv, policy, unmentioned)
    report = IngestReport(label_rows=len(table))
    parts = {k.split("/", 1)[0] for k in table["key"]}  # train/ or valid/: the other part's files are not strays
    listed = {k: v for k, v in list_image_paths(spark, root, depth=4).items()  # train/patientP/studyS/view1_....jpg
              if k.split("/", 1)[0] in parts}
    match_report(report, listed, set(table["key"]), set(table["key"]), root, csv, None)
    log.debug("ingest: %d CheXpert images matched (policy %s, size %d)", report.matched, policy, size)
    return ingest_table(spark, root, table, listed, "key", size, max_pixels, voi, decode_timeout), report


def read_chexpert(spark: SparkSession, root: str, csv: str, policy: str = "ones", unmentioned: str = "zeros",
                  size: int = 256, max_pixels: int = DEFAULT_MAX_PIXELS, voi: str = "auto",
                  decode_timeout: float = DEFAULT_TIMEOUT) -> DataFrame:
    """Read CheXpert images and labels as a DataFrame.

    Parameters
    ----------
    spark : SparkSession
    root : str
        A directory holding the CSV's paths: ``CheXpert-v1.0[-small]/`` itself or its parent (files are
        matched on the last four components of their path, ``train/patientP/studyS/viewN_....jpg``).
    csv : str
        CheXpert's ``train.csv`` or ``valid.csv``.
    policy : {"ones", "zeros", "ignore"}
        What an uncertain (``-1.0``) observation becomes: positive, negative, or masked out of the loss and
        of evaluation (``label_mask`` 0).
    unmentioned : {"zeros", "ignore"}
        What a blank (not mentioned in the report) becomes: negative, or masked.
    size, max_pixels, voi, decode_timeout
        As in :func:`cxrzoo.read_nih`.

    Returns
    -------
    DataFrame
        :func:`cxrzoo.read_nih`'s contract (``image_index`` is the CSV's ``Path``, ``patient_id`` the
        number of ``patientP``), with ``study_id``, ``view_position``, ``sex`` and ``age``.
    """
    return read_chexpert_with_report(spark, root, csv, policy, unmentioned, size, max_pixels, voi,
                                     decode_timeout)[0]


def read_mimic_cxr_with_report(spark: SparkSession, root: str, metadata_csv: str, labels_csv: str,
                               split_csv: str | None = None, policy: str = "ones", unmentioned: str = "zeros",
                               split: str | None = None, size: int = 256, max_pixels: int = DEFAULT_MAX_PIXELS,
                               voi: str = "auto", decode_timeout: float = DEFAULT_TIMEOUT
                               ) -> tuple[DataFrame, IngestReport]:
    """Like :func:`read_mimic_cxr`, and also return the :class:`~cxrzoo.ingest.reader.IngestReport`."""
    check_size(size)
    if split is not None and (split_csv is None or split not in MIMIC_SPLITS):
        raise InputError(f"split={split!r} needs split_csv and one of {MIMIC_SPLITS}")
    table, unlabelled = read_mimic_csvs(metadata_csv, labels_csv, split_csv, policy, unmentioned)
    report = IngestReport(label_rows=len(table))
    all_keys = set(table["image_index"])
    if split is not None:
        keep = table["split"] == split
        report.outside_split = int((~keep).sum())
        table = table[keep]
    if unlabelled:
        log.warning("%d image(s) of %s belong to studies without a row in %s and are not ingested",
                    unlabelled, metadata_csv, labels_csv)
    listed = list_image_paths(spark, root, stem=True)  # files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg|.dcm
    match_report(report, listed, set(table["image_index"]), all_keys, root, labels_csv, split)
    log.debug("ingest: %d MIMIC-CXR images matched (policy %s, size %d)", report.matched, policy, size)
    return ingest_table(spark, root, table, listed, "image_index", size, max_pixels, voi, decode_timeout), report


def read_mimic_cxr(spark: SparkSession, root: str, metadata_csv: str, labels_csv: str, split_csv: str | None = None,
                   policy: str = "ones", unmentioned: str = "zeros", split: str | None = None, size: int = 256,
                   max_pixels: int = DEFAULT_MAX_PIXELS, voi: str = "auto",
                   decode_timeout: float = DEFAULT_TIMEOUT) -> DataFrame:
    """Read MIMIC-CXR (DICOM) or MIMIC-CXR-JPG images and their CheXpert-labeler labels as a DataFrame.

    Parameters
    ----------
    spark : SparkSession
    root : str
        The directory holding ``files/pXX/pSUBJECT/sSTUDY/DICOM_ID.dcm`` (or ``.jpg``); files are matched on
        their ``dicom_id``.
    metadata_csv, labels_csv, split_csv : str
        ``mimic-cxr-2.0.0-metadata.csv[.gz]`` (one row per image), ``mimic-cxr-2.0.0-chexpert.csv[.gz]``
        (one row per study) and, optionally, ``mimic-cxr-2.0.0-split.csv[.gz]``.
    policy, unmentioned
        As in :func:`read_chexpert`.
    split : {"train", "validate", "test"}, optional
        Keep only the images of this official split.
    size, max_pixels, voi, decode_timeout
        As in :func:`cxrzoo.read_nih`.

    Returns
    -------
    DataFrame
        :func:`cxrzoo.read_nih`'s contract (``image_index`` is the ``dicom_id``, ``patient_id`` the
        ``subject_id``), with ``study_id``, ``view_position`` and ``split`` (with a split file).
    """
    return read_mimic_cxr_with_report(spark, root, metadata_csv, labels_csv, split_csv, policy, unmentioned, split,
                                      size, max_pixels, voi, decode_timeout)[0]


register_source(Source(
    "chexpert",
    lambda spark, images, size, voi, labels, policy, unmentioned: read_chexpert_with_report(
        spark, images, labels, policy, unmentioned, size=size, voi=voi),
    takes=("labels", "policy", "unmentioned"), requires=("labels",), recorded=("policy", "unmentioned"),
    refusals={"split": "CheXpert's splits are its two CSVs (train.csv, valid.csv): ingest each with its own labels",
              **MIMIC_ONLY}))
register_source(Source(
    "mimic",
    lambda spark, images, size, voi, labels, metadata, split, split_name, policy, unmentioned:
        read_mimic_cxr_with_report(spark, images, metadata, labels, split, policy, unmentioned, split_name,
                                   size=size, voi=voi),
    takes=("labels", "metadata", "split", "split_name", "policy", "unmentioned"), requires=("labels", "metadata"),
    recorded=("policy", "unmentioned")))
