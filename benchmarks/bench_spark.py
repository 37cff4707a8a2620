"""Spark end to end on local[2]: how much of the raw kernels' throughput survives Spark.

1. PNG directory → decoded 256² images (``read_nih``), vs the raw decode kernel reading and decoding the
   same files in one process per core, all cores at once (and, for reference, one core's rate × cores).
2. Parquet of 256² images → 224² tensors (``CXRPreprocessor``), vs the raw augmentation kernel × cores, and
   vs the transport floor: the same Arrow UDF shape emitting a ready-made 3×224² float32 row per image with no
   compute, i.e. what Spark alone costs to move 602 KB per row from Python into the JVM's rows; and the input
   floor: the 64 KB images moved into the Python workers and counted there, nothing computed or returned.
Both Spark runs force every row through a ``noop`` write; median of repeats after a warm-up.

    .venv/bin/python benchmarks/bench_spark.py [--n 1500] [--repeats 3] [--json]
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from _common import bench_args, cpu_name, emit, median_seconds

log = logging.getLogger("bench_spark")


def _read_and_decode(paths: list[str]) -> int:
    """One process's share of the raw baseline: read each file and decode it to 256² gray."""
    from cxrzoo.ingest import decode_gray

    for p in paths:
        decode_gray(Path(p).read_bytes(), 256)
    return len(paths)


def parallel_decode_rate(files: list[Path], cores: int, repeats: int) -> float:
    """Images/s of the raw decode kernel over ``files`` with ``cores`` processes busy at once."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunks = [[str(p) for p in files[i::cores]] for i in range(cores)]
    with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
        return len(files) / median_seconds(lambda: sum(pool.map(_read_and_decode, chunks)), repeats)


def _constant_tensors(batches):
    """mapInArrow body of the transport floor: one ready-made 3×224² float32 tensor per input row."""
    import pyarrow as pa

    from cxrzoo.arrowutil import rows_to_list_array

    buf = None
    for batch in batches:
        m = batch.num_rows
        if buf is None or len(buf) < m:
            buf = np.zeros((m, 3 * 224 * 224), np.float32)
        yield pa.RecordBatch.from_arrays([rows_to_list_array(buf[:m], list(range(m)), m)], names=["features"])


def _count_rows(batches):
    """mapInArrow body of the input floor: the images reach Python; only their count goes back."""
    import pyarrow as pa

    for batch in batches:
        yield pa.RecordBatch.from_arrays([pa.array([batch.num_rows], pa.int64())], names=["n"])


def main() -> None:
    """Run and print the table, then one JSON line."""
    args = bench_args(__doc__, 3, lambda ap: ap.add_argument("--n", type=int, default=1500))
    from cxrzoo.ingest import decode_gray, read_nih
    from cxrzoo.io import write_parquet_atomic
    from cxrzoo.preprocess import CXRPreprocessor
    from cxrzoo.preprocess.chain import ChainConfig, apply_chain
    from cxrzoo.session import get_spark
    from cxrzoo.synth import write_dataset

    cores = 2
    spark = get_spark(master=f"local[{cores}]", app_name="bench-spark")
    with tempfile.TemporaryDirectory() as tmp:
        ds = write_dataset(Path(tmp) / "ds", n=args.n, size=1024, seed=5)
        files = sorted(ds.images.glob("*.png"))
        blobs = [p.read_bytes() for p in files[:40]]
        raw_decode = len(blobs) / median_seconds(lambda: [decode_gray(b, 256) for b in blobs], args.repeats)
        raw_parallel = parallel_decode_rate(files, cores, args.repeats)
        imgs = np.stack([decode_gray(b, 256) for b in blobs])
        keys = [p.name for p in files[:40]]
        buf = np.empty((len(imgs), 3, 224, 224), np.float32)
        raw_aug = len(imgs) / median_seconds(lambda: apply_chain(imgs, keys, ChainConfig(), out=buf), args.repeats)

        def ingest() -> None:
            df = read_nih(spark, str(ds.images), str(ds.labels_csv), size=256)
            df.write.format("noop").mode("overwrite").save()

        spark_ingest = args.n / median_seconds(ingest, args.repeats)
        parquet = str(Path(tmp) / "images.parquet")
        write_parquet_atomic(read_nih(spark, str(ds.images), str(ds.labels_csv), size=256), parquet)
        df = spark.read.parquet(parquet).cache()
        df.count()
        prep = CXRPreprocessor()
        spark_aug = args.n / median_seconds(
            lambda: prep.transform(df).write.format("noop").mode("overwrite").save(), args.repeats)
        input_floor = args.n / median_seconds(lambda: df.select("image").mapInArrow(_count_rows, "n long")
                                              .write.format("noop").mode("overwrite").save(), args.repeats)
        floor = args.n / median_seconds(lambda: df.mapInArrow(_constant_tensors, "features array<float>")
                                        .write.format("noop").mode("overwrite").save(), args.repeats)
    res = {"benchmark": "spark_end_to_end", "cpu": cpu_name(), "master": f"local[{cores}]", "images": args.n,
           "ingest_images_per_s": round(spark_ingest, 1), "raw_decode_images_per_s": round(raw_parallel, 1),
           "raw_decode_1core_x_cores_images_per_s": round(raw_decode * cores, 1),
           "ingest_share": round(spark_ingest / raw_parallel, 3),
           "augment_images_per_s": round(spark_aug, 1), "raw_augment_images_per_s": round(raw_aug * cores, 1),
           "augment_share": round(spark_aug / (raw_aug * cores), 3),
           "input_floor_images_per_s": round(input_floor, 1),
           "transport_floor_images_per_s": round(floor, 1), "augment_share_of_floor": round(spark_aug / floor, 3)}
    log.info("Spark local[%d], %d synthetic 1024² PNGs (%s)", cores, args.n, res["cpu"])
    log.info("%-46s %10s %12s %7s", "stage", "Spark/s", "raw/s", "share")
    log.info("%-46s %10.0f %12.0f %6.0f%%", "PNG dir → 256² gray (read_nih)", spark_ingest, raw_parallel,
             100 * res["ingest_share"])
    log.info("%-46s %10s %12.0f %6.0f%%", "  (raw: one core's rate × cores)", "", raw_decode * cores,
             100 * spark_ingest / (raw_decode * cores))
    log.info("%-46s %10.0f %12.0f %6.0f%%", "Parquet 256² → 224² tensors (CXRPreprocessor)", spark_aug,
             raw_aug * cores, 100 * res["augment_share"])
    log.info("%-46s %10.0f %12.0f %6.0f%%", "  input floor (images into Python only) / raw", input_floor,
             raw_aug * cores, 100 * input_floor / (raw_aug * cores))
    log.info("%-46s %10.0f %12.0f %6.0f%%", "  transport floor (no compute) / raw", floor, raw_aug * cores,
             100 * floor / (raw_aug * cores))
    log.info("%-46s %10.0f %12.0f %6.0f%%", "  CXRPreprocessor / transport floor", spark_aug, floor,
             100 * res["augment_share_of_floor"])
    emit(json.dumps(res))  # noqa: T201


if __name__ == "__main__":
    main()
