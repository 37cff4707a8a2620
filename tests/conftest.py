"""Shared fixtures: one SparkSession (local[2]; BigDL MKL-BLAS where BigDL is installed), one small synthetic
dataset, one trained model (by the profile's default engine)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the fuzzer's mutator is shared with the tests
SHARED_DATA = Path(os.environ.get("CXRZOO_SHARED_DATA", ROOT.parent / "shared" / "data"))
NIH_CSV = SHARED_DATA / "Data_Entry_2017_v2020.csv.gz"
NIH_SAMPLE = SHARED_DATA / "nih-sample"

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
        return get_spark(master="local[2]", driver_memory="6g", app_name="cxrzoo-tests")
    return get_spark(master="local[2]", driver_memory="6g", app_name="cxrzoo-tests", engine="bigdl",
                     engine_type="mklblas")


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


@pytest.fixture(scope="session")
def model_dir(spark, ingested, tmp_path_factory):
    """A tiny model trained (BigDL) for 3 epochs on 64² crops of the shared 72² dataset, saved by the CLI's job."""
    from cxrzoo import jobs

    out = str(tmp_path_factory.mktemp("prec") / "model")
    jobs.train(spark, ingested, out, crop=64, modelName="tiny", epochs=3, batchSize=8, learningRate=3e-3, seed=2)
    return out


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
