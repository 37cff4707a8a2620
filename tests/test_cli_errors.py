"""Bad input at the CLI: one line naming the problem and the fix, exit status 2, no traceback.

Each kind of bad input (a wrong path, an unreadable file, a bad option value, a model directory of
another engine, one of another version) runs the console script, ``python -m cxrzoo.cli``, in a
subprocess.  What counts as *one line*: of the non-empty stderr lines, those other than cxrzoo's own
progress lines -- ``log: <path>`` (where the libraries' output goes) and ``Spark <version> on
<master>`` (a session started) -- must be exactly one, the error itself: ``error: ...`` (a command
that failed) or ``cxrzoo <command>: error: ...`` (the argument parser).  It must name the option
and the path or value given, and carry the fix (what to give, run or install instead).  "Traceback"
must appear nowhere on stdout or stderr; ``--verbose`` shows it (:func:`test_verbose_shows_the_traceback`).

Every case but one fails before Spark starts, so each runs in about a second;
:func:`test_spark_path_not_found_is_one_line` is the one that lets Spark find a path missing.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# refused before Spark starts, the same on Spark 3.5 and 4: one profile runs these; the two tests of what Spark
# reports (its errors differ between versions) run in both
pytestmark = pytest.mark.profile("spark4")
BOTH = pytest.mark.profile("spark35", "spark4")

BLOCKERS = Path(__file__).with_name("blockers")  # on PYTHONPATH: `import bigdl` fails (test_engine_neutral.py)
PROGRESS = re.compile(r"^(log: \S.*|Spark \S+ on \S+)$")


def _env(tmp: Path, block_bigdl: bool = False, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYSPARK_SUBMIT_ARGS", "CXRZOO_MASTER")}
    env["CXRZOO_LOG_DIR"] = str(tmp / "logs")
    if block_bigdl:
        env["PYTHONPATH"] = os.pathsep.join([str(BLOCKERS)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                              if p])
    env.update(extra)
    return env


def _cli(tmp: Path, *argv: str, block_bigdl: bool = False, timeout: float = 120, **env: str
         ) -> subprocess.CompletedProcess:
    """Run ``cxrzoo ARGV`` in ``tmp``."""
    return subprocess.run([sys.executable, "-m", "cxrzoo.cli", *argv], cwd=tmp, capture_output=True, text=True,
                          timeout=timeout, env=_env(tmp, block_bigdl, **env))


def _error_line(run: subprocess.CompletedProcess) -> str:
    """The one error line of a run that must have refused its input (see the module's docstring)."""
    shown = f"exit {run.returncode}\nstdout:\n{run.stdout[-2000:]}\nstderr:\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stdout + run.stderr, shown
    assert run.returncode == 2, shown
    lines = [ln for ln in run.stderr.splitlines() if ln.strip() and not PROGRESS.match(ln)]
    assert len(lines) == 1, shown
    assert re.match(r"^(error: |cxrzoo( [a-z-]+)?: error: )", lines[0]), shown
    return lines[0]


def _assert_refused(run: subprocess.CompletedProcess, *names: str) -> str:
    """``run`` refused its input with one line holding every one of ``names`` (option, path, fix)."""
    line = _error_line(run)
    for name in names:
        assert name in line, (name, line)
    return line


# --- inputs built by hand: no Spark, no engine ------------------------------------------------------------------

def _weights(input_size: int = 64) -> dict:
    from cxrzoo.models import create_spec
    from cxrzoo.models.spec import param_shapes

    rng = np.random.default_rng(0)
    return {node: {kind: rng.standard_normal(shape).astype(np.float32) for kind, shape in kinds.items()}
            for node, kinds in param_shapes(create_spec("tiny", input_size=input_size)).items()}


def _card(**changes) -> dict:
    from cxrzoo.labels import LABELS

    card = {"format": "cxrzoo-model/1", "model": "tiny", "input_size": 64, "channels": 3, "labels": list(LABELS),
            "engine": "bigdl", "engine_artifact": "net.bigdl", "dropout": 0.2, "image_size": 72,
            "normalization": "caffe", "history": [], "thresholds": {}}
    card.update(changes)
    return {k: v for k, v in card.items() if v is not None}


def _model_dir(root: Path, name: str = "model", **card_changes) -> Path:
    """A model directory as ``CXRModel.save`` lays it out (card, engine-neutral weights, metadata/), the card
    changed by ``card_changes`` (a value None drops the key)."""
    from cxrzoo.models.weights import save_weights

    d = root / name
    (d / "metadata").mkdir(parents=True)
    save_weights(d / "weights.safetensors", _weights())
    (d / "model.json").write_text(json.dumps(_card(**card_changes)))
    meta = {"class": "cxrzoo.train.estimator.CXRModel", "timestamp": 0, "sparkVersion": "3.5.0",
            "uid": "CXRModel_errors", "paramMap": {"modelName": "tiny", "engine": "bigdl"}, "defaultParamMap": {},
            "inputSize": 64}
    (d / "metadata" / "part-00000").write_text(json.dumps(meta) + "\n")
    return d


def _ir_dir(root: Path, name: str = "ir", **card_changes) -> Path:
    """An exported IR's directory: its card (changed by ``card_changes``) beside an (empty) model.xml."""
    d = root / name
    d.mkdir()
    (d / "model.xml").write_text("<net/>\n")
    card = {"format": "cxrzoo-openvino/1", "model": "tiny", "labels": ["Atelectasis"], "precision": "fp32",
            "input": {"name": "image", "dtype": "uint8", "shape": [-1, 72, 72], "layout": "NHW", "color": "gray"},
            "thresholds": {}}
    card.update(card_changes)
    (d / "cxrzoo.json").write_text(json.dumps({k: v for k, v in card.items() if v is not None}))
    return d


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    """A working directory with a Parquet file, a labels CSV, an image directory and a model directory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"image_index": ["a.png"]}), tmp_path / "ok.parquet")
    (tmp_path / "labels.csv").write_text("Image Index,Finding Labels,Patient ID\na.png,No Finding,1\n")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    _model_dir(tmp_path)
    return tmp_path


# --- the five kinds ------------------------------------------------------------------------------------------------

WRONG_PATHS = {
    "train --data": (["train", "--data", "/nonexistent/train.parquet", "--out", "m"],
                     ["--data /nonexistent/train.parquet", "no such file or directory", "cxrzoo ingest --out"]),
    "train --validation": (["train", "--data", "ok.parquet", "--validation", "val.parquet", "--out", "m"],
                           ["--validation val.parquet", "no such", "cxrzoo ingest --out"]),
    "train --pretrained": (["train", "--data", "ok.parquet", "--pretrained", "resnet50.pth", "--out", "m"],
                           ["--pretrained resnet50.pth", "no such", ".pth or .safetensors"]),
    "ingest --images": (["ingest", "--images", "nope", "--labels", "labels.csv", "--out", "o.parquet"],
                        ["--images nope", "no such directory", "PNG/JPEG/DICOM"]),
    "ingest --labels": (["ingest", "--images", "images", "--labels", "Data_Entry_2017.csv", "--out", "o.parquet"],
                        ["--labels Data_Entry_2017.csv", "no such", "give the labels CSV"]),
    "evaluate --model": (["evaluate", "--model", "nosuchmodel", "--data", "ok.parquet"],
                         ["--model nosuchmodel", "no such directory", "cxrzoo train --out"]),
    "export --calibration": (["export", "--model", "model", "--out", "ir", "--precision", "int8", "--calibration",
                              "calib.parquet"], ["--calibration calib.parquet", "no such", "cxrzoo ingest --out"]),
    "score --model": (["score", "--model", "nosuchir", "--data", "ok.parquet", "--out", "s.parquet"],
                      ["--model nosuchir", "no such directory", "cxrzoo export --out"]),
    "report --boxes": (["report", "--model", "model", "--data", "ok.parquet", "--boxes", "BBox_List_2017.csv",
                        "--out", "r.html"], ["--boxes BBox_List_2017.csv", "no such", "BBox_List_2017.csv"]),
}


@pytest.mark.parametrize("case", list(WRONG_PATHS))
def test_wrong_path(work: Path, case: str) -> None:
    """A path that does not exist is refused before Spark starts, naming the option, the path and what to give."""
    argv, names = WRONG_PATHS[case]
    run = _cli(work, *argv, "--master", "local[1]") if argv[0] != "export" else _cli(work, *argv)
    _assert_refused(run, *names)
    assert "Spark " not in run.stderr, run.stderr  # refused before a session started


def _unreadable(work: Path) -> None:
    (work / "labels_dir").mkdir()
    (work / "binary.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (work / "empty.parquet").mkdir()
    (work / "empty.parquet" / "_SUCCESS").write_text("")
    (work / "ckpt_dir").mkdir()
    _model_dir(work, "broken_card")
    (work / "broken_card" / "model.json").write_text("{\n")
    _model_dir(work, "binary_card")
    (work / "binary_card" / "model.json").write_bytes(b"\xff\xfe\x00{")
    _model_dir(work, "broken_weights")
    (work / "broken_weights" / "weights.safetensors").write_bytes(b"\xff" * 100)  # header: 2**64 - 1 bytes


UNREADABLE = {
    "csv is a directory": (["ingest", "--images", "images", "--labels", "labels_dir", "--out", "o.parquet"],
                           ["--labels labels_dir", "is a directory", "give the labels CSV"]),
    "csv is binary": (["ingest", "--images", "images", "--labels", "binary.csv", "--out", "o.parquet"],
                      ["--labels binary.csv", "not a UTF-8 text file", "give the labels CSV"]),
    "parquet is empty": (["train", "--data", "empty.parquet", "--out", "m"],
                         ["--data empty.parquet", "holds no Parquet files", "cxrzoo ingest --out"]),
    "parquet is images": (["train", "--data", "images", "--out", "m"],
                          ["--data images", "a.png in it is not a Parquet file", "cxrzoo ingest --out"]),
    "parquet is a csv": (["evaluate", "--model", "model", "--data", "labels.csv"],
                         ["--data labels.csv", "not a Parquet file", "cxrzoo ingest --out"]),
    "checkpoint is a directory": (["train", "--data", "ok.parquet", "--pretrained", "ckpt_dir", "--out", "m"],
                                  ["--pretrained ckpt_dir", "is a directory", ".pth or .safetensors"]),
    "model.json is not JSON": (["export", "--model", "broken_card", "--out", "ir"],
                               ["--model broken_card", "model.json is not valid JSON", "line 2 column 1", "retrain"]),
    "model.json is binary": (["evaluate", "--model", "binary_card", "--data", "ok.parquet"],
                             ["--model binary_card", "model.json is not a JSON text file", "retrain"]),
    "weights are corrupt": (["export", "--model", "broken_weights", "--out", "ir"],
                            ["broken_weights/weights.safetensors", "damaged", "retrain"]),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_unreadable_file(work: Path, case: str) -> None:
    """A directory where a file belongs, binary bytes where text or Parquet belongs, an empty Parquet directory,
    a damaged card or weights file: one line naming the file and the fix (the tests run as root: chmod would
    not make a file unreadable)."""
    _unreadable(work)
    argv, names = UNREADABLE[case]
    _assert_refused(_cli(work, *argv, *(["--master", "local[1]"] if argv[0] != "export" else [])), *names)


BAD_VALUES = {
    "--lr abc": (["--lr", "abc"], ["cxrzoo train: error: argument --lr: invalid float value: 'abc'",
                                   "(see cxrzoo train --help)"]),
    "--epochs 0": (["--epochs", "0"], ["argument --epochs", "epochs must be a positive integer, got 0", "--help"]),
    "--batch-size 0": (["--batch-size", "0"], ["argument --batch-size", "positive integer", "--help"]),
    "--crop 0": (["--crop", "0"], ["argument --crop", "positive integer", "--help"]),
    "--labels NotALabel": (["--labels", "NotALabel"], ["argument --labels", "unknown label 'NotALabel'",
                                                       "the harmonised labels are Atelectasis"]),
    "--master nonsense://x": (["--master", "nonsense://x"], ["argument --master", "'nonsense://x'",
                                                             "use local, local[N]"]),
    "--model nosuchmodel": (["--model", "nosuchmodel"], ["argument --model", "invalid choice: 'nosuchmodel'",
                                                         "'tiny'"]),
    "--engine nosuch": (["--engine", "nosuch"], ["argument --engine", "invalid choice: 'nosuch'", "'torch'"]),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_option_value(work: Path, case: str) -> None:
    """A value the option cannot take: one line (not the whole usage) naming the option and value, and
    pointing at the help; refused by the parser, before anything starts."""
    extra, names = BAD_VALUES[case]
    _assert_refused(_cli(work, "train", "--data", "ok.parquet", "--out", "m", *extra), *names)


def test_bad_master_from_the_environment(work: Path) -> None:
    """``$CXRZOO_MASTER`` is checked like ``--master`` (Spark's own failure is a Java gateway error)."""
    run = _cli(work, "train", "--data", "ok.parquet", "--out", "m", CXRZOO_MASTER="nonsense://x")
    _assert_refused(run, "$CXRZOO_MASTER", "'nonsense://x'", "use local, local[N]", "--master")


def test_model_dir_of_another_engine(work: Path) -> None:
    """A directory of the other kind of engine -- an OpenVINO IR where a trained model belongs and the reverse
    -- and an engine that is not installed here: one line saying what it is and what to do."""
    _ir_dir(work)
    _assert_refused(_cli(work, "evaluate", "--model", "ir", "--data", "ok.parquet", "--master", "local[1]"),
                    "--model ir", "is an exported OpenVINO IR", "the directory it was exported from")
    _assert_refused(_cli(work, "score", "--model", "model", "--data", "ok.parquet", "--out", "s.parquet",
                         "--master", "local[1]"),
                    "--model model", "written by `cxrzoo train`", "cxrzoo export --model model --out IR_DIR")
    run = _cli(work, "train", "--engine", "bigdl", "--data", "ok.parquet", "--out", "m", "--master", "local[1]",
               block_bigdl=True)
    _assert_refused(run, "--engine bigdl", "not available here", "install it", "--engine torch")
    assert "Spark " not in run.stderr, run.stderr  # refused before the session started without BigDL's jars


def test_model_dir_of_an_engine_this_version_does_not_know(work: Path, monkeypatch) -> None:
    """``CXRModel.load`` of a directory whose card names an engine this cxrzoo does not know: a ModelDirError
    naming the directory and the engine-neutral way out, not "unknown engine" without a path."""
    from cxrzoo.models.modeldir import ModelDirError
    from cxrzoo.train import CXRModel
    from cxrzoo.train.persist import CXRModelReader

    d = _model_dir(work, "jax_model", engine="jax", engine_artifact="net.jax")
    monkeypatch.setattr(CXRModelReader, "sc", property(lambda self: None))  # a local directory needs no Spark
    with pytest.raises(ModelDirError, match=r"jax_model was trained with the 'jax' engine, which this version of "
                                            r"cxrzoo does not know .*`cxrzoo evaluate` falls back to OpenVINO"):
        CXRModel.read().load(str(d))


def test_unavailable_engine_is_bad_input(work: Path, monkeypatch, capsys) -> None:
    """EngineUnavailableError (an ImportError: its message names the fix) is exit status 2 and its message,
    as ValueError is, not status 1 with the type's name."""
    from cxrzoo import cli
    from cxrzoo.engine.base import EngineUnavailableError

    def unavailable(args) -> None:
        raise EngineUnavailableError("model was trained with the 'bigdl' engine, which is not available here; "
                                     "`cxrzoo export` needs no engine")

    monkeypatch.setattr(cli, "cmd_export", unavailable)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--log-file", str(work / "export.log"), "export", "--model", str(work / "model"), "--out", "ir"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error: model was trained with the 'bigdl' engine" in err and "EngineUnavailableError" not in err, err


def _older(work: Path) -> None:
    _model_dir(work, "no_format", format=None)
    _model_dir(work, "format_0", format="cxrzoo-model/0")
    _model_dir(work, "no_labels", labels=None)
    npz = work / "npz_model"
    npz.mkdir()
    (npz / "model.json").write_text(json.dumps({"model": "tiny", "input_size": 64}))
    np.savez(npz / "weights.npz", w=np.zeros(1))
    _ir_dir(work, "ir_0", format="cxrzoo-openvino/0")
    _ir_dir(work, "ir_no_input", input=None)


OLDER = {
    "no format": (["export", "--model", "no_format", "--out", "ir"],
                  ["--model no_format", "another version of cxrzoo", "format none", "reads cxrzoo-model/1",
                   "retrain"]),
    "format 0": (["evaluate", "--model", "format_0", "--data", "ok.parquet", "--master", "local[1]"],
                 ["--model format_0", "another version", "format cxrzoo-model/0", "retrain"]),
    "no labels": (["export", "--model", "no_labels", "--out", "ir"],
                  ["--model no_labels", "model.json lacks labels", "retrain"]),
    "weights.npz": (["report", "--model", "npz_model", "--data", "ok.parquet", "--out", "r.html",
                     "--master", "local[1]"], ["--model npz_model", "before 0.2", "retrain"]),
    "ir format 0": (["predict", "--model", "ir_0", "x.png"],
                    ["--model ir_0", "another version", "format cxrzoo-openvino/0", "re-export"]),
    "ir without input": (["predict", "--model", "ir_no_input", "x.png"],
                         ["--model ir_no_input", "lacks the labels or the input shape", "re-export"]),
}


@pytest.mark.parametrize("case", list(OLDER))
def test_model_dir_of_another_version(work: Path, case: str) -> None:
    """A card of another format, or without a key this version needs (no KeyError), and the layout before 0.2:
    one line naming the directory, the formats and the fix."""
    _older(work)
    argv, names = OLDER[case]
    _assert_refused(_cli(work, *argv), *names)


# --- where the traceback goes, and what Spark reports ----------------------------------------------------------

def test_verbose_shows_the_traceback(work: Path) -> None:
    """Without ``--verbose`` the traceback of a refused input goes only to the log file; with it, to the terminal
    too, above the same one error line."""
    _unreadable(work)
    quiet = _cli(work, "--log-file", "quiet.log", "export", "--model", "broken_card", "--out", "ir")
    line = _assert_refused(quiet, "model.json is not valid JSON")
    assert "Traceback" in (work / "quiet.log").read_text()
    loud = _cli(work, "--verbose", "--log-file", "loud.log", "export", "--model", "broken_card", "--out", "ir")
    assert loud.returncode == 2, loud.stderr[-3000:]
    assert "Traceback (most recent call last)" in loud.stderr, loud.stderr[-3000:]
    assert loud.stderr.rstrip().splitlines()[-1] == line, loud.stderr[-3000:]


@BOTH
def test_spark_input_error_names_the_option() -> None:
    """Spark's PATH_NOT_FOUND (a path left to Spark: a glob, an hdfs:// URI) and UNABLE_TO_INFER_SCHEMA become one
    line naming the option."""
    from argparse import Namespace

    from pyspark.errors import AnalysisException

    from cxrzoo.cli_inputs import spark_input_error

    args = Namespace(command="train", data="hdfs://nn/data/train.parquet", validation=None, pretrained=None)
    missing = AnalysisException(message="[PATH_NOT_FOUND] Path does not exist: hdfs://nn/data/train.parquet.")
    assert spark_input_error(missing, args).startswith(
        "--data hdfs://nn/data/train.parquet: no such file or directory (Spark: hdfs://nn/data/train.parquet")
    empty = AnalysisException(message="[UNABLE_TO_INFER_SCHEMA] Unable to infer schema for Parquet.")
    assert spark_input_error(empty, args) == ("--data hdfs://nn/data/train.parquet: Spark found no Parquet data to "
                                              "read; give the Parquet that `cxrzoo ingest --out` wrote")
    assert spark_input_error(ValueError("[PATH_NOT_FOUND] elsewhere"), args) is not None  # by its text
    assert spark_input_error(RuntimeError("something else"), args) is None


@BOTH
def test_spark_path_not_found_is_one_line(work: Path) -> None:
    """A glob is left to Spark; that it matches nothing is one line naming the option, exit status 2 (this test
    starts Spark: about 10 s)."""
    run = _cli(work, "train", "--data", "missing/*.parquet", "--out", "m", "--master", "local[1]",
               "--driver-memory", "1g", "--no-progress")
    _assert_refused(run, "--data missing/*.parquet", "no such file or directory", "check the path")
