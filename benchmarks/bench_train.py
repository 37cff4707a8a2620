"""Training benchmark, by the wall clock: cxrzoo's engines on the same rows, the same warm-up, the same timing.

Every contender trains through cxrzoo's engine interface (``Engine.trainer(...).train_epoch``) on Spark
``local[2]``: BigDL mkldnn and mklblas (synchronous SGD over the 2 cores), and the torch engine (2
gloo DDP processes on barrier tasks) in fp32, bf16 autocast and bf16 with ``torch.compile``.  Each
contender runs in a process (and JVM) of its own, per model: a warm-up epoch of ``--iterations``
global batches, then a timed epoch over the same rows; the figure is ``images / wall seconds`` of the
timed ``train_epoch`` call — everything the engine does for an epoch (BigDL's optimize() set-up and
summaries, torch's state broadcast, barrier launch and DDP set-up) is inside it.  Beside it: the
engine's own median per-iteration throughput (BigDL's TrainSummary figure; torch's slowest rank's step
time), and what the epoch spent outside the iterations.  Contenders alternate over ``--repeats``
rounds; medians, with the per-round ratios of torch bf16 to BigDL's best fp32.

    .venv/bin/python benchmarks/bench_train.py [--models resnet50,densenet121,mobilenet_v2]
        [--batches 16,32] [--iterations 6] [--repeats 2] [--contenders ...] [--json]
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import bench_args, cpu_name, emit

log = logging.getLogger("bench_train")
CONTENDERS = {  # name → (engine, options)
    "bigdl_mkldnn": ("bigdl", {"engine_type": "mkldnn"}),
    "bigdl_mklblas": ("bigdl", {"engine_type": "mklblas"}),
    "torch_fp32": ("torch", {"precision": "fp32"}),
    "torch_bf16": ("torch", {"precision": "bf16"}),
    "torch_bf16_compile": ("torch", {"precision": "bf16", "compile": True}),
    "torch_bf16_per_executor": ("torch", {"precision": "bf16", "workers": "per_executor"}),
}
SUPPRESS_HELP = "==SUPPRESS=="


def _rows(spark, n: int, seed: int):
    """``n`` rows of random 3×224² features and 14 labels, made in the workers (the same for every contender)."""
    import pyarrow as pa

    from cxrzoo.arrowutil import rows_to_list_array

    def make(batches):
        for b in batches:
            ids = b.column(0).to_numpy()
            x = np.stack([np.random.default_rng([seed, int(i)]).normal(0, 1, 3 * 224 * 224).astype(np.float32)
                          for i in ids])
            y = np.stack([(np.random.default_rng([seed, int(i), 1]).random(14) < 0.2).astype(np.float32)
                          for i in ids])
            rows = list(range(len(ids)))
            yield pa.RecordBatch.from_arrays([rows_to_list_array(x, rows, len(ids)),
                                              rows_to_list_array(y, rows, len(ids))], names=["features", "labels"])

    return spark.range(n, numPartitions=2).mapInArrow(make, "features array<float>, labels array<float>")


def worker(contender: str, models: list[str], batches: list[int], iterations: int) -> None:
    """In a fresh process: one JSON line per (model, batch)."""
    from cxrzoo.engine.base import TrainConfig, get_engine
    from cxrzoo.models import create_spec
    from cxrzoo.session import get_spark
    from cxrzoo.train.feed import features_data

    engine, options = CONTENDERS[contender]
    spark = get_spark(master="local[2]", driver_memory="12g", engine=engine,
                      **({"engine_type": options["engine_type"]} if engine == "bigdl" else {}))
    eng = get_engine(engine, **options)
    for name in models:
        for batch in batches:
            spec = create_spec(name, num_classes=14, input_size=224)
            df = _rows(spark, batch * iterations, seed=batch).cache()
            df.count()
            data = features_data(df, "features", "labels", 224)
            trainer = eng.trainer(eng.build(spec, seed=0), spec, TrainConfig(epochs=2, batch_size=batch,
                                                                               learning_rate=1e-4))
            try:
                trainer.train_epoch(data, 0)  # warm-up: the same rows, the same number of iterations
                t0 = time.perf_counter()
                stats = trainer.train_epoch(data, 1)
                wall = time.perf_counter() - t0
            finally:
                trainer.close()
                df.unpersist()
            it = stats.iteration_images_per_s
            inside = sum(batch / r for r in it) if it else None
            emit(json.dumps({"contender": contender, "model": name, "batch": batch,  # noqa: T201
                              "wall_images_per_s": stats.images / wall, "images": stats.images,
                              "self_reported_images_per_s": float(np.median(it)) if it else None,
                              "outside_iterations_s": wall - inside if inside else None}))


def _run(contender: str, model: str, args) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYSPARK_SUBMIT_ARGS", "CXRZOO_CONSOLE_LOG")}
    try:
        run = subprocess.run([sys.executable, __file__, "--worker", contender, "--models", model, "--batches",
                              args.batches, "--iterations", str(args.iterations)], capture_output=True, text=True,
                             env=env, cwd=Path(__file__).parent, timeout=1800)
    except subprocess.TimeoutExpired:
        log.warning("%s on %s took over 30 min: left out", contender, model)
        return []
    if run.returncode != 0:
        log.warning("%s on %s failed: %s", contender, model, run.stderr[-1500:])
    return [json.loads(ln) for ln in run.stdout.splitlines() if ln.startswith('{"contender"')]


def main() -> None:
    """Alternate the contenders, print the table, then one JSON line."""
    def extra(ap):
        ap.add_argument("--models", default="resnet50,densenet121,mobilenet_v2")
        ap.add_argument("--batches", default="16,32")
        ap.add_argument("--iterations", type=int, default=6, help="global batches per epoch (warm-up and timed)")
        ap.add_argument("--contenders", default=",".join(CONTENDERS))
        ap.add_argument("--mklblas-models", default="mobilenet_v2",
                        help="models for BigDL's MKL-BLAS engine (ResNet-50 and DenseNet-121 exhaust a 12 GB heap "
                             "there and then stall in garbage collection)")
        ap.add_argument("--worker", help=SUPPRESS_HELP)

    args = bench_args(__doc__, 2, extra)
    models, batches = args.models.split(","), [int(b) for b in args.batches.split(",")]
    if args.worker:
        return worker(args.worker, models, batches, args.iterations)
    contenders = args.contenders.split(",")
    rows: list[dict] = []
    for r in range(args.repeats):
        for m in models:
            for c in contenders:
                if c == "bigdl_mklblas" and m not in args.mklblas_models.split(","):
                    continue
                got = [dict(x, round=r) for x in _run(c, m, args)]
                for x in got:  # as they come: a run cut short keeps what it measured
                    log.info("round %d: %s", r, json.dumps(x))
                rows += got
    summary = _summarise(rows, models, batches, contenders, args.repeats)
    emit(json.dumps({"benchmark": "train", "cpu": cpu_name(), "cores": 2, "timing": "wall clock around "  # noqa: T201
                      "train_epoch, after a warm-up epoch on the same rows", "iterations": args.iterations,
                      "results": summary}))


def _summarise(rows: list[dict], models, batches, contenders, repeats) -> dict:
    def med(c, m, b, key):
        v = [x[key] for x in rows if (x["contender"], x["model"], x["batch"]) == (c, m, b) and x[key] is not None]
        return float(np.median(v)) if v else None

    def at(c, m, b, r):
        return next((x["wall_images_per_s"] for x in rows
                     if (x["contender"], x["model"], x["batch"], x["round"]) == (c, m, b, r)), None)

    log.info("training images/s by the wall clock (self-reported per-iteration in brackets), 224², 2 cores (%s)",
             cpu_name())
    log.info("%-13s %5s " + " ".join(f"{c:>22s}" for c in contenders) + " %10s", "model", "batch", "bf16/bigdl")
    out = {}
    for m in models:
        for b in batches:
            d = {c: {"wall": med(c, m, b, "wall_images_per_s"), "self": med(c, m, b, "self_reported_images_per_s"),
                     "outside_s": med(c, m, b, "outside_iterations_s")} for c in contenders}
            per_round = []
            for r in range(repeats):
                best = max((v for v in (at("bigdl_mkldnn", m, b, r), at("bigdl_mklblas", m, b, r)) if v), default=None)
                bf = at("torch_bf16", m, b, r)
                if best and bf:
                    per_round.append(round(bf / best, 2))
            d["torch_bf16_vs_best_bigdl_per_round"] = per_round
            d["torch_bf16_vs_best_bigdl"] = float(np.median(per_round)) if per_round else None
            out[f"{m}_bs{b}"] = d
            cells = [f"{d[c]['wall']:.2f} ({d[c]['self']:.2f})" if d[c]["wall"] and d[c]["self"] else "-"
                     for c in contenders]
            ratio = d["torch_bf16_vs_best_bigdl"]
            log.info("%-13s %5d " + " ".join(f"{c:>22s}" for c in cells) + " %10s", m, b,
                     f"{ratio:.2f}x" if ratio else "-")
    return out


if __name__ == "__main__":
    main()
