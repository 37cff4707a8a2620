"""The engine boundary: everything but training runs with BigDL unimportable; BigDL loads only when asked for."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from pathlib import Path

import pytest
from conftest import needs_bigdl

from cxrzoo import jobs

# blocking BigDL proves something only where it is installed: the default profile (in .venv-spark4 every test
# already runs without it)
pytestmark = pytest.mark.profile("spark35")

BLOCKERS = Path(__file__).with_name("blockers")
NO_BIGDL_SCRIPT = r'''
import json, sys
import cxrzoo
from cxrzoo import read_nih, CXRPreprocessor, evaluate_auc, export_openvino, OpenVINOScorer  # noqa: F401
from cxrzoo.cli import main
try:
    import bigdl.dllib  # noqa: F401
    raise SystemExit("the blocker did not block BigDL")
except ImportError:
    pass
work, model = sys.argv[1], sys.argv[2]
main(["-q", "synth", "--out", f"{work}/ds", "--n", "24", "--size", "96", "--seed", "5", "--workers", "1"])
main(["-q", "ingest", "--images", f"{work}/ds/images", "--labels", f"{work}/ds/Data_Entry_2017.csv",
      "--out", f"{work}/ds.parquet", "--size", "72"])
main(["-q", "evaluate", "--model", model, "--data", sys.argv[3], "--bootstrap", "0", "--json"])
main(["-q", "export", "--model", model, "--out", f"{work}/ir"])
main(["-q", "score", "--model", f"{work}/ir", "--data", f"{work}/ds.parquet", "--out", f"{work}/scores.parquet"])
assert not [m for m in sys.modules if m == "bigdl" or m.startswith("bigdl.")], "BigDL was imported"
'''


def _without_bigdl_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYSPARK_SUBMIT_ARGS")}
    env["PYTHONPATH"] = os.pathsep.join([str(BLOCKERS)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def test_every_stage_but_training_runs_with_bigdl_unimportable(spark, ingested, model_dir, tmp_path):
    """synth, ingest, evaluate (forward pass on OpenVINO from the engine-neutral weights), export and score
    in a process (and Spark workers) where ``import bigdl`` fails; the AUCs equal BigDL's own evaluation."""
    with_bigdl = jobs.evaluate(spark, model_dir, ingested, bootstrap=0)
    run = subprocess.run([sys.executable, "-c", NO_BIGDL_SCRIPT, str(tmp_path), model_dir, ingested],
                         capture_output=True, text=True, timeout=600, env=_without_bigdl_env())
    assert run.returncode == 0, run.stderr[-3000:]
    without = json.loads(run.stdout.strip().splitlines()[-1])
    assert without["n"] == with_bigdl.n == 60
    for name, auc in with_bigdl.auc.items():
        assert (auc is None) == (without["auc"][name] is None), name
        if auc is not None:
            assert abs(without["auc"][name] - auc) < 2e-3, (name, without["auc"][name], auc)
    assert spark.read.parquet(str(tmp_path / "scores.parquet")).count() == 24


def test_training_without_bigdl_says_so(tmp_path):
    code = ("from cxrzoo.engine.base import get_engine\n"
            "try:\n    get_engine('bigdl')\nexcept ImportError as e:\n    print('refused:', e)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=_without_bigdl_env())
    assert run.returncode == 0, run.stderr[-2000:]
    assert "refused: engine 'bigdl' is not available" in run.stdout


@needs_bigdl
def test_bigdl_is_imported_only_when_training_or_prediction_is_asked_for(synth_ds, tmp_path):
    code = (f"import sys\nfrom cxrzoo import get_spark, jobs\nspark = get_spark('local[2]')\n"
            f"jobs.ingest(spark, {str(synth_ds.images)!r}, {str(synth_ds.labels_csv)!r}, {str(tmp_path / 'd')!r}, "
            f"size=72)\n"
            "assert 'bigdl' not in sys.modules, 'BigDL imported by ingest'\n"
            "from cxrzoo import create_model\nnet = create_model('tiny', input_size=32)\n"
            "assert 'bigdl.dllib' in sys.modules\nprint('ok')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYSPARK_SUBMIT_ARGS")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout == "ok\n", run.stdout[-2000:]  # no BigDL "creating: ..." prints, no JVM lines on stdout
