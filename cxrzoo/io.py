"""Atomic dataset writes: write beside the target, then rename into place."""
from __future__ import annotations

import logging
import os
import uuid

from pyspark.sql import DataFrame

log = logging.getLogger(__name__)


def write_parquet_atomic(df: DataFrame, out: str) -> str:
    """Write ``df`` as Parquet at ``out`` so that readers see the old data or all of the new, never part.

    Spark writes into ``<out>._tmp-<id>`` (its own commit protocol makes that
    complete or absent); the old ``out`` is then removed and the new one renamed
    in.  A job killed mid-way leaves only a temporary directory that the next
    run ignores; rerunning never duplicates rows.

    Returns
    -------
    str
        ``out``.
    """
    spark = df.sparkSession
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    target = jvm.org.apache.hadoop.fs.Path(out)
    fs = target.getFileSystem(conf)
    tmp_name = f"{out.rstrip('/')}._tmp-{uuid.uuid4().hex[:8]}"
    tmp = jvm.org.apache.hadoop.fs.Path(tmp_name)
    try:
        df.write.parquet(tmp_name)
        if fs.exists(target):
            fs.delete(target, True)
        if not fs.rename(tmp, target):
            raise OSError(f"could not rename {tmp_name} to {out}")
    finally:
        if fs.exists(tmp):
            fs.delete(tmp, True)
    log.info("wrote %s", out)
    return out


def local_path(path: str) -> str | None:
    """The local file-system path named by ``path`` (plain or ``file:``), or None for other file systems."""
    if "://" in path and not path.startswith("file://"):
        return None
    return path.removeprefix("file://").removeprefix("file:")


def parquet_rows(spark, path: str) -> int:
    """Rows of the Parquet dataset at ``path``: summed from the file footers for a local path (no Spark
    job), else counted by Spark."""
    local = local_path(path)
    if local is not None and os.path.isdir(local):
        import pyarrow.parquet as pq

        files = [f for f in sorted(os.listdir(local)) if f.endswith(".parquet") and not f.startswith((".", "_"))]
        return sum(pq.ParquetFile(os.path.join(local, f)).metadata.num_rows for f in files)
    return spark.read.parquet(path).count()
