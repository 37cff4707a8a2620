"""The Spark session, Java discovery and the command line."""
import subprocess
import sys
from pathlib import Path


from cxrzoo.cli import build_parser
from cxrzoo.javahome import MIN_JAVA, find_java_home, java_version
from cxrzoo.session import get_spark, spark_conf

BIN = Path(sys.executable).parent


def test_same_session_twice_with_arrow_and_bigdl(spark):
    assert get_spark() is spark
    conf = spark.sparkContext.getConf()
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")) <= 256
    assert conf.get("spark.executorEnv.PYSPARK_PYTHON") == sys.executable
    from bigdl.dllib.utils.common import get_node_and_core_number

    nodes, cores = get_node_and_core_number()
    assert nodes == 1 and cores == 2  # BigDL's engine sees local[2]


def test_conf_options():
    c = spark_conf("spark://127.0.0.1:7077", executor_cores=2, executor_memory="3g", num_executors=2)
    assert c["spark.master"].startswith("spark://") and c["spark.executor.cores"] == "2"
    assert c["spark.cores.max"] == "4" and c["spark.executor.memory"] == "3g"
    assert int(spark_conf()["spark.driver.memory"].rstrip("g")) > 8  # ResNet-50 training needs > 8 GB


def test_java_is_17_or_newer():
    assert java_version(find_java_home() / "bin" / "java") >= MIN_JAVA


def test_help_lists_every_stage():
    text = build_parser().format_help()
    for cmd in ("synth", "ingest", "train", "evaluate", "export", "score", "demo"):
        assert cmd in text


def test_console_script_synth(tmp_path):
    out = tmp_path / "ds"
    subprocess.run([str(BIN / "cxrzoo"), "-q", "synth", "--out", str(out), "--n", "5", "--size", "64"],
                   check=True, timeout=120)
    assert len(list((out / "images").glob("*.png"))) == 5 and (out / "Data_Entry_2017.csv").exists()


def test_cli_reports_bad_input_without_traceback(tmp_path):
    r = subprocess.run([str(BIN / "cxrzoo"), "-q", "export", "--model", str(tmp_path), "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not a cxrzoo model directory" in r.stderr and "Traceback" not in r.stderr
