"""The ``cxrzoo`` argument parser: every command and its options (the README's CLI reference comes from it)."""
from __future__ import annotations

import argparse
import re
from typing import Callable, NoReturn

BENCHMARKS = ("synth", "decode", "augment", "spark", "train", "launch", "score", "recipe", "soak")

# what Spark's SparkContext accepts as a master URL (SparkContext.createTaskScheduler, the cluster managers)
_MASTER = re.compile(r"local(\[(\d+|\*)(\s*,\s*\d+)?\])?|local-cluster\[\s*\d+\s*,\s*\d+\s*,\s*\d+\s*\]|yarn|"
                     r"(spark|k8s|mesos)://\S+")
MASTER_FORMS = "local, local[N], local[*], spark://HOST:PORT, yarn or k8s://https://HOST:PORT"


class CliParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the problem, then where the help is), not the usage."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (see PROG --help)`` on stderr and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, strict: bool) -> Callable[[str], int | float]:
    """An argparse ``type`` reading a ``kind`` (int or float) above 0 (``strict``) or at least 0."""
    what = f"{'a positive' if strict else 'a non-negative'} {'integer' if kind is int else 'number'}"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if not (value > 0 if strict else value >= 0):  # NaN fails both
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = f"{'positive' if strict else 'non_negative'}_{kind.__name__}"
    return parse


positive_int = _number(int, strict=True)
non_negative_int = _number(int, strict=False)


def master_url(text: str) -> str:
    """An argparse ``type``: a Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``, ...)."""
    if not _MASTER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Spark master URL; use {MASTER_FORMS}")
    return text.strip()


def _add_train(sub) -> None:
    from cxrzoo.train.options import training_options

    p = sub.add_parser("train", help="train a model on ingested Parquet (rerun after a kill resumes)",
                       description="Distributed synchronous SGD over the Spark cluster, augmenting "
                       "afresh every epoch. The seed's recipe: --backbone resnet50 --batch-size 1024 --epochs 15 "
                       "--lr 1e-4 --schedule plateau --warmup-epochs 5. CheXNet's: --backbone densenet121 --lr 1e-3 "
                       "--schedule plateau --plateau-monitor val_loss --class-weights chexnet --validation VAL. "
                       "The training options are the Params of cxrzoo.CXREstimator (explainParams() lists the same).")
    p.add_argument("--data", required=True, help="ingested Parquet (training split)")
    p.add_argument("--out", required=True, help="model directory to write (atomically)")
    p.add_argument("--validation", default=None,
                   help="ingested Parquet scored after every epoch (validation AUC and loss); other patients only")
    p.add_argument("--normalization", default=None, choices=["caffe", "imagenet"],
                   help="preprocessing: channel normalization (default: the model's: imagenet for the torchvision "
                        "backbones, caffe - the seed's mean subtraction - for tiny)")
    p.add_argument("--crop", type=positive_int, default=224,
                   help="preprocessing: center/random crop fed to the network (default: 224)")
    add_options(p, training_options())
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _add_master(p)


def shown_default(value) -> str:
    """A default as ``--help`` and :func:`cxrzoo.train.options` documentation show it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "none" if value == "" else str(value)


def _reader(opt) -> Callable[[str], object]:
    """An argparse ``type``: the flag's text read as ``opt.kind``, then checked by the option's converter."""
    def read(text: str):
        try:
            value = text if opt.kind in (str, list) else opt.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {opt.kind.__name__} value: {text!r}") from None
        try:
            return opt.convert(value)
        except (ValueError, TypeError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    read.__name__ = opt.kind.__name__
    return read


def add_options(p: argparse.ArgumentParser, options) -> None:
    """One flag per option row that has one (:class:`cxrzoo.params.Option`): its help is the row's doc and
    default; an option not given stays None, so the Param's own default applies."""
    for opt in options:
        if opt.flag is None:
            continue
        text = f"{opt.doc} (default: {shown_default(opt.default)})"
        if opt.kind is bool:  # a switch to the other value
            p.add_argument(opt.flag, *opt.aliases, dest=opt.dest, action="store_const", const=not opt.default,
                           default=None, help=text)
            continue
        choices = opt.choices() if callable(opt.choices) else opt.choices
        p.add_argument(opt.flag, *opt.aliases, dest=opt.dest, default=None, type=_reader(opt), choices=choices,
                       metavar=None if choices else opt.flag.lstrip("-").upper().replace("-", "_"), help=text)


def option_values(args: argparse.Namespace, options) -> dict:
    """The options given on the command line, by Param name."""
    return {o.name: getattr(args, o.dest) for o in options if o.flag and getattr(args, o.dest, None) is not None}


def _add_engine(p: argparse.ArgumentParser) -> None:
    """``--engine`` (none by default) and each engine's own options, from their rows."""
    from cxrzoo.engine.base import engine_names, engine_option_rows

    p.add_argument("--engine", default=None, choices=engine_names() + ["auto"],
                   help="training engine; auto: bigdl where it is installed, else torch (default: none)")
    add_options(p, engine_option_rows())


def _add_master(p: argparse.ArgumentParser) -> None:
    p.add_argument("--master", type=master_url, default=None,
                   help="Spark master URL (default: $CXRZOO_MASTER or local[*])")
    p.add_argument("--driver-memory", default="10g", help="driver JVM heap (default: 10g)")
    p.add_argument("--executor-cores", type=positive_int, default=None,
                   help="cores per executor on a cluster master (default: what the cluster grants)")
    p.add_argument("--num-executors", type=positive_int, default=None, help="executors on a cluster master")
    p.add_argument("--executor-memory", default=None, help="executor heap on a cluster master (e.g. 2g)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the README's CLI reference and tests)."""
    ap = CliParser(prog="cxrzoo", description="Spark-native chest X-ray model zoo.")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr, only warnings and errors "
                    "(results are still printed)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the JVM's, BigDL's and the libraries' "
                    "output on the terminal instead of the log file")
    ap.add_argument("--log-file", default=None, help="the log file (default: OUT/cxrzoo-demo.log for the demo, "
                    "else a new file under $CXRZOO_LOG_DIR or /tmp/cxrzoo-logs)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic dataset in NIH's, CheXpert's or MIMIC-CXR-JPG's layout")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--format", default="nih", choices=["nih", "chexpert", "mimic"],
                   help="on-disk layout and CSV headers (default: nih)")
    p.add_argument("--n", type=positive_int, default=500, help="number of images (default: 500)")
    p.add_argument("--size", type=positive_int, default=1024, help="image side in pixels (default: 1024)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--workers", type=positive_int, default=None, help="render processes (default: all cores)")

    from cxrzoo.ingest.registry import source_help, source_names

    p = sub.add_parser("ingest", help="decode + label images into Parquet")
    p.add_argument("--images", required=True, help="directory of PNG/JPEG/DICOM files (searched recursively; "
                   "DICOM as .dcm, or any other name with the DICM magic)")
    p.add_argument("--source", default="nih", choices=source_names(),
                   help=f"the layout of the images and label files: {source_help()} (default: nih)")
    p.add_argument("--labels", default=None, help="the source's label file (every source but folder needs one)")
    p.add_argument("--out", required=True, help="output Parquet directory (replaced atomically)")
    p.add_argument("--size", type=positive_int, default=256, help="side of the gray images stored (default: 256)")
    p.add_argument("--split", default=None, help="nih: a split list (train_val_list.txt / test_list.txt); "
                   "mimic: mimic-cxr-2.0.0-split.csv[.gz]")
    p.add_argument("--metadata", default=None, help="mimic: mimic-cxr-2.0.0-metadata.csv[.gz] (required)")
    p.add_argument("--split-name", default=None, choices=["train", "validate", "test"],
                   help="mimic: keep only this split of --split")
    p.add_argument("--policy", default="ones", choices=["ones", "zeros", "ignore"],
                   help="chexpert/mimic: an uncertain (-1) label becomes positive, negative, or masked (default: "
                   "ones)")
    p.add_argument("--unmentioned", default="zeros", choices=["zeros", "ignore"],
                   help="chexpert/mimic: a blank label becomes negative or masked (default: zeros)")
    p.add_argument("--voi", default="auto", choices=["auto", "window", "percentile", "none"],
                   help="DICOM's VOI rule: auto (VOI LUT, else the window, else percentiles), window, percentile "
                   "(0.5-99.5), none (min-max); PNG/JPEG ignore it (default: auto)")
    _add_master(p)

    _add_train(sub)

    p = sub.add_parser("evaluate", help="per-disease AUC of a model on ingested Parquet")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--data", required=True, help="ingested Parquet (e.g. the test split)")
    p.add_argument("--json", action="store_true", help="print only a JSON object on stdout")
    p.add_argument("--bootstrap", type=non_negative_int, default=1000,
                   help="bootstrap resamples for the 95%% confidence intervals; 0 for none (default: 1000)")
    _add_master(p)

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

    p = sub.add_parser("score", help="score images with an exported IR inside Spark")
    p.add_argument("--model", required=True, help="IR directory written by `cxrzoo export`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="directory of PNG/JPEG/DICOM files")
    src.add_argument("--data", help="ingested Parquet")
    p.add_argument("--out", required=True,
                   help="output Parquet: image_index, 14 probabilities, findings, error (replaced atomically)")
    p.add_argument("--batch-size", type=positive_int, default=16,
                   help="images per OpenVINO infer request (default: 16)")
    p.add_argument("--heatmaps", action="store_true",
                   help="add a heatmaps column: per label, the class activation map (float16, shape in the IR card)")
    p.add_argument("--precision-hint", default=None, choices=["f32", "bf16"],
                   help="override the inference precision hint the export recorded")
    p.add_argument("--voi", default="auto", choices=["auto", "window", "percentile", "none"],
                   help="with --images: DICOM's VOI rule, the one the training data was ingested with (default: auto)")
    _add_master(p)

    p = sub.add_parser("predict", help="score image files with an exported IR, without Spark (OpenVINO only)")
    p.add_argument("images", nargs="+", help="PNG/JPEG/DICOM files")
    p.add_argument("--model", default="demo-out/ir", help="IR directory (default: demo-out/ir, from `make demo`)")
    p.add_argument("--heatmaps", default=None, metavar="OUT_DIR",
                   help="write a heatmap overlay PNG per finding (or for the most probable label) to OUT_DIR")

    p = sub.add_parser("spark-conf", help="print the Spark settings cxrzoo needs, as spark-submit flags",
                       description="The settings to start a SparkSession (spark-submit, pyspark, a notebook) "
                       "with, so that `import cxrzoo` can run on it; cxrzoo.spark_conf() returns them as a dict.")
    _add_engine(p)
    p.add_argument("--json", action="store_true", help="print a JSON object instead of flags")
    p.add_argument("--archive", default=None, help="an environment archive from `cxrzoo pack`: executors run its "
                   "Python (spark.archives, spark.pyspark.python) and an engine's jars come from it")
    p.add_argument("--deploy-mode", default="client", choices=["client", "cluster"],
                   help="where the driver runs; with --archive, in cluster mode it runs the archive's Python too")
    p.add_argument("--launcher", action="store_true", help="end with the path of cxrzoo's spark-submit entry "
                   "point, so that `spark-submit $(cxrzoo spark-conf ... --launcher) train ...` runs the CLI")
    _add_master(p)

    p = sub.add_parser("doctor", help="check what every executor runs: its Python, cxrzoo, native kernels, engines",
                       description="Run one task per executor core and report each one's Python, where cxrzoo "
                       "was imported from, whether its native kernels and engines import, and whether the given "
                       "paths exist there; exit status 1 when an executor lacks something.")
    p.add_argument("--path", action="append", default=[], help="a path to look for on the executors (repeatable)")
    p.add_argument("--json", action="store_true", help="print the reports as one JSON line")
    _add_master(p)

    p = sub.add_parser("pack", help="write this environment as a relocatable archive for spark.archives",
                       description="Pack cxrzoo and what it runs on (the native kernels, the engines' packages "
                       "and BigDL's jars) into a .tar.gz that unpacks to a virtual environment anywhere on a node "
                       "with the same OS and base Python; use it with `cxrzoo spark-conf --archive`.")
    p.add_argument("--out", default="cxrzoo-env.tar.gz", help="archive to write (default: cxrzoo-env.tar.gz)")
    from cxrzoo.engine.base import engine_names

    p.add_argument("--engine", action="append", default=None, choices=engine_names(),
                   help="an engine to include (repeatable; default: every one installed here)")
    p.add_argument("--with-spark-jars", action="store_true",
                   help="keep pyspark's own jars (about 300 MB), for nodes without a Spark installation")
    p.add_argument("--compress-level", type=int, default=6, choices=range(1, 10), metavar="1-9",
                   help="gzip level (default: 6)")

    p = sub.add_parser("bench", help="run a benchmark from benchmarks/ (a table, then one JSON line)")
    p.add_argument("which", choices=BENCHMARKS, help="which benchmark (bench_<which>.py)")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to the benchmark script")

    p = sub.add_parser("report", help="one self-contained HTML report of a model on ingested Parquet")
    p.add_argument("--model", required=True, help="model directory (written by `cxrzoo train`)")
    p.add_argument("--data", required=True, help="ingested Parquet with labels (e.g. the test split)")
    p.add_argument("--out", required=True, help="HTML file to write (atomically)")
    p.add_argument("--boxes", default=None, help="NIH-layout BBox_List_2017.csv for the localisation table")
    p.add_argument("--image-side", type=positive_int, default=1024,
                   help="side in pixels of the images the boxes were drawn on (default: 1024, as NIH's)")
    p.add_argument("--bootstrap", type=non_negative_int, default=1000,
                   help="bootstrap resamples for the AUC CIs (default: 1000)")
    _add_master(p)

    p = sub.add_parser("demo", help="the main job: synth → ingest → train → evaluate → export → score")
    p.add_argument("--out", default="demo-out", help="working directory (default: demo-out)")
    p.add_argument("--n", type=positive_int, default=1500, help="synthetic images (default: 1500)")
    p.add_argument("--epochs", type=positive_int, default=10, help="training epochs (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the split and the training (default: 0)")
    from cxrzoo.engine.base import engine_names

    p.add_argument("--engine", default="auto", choices=engine_names() + ["auto"],
                   help="training engine; auto: a reproducible one where installed (default: auto)")
    _add_master(p)
    return ap


