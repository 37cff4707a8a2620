"""cxrzoo inside a SparkSession it did not create: settings it sets, settings it names, the whole job."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ENGINE, needs_bigdl

ATTACH_SCRIPT = r'''
import json, sys
from pyspark.sql import SparkSession
import cxrzoo

images, labels, work, engine = sys.argv[1:5]
builder = SparkSession.builder
for key, value in cxrzoo.spark_conf(master="local[2]", engine=engine).items():
    builder = builder.config(key, value)
builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "false")  # cxrzoo must switch it on
spark = builder.getOrCreate()
print("--- session started", flush=True)  # what the JVM prints as it starts is the starter's, not cxrzoo's
assert cxrzoo.get_spark() is spark
assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
df = cxrzoo.read_nih(spark, images, labels, size=72).where("error IS NULL")
prep = cxrzoo.CXRPreprocessor(cropSize=64)
model = cxrzoo.CXREstimator(epochs=1, batchSize=8, seed=1, engine=engine).setPreprocessor(prep).fit(df)
report = cxrzoo.evaluate_auc(model.transform(df))
model.save(f"{work}/model")
ir = cxrzoo.export_openvino(f"{work}/model", f"{work}/ir")
scored = cxrzoo.OpenVINOScorer(modelDir=str(ir)).transform(df).where("error IS NULL").count()
print(json.dumps({"n": report.n, "scored": scored, "mean_auc": report.mean_auc}))
'''

REFUSE_SCRIPT = r'''
from pyspark.sql import SparkSession
import cxrzoo
spark = SparkSession.builder.master("local[1]").config("spark.driver.host", "127.0.0.1").getOrCreate()
assert cxrzoo.get_spark() is spark  # no engine asked for: attaching needs nothing the JVM lacks
assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
for options in ({}, {"engine_type": "mkldnn"}):
    try:
        cxrzoo.get_spark(engine="bigdl", **options)
    except cxrzoo.SparkConfigError as e:
        print("===", str(e))
    else:
        raise SystemExit("a session without BigDL's jars was accepted")
'''


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYSPARK_SUBMIT_ARGS")}


def test_a_plain_session_with_cxrzoo_settings_runs_the_whole_job(synth_ds, tmp_path):
    run = subprocess.run([sys.executable, "-c", ATTACH_SCRIPT, str(synth_ds.images), str(synth_ds.labels_csv),
                          str(tmp_path), ENGINE], capture_output=True, text=True, timeout=600,
                         env={k: v for k, v in _env().items() if k != "PYSPARK_PYTHON"})
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["n"] == 60 and out["scored"] == 60 and 0.0 < out["mean_auc"] < 1.0
    after = run.stdout.split("--- session started\n", 1)[1]
    assert after.count("\n") == 1, after[-2000:]  # then nothing on stdout but the script's own line


@needs_bigdl
def test_a_session_lacking_jvm_settings_is_told_exactly_what_to_add(tmp_path):
    run = subprocess.run([sys.executable, "-c", REFUSE_SCRIPT], capture_output=True, text=True, timeout=300,
                         env=_env())
    assert run.returncode == 0, run.stderr[-3000:]
    any_type, mkldnn = run.stdout.split("===")[1:]
    for msg in (any_type, mkldnn):
        assert "--driver-class-path" in msg and "bigdl-dllib" in msg  # BigDL's jars, with their paths
        assert "cannot change once Spark has started" in msg
    assert "engineType" not in any_type  # no type asked for: the JVM's own (BigDL's default) will do
    assert "-Dbigdl.engineType=mkldnn" in mkldnn and "spark.driver.extraJavaOptions" in mkldnn


def test_spark_conf_command_prints_submit_flags():
    run = subprocess.run([sys.executable, "-m", "cxrzoo.cli", "spark-conf", "--engine", "bigdl",
                          "--master", "spark://h:7077"], capture_output=True, text=True, timeout=120, env=_env())
    assert run.returncode == 0, run.stderr[-2000:]
    flags = run.stdout
    assert "--master spark://h:7077" in flags and "--driver-class-path" in flags
    assert "spark.executor.extraClassPath=" in flags and "spark.sql.execution.arrow.pyspark.enabled=true" in flags
    as_json = subprocess.run([sys.executable, "-m", "cxrzoo.cli", "spark-conf", "--json"], capture_output=True,
                             text=True, timeout=120, env=_env())
    conf = json.loads(as_json.stdout)
    assert conf["spark.sql.execution.arrow.pyspark.enabled"] == "true" and "bigdl" not in json.dumps(conf)
