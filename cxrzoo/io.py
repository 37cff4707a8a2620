"""Dataset I/O on any Hadoop file system: atomic Parquet writes and row counts."""
from __future__ import annotations

import logging
import os
from typing import Callable, Mapping

from pyspark.sql import DataFrame

from cxrzoo.atomic import local_path, replace, spark_uri, write_text

log = logging.getLogger(__name__)

__all__ = ["local_path", "parquet_rows", "write_parquet_atomic"]


def write_parquet_atomic(df: DataFrame, out: str,
                         files: Mapping[str, str] | Callable[[str], Mapping[str, str]] | None = None) -> str:
    """Write ``df`` as Parquet at ``out`` so that readers see the old data or all of the new, never part.

    Spark writes into a hidden sibling of ``out`` (its own commit protocol makes that complete or
    absent), ``files`` (name → text, e.g. a report) are added to it, and it replaces ``out`` by
    :func:`cxrzoo.atomic.replace`.  ``files`` may be a function of the written sibling's URI, for a report
    counted on the data as written.  A job killed mid-way leaves only hidden siblings, removed by the
    next write; rerunning never duplicates rows.

    Returns
    -------
    str
        ``out``.
    """
    spark = df.sparkSession

    def write(tmp: str) -> None:
        df.write.parquet(spark_uri(tmp))
        for name, text in ((files(spark_uri(tmp)) if callable(files) else files) or {}).items():
            write_text(f"{tmp.rstrip('/')}/{name}", text, spark)

    replace(out, write, spark)
    log.debug("wrote %s", out)
    return out


def parquet_rows(spark, path: str) -> int:
    """Rows of the Parquet dataset at ``path``: summed from the file footers for a local path (no Spark
    job), else counted by Spark."""
    local = local_path(path)
    if local is not None and os.path.isdir(local):
        import pyarrow.parquet as pq

        files = [f for f in sorted(os.listdir(local)) if f.endswith(".parquet") and not f.startswith((".", "_"))]
        return sum(pq.ParquetFile(os.path.join(local, f)).metadata.num_rows for f in files)
    return spark.read.parquet(path).count()
