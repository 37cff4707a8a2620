"""Training microbenchmark: images/s of BigDL mklblas, BigDL mkldnn and PyTorch eager on the same random batch.

ResNet-50, DenseNet-121 and MobileNetV2 (14-way heads, 224² inputs), batch 16 and 32, Spark
``local[2]`` for BigDL (synchronous SGD over the 2 cores, Adam, MultiLabelSoftMarginCriterion) and
``torch.set_num_threads(2)`` with channels_last for PyTorch (Adam, BCE with logits) when torch is
installed.  Steady state, the same warm-up for both: BigDL's per-iteration throughput from its
TrainSummary and PyTorch's iteration time, each the median over the iterations after the first
``--warmup`` (default 8: BigDL's per-iteration throughput keeps rising over its first iterations, as the
JVM compiles BigDL's and Spark's per-iteration code, while PyTorch's is flat from its second).
Each BigDL engine type runs in a JVM of its own (a JVM-wide setting).  MKL-DNN and PyTorch alternate
``--repeats`` times (median of the rounds); MKL-BLAS, far behind, runs once.

    .venv/bin/python benchmarks/bench_train.py [--models resnet50,densenet121,mobilenet_v2]
        [--batches 16,32] [--iterations 8] [--warmup 8] [--repeats 3] [--json]
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import bench_args, cpu_name

log = logging.getLogger("bench_train")


def bigdl_worker(engine: str, models: list[str], batches: list[int], iterations: int, warmup: int) -> None:
    """In a fresh JVM: print one JSON line per (model, batch)."""
    from cxrzoo.engine.base import TrainConfig, get_engine
    from cxrzoo.models import create_spec
    from cxrzoo.session import get_spark

    spark = get_spark(master="local[2]", driver_memory="12g", engine="bigdl", engine_type=engine)
    eng = get_engine("bigdl", engine_type=engine)
    for name in models:
        for batch in batches:
            spec = create_spec(name, num_classes=14, input_size=224)
            net = eng.build(spec, seed=0)
            rng = np.random.default_rng(0)
            x = rng.normal(0, 1, (batch, 3, 224, 224)).astype(np.float32)
            y = (rng.random((batch, 14)) < 0.2).astype(np.float32)
            data = spark.sparkContext.parallelize([(x[i], y[i]) for i in range(batch)] * (warmup + iterations), 2)
            trainer = eng.trainer(net, spec, TrainConfig(epochs=1, batch_size=batch, learning_rate=1e-4))
            stats = trainer.train_epoch(data, 0)
            trainer.close()
            steady = stats.iteration_images_per_s[warmup:]
            print(json.dumps({"engine": f"bigdl_{engine}", "model": name, "batch": batch,  # noqa: T201
                              "images_per_s": float(np.median(steady)) if steady else None}), flush=True)


def torch_rates(models: list[str], batches: list[int], iterations: int, warmup: int) -> list[dict]:
    """PyTorch eager, channels_last, 2 threads."""
    import torch

    from _torchnet import SpecNet
    from cxrzoo.models import create_spec

    torch.set_num_threads(2)
    out = []
    for name in models:
        for batch in batches:
            torch.manual_seed(0)
            net = SpecNet(create_spec(name, num_classes=14, input_size=224)).to(memory_format=torch.channels_last)
            opt = torch.optim.Adam(net.parameters(), lr=1e-4)
            x = torch.randn(batch, 3, 224, 224).to(memory_format=torch.channels_last)
            y = (torch.rand(batch, 14) < 0.2).float()
            times = []
            for i in range(warmup + iterations):
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
                opt.step()
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
            out.append({"engine": "pytorch_eager_cl", "model": name, "batch": batch,
                        "images_per_s": batch / float(np.median(times))})
    return out


def main() -> None:
    """Run the workers, print the table, then one JSON line."""
    def extra(ap):
        ap.add_argument("--models", default="resnet50,densenet121,mobilenet_v2")
        ap.add_argument("--batches", default="16,32")
        ap.add_argument("--iterations", type=int, default=8, help="timed iterations after the warm-up")
        ap.add_argument("--warmup", type=int, default=8, help="untimed iterations first, the same for every engine")
        ap.add_argument("--mklblas-models", default="mobilenet_v2",
                        help="models for BigDL's MKL-BLAS engine (ResNet-50 and DenseNet-121 exhaust a 12 GB heap "
                             "there and then stall in garbage collection)")
        ap.add_argument("--worker", help=SUPPRESS_HELP)

    args = bench_args(__doc__, 3, extra)
    models, batches = args.models.split(","), [int(b) for b in args.batches.split(",")]
    if args.worker == "torch":
        try:
            rows = torch_rates(models, batches, args.iterations, args.warmup)
        except ImportError:
            log.warning("torch is not installed: no PyTorch baseline (pip install torch==2.13.0)")
            rows = []
        for r in rows:
            print(json.dumps(r), flush=True)  # noqa: T201
        return None
    if args.worker:
        return bigdl_worker(args.worker, models, batches, args.iterations, args.warmup)
    rows: list[dict] = []
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYSPARK_SUBMIT_ARGS")}  # a fresh JVM

    def worker(engine: str, names: str) -> list[dict]:
        """One process per model: a JVM holding several models' MKL-DNN buffers outgrew 24 GB."""
        out = []
        for name in (m for m in names.split(",") if m in models):
            run = subprocess.run([sys.executable, __file__, "--worker", engine, "--models", name, "--batches",
                                  args.batches, "--iterations", str(args.iterations),
                                  "--warmup", str(args.warmup)], capture_output=True,
                                 text=True, env=env, cwd=Path(__file__).parent)
            if run.returncode != 0:
                log.warning("%s worker for %s failed: %s", engine, name, run.stderr[-1500:])
            out += [json.loads(ln) for ln in run.stdout.splitlines() if ln.startswith('{"engine"')]
        return out

    if importlib.util.find_spec("torch") is None:
        log.warning("torch is not installed: no PyTorch baseline (pip install torch==2.13.0)")
    rows += worker("mklblas", args.mklblas_models)  # far behind: one round
    for i in range(args.repeats):  # MKL-DNN and PyTorch alternate, so that drifts of the machine hit both
        rows += [dict(r, round=i) for r in worker("mkldnn", args.models) + worker("torch", args.models)]
    by_round = {(r["engine"], r["model"], r["batch"], r["round"]): r["images_per_s"] for r in rows if "round" in r}
    runs: dict[tuple, list[float]] = {}
    for r in rows:
        runs.setdefault((r["engine"], r["model"], r["batch"]), []).append(r["images_per_s"])
    table = {k: float(np.median(v)) for k, v in runs.items()}
    engines = ["bigdl_mklblas", "bigdl_mkldnn", "pytorch_eager_cl"]
    log.info("training images/s, 224² inputs, 2 cores (%s); Spark local[2] for BigDL", cpu_name())
    log.info("%-14s %5s %14s %14s %16s %10s", "model", "batch", *engines, "best/torch")
    summary = {}
    for m in models:
        for b in batches:
            vals = [table.get((e, m, b)) for e in engines]
            best = max((v for v in vals[:2] if v), default=None)
            ratio = best / vals[2] if best and vals[2] else None
            summary[f"{m}_bs{b}"] = {e: (round(v, 2) if v else None) for e, v in zip(engines, vals)}
            summary[f"{m}_bs{b}"]["best_bigdl_vs_torch"] = round(ratio, 2) if ratio else None
            summary[f"{m}_bs{b}"]["mkldnn_vs_torch_per_round"] = [
                round(by_round[("bigdl_mkldnn", m, b, i)] / by_round[("pytorch_eager_cl", m, b, i)], 2)
                for i in range(args.repeats)
                if ("bigdl_mkldnn", m, b, i) in by_round and ("pytorch_eager_cl", m, b, i) in by_round]
            log.info("%-14s %5d %14s %14s %16s %10s", m, b, *[f"{v:.2f}" if v else "-" for v in vals],
                     f"{ratio:.2f}x" if ratio else "-")
    print(json.dumps({"benchmark": "train", "cpu": cpu_name(), "cores": 2, "results": summary}))  # noqa: T201


SUPPRESS_HELP = "==SUPPRESS=="

if __name__ == "__main__":
    main()
