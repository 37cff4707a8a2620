"""Read NIH ChestX-ray14-format images and labels into a Spark DataFrame.

Files under a local (or NFS-mounted) directory are listed on the driver and
read by the executors' Python workers themselves; files on other file systems
(``hdfs://``, ``s3a://`` …) are listed and read by Spark's ``binaryFile`` source.
Either way they are joined to the label CSV on the file name and decoded on the
executors in an Arrow UDF (``mapInArrow``): forced to gray and resized at read,
as NNImageReader did.
A file that cannot be decoded keeps its row with ``image`` null and ``error``
saying why (:mod:`cxrzoo.ingest.decode_udf`), as does each of several files
sharing a CSV row's name; images without a CSV row and CSV rows without an
image are counted and reported.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cxrzoo.atomic import local_path, resolve_local
from cxrzoo.errors import InputError, PathNotFoundError
from cxrzoo.ingest.decode import DEFAULT_MAX_PIXELS, DICOM_SUFFIXES
from cxrzoo.ingest.decode_udf import decode_images
from cxrzoo.ingest.dicom import is_dicom
from cxrzoo.ingest.labels_csv import read_labels_csv, read_split_list
from cxrzoo.ingest.registry import MIMIC_ONLY, Source, register_source
from cxrzoo.ingest.sandbox import DEFAULT_TIMEOUT
from cxrzoo.labels import NIH_MASK, harmonise_nih

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg") + DICOM_SUFFIXES
LABEL_SCHEMA = T.StructType([
    T.StructField("image_index", T.StringType(), False),
    T.StructField("patient_id", T.IntegerType(), False),
    T.StructField("follow_up", T.IntegerType(), True),
    T.StructField("view_position", T.StringType(), True),
    T.StructField("labels", T.ArrayType(T.FloatType(), False), False),
    T.StructField("label_mask", T.ArrayType(T.FloatType(), False), False),
    T.StructField("study_id", T.StringType(), True),
    T.StructField("split", T.StringType(), True),
    T.StructField("sex", T.StringType(), True),
    T.StructField("age", T.IntegerType(), True),
])  # the label columns any source may bring (``labels``/``label_mask`` over cxrzoo.labels.ALL_LABELS)
FIRST = ("image_index", "patient_id", "labels", "label_mask", "image", "error")  # every source's leading columns


@dataclass
class IngestReport:
    """What an ingest found: matched rows and what could not be matched."""

    images_found: int = 0
    label_rows: int = 0
    matched: int = 0
    images_without_row: int = 0
    rows_without_image: int = 0
    outside_split: int = 0
    duplicate_names: int = 0  # label keys naming several files: each of those files has an error row
    examples_without_row: list[str] = field(default_factory=list)
    examples_without_image: list[str] = field(default_factory=list)
    examples_duplicate_names: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


def _local_dir(images: str) -> str | None:
    """The local directory named by ``images`` (plain path or ``file:``) made absolute (the executors' working
    directories are not the driver's), or None for other file systems."""
    if local_path(images) is None:
        return None
    path = resolve_local(images)
    if not os.path.isdir(path):
        raise PathNotFoundError(f"image directory {images!r} does not exist")
    return path


def list_image_paths(spark: SparkSession, images: str, depth: int = 1, stem: bool = False) -> dict[str, list[str]]:
    """``{key: [path, ...]}`` of every PNG/JPEG/DICOM file under ``images``, recursively (local paths absolute).

    The key is the file name (``depth=1``) or its last ``depth`` path components joined by ``/`` (CheXpert's
    file names repeat in every study); ``stem=True`` drops the suffix (MIMIC-CXR's files are named by their
    ``dicom_id``).  Labels are joined to files by this key, so it should name one file; the files of a key
    that names several (the same name in two subdirectories, ``X.dcm`` next to ``X.jpg`` for a stem) are all
    listed, sorted, never one silently in place of the others: :func:`ingest_table` gives each an error row
    and :func:`unique_keys` tells them apart by more of their path.
    """
    local = _local_dir(images)
    if local is None:
        paths = [r.path for r in list_image_files(spark, images).select("path").collect()]
    else:
        paths = []
        for root, _, files in os.walk(local):
            for name in files:
                if name.startswith("."):
                    continue
                path = os.path.join(root, name)
                if name.lower().endswith(IMAGE_SUFFIXES) or _has_dicom_magic(path):
                    paths.append(path)
    found: dict[str, list[str]] = {}
    for path in sorted(paths):
        key = _key(path, depth)
        if stem and "." in key.rsplit("/", 1)[-1]:
            key = key.rsplit(".", 1)[0]
        found.setdefault(key, []).append(path)
    return found


def _key(path: str, depth: int) -> str:
    """The last ``depth`` components of ``path``, joined by ``/``."""
    return "/".join(path.replace(os.sep, "/").split("/")[-depth:])


def duplicates(listed: dict[str, list[str]]) -> dict[str, list[str]]:
    """The keys of ``listed`` that name more than one file."""
    return {k: v for k, v in listed.items() if len(v) > 1}


def unique_keys(listed: dict[str, list[str]]) -> dict[str, str]:
    """``{key: path}`` with one file per key: a key naming several files is replaced, for each of them, by
    the fewest last components of its path that tell it from the others (``study1/view1.jpg``)."""
    out = {k: v[0] for k, v in listed.items() if len(v) == 1}
    shared = duplicates(listed)
    for key, paths in shared.items():
        depth = key.count("/") + 2
        while len({_key(p, depth) for p in paths}) < len(paths) and depth <= max(p.count("/") for p in paths):
            depth += 1
        out.update((_key(p, depth), p) for p in paths)
    if shared:
        log.warning("%d file name(s) are shared by several files: those files are keyed by their last path "
                    "components instead, e.g. %s", len(shared), sorted(set(out) - set(listed))[:4])
    return out


def duplicate_error(key: str, path: str, paths: list[str]) -> str:
    """The error row of ``path``, one of the several files ``paths`` the label key ``key`` names."""
    others = [p for p in paths if p != path]
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    return (f"{os.path.basename(path)}: duplicate file name {key!r} (also at {shown}); labels are joined by file "
            "name, so they could belong to either: rename or remove all but one")


def _has_dicom_magic(path: str) -> bool:
    """True for a file whose bytes 128-131 are ``DICM`` (DICOM archives often name files by their SOP instance
    UID, or without a suffix)."""
    try:
        with open(path, "rb") as f:
            return is_dicom(f.read(132))
    except OSError:
        return False


def list_image_files(spark: SparkSession, images: str) -> DataFrame:
    """Image files under ``images`` (recursively) via ``binaryFile``: ``path``, ``image_index``, ``content``.

    Listed are the PNG/JPEG/DICOM suffixes and, since DICOM archives often name files by their SOP instance UID
    without a suffix, files whose name has no ``.`` or is all digits and dots (Hadoop's ``_SUCCESS``-style and
    hidden names excepted);
    the decode UDF tells those by their bytes, and one that is no image gets an error row.  ``content`` is read
    only where selected.
    """
    df = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(images)
    name = F.element_at(F.split("path", "/"), -1)
    suffix = F.lower(name).rlike(r"\.(" + "|".join(s.lstrip(".") for s in IMAGE_SUFFIXES) + ")$")
    bare = (~name.contains(".") | name.rlike(r"^[0-9.]+$")) & ~name.startswith("_")  # or a UID: digits and dots
    return df.where(suffix | bare).withColumn("image_index", name)


def _driver_frame(spark: SparkSession, rows: list[tuple], schema: T.StructType) -> DataFrame:
    """``rows`` as a DataFrame shipped to the JVM as Arrow (one partition per core).

    Going through pandas and Arrow instead of pickled rows halves the JVM's CPU per ingest (no per-row
    unpickling and conversion: 0.36 → 0.20 s for 1,500 rows on local[2]), and the JVM shares the cores with
    the decoding Python workers.  With Arrow disabled in the session Spark converts the pandas frame itself.
    """
    if not rows:
        return spark.createDataFrame([], schema)
    return spark.createDataFrame(pd.DataFrame.from_records(rows, columns=schema.fieldNames()), schema)


def _files_frame(spark: SparkSession, images: str, rows: list[tuple], schema: T.StructType) -> DataFrame:
    """A DataFrame of ``rows`` (path first) whose images are read by the decode UDF (local) or by Spark."""
    meta = _driver_frame(spark, rows, schema)
    if _local_dir(images) is not None:
        return meta
    files = spark.read.format("binaryFile").load([r[0] for r in rows]) if rows else \
        list_image_files(spark, images).limit(0)
    return files.select("path", "content").join(F.broadcast(meta), "path", "inner")


def image_files(spark: SparkSession, images: str) -> DataFrame:
    """Every image under ``images`` as ``path``, ``image_index`` (and ``content`` off the local file system),
    for a UDF that reads and decodes them itself.  ``image_index`` is the file name or, for files sharing their
    name with others, the fewest last components of the path that tell them apart (:func:`unique_keys`)."""
    listed = unique_keys(list_image_paths(spark, images))
    schema = T.StructType([T.StructField("path", T.StringType(), False),
                           T.StructField("image_index", T.StringType(), False)])
    return _files_frame(spark, images, sorted((p, n) for n, p in listed.items()), schema)


def read_images(spark: SparkSession, images: str, size: int = 256, max_pixels: int = DEFAULT_MAX_PIXELS,
                voi: str = "auto", decode_timeout: float = DEFAULT_TIMEOUT) -> DataFrame:
    """Decode every image under ``images`` (no labels): ``path``, ``image_index``, ``image``, ``error``, ``dicom``.

    PNG, JPEG and DICOM files are read (``.dcm``/``.dicom``, and on a local file system any other file that
    carries DICOM's ``DICM`` magic); ``voi`` is DICOM's VOI rule (:mod:`cxrzoo.ingest.dicom`) and
    ``decode_timeout`` the seconds allowed per DICOM file (:mod:`cxrzoo.ingest.sandbox`).  ``image_index`` is
    as in :func:`image_files`.
    """
    listed = unique_keys(list_image_paths(spark, images))
    schema = T.StructType([T.StructField("path", T.StringType(), False),
                           T.StructField("image_index", T.StringType(), False)])
    rows = sorted((p, n) for n, p in listed.items())
    return decode_images(_files_frame(spark, images, rows, schema), size, max_pixels, voi, decode_timeout)


def match_report(report: IngestReport, listed: dict[str, list[str]], keys: set[str], all_keys: set[str],
                 images: str, labels: str, split: str | None) -> set[str]:
    """Fill ``report`` from the files found (:func:`list_image_paths`) and the label rows' keys; warn about what
    cannot be matched, and about label keys naming several files (their rows are errors)."""
    on_disk = set(listed)
    no_row, no_image = sorted(on_disk - all_keys), sorted(keys - on_disk)
    shared = sorted(set(duplicates(listed)) & keys)
    report.images_found = sum(len(v) for v in listed.values())
    report.matched = sum(len(listed[k]) for k in on_disk & keys)  # files, as rows are (duplicates included)
    report.images_without_row, report.examples_without_row = len(no_row), no_row[:10]
    report.rows_without_image, report.examples_without_image = len(no_image), no_image[:10]
    report.duplicate_names, report.examples_duplicate_names = len(shared), shared[:10]
    if shared:
        log.warning("%d name(s) of %s are shared by several files under %s, e.g. %s: labels are joined by file "
                    "name, so each of those files gets an error row; rename or remove the duplicates", len(shared),
                    labels, images, shared[:3])
    if no_row:
        log.warning("%d image(s) under %s have no row in %s and are not ingested, e.g. %s",
                    len(no_row), images, labels, no_row[:3])
    if no_image:
        log.warning("%d row(s) of %s%s have no image under %s, e.g. %s", len(no_image), labels,
                    f" (split {split})" if split else "", images, no_image[:3])
    return on_disk


def ingest_table(spark: SparkSession, images: str, table, listed: dict[str, list[str]], key_col: str, size: int,
                 max_pixels: int, voi: str, decode_timeout: float) -> DataFrame:
    """Decode the files ``listed[key]`` (:func:`list_image_paths`) of the label rows in ``table`` (a pandas frame
    with :data:`LABEL_SCHEMA` columns and ``key_col``) into the ingest contract: :data:`FIRST`, then the other
    columns.

    A key naming several files cannot say which of them its labels describe: each of those files gets a row
    with the key's labels, ``image`` null and an ``error`` naming the other files, and none is decoded.
    """
    matched = table[table[key_col].isin(set(listed))]
    cols = [c for c in LABEL_SCHEMA.fieldNames() if c in matched.columns]
    rows = [(p, duplicate_error(k, p, listed[k]) if len(listed[k]) > 1 else None)
            + tuple(None if v is pd.NA or (isinstance(v, float) and v != v) else v for v in r)
            for k, r in zip(matched[key_col], matched[cols].itertuples(index=False, name=None)) for p in listed[k]]
    schema = T.StructType([T.StructField("path", T.StringType(), False), T.StructField("error", T.StringType(), True)]
                          + [LABEL_SCHEMA[c] for c in cols])
    df = decode_images(_files_frame(spark, images, rows, schema), size, max_pixels, voi, decode_timeout)
    return df.select(*FIRST, *[c for c in df.columns if c not in FIRST])


def check_size(size: int) -> None:
    """Refuse an ingest size too small to crop from."""
    if size < 8:
        raise InputError(f"size must be >= 8, got {size}")


def read_nih_with_report(spark: SparkSession, images: str, labels_csv: str, size: int = 256,
                         split: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                         voi: str = "auto", decode_timeout: float = DEFAULT_TIMEOUT
                         ) -> tuple[DataFrame, IngestReport]:
    """Like :func:`read_nih`, and also return the :class:`IngestReport`."""
    check_size(size)
    labels = read_labels_csv(labels_csv)
    labels["labels"] = labels["labels"].map(harmonise_nih)
    labels["label_mask"] = [list(NIH_MASK)] * len(labels)
    report = IngestReport(label_rows=len(labels))
    all_csv = set(labels["image_index"])
    if split:
        names = read_split_list(split)
        keep = labels["image_index"].isin(names)
        report.outside_split = int((~keep).sum())
        labels = labels[keep]
    listed = list_image_paths(spark, images)
    match_report(report, listed, set(labels["image_index"]), all_csv, images, labels_csv, split)
    log.debug("ingest: %d images matched to labels (size %d)", report.matched, size)
    return ingest_table(spark, images, labels, listed, "image_index", size, max_pixels, voi, decode_timeout), report


def read_nih(spark: SparkSession, images: str, labels_csv: str, size: int = 256, split: str | None = None,
             max_pixels: int = DEFAULT_MAX_PIXELS, voi: str = "auto",
             decode_timeout: float = DEFAULT_TIMEOUT) -> DataFrame:
    """Read NIH-format images and labels as a DataFrame.

    Parameters
    ----------
    spark : SparkSession
    images : str
        Directory (searched recursively) of PNG/JPEG/DICOM files named as in the CSV; a relative local path is
        resolved against the driver's working directory.  A name the CSV has and several files carry (the
        same name in two subdirectories) gives each of those files an error row saying so, since the labels
        could belong to either (counted in the report's ``duplicate_names``).
    labels_csv : str
        NIH ``Data_Entry_2017*.csv[.gz]``.
    size : int
        Side of the square gray images produced (area-averaged resize).
    split : str, optional
        An NIH split list (``train_val_list.txt``/``test_list.txt``) restricting the rows.
    max_pixels : int
        Decompression-bomb guard: larger images get an error row.
    voi : {"auto", "window", "percentile", "none"}
        DICOM's VOI rule (:mod:`cxrzoo.ingest.dicom`); PNG/JPEG ignore it.
    decode_timeout : float
        Seconds allowed per DICOM file, decoded in a child process with capped memory
        (:mod:`cxrzoo.ingest.sandbox`); past it the row gets an error.

    Returns
    -------
    DataFrame
        ``image_index`` string, ``patient_id`` int, ``labels`` and ``label_mask`` array<float> over
        :data:`cxrzoo.labels.ALL_LABELS` (NIH's 14 first; the mask is 0 for the labels NIH does not state),
        ``image`` binary (size² uint8 gray, row-major), ``error`` string (null
        when decoded), then ``path``, ``follow_up``, ``view_position``, ``dicom`` (header fields of DICOM
        files, null for PNG/JPEG).
    """
    return read_nih_with_report(spark, images, labels_csv, size, split, max_pixels, voi, decode_timeout)[0]


def read_folder_with_report(spark: SparkSession, images: str, size: int = 256, voi: str = "auto"
                            ) -> tuple[DataFrame, IngestReport]:
    """:func:`read_images` (every image under ``images``, no labels) and its :class:`IngestReport`."""
    check_size(size)
    found = sum(len(v) for v in list_image_paths(spark, images).values())
    return read_images(spark, images, size=size, voi=voi), IngestReport(images_found=found, matched=found)


register_source(Source(
    "nih",
    lambda spark, images, size, voi, labels, split: read_nih_with_report(spark, images, labels, size=size,
                                                                         split=split, voi=voi),
    takes=("labels", "split"), requires=("labels",), refusals=MIMIC_ONLY))
register_source(Source(
    "folder",
    lambda spark, images, size, voi: read_folder_with_report(spark, images, size=size, voi=voi),
    refusals={"labels": "source 'folder' reads images without labels; give --source nih, chexpert or mimic to "
                        "label them"}))
