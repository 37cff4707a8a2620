"""One ready SparkSession with BigDL initialised."""
from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Mapping

from pyspark.sql import SparkSession

from cxrzoo.javahome import ensure_java_home

log = logging.getLogger(__name__)
_lock = threading.Lock()

DEFAULT_DRIVER_MEMORY = "10g"  # ResNet-50 training in local mode needs more than 8 GB
ARROW_BATCH_ROWS = 64  # 64 × 224² × 3 float32 ≈ 38 MB per Arrow batch
_LOG4J2 = Path(__file__).with_name("data") / "log4j2.properties"
_JAVA_LOG_OPTS = f"-Dlog4j2.configurationFile=file:{_LOG4J2} -Dbigdl.utils.LoggerFilter.disable=true"


BIGDL_ENGINES = ("mklblas", "mkldnn")


def local_cores(master: str) -> int | None:
    """Cores of a ``local[N]`` / ``local[*]`` / ``local`` master (capped at the machine's), else None."""
    if master == "local":
        return 1
    if not master.startswith("local["):
        return None
    n = master[len("local["):].split("]")[0].split(",")[0]
    machine = os.cpu_count() or 1
    return machine if n == "*" else max(1, min(int(n), machine))


def mkldnn_threads_env(master: str, executor_cores: int | None) -> dict[str, str]:
    """OpenMP settings for BigDL's MKL-DNN engine: one model per JVM computing on every core it owns.

    BigDL's Python defaults (one OpenMP thread, ``KMP_AFFINITY=compact``) suit its MKL-BLAS engine,
    which runs one single-threaded model per core; its MKL-DNN engine runs one model per JVM, so they
    leave it on one core (measured: ResNet-50 bs16 forward + backward 2.25 s per iteration on 2 cores,
    1.3 s with two unpinned threads; two threads *with* the compact pinning took 10.4 s, both on one core).
    BigDL's ``KMP_BLOCKTIME=0`` puts the threads to sleep after every layer; Intel's default 200 ms
    keeps them awake through an iteration (MobileNetV2 bs16: 19 → 22-24 images/s) and still frees
    the cores for Python workers soon after training (``infinite`` measured 25-26 but never sleeps).
    Empty when the cores per JVM are unknown (a cluster master without ``executor_cores``).
    """
    threads = local_cores(master) or executor_cores
    if not threads:
        return {}
    return {"OMP_NUM_THREADS": str(threads), "KMP_AFFINITY": "disabled", "KMP_BLOCKTIME": "200"}


def _bigdl_classpath() -> str:
    import bigdl

    share = Path(bigdl.__path__[0]) / "share"
    return ":".join(str(p) for p in sorted(share.glob("*/lib/*.jar")))


def spark_conf(master: str = "local[*]", app_name: str = "cxrzoo", driver_memory: str = DEFAULT_DRIVER_MEMORY,
               executor_cores: int | None = None, executor_memory: str | None = None,
               num_executors: int | None = None, extra: Mapping[str, str] | None = None,
               bigdl_engine: str = "mklblas") -> dict[str, str]:
    """The Spark configuration cxrzoo runs with, as a plain dict (see :func:`get_spark`)."""
    if bigdl_engine not in BIGDL_ENGINES:
        raise ValueError(f"bigdl_engine must be one of {BIGDL_ENGINES}, not {bigdl_engine!r}")
    # deep graphs (DenseNet's 58 concatenations) overflow the default 1 MB stack in BigDL's MKL-DNN conversion
    java_opts = f"{_JAVA_LOG_OPTS} -Xss64m -Dbigdl.engineType={bigdl_engine}"
    threads = mkldnn_threads_env(master, executor_cores).get("OMP_NUM_THREADS") if bigdl_engine == "mkldnn" else None
    if threads:
        java_opts += f" -Dbigdl.mklNumThreads={threads}"
    conf = {
        "spark.master": master,
        "spark.app.name": app_name,
        "spark.driver.memory": driver_memory,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_BATCH_ROWS),
        "spark.sql.execution.pythonUDF.arrow.enabled": "true",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.showConsoleProgress": "false",
        "spark.python.worker.reuse": "true",
        "spark.sql.files.maxPartitionBytes": "32m",  # ≈ 80 NIH PNGs per ingest task
        # count an image file at about its size, not 4 MB, so tasks hold dozens of PNGs, not seven
        "spark.sql.files.openCostInBytes": "512k",
        # listing an explicit list of image paths: on the driver up to 1024, then in at most 64 tasks
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "1024",
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": "64",
        "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
        # BigDL's jar carries a log4j2-test.xml that logs everything at INFO to stdout: use ours instead
        # (and BigDL's engine type, a JVM-wide setting: mklblas or mkldnn)
        "spark.driver.extraJavaOptions": java_opts,
        "spark.executor.extraJavaOptions": java_opts,
    }
    if master.startswith("local"):
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    else:
        # BigDL's classes must come from the executors' system class path: loaded through spark.jars,
        # Java's deserialization of Scala lambdas inside BigDL's RDDs fails (ClassCastException of a
        # SerializedLambda).  The jars sit in the bigdl package, installed alike on every node.
        conf["spark.executor.extraClassPath"] = _bigdl_classpath()
    if executor_cores:
        conf["spark.executor.cores"] = str(executor_cores)
        conf["spark.cores.max"] = str(executor_cores * (num_executors or 1))
    if executor_memory:
        conf["spark.executor.memory"] = executor_memory
    if num_executors:
        conf["spark.executor.instances"] = str(num_executors)
    conf.update(extra or {})
    return conf


def get_spark(master: str | None = None, app_name: str = "cxrzoo", driver_memory: str = DEFAULT_DRIVER_MEMORY,
              executor_cores: int | None = None, executor_memory: str | None = None,
              num_executors: int | None = None, conf: Mapping[str, str] | None = None,
              bigdl_engine: str | None = None) -> SparkSession:
    """Return the SparkSession with BigDL initialised, creating it on first call.

    Parameters
    ----------
    master : str, optional
        Spark master URL; default ``$CXRZOO_MASTER`` or ``local[*]``.
    app_name : str
        Application name.
    driver_memory : str
        Driver JVM heap (default 10g: local ResNet-50 training needs > 8 GB).
    executor_cores, executor_memory, num_executors : optional
        Executor sizing for cluster masters.
    conf : mapping, optional
        Extra Spark settings, applied last.
    bigdl_engine : {"mklblas", "mkldnn"}, optional
        BigDL's compute engine for every model of this JVM; default ``$CXRZOO_BIGDL_ENGINE`` or
        ``mklblas``.  ``mkldnn`` runs training through BigDL's MKL-DNN IR (nn-API graphs only).

    Returns
    -------
    pyspark.sql.SparkSession
        The same session on every call; settings of later calls are ignored
        (a warning names the master in use if it differs).
    """
    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None and getattr(get_spark, "_bigdl_ready", False):
            if master and active.sparkContext.master != master:
                log.warning("a SparkSession on %s is already running; %s ignored", active.sparkContext.master, master)
            return active
        ensure_java_home()
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ.setdefault("KMP_SETTINGS", "0")  # BigDL defaults to 1, which dumps every OpenMP setting
        resolved = master or os.environ.get("CXRZOO_MASTER", "local[*]")
        if resolved.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        from bigdl.dllib.nncontext import init_nncontext, init_spark_conf

        engine = bigdl_engine or os.environ.get("CXRZOO_BIGDL_ENGINE", "mklblas")
        settings = spark_conf(resolved, app_name, driver_memory, executor_cores, executor_memory, num_executors,
                              conf, engine)
        if engine == "mkldnn":  # BigDL's init copies these to the driver's and the executors' environment
            for key, value in mkldnn_threads_env(resolved, executor_cores).items():
                if key != "KMP_BLOCKTIME" or key not in os.environ:  # a user's own block time is kept
                    os.environ[key] = value
        python_home = os.environ.get("PYTHONHOME")
        sc = init_nncontext(init_spark_conf(settings), redirect_spark_log=False, spark_log_level="WARN")
        # BigDL points PYTHONHOME at the venv, which breaks every Python subprocess started later
        if python_home is None:
            os.environ.pop("PYTHONHOME", None)
        spark = SparkSession.builder.getOrCreate()
        get_spark._bigdl_ready = True  # type: ignore[attr-defined]
        log.info("Spark %s on %s with BigDL ready", spark.version, sc.master)
        return spark
