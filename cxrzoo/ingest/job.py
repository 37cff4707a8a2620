"""One ingest for every source: read it (:mod:`cxrzoo.ingest.registry`), write the Parquet and its report."""
from __future__ import annotations

import json

from pyspark.sql import SparkSession

from cxrzoo.ingest.outcome import IngestOutcome, decode_outcome
from cxrzoo.ingest.registry import get_source
from cxrzoo.io import parquet_rows, write_parquet_atomic

REPORT = "_ingest_report.json"  # beside the Parquet's parts, written with them


def ingest(spark: SparkSession, source: str, images: str, out: str, size: int = 256, voi: str = "auto",
           **options: str | None) -> IngestOutcome:
    """Decode (and label) the images of ``source`` into a Parquet dataset, written atomically with its report.

    Parameters
    ----------
    spark : SparkSession
    source : str
        A registered source (:func:`cxrzoo.ingest.registry.source_names`): ``nih``, ``chexpert``, ``mimic`` or
        ``folder``.
    images : str
        Directory of the PNG/JPEG/DICOM files (searched recursively).
    out : str
        The Parquet directory, replaced atomically together with ``_ingest_report.json``.
    size : int
        Side of the square gray images stored.
    voi : str
        DICOM's VOI rule (:mod:`cxrzoo.ingest.dicom`); recorded in the report, so that scoring uses the same.
    **options
        The source's own: ``labels``, ``split``, ``metadata``, ``split_name``, ``policy``, ``unmentioned``
        (:data:`cxrzoo.ingest.registry.OPTIONS`); ``None`` means not given.

    Returns
    -------
    IngestOutcome
        The files listed, ingested and left unmatched, and the error rows by reason (also in the report).

    Raises
    ------
    InputError
        For an unknown source, or an option the source does not take or needs.
    """
    src = get_source(source)
    opts = src.options(options)
    df, report = src.read(spark, images, size=size, voi=voi, **opts)
    how = {"source": source, "size": size, "voi": voi, **{k: opts[k] for k in src.recorded}}
    outcome: list[IngestOutcome] = []

    def report_files(written: str) -> dict[str, str]:  # counted on the rows written, before they replace out
        outcome.append(decode_outcome(spark.read.parquet(written), report, parquet_rows(spark, written)))
        return {REPORT: json.dumps({**outcome[0].as_dict(), **how}, indent=1) + "\n"}

    write_parquet_atomic(df, out, files=report_files)
    return outcome[0]
