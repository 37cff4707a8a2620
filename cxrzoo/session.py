"""The SparkSession cxrzoo runs on: the active one when there is one, else one it creates.

Attaching to a session that spark-submit, a notebook or a platform started, cxrzoo sets only
session-level (SQL) settings — Arrow above all — and checks that what cannot change on a running
JVM is in place for the engine asked for; anything missing is named in one
:class:`~cxrzoo.sparkconf.SparkConfigError` with the exact settings to add.  App-wide settings
(driver memory, Python executable, Java options, class paths) are applied only to a session cxrzoo
creates.  No training engine is imported here: engines describe their settings as data.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, Mapping

from pyspark import SparkContext
from pyspark.sql import SparkSession

from cxrzoo.atomic import local_path
from cxrzoo.javahome import ensure_java_home
from cxrzoo.sparkconf import SparkConfigError, merge
from cxrzoo.stdio import fd_stdout_to_stderr
from cxrzoo.errors import InputError

log = logging.getLogger(__name__)
_lock = threading.Lock()

DEFAULT_DRIVER_MEMORY = "10g"  # ResNet-50 training in local mode needs more than 8 GB
ARROW_BATCH_ROWS = 64  # 64 × 224² × 3 float32 ≈ 38 MB per Arrow batch
_LOG4J2 = Path(__file__).with_name("data") / "log4j2.properties"
_JAVA_LOG_OPTS = f"-Dlog4j2.configurationFile=file:{_LOG4J2}"

# session-level settings cxrzoo needs (set on any session it runs on)
REQUIRED_SESSION = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.pythonUDF.arrow.enabled": "true",
}
# session-level settings cxrzoo prefers (set where the user has not set them)
PREFERRED_SESSION = {
    "spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_BATCH_ROWS),
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.files.maxPartitionBytes": "32m",  # ≈ 80 NIH PNGs per ingest task
    # count an image file at about its size, not 4 MB, so tasks hold dozens of PNGs, not seven
    "spark.sql.files.openCostInBytes": "512k",
    # listing an explicit list of image paths: on the driver up to 1024, then in at most 64 tasks
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1024",
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "64",
}


def _engine(name: str, options: Mapping[str, Any]):
    from cxrzoo.engine.base import engine_class, resolve_engine

    cls = engine_class(resolve_engine(name))
    return cls(**{k: v for k, v in options.items() if k in cls.option_names()})


def _installed_engines() -> list[str]:
    from cxrzoo.engine.base import engine_class, engine_names

    return [n for n in engine_names() if engine_class(n).available() is None]


def spark_conf(master: str | None = None, app_name: str = "cxrzoo", driver_memory: str = DEFAULT_DRIVER_MEMORY,
               executor_cores: int | None = None, executor_memory: str | None = None,
               num_executors: int | None = None, extra: Mapping[str, str] | None = None,
               engine: str | None = None, archive: str | None = None, deploy_mode: str = "client",
               **engine_options: Any) -> dict[str, str]:
    """The Spark configuration cxrzoo runs with, as a dict for ``SparkSession.builder`` or spark-submit.

    Parameters
    ----------
    master : str, optional
        Default ``$CXRZOO_MASTER`` or ``local[*]``.
    app_name, driver_memory, executor_cores, executor_memory, num_executors : optional
        Application name and sizing.
    extra : mapping, optional
        Settings applied last (Java options and class paths are joined, not replaced).
    engine : str, optional
        Add what this training engine needs at JVM start (e.g. ``"bigdl"``: its jars and engine type).
    archive : str, optional
        An environment archive written by ``cxrzoo pack``: the executors (and, in cluster mode, the driver)
        run the Python it unpacks to (``spark.archives``, ``spark.pyspark.python``), and an engine's jars are
        taken from it.
    deploy_mode : {"client", "cluster"}
        Where the driver runs (with ``archive``: in cluster mode it runs the archive's Python too).
    **engine_options
        The engine's own options (BigDL: ``engine_type="mklblas"|"mkldnn"``).

    Examples
    --------
    >>> conf = spark_conf(master="local[2]")
    >>> conf["spark.sql.execution.arrow.pyspark.enabled"]
    'true'

    Notes
    -----
    PySpark starts local-mode Python workers with ``$PYSPARK_PYTHON`` (else ``python3`` from the PATH,
    which may lack cxrzoo's packages); unless it is set, this sets it to this interpreter, for a
    session built next in this process.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    master = master or os.environ.get("CXRZOO_MASTER", "local[*]")
    conf = {
        "spark.master": master,
        "spark.app.name": app_name,
        "spark.driver.memory": driver_memory,
        **REQUIRED_SESSION,
        **PREFERRED_SESSION,
        "spark.ui.showConsoleProgress": "false",
        "spark.python.worker.reuse": "true",
        "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
        # cxrzoo's log4j2 config: JVM logs at WARN on stderr (a jar on the class path may carry a
        # log4j2-test.xml that logs everything at INFO to stdout)
        "spark.driver.extraJavaOptions": _JAVA_LOG_OPTS,
        "spark.executor.extraJavaOptions": _JAVA_LOG_OPTS,
    }
    if master.startswith("local"):
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    if executor_cores:
        conf["spark.executor.cores"] = str(executor_cores)
        conf["spark.cores.max"] = str(executor_cores * (num_executors or 1))
    if executor_memory:
        conf["spark.executor.memory"] = executor_memory
    if num_executors:
        conf["spark.executor.instances"] = str(num_executors)
    site = None
    if archive is not None:
        conf, site = _archive_settings(conf, archive, deploy_mode, engine)
    if engine:
        conf = merge(conf, _engine(engine, engine_options).spark_settings(master, executor_cores, site))
        if site is not None and deploy_mode == "cluster" and "spark.executor.extraClassPath" in conf:
            conf["spark.driver.extraClassPath"] = conf["spark.executor.extraClassPath"]  # the driver's container
    return merge(conf, extra or {})


def _archive_settings(conf: dict[str, str], archive: str, deploy_mode: str,
                      engine: str | None = None) -> tuple[dict[str, str], str]:
    """``conf`` for executors that run the Python of a ``cxrzoo pack`` archive; and their site-packages."""
    from cxrzoo.pack import ENV_NAME, read_manifest

    if deploy_mode not in ("client", "cluster"):
        raise InputError(f"deploy_mode must be 'client' or 'cluster', not {deploy_mode!r}")
    local = local_path(archive)
    if local is not None:  # a local archive is checked, and given to spark-submit as an absolute path
        archive = os.path.abspath(local)
        manifest = read_manifest(archive)
        site = manifest["site_packages"]
        if engine and engine != "auto" and engine not in manifest.get("engines", []):
            raise InputError(f"{archive} holds the engines {manifest.get('engines')}, not {engine!r}: pack it with "
                             f"`cxrzoo pack --engine {engine}` (or submit with one of those)")
    else:  # on HDFS, S3, ...: what `cxrzoo pack` writes for this Python
        site = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    python = f"./{ENV_NAME}/bin/python"
    conf = {k: v for k, v in conf.items() if k not in (
        "spark.executorEnv.PYSPARK_PYTHON",  # this machine's interpreter: the archive's instead
        "spark.executor.extraJavaOptions")}  # names a file of this machine's cxrzoo
    conf.update({"spark.archives": f"{archive}#{ENV_NAME}", "spark.submit.deployMode": deploy_mode,
                 "spark.pyspark.python": python, "spark.executorEnv.PYSPARK_PYTHON": python,
                 # the driver: this interpreter in client mode, the archive's in a cluster's container
                 "spark.pyspark.driver.python": sys.executable if deploy_mode == "client" else python})
    if deploy_mode == "cluster":
        conf.pop("spark.driver.extraJavaOptions", None)
        conf["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] = python
    return conf, f"./{ENV_NAME}/{site}"


def _attach(spark: SparkSession, engine: str | None, engine_options: Mapping[str, Any]) -> SparkSession:
    """Set the session-level settings cxrzoo needs on ``spark``; check the static ones of ``engine``."""
    user = spark.sparkContext.getConf()
    for key, value in REQUIRED_SESSION.items():
        spark.conf.set(key, value)
    for key, value in PREFERRED_SESSION.items():
        if not user.contains(key):
            spark.conf.set(key, value)
    if engine:
        gaps = _engine(engine, engine_options).check_session(spark)
        if gaps:
            raise SparkConfigError(gaps, f"the {engine!r} engine")
    return spark


def submitted() -> bool:
    """True in a Python driver that spark-submit (or the ``pyspark`` shell) launched: its JVM is running."""
    return bool(os.environ.get("PYSPARK_GATEWAY_PORT"))


def _create_submitted(master: str | None) -> SparkSession:
    """The session of a driver spark-submit launched: its settings (master, Python, archives, class paths)
    are the submitter's and stay (the session-level ones cxrzoo needs are set by :func:`_attach`)."""
    from pyspark import SparkConf

    have = SparkConf()  # loads the spark.* system properties spark-submit gave the JVM
    if master and have.get("spark.master", None) not in (None, master):
        log.warning("spark-submit's master %s is used; %s ignored", have.get("spark.master"), master)
    builder = SparkSession.builder
    if not have.contains("spark.ui.showConsoleProgress"):  # read as the context starts: cxrzoo draws its own bars
        builder = builder.config("spark.ui.showConsoleProgress", "false")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s on %s (from spark-submit)", spark.version, spark.sparkContext.master)
    return spark


def _create(master: str | None, conf: Mapping[str, str], engine: str | None,
            engine_options: Mapping[str, Any], **sizing: Any) -> SparkSession:
    if submitted():
        return _create_submitted(master)
    ensure_java_home()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    resolved = master or os.environ.get("CXRZOO_MASTER", "local[*]")
    if resolved.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # a session cxrzoo creates carries what every installed engine needs at JVM start (not imported
    # or initialised: that happens when training or prediction is asked for), so any of them can train later
    engines = [engine] if engine else _installed_engines()
    settings = spark_conf(resolved, extra=conf, **sizing)
    for name in engines:
        eng = _engine(name, engine_options)
        settings = merge(settings, eng.spark_settings(resolved, sizing.get("executor_cores")))
        for key, value in eng.process_env(resolved, sizing.get("executor_cores")).items():
            if key not in os.environ or key not in eng.user_env:  # inherited by the JVM about to start
                os.environ[key] = value
    settings = merge(settings, conf)
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    with fd_stdout_to_stderr():  # a log4j on the class path may warn on System.out as the JVM starts
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s on %s", spark.version, spark.sparkContext.master)
    return spark


def get_spark(master: str | None = None, app_name: str = "cxrzoo", driver_memory: str = DEFAULT_DRIVER_MEMORY,
              executor_cores: int | None = None, executor_memory: str | None = None,
              num_executors: int | None = None, conf: Mapping[str, str] | None = None,
              engine: str | None = None, **engine_options: Any) -> SparkSession:
    """The active SparkSession, made ready for cxrzoo; a new one when none is running.

    Parameters
    ----------
    master : str, optional
        Spark master URL for a new session; default ``$CXRZOO_MASTER`` or ``local[*]``.
    app_name, driver_memory, executor_cores, executor_memory, num_executors : optional
        Sizing of a new session (ignored, with a warning for the master, on a running one).
    conf : mapping, optional
        Extra Spark settings for a new session, applied last.
    engine : str, optional
        The training engine about to be used: a running session is checked for its JVM-start
        settings; a new one gets them (by default it gets those of every installed engine).
    **engine_options
        The engine's own options (BigDL: ``engine_type``).

    Raises
    ------
    SparkConfigError
        The running session lacks settings that cannot change once Spark has started; the message
        names each with its value.
    """
    with _lock:
        active = SparkSession.getActiveSession()
        if active is None and SparkContext._active_spark_context is not None:
            active = SparkSession.builder.getOrCreate()  # a context without a session: wrap it
        if active is not None:
            if master and active.sparkContext.master != master:
                log.warning("a SparkSession on %s is already running; %s ignored", active.sparkContext.master,
                            master)
            return _attach(active, engine, engine_options)
        spark = _create(master, conf or {}, engine, engine_options, app_name=app_name,
                        driver_memory=driver_memory, executor_cores=executor_cores,
                        executor_memory=executor_memory, num_executors=num_executors)
        return _attach(spark, engine, engine_options)
