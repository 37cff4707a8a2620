"""``cxrzoo`` command line: synth, ingest, train, evaluate, export, score, demo."""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys

from cxrzoo.stdio import fd_stdout_to_stderr

log = logging.getLogger("cxrzoo")


def _engine_options(args: argparse.Namespace, engine: str | None) -> dict:
    """The engine's own options from the command line (BigDL: --bigdl-engine-type; torch: --precision, ...)."""
    if engine == "auto":
        from cxrzoo.engine.base import resolve_engine

        engine = resolve_engine(engine)
    if engine == "bigdl" and hasattr(args, "bigdl_engine_type"):
        return {"engine_type": args.bigdl_engine_type}
    if engine == "torch" and hasattr(args, "torch_workers"):
        return {"precision": args.train_precision, "compile": args.torch_compile, "workers": args.torch_workers}
    return {}


def _spark(args: argparse.Namespace, engine: str | None = None):
    from cxrzoo.session import get_spark

    engine = engine or getattr(args, "engine", None)
    return get_spark(master=getattr(args, "master", None), driver_memory=getattr(args, "driver_memory", "10g"),
                     executor_cores=getattr(args, "executor_cores", None),
                     executor_memory=getattr(args, "executor_memory", None),
                     num_executors=getattr(args, "num_executors", None), engine=engine,
                     **_engine_options(args, engine))


def cmd_spark_conf(args: argparse.Namespace) -> None:
    from cxrzoo.session import spark_conf
    from cxrzoo.sparkconf import submit_flags

    conf = spark_conf(engine=args.engine, master=args.master, driver_memory=args.driver_memory,
                      executor_cores=args.executor_cores, executor_memory=args.executor_memory,
                      num_executors=args.num_executors, **_engine_options(args, args.engine))
    if args.json:
        sys.stdout.write(json.dumps(conf, indent=1) + "\n")
    else:
        sys.stdout.write(" \\\n".join(submit_flags(conf)) + "\n")


def cmd_synth(args: argparse.Namespace) -> None:
    from cxrzoo.synth import write_dataset

    r = write_dataset(args.out, n=args.n, size=args.size, seed=args.seed, workers=args.workers)
    log.info("images: %s\nlabels: %s\nsplits: %s, %s", r.images, r.labels_csv, r.train_val_list, r.test_list)


def cmd_ingest(args: argparse.Namespace) -> None:
    from cxrzoo import jobs

    rep = jobs.ingest(_spark(args), args.images, args.labels, args.out, size=args.size, split=args.split)
    log.info("ingested %d images to %s (%d without a CSV row, %d CSV rows without an image, %d outside the split)",
             rep.matched, args.out, rep.images_without_row, rep.rows_without_image, rep.outside_split)


def cmd_train(args: argparse.Namespace) -> None:
    from cxrzoo import jobs
    from cxrzoo.progress import EpochProgress

    params = dict(modelName=args.model, epochs=args.epochs, batchSize=args.batch_size, learningRate=args.lr,
                  optimizer=args.optimizer, momentum=args.momentum, nesterov=not args.no_nesterov,
                  lrSchedule=args.schedule, warmupEpochs=args.warmup_epochs, warmupStartLR=args.warmup_start_lr,
                  plateauMonitor=args.plateau_monitor, plateauFactor=args.plateau_factor,
                  plateauPatience=args.plateau_patience, plateauEpsilon=args.plateau_epsilon, minLR=args.min_lr,
                  classWeighting=args.class_weights, dropout=args.dropout, l2=args.l2,
                  normalization=args.normalization, seed=args.seed, pretrained=args.pretrained or "",
                  freezeEpochs=args.freeze_epochs, freezeUpTo=args.freeze_up_to or "", engine=args.engine,
                  bigdlEngineType=args.bigdl_engine_type, precision=args.train_precision,
                  torchCompile=args.torch_compile, torchWorkers=args.torch_workers,
                  checkpointDir=args.checkpoint_dir or "", checkpointInterval=args.checkpoint_interval,
                  summaryDir=args.summary_dir or "", allowPatientOverlap=args.allow_patient_overlap)
    progress = EpochProgress(args.epochs).attached() if not args.no_progress else contextlib.nullcontext()
    with progress:
        jobs.train(_spark(args), args.data, args.out, validation=args.validation, crop=args.crop, **params)
    log.info("model saved to %s", args.out)


def _add_train(sub) -> None:
    from cxrzoo.models import list_models

    p = sub.add_parser("train", help="train a model on ingested Parquet (rerun after a kill resumes)",
                       description="Distributed synchronous SGD over the Spark cluster, augmenting "
                       "afresh every epoch. The seed's recipe: --backbone resnet50 --batch-size 1024 --epochs 15 "
                       "--lr 1e-4 --schedule plateau --warmup-epochs 5. CheXNet's: --backbone densenet121 --lr 1e-3 "
                       "--schedule plateau --plateau-monitor val_loss --class-weights chexnet --validation VAL.")
    p.add_argument("--data", required=True, help="ingested Parquet (training split)")
    p.add_argument("--out", required=True, help="model directory to write (atomically)")
    p.add_argument("--validation", default=None,
                   help="ingested Parquet scored after every epoch (validation AUC and loss); other patients only")
    p.add_argument("--model", "--backbone", dest="model", default="tiny", choices=list_models(),
                   help="network from the registry (default: tiny)")
    p.add_argument("--pretrained", default=None,
                   help="torchvision-layout ImageNet checkpoint (.pth/.safetensors) to fine-tune from")
    p.add_argument("--freeze-epochs", type=int, default=0,
                   help="epochs during which only the new head trains (default: 0)")
    p.add_argument("--freeze-up-to", default=None,
                   help="with --freeze-epochs: freeze from the input up to this layer (default: the whole backbone)")
    p.add_argument("--epochs", type=int, default=10, help="epochs (default: 10)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="global batch size, a multiple of the total executor cores (default: 32)")
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd"], help="optimizer (default: adam)")
    p.add_argument("--momentum", type=float, default=0.9, help="sgd momentum (default: 0.9)")
    p.add_argument("--no-nesterov", action="store_true", help="sgd without Nesterov momentum")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="base (peak) learning rate, reached after the warmup (default: 1e-3)")
    p.add_argument("--schedule", default="constant", choices=["constant", "plateau", "cosine"],
                   help="learning rate after the warmup: constant, reduce on plateau, or cosine decay to "
                        "--min-lr by the last epoch (default: constant)")
    p.add_argument("--warmup-epochs", type=int, default=0,
                   help="epochs of linear warmup from --warmup-start-lr to --lr (default: 0; the seed: 5)")
    p.add_argument("--warmup-start-lr", type=float, default=1e-7, help="first warmup epoch's rate (default: 1e-7)")
    p.add_argument("--plateau-monitor", default="loss", choices=["loss", "val_loss"],
                   help="plateau watches the training loss or the validation loss (needs --validation) "
                        "(default: loss)")
    p.add_argument("--plateau-factor", type=float, default=0.1, help="plateau's rate multiplier (default: 0.1)")
    p.add_argument("--plateau-patience", type=int, default=1,
                   help="epochs without improvement before the plateau reduces the rate (default: 1)")
    p.add_argument("--plateau-epsilon", type=float, default=0.01,
                   help="smallest loss decrease that counts as improvement (default: 0.01)")
    p.add_argument("--min-lr", type=float, default=1e-15, help="floor of plateau / end of cosine (default: 1e-15)")
    p.add_argument("--class-weights", default="none", choices=["none", "chexnet"],
                   help="chexnet: weight each class's positives by N/(P+N) and negatives by P/(P+N) (default: none)")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout before the classifier (default: 0.2)")
    p.add_argument("--l2", type=float, default=0.0, help="L2 on the classifier's weight and bias (default: 0)")
    _add_engine(p)
    p.add_argument("--normalization", default=None, choices=["caffe", "imagenet"],
                   help="channel normalization (default: the model's: imagenet for the torchvision backbones, "
                        "caffe - the seed's mean subtraction - for tiny)")
    p.add_argument("--crop", type=int, default=224, help="center/random crop fed to the network (default: 224)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="checkpoints (weights, optimizer state, schedule, epoch); rerunning the same command "
                        "resumes from the newest (default: OUT.ckpt, removed after the model is saved)")
    p.add_argument("--checkpoint-interval", type=int, default=1, help="epochs between checkpoints (default: 1)")
    p.add_argument("--summary-dir", default=None,
                   help="Train/Validation summaries; view with `tensorboard --logdir DIR` (default: none)")
    p.add_argument("--allow-patient-overlap", action="store_true",
                   help="accept a --validation set sharing patients with --data (inflates AUC)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _add_master(p)
    p.set_defaults(func=cmd_train)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from cxrzoo import jobs

    with fd_stdout_to_stderr() if args.json else contextlib.nullcontext():
        rep = jobs.evaluate(_spark(args, jobs.model_engine(args.model)), args.model, args.data,
                            bootstrap=args.bootstrap)
    if args.json:
        sys.stdout.write(json.dumps(rep.as_dict()) + "\n")
    else:
        sys.stdout.write(rep.table() + "\n")


def cmd_export(args: argparse.Namespace) -> None:
    from cxrzoo import jobs

    out = jobs.export(args.model, args.out, precision=args.precision, calibration=args.calibration,
                      check=args.check)
    log.info("OpenVINO IR (%s) written to %s", args.precision, out)


def cmd_score(args: argparse.Namespace) -> None:
    from cxrzoo import jobs

    n = jobs.score(_spark(args), args.model, args.out, images=args.images, data=args.data,
                   batch_size=args.batch_size, precision=args.precision_hint)
    log.info("scored %d images to %s", n, args.out)


def cmd_demo(args: argparse.Namespace) -> None:
    from cxrzoo.demo import run_demo

    run_demo(args.out, n=args.n, epochs=args.epochs, seed=args.seed, master=args.master)


BENCHMARKS = ("synth", "decode", "augment", "spark", "train", "launch", "score", "recipe")


def cmd_bench(args: argparse.Namespace) -> None:
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parents[1] / "benchmarks"
    script = here / f"bench_{args.which}.py"
    if not script.exists():
        raise FileNotFoundError(f"{script} not found: benchmarks run from a source checkout of cxrzoo")
    extra = args.rest + (["--json"] if args.json else [])
    raise SystemExit(subprocess.call([sys.executable, script.name, *extra], cwd=here))


def _add_engine(p: argparse.ArgumentParser, default: str | None = "auto") -> None:
    from cxrzoo.engine.base import engine_names

    p.add_argument("--engine", default=default, choices=engine_names() + ["auto"],
                   help="training engine; auto: bigdl where it is installed, else torch "
                        f"(default: {default or 'none'})")
    p.add_argument("--bigdl-engine-type", default="mkldnn", choices=["mkldnn", "mklblas"],
                   help="BigDL's compute engine, a JVM-wide setting (default: mkldnn, on which every backbone "
                        "trains; mklblas exhausts the heap on ResNet-50 and DenseNet-121)")
    p.add_argument("--precision", dest="train_precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="torch engine: bf16 autocast or fp32; auto: bf16 where the CPU has AMX or AVX512_BF16")
    p.add_argument("--torch-compile", action="store_true", help="torch engine: torch.compile the network")
    p.add_argument("--torch-workers", default="per_core", choices=["per_core", "per_executor"],
                   help="torch engine: one DDP process per executor core (default) or per executor")


def _add_master(p: argparse.ArgumentParser) -> None:
    p.add_argument("--master", default=None, help="Spark master URL (default: $CXRZOO_MASTER or local[*])")
    p.add_argument("--driver-memory", default="10g", help="driver JVM heap (default: 10g)")
    p.add_argument("--executor-cores", type=int, default=None,
                   help="cores per executor on a cluster master (default: what the cluster grants)")
    p.add_argument("--num-executors", type=int, default=None, help="executors on a cluster master")
    p.add_argument("--executor-memory", default=None, help="executor heap on a cluster master (e.g. 2g)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the README's CLI reference and tests)."""
    ap = argparse.ArgumentParser(prog="cxrzoo", description="Spark-native chest X-ray model zoo.")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic NIH-format dataset")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--n", type=int, default=500, help="number of images (default: 500)")
    p.add_argument("--size", type=int, default=1024, help="image side in pixels (default: 1024)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--workers", type=int, default=None, help="render processes (default: all cores)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("ingest", help="decode + label images into Parquet")
    p.add_argument("--images", required=True, help="directory of PNG/JPEG files (searched recursively)")
    p.add_argument("--labels", required=True, help="NIH Data_Entry_2017*.csv[.gz]")
    p.add_argument("--out", required=True, help="output Parquet directory (replaced atomically)")
    p.add_argument("--size", type=int, default=256, help="side of the gray images stored (default: 256)")
    p.add_argument("--split", default=None, help="NIH split list (train_val_list.txt / test_list.txt)")
    _add_master(p)
    p.set_defaults(func=cmd_ingest)

    _add_train(sub)

    p = sub.add_parser("evaluate", help="per-disease AUC of a model on ingested Parquet")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--data", required=True, help="ingested Parquet (e.g. the test split)")
    p.add_argument("--json", action="store_true", help="print only a JSON object on stdout")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples for the 95%% confidence intervals; 0 for none (default: 1000)")
    _add_master(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="export a model directory to OpenVINO IR (fp32, bf16 or int8)")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--out", required=True, help="IR directory to write (atomically)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"],
                   help="fp32; bf16 (OpenVINO's BF16 hint, where the CPU has it natively); int8 (NNCF post-training "
                        "quantization); bf16/int8 are refused if the mean AUC drops > 0.005 vs fp32 (default: fp32)")
    p.add_argument("--calibration", default=None,
                   help="ingested Parquet of training images; 300 are drawn to calibrate int8")
    p.add_argument("--check", default=None,
                   help="ingested Parquet of labelled images (e.g. the test split) on which bf16/int8 AUC is "
                        "compared with fp32 (default: --calibration)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("score", help="score images with an exported IR inside Spark")
    p.add_argument("--model", required=True, help="IR directory written by `cxrzoo export`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="directory of PNG/JPEG files")
    src.add_argument("--data", help="ingested Parquet")
    p.add_argument("--out", required=True,
                   help="output Parquet: image_index, 14 probabilities, error (replaced atomically)")
    p.add_argument("--batch-size", type=int, default=16, help="images per OpenVINO infer request (default: 16)")
    p.add_argument("--precision-hint", default=None, choices=["f32", "bf16"],
                   help="override the inference precision hint the export recorded")
    _add_master(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("spark-conf", help="print the Spark settings cxrzoo needs, as spark-submit flags",
                       description="The settings to start a SparkSession (spark-submit, pyspark, a notebook) "
                       "with, so that `import cxrzoo` can run on it; cxrzoo.spark_conf() returns them as a dict.")
    _add_engine(p, default=None)
    p.add_argument("--json", action="store_true", help="print a JSON object instead of flags")
    _add_master(p)
    p.set_defaults(func=cmd_spark_conf)

    p = sub.add_parser("bench", help="run a benchmark from benchmarks/ (a table, then one JSON line)")
    p.add_argument("which", choices=BENCHMARKS, help="which benchmark (bench_<which>.py)")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to the benchmark script")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="the main job: synth → ingest → train → evaluate → export → score")
    p.add_argument("--out", default="demo-out", help="working directory (default: demo-out)")
    p.add_argument("--n", type=int, default=600, help="synthetic images (default: 600)")
    p.add_argument("--epochs", type=int, default=12, help="training epochs (default: 12)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    _add_master(p)
    p.set_defaults(func=cmd_demo)
    return ap


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cxrzoo`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        log.error("%s", e)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
