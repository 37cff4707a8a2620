"""Every backbone trains on BigDL's MKL-DNN engine (a JVM-wide setting, so in a JVM of its own)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_bigdl

pytestmark = needs_bigdl

from cxrzoo.engine.base import get_engine

# each group trains in one JVM of its own (BigDL keeps replicas of every model it trained): the fast tier's group is
# tiny on the plain and on the masked loss; every other backbone is a slow-tier group of its own
GROUPS = [pytest.param(("tiny", "tiny-masked"), id="tiny+tiny-masked")] + [
    pytest.param((name,), id=name, marks=pytest.mark.slow)
    for name in ("resnet50", "densenet121", "mobilenet_v2", "vgg16", "inception_v3")]


@pytest.mark.parametrize("names", GROUPS)
def test_backbone_trains_on_mkldnn(names):
    """Three epochs of each named model in one JVM of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYSPARK_SUBMIT_ARGS")}  # a fresh JVM
    script = Path(__file__).with_name("mkldnn_train.py")
    run = subprocess.run([sys.executable, str(script), *names], capture_output=True, text=True, env=env,
                         timeout=900, cwd=Path(__file__).parents[1])
    assert run.returncode == 0, run.stderr[-3000:]
    for name in names:
        lines = [ln.split() for ln in run.stdout.splitlines() if ln.split() and ln.split()[0] == name]
        assert len(lines) == 1, (name, run.stdout[-2000:])
        losses = [float(v) for v in lines[0][1:4]]
        helpers, drift = int(lines[0][4]), float(lines[0][5])
        assert (helpers > 0) == (name == "mobilenet_v2") and drift == 0.0, (name, helpers, drift)
        # full-batch steps on a fixed objective: the first step lowers the loss and training ends below its start.
        # (Adam's early steps are near sign-descent of size lr on every weight, so a later step may overshoot a
        # minimum along some direction; CI saw resnet50 0.766 -> 0.6624 -> 0.6625.)
        assert len(losses) == 3 and np.isfinite(losses).all(), (name, losses)
        assert losses[1] < losses[0] and losses[2] < losses[0], (name, losses)


def test_asking_for_the_engine_the_jvm_does_not_run_is_a_clear_error(spark):
    from cxrzoo.models import create_spec
    from cxrzoo.sparkconf import SparkConfigError

    assert spark.sparkContext._jvm.System.getProperty("bigdl.engineType") == "mklblas"  # the test session's
    with pytest.raises(SparkConfigError, match="-Dbigdl.engineType=mkldnn") as e:
        get_engine("bigdl", engine_type="mkldnn").build(create_spec("tiny", input_size=32))
    assert "bigdlEngineType='mklblas'" in str(e.value) and "spark.driver.extraJavaOptions" in str(e.value)
    assert get_engine("bigdl").engine_type == "mklblas"  # not asked for: the running JVM's


def test_freezing_on_mkldnn_is_refused_with_the_way_on():
    from cxrzoo.engine.bigdl import BigDLEngine

    with pytest.raises(ValueError, match="freezeEpochs.*bigdlEngineType='mklblas'.*trains frozen layers"):
        BigDLEngine(engine_type="mkldnn").freeze(object(), ["conv1"])
