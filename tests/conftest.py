"""Shared fixtures: one SparkSession (local[2]; BigDL MKL-BLAS where BigDL is installed), one small synthetic
dataset, one trained model (by the profile's default engine)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the fuzzer's mutator is shared with the tests
SHARED_DATA = Path(os.environ.get("CXRZOO_SHARED_DATA", ROOT.parent / "shared" / "data"))
NIH_CSV = SHARED_DATA / "Data_Entry_2017_v2020.csv.gz"
NIH_SAMPLE = SHARED_DATA / "nih-sample"

def _profile() -> str:
    import pyspark

    return "spark4" if int(pyspark.__version__.split(".")[0]) >= 4 else "spark35"


# the install profile this run is in: "spark35" (.venv, the default) or "spark4" (.venv-spark4)
PROFILE = _profile()
SLOW_LINE = 60.0  # seconds: a fast-tier test over this is named at the end of the run (information, not a failure)
_started = time.monotonic()
_seconds: dict[str, float] = {}  # nodeid -> setup + call + teardown
_slow_tier: set[str] = set()
_elsewhere: list[str] = []


def pytest_collection_modifyitems(config, items):
    """Deselect the tests marked ``profile(name)`` for the other install profile: what they check is the same in
    both, so they run once, in the profile that fits them (``make test`` runs both profiles)."""
    keep = []
    for item in items:
        marker = item.get_closest_marker("profile")
        if marker is not None:
            unknown = set(marker.args) - {"spark35", "spark4"}
            if unknown or not marker.args:
                raise pytest.UsageError(f"{item.nodeid}: profile() takes 'spark35' and/or 'spark4', not {marker.args}")
            if PROFILE not in marker.args:
                _elsewhere.append(item.nodeid)
                continue
        if item.get_closest_marker("slow") is not None:
            _slow_tier.add(item.nodeid)
        keep.append(item)
    if _elsewhere:
        config.hook.pytest_deselected(items=[i for i in items if i.nodeid in set(_elsewhere)])
        items[:] = keep


def pytest_runtest_logreport(report):
    _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration


@pytest.hookimpl(trylast=True)  # after pytest's own durations list
def pytest_terminal_summary(terminalreporter):
    """The run's cost, in the terminal: the profile's wall time, the tests left to the other profile, and every
    fast-tier test that took over a minute (setup included: a shared fixture's cost lands on its first user)."""
    tr = terminalreporter
    tr.section("cost")
    over = sorted(((s, n) for n, s in _seconds.items() if s > SLOW_LINE and n not in _slow_tier), reverse=True)
    if over:
        tr.write_line(f"fast-tier tests over {SLOW_LINE:.0f} s: " + "; ".join(f"{n} {s:.0f} s" for s, n in over))
    else:
        tr.write_line(f"fast-tier tests over {SLOW_LINE:.0f} s: none")
    files: dict[str, float] = {}
    for nodeid, seconds in _seconds.items():
        files[nodeid.split("::")[0]] = files.get(nodeid.split("::")[0], 0.0) + seconds
    top = sorted(files.items(), key=lambda kv: -kv[1])[:10]
    tr.write_line("slowest files: " + "; ".join(f"{name.removeprefix('tests/')} {s:.0f} s" for name, s in top))
    if _elsewhere:
        other = "spark4" if PROFILE == "spark35" else "spark35"
        tr.write_line(f"{len(_elsewhere)} tests run only in the {other} profile (deselected here)")
    tr.write_line(f"profile {PROFILE}: wall time {time.monotonic() - _started:.0f} s "
                  f"({(time.monotonic() - _started) / 60:.1f} min)")


def _engine() -> str:
    from cxrzoo.engine.base import resolve_engine

    return resolve_engine("auto")


# the engine of this install profile: BigDL in the default (Spark 3.5), torch in .venv-spark4 (Spark 4)
ENGINE = _engine()
needs_bigdl = pytest.mark.skipif(ENGINE != "bigdl", reason="BigDL is not installed in this profile (Spark 4: "
                                 "its jar is Scala 2.12); the torch engine's tests cover this profile")
needs_nih = pytest.mark.skipif(not (NIH_CSV.exists() and NIH_SAMPLE.is_dir()),
                               reason=f"real NIH data not found at {SHARED_DATA}")


@pytest.fixture(scope="session")
def spark():
    from cxrzoo.session import get_spark

    # BigDL's MKL-BLAS engine type: it honours frozen layers (freezeEpochs) and computes like the NumPy and
    # OpenVINO references to 1e-5; MKL-DNN, the default for sessions cxrzoo starts, runs in the
    # subprocess tests (test_mkldnn.py, test_attach.py, test_engine_neutral.py)
    if ENGINE != "bigdl":
        session = get_spark(master="local[2]", driver_memory="6g", app_name="cxrzoo-tests")
    else:
        session = get_spark(master="local[2]", driver_memory="6g", app_name="cxrzoo-tests", engine="bigdl",
                            engine_type="mklblas")
    yield session
    session.stop()  # the JVM and the Python workers end here, not in the interpreter's own teardown


@pytest.fixture(scope="session")
def synth_ds(tmp_path_factory):
    """60 synthetic 128² radiographs with NIH-format labels and splits."""
    from cxrzoo.synth import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synth"), n=60, size=128, seed=3, workers=1)


@pytest.fixture(scope="session")
def ingested(spark, synth_ds, tmp_path_factory):
    """The synthetic set ingested at 72² (the tiny model then sees 64² crops), as Parquet."""
    from cxrzoo import jobs

    out = str(tmp_path_factory.mktemp("ingest") / "all.parquet")
    jobs.ingest(spark, str(synth_ds.images), str(synth_ds.labels_csv), out, size=72)
    return out


SHARED_RECIPE = dict(crop=64, modelName="tiny", epochs=3, batchSize=8, learningRate=3e-3, seed=2)


def _train_shared(spark, ingested: str, root: Path, engine: str) -> tuple[str, Path]:
    """The shared recipe: ``tiny`` for 3 epochs on 64² crops of the 72² set, saved by the CLI's job, with
    TensorBoard summaries (one run per engine serves every test that only reads a trained model)."""
    from cxrzoo import jobs

    out, summary = str(root / "model"), root / "tb"
    jobs.train(spark, ingested, out, engine=engine, summaryDir=str(summary), **SHARED_RECIPE)
    return out, summary


@pytest.fixture(scope="session")
def trained_model(spark, ingested, tmp_path_factory) -> tuple[str, Path]:
    """The profile's engine's shared model (BigDL in .venv, torch in .venv-spark4) and its summary directory."""
    return _train_shared(spark, ingested, tmp_path_factory.mktemp("shared-model"), ENGINE)


@pytest.fixture(scope="session")
def model_dir(trained_model) -> str:
    """The shared model's directory: read it, never change it (copy it first)."""
    return trained_model[0]


@pytest.fixture(scope="session")
def torch_model(spark, ingested, trained_model, tmp_path_factory) -> tuple[Path, Path]:
    """A model trained by the torch engine on the shared recipe, and its summaries: the shared model where torch is
    the profile's engine, a second run where it is BigDL."""
    pytest.importorskip("torch")
    if ENGINE == "torch":
        path, summary = trained_model
    else:
        path, summary = _train_shared(spark, ingested, tmp_path_factory.mktemp("torch-model"), "torch")
    return Path(path), summary


@pytest.fixture(scope="session")
def exported_ir(model_dir, tmp_path_factory) -> Path:
    """The shared model exported once to an FP32 IR (with heatmaps): read it, never change it (copy it first)."""
    from cxrzoo import jobs

    return jobs.export(model_dir, str(tmp_path_factory.mktemp("shared-ir") / "ir"))


@pytest.fixture(scope="session")
def torch_ir(torch_model, exported_ir, tmp_path_factory) -> Path:
    """The torch model's FP32 IR: the shared IR where torch is the profile's engine."""
    from cxrzoo import jobs

    if ENGINE == "torch":
        return exported_ir
    return jobs.export(str(torch_model[0]), str(tmp_path_factory.mktemp("torch-ir") / "ir"))


@pytest.fixture(scope="session")
def val_splits(spark, ingested, tmp_path_factory) -> dict[str, str]:
    """The shared 60-image set split by patient into train (≈ 70 %) and validation, as Parquet."""
    from cxrzoo.io import write_parquet_atomic
    from cxrzoo.splits import split_by_patient

    root = tmp_path_factory.mktemp("val-splits")
    train, val, _ = split_by_patient(spark.read.parquet(ingested), fractions=(0.7, 0.3, 0.0), seed=1)
    out = {}
    for name, df in (("train", train), ("val", val)):
        out[name] = str(root / f"{name}.parquet")
        write_parquet_atomic(df, out[name])
    return out


VALIDATED_RECIPE = dict(crop=64, modelName="tiny", epochs=4, batchSize=8, learningRate=2e-2, seed=4)


@pytest.fixture(scope="session")
def validated_model(spark, val_splits, tmp_path_factory):
    """A model trained with validation data (the best epoch kept, operating thresholds chosen), with its directory
    and its FP32 IR: ``(model, model_dir, ir_dir)``.  Read them, never change them."""
    from cxrzoo import jobs

    root = tmp_path_factory.mktemp("validated")
    model = jobs.train(spark, val_splits["train"], str(root / "model"), validation=val_splits["val"],
                       **VALIDATED_RECIPE)
    ir = jobs.export(str(root / "model"), str(root / "ir"))
    return model, root / "model", ir


@pytest.fixture(scope="session")
def cluster_data(spark, tmp_path_factory) -> str:
    """200 synthetic radiographs ingested at 72²: four labels with 12-59 positives (the cluster tests' set)."""
    from cxrzoo import jobs
    from cxrzoo.synth import write_dataset

    root = tmp_path_factory.mktemp("cluster-data")
    ds = write_dataset(root / "synth", n=200, size=128, seed=3, workers=2)
    out = str(root / "all.parquet")
    jobs.ingest(spark, str(ds.images), str(ds.labels_csv), out, size=72)
    return out


CLUSTER_RECIPE = dict(crop=64, modelName="tiny", epochs=10, batchSize=8, learningRate=3e-3, seed=5,
                      lrSchedule="cosine")


@pytest.fixture(scope="session")
def cluster_reference(spark, cluster_data, tmp_path_factory):
    """``reference(engine)``: the cluster tests' recipe trained in local mode on :func:`cluster_data`, once per engine
    (the quality bar of test_cluster's and test_deploy's cluster runs)."""
    from cxrzoo import jobs

    done: dict[str, Path] = {}

    def reference(engine: str) -> Path:
        if engine not in done:
            out = tmp_path_factory.mktemp(f"cluster-reference-{engine}") / "model"
            jobs.train(spark, cluster_data, str(out), engine=engine, **CLUSTER_RECIPE)
            done[engine] = out
        return done[engine]

    return reference
