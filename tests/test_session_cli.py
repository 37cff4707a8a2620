"""The Spark session, Java discovery and the command line."""
import os
import subprocess
import sys

from conftest import needs_bigdl
from pathlib import Path


from cxrzoo.cli import build_parser
from cxrzoo.javahome import MIN_JAVA, find_java_home, java_version
from cxrzoo.engine.bigdl_session import local_cores, threads_env
from cxrzoo.session import get_spark, spark_conf

BIN = Path(sys.executable).parent


@needs_bigdl
def test_same_session_twice_with_arrow_and_bigdl(spark):
    assert get_spark() is spark
    conf = spark.sparkContext.getConf()
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")) <= 256
    assert conf.get("spark.executorEnv.PYSPARK_PYTHON") == sys.executable
    from cxrzoo.engine.base import get_engine
    from cxrzoo.models import create_spec

    get_engine("bigdl").build(create_spec("tiny", input_size=32))  # BigDL is initialised on first use
    from bigdl.dllib.utils.common import get_node_and_core_number

    nodes, cores = get_node_and_core_number()
    assert nodes == 1 and cores == 2  # BigDL's engine sees local[2]


def test_conf_options():
    c = spark_conf("spark://127.0.0.1:7077", executor_cores=2, executor_memory="3g", num_executors=2)
    assert c["spark.master"].startswith("spark://") and c["spark.executor.cores"] == "2"
    assert c["spark.cores.max"] == "4" and c["spark.executor.memory"] == "3g"
    assert int(spark_conf()["spark.driver.memory"].rstrip("g")) > 8  # ResNet-50 training needs > 8 GB


@needs_bigdl
def test_mkldnn_engine_computes_on_every_core():
    """BigDL's MKL-DNN engine runs one model per JVM: its OpenMP threads must cover the JVM's cores, unpinned."""
    assert local_cores("local") == 1 and local_cores("local[1]") == 1 and local_cores("spark://h:7077") is None
    assert threads_env("spark://h:7077", 4, "mkldnn")["OMP_NUM_THREADS"] == "4"
    assert "OMP_NUM_THREADS" not in threads_env("spark://h:7077", None, "mkldnn")
    conf = spark_conf("local[2]", engine="bigdl", engine_type="mkldnn")
    assert "-Dbigdl.mklNumThreads=2" in conf["spark.driver.extraJavaOptions"]
    assert "mklNumThreads" not in spark_conf("local[2]", engine="bigdl", engine_type="mklblas")[
        "spark.driver.extraJavaOptions"]
    probe = ("import os; from cxrzoo.session import get_spark; from cxrzoo.engine.base import get_engine; "
             "from cxrzoo.models import create_spec; "
             "spark = get_spark('local[2]', engine='bigdl', engine_type='mkldnn'); "
             "get_engine('bigdl', engine_type='mkldnn').build(create_spec('tiny', input_size=32)); sc = spark"
             ".sparkContext; print(sc._jvm.com.intel.analytics.bigdl.mkl.MKL.getMklNumThreads(), "
             "os.environ['KMP_AFFINITY'], sc.getConf().get('spark.executorEnv.OMP_NUM_THREADS'))")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYSPARK_SUBMIT_ARGS")}  # a fresh JVM
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["2", "disabled", "2"]


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
