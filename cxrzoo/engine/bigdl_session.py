"""What BigDL needs from Spark, and its one-time initialisation on a session that has it.

Nothing here imports BigDL until :func:`initialise`: the settings are computed from where the
``bigdl`` package lies on disk, so a session can be started (or checked) with them beforehand.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from cxrzoo.sparkconf import SparkConfigError, missing
from cxrzoo.stdio import fd_stdout_to_stderr
from cxrzoo.errors import InputError, JobFailedError

log = logging.getLogger(__name__)
_lock = threading.Lock()
ENGINE_TYPES = ("mklblas", "mkldnn")
DEFAULT_ENGINE_TYPE = "mkldnn"  # every registry backbone trains on it here; MKL-BLAS exhausts the heap on ResNet-50


def package_dir() -> Path | None:
    """Where the ``bigdl`` package is installed, or None (not installed or not importable)."""
    try:
        spec = importlib.util.find_spec("bigdl")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        if (Path(loc) / "dllib").is_dir():
            return Path(loc)
    return None


def unavailable() -> str | None:
    """None when BigDL DLlib can be imported, else why not."""
    if package_dir() is None:
        return ("the bigdl package is not installed "
                "(pip install --no-deps bigdl-dllib-spark3==2.4.0 bigdl-core==2.4.0.dev0)")
    if not (package_dir() / "dllib" / "__init__.py").is_file():  # looked up, not imported
        return "bigdl.dllib is missing from the bigdl package"
    return None


def classpath(site: str | None = None) -> str:
    """BigDL's jars, ':'-joined; with ``site``, as they lie under that ``site-packages`` (e.g. an archive's)."""
    root = package_dir()
    if not root:
        return ""
    jars = sorted(root.glob("share/*/lib/*.jar"))
    if site is not None:
        return ":".join(f"{site.rstrip('/')}/{p.relative_to(root.parent).as_posix()}" for p in jars)
    return ":".join(str(p) for p in jars)


def _jar_names(value: str | None) -> set[str]:
    return {Path(p).name for p in (value or "").split(":") if p}


def local_cores(master: str) -> int | None:
    """Cores of a ``local[N]`` / ``local[*]`` / ``local`` master (capped at the machine's), else None."""
    if master == "local":
        return 1
    if not master.startswith("local["):
        return None
    n = master[len("local["):].split("]")[0].split(",")[0]
    machine = os.cpu_count() or 1
    return machine if n == "*" else max(1, min(int(n), machine))


def threads_env(master: str, executor_cores: int | None, engine_type: str) -> dict[str, str]:
    """OpenMP settings for BigDL: MKL-DNN computes one model per JVM on every core it owns.

    BigDL's Python defaults (one OpenMP thread, ``KMP_AFFINITY=compact``) suit its MKL-BLAS engine,
    which runs one single-threaded model per core; its MKL-DNN engine runs one model per JVM, so they
    leave it on one core (measured: ResNet-50 bs16 forward + backward 2.25 s per iteration on 2 cores,
    1.3 s with two unpinned threads; two threads *with* the compact pinning took 10.4 s, both on one core).
    BigDL's ``KMP_BLOCKTIME=0`` puts the threads to sleep after every layer; Intel's default 200 ms
    keeps them awake through an iteration (MobileNetV2 bs16: 19 → 22-24 images/s) and still frees
    the cores for Python workers soon after training.  Empty when the cores per JVM are unknown.
    """
    if engine_type != "mkldnn":
        return {"OMP_NUM_THREADS": "1", "KMP_SETTINGS": "0"}
    threads = local_cores(master) or executor_cores
    if not threads:
        return {"KMP_SETTINGS": "0"}
    return {"OMP_NUM_THREADS": str(threads), "KMP_AFFINITY": "disabled", "KMP_BLOCKTIME": "200", "KMP_SETTINGS": "0"}


def spark_settings(master: str, executor_cores: int | None, engine_type: str,
                   executor_site: str | None = None) -> dict[str, str]:
    """Settings BigDL needs at JVM start: its jars on the driver's (and executors') class path, its engine
    type as a Java system property, a stack deep enough for DenseNet's graph, no speculation.

    ``executor_site``: the executors' ``site-packages`` (an archive's, relative to their working directory),
    for their class path; default: this installation's."""
    if engine_type not in ENGINE_TYPES:
        raise InputError(f"bigdlEngineType must be one of {ENGINE_TYPES}, not {engine_type!r}")
    # deep graphs (DenseNet's 58 concatenations) overflow the default 1 MB stack in the MKL-DNN conversion
    opts = f"-Xss64m -Dbigdl.engineType={engine_type} -Dbigdl.utils.LoggerFilter.disable=true"
    threads = threads_env(master, executor_cores, engine_type).get("OMP_NUM_THREADS")
    if engine_type == "mkldnn" and threads:
        opts += f" -Dbigdl.mklNumThreads={threads}"
    conf = {"spark.driver.extraClassPath": classpath(), "spark.driver.extraJavaOptions": opts,
            "spark.speculation": "false"}
    for key, value in threads_env(master, executor_cores, engine_type).items():
        conf[f"spark.executorEnv.{key}"] = value  # executors' (and, locally, Python workers') OpenMP
    if local_cores(master) is None:
        # BigDL's classes must come from the executors' system class path: loaded through spark.jars,
        # Java's deserialization of Scala lambdas inside BigDL's RDDs fails (ClassCastException of a
        # SerializedLambda).  The jars sit in the bigdl package, installed alike on every node.
        conf["spark.executor.extraClassPath"] = classpath(executor_site)
        conf["spark.executor.extraJavaOptions"] = opts
        conf["spark.scheduler.minRegisteredResourcesRatio"] = "1.0"  # BigDL counts the executors once
    return conf


def check(spark: Any, engine_type: str) -> dict[str, str]:
    """The settings the running session lacks for BigDL with ``engine_type`` (empty: none)."""
    from py4j.java_gateway import JavaClass

    sc = spark.sparkContext
    conf = sc.getConf()
    jars = classpath()
    engine_opt = f"-Dbigdl.engineType={engine_type}"
    gaps: dict[str, str] = {}
    if not isinstance(sc._jvm.com.intel.analytics.bigdl.dllib.utils.python.api.PythonBigDL, JavaClass):
        gaps["spark.driver.extraClassPath"] = jars
    if (running_engine_type(sc) or "mklblas") != engine_type:  # BigDL's own default
        gaps["spark.driver.extraJavaOptions"] = engine_opt
    if local_cores(sc.master) is None:
        gaps.update(missing(conf, {"spark.executor.extraJavaOptions": engine_opt}))
        # the executors may find the jars elsewhere (an archive's site-packages): the same jars, by name
        if not _jar_names(jars) <= _jar_names(conf.get("spark.executor.extraClassPath", None)):
            gaps["spark.executor.extraClassPath"] = jars
    gaps.update(missing(conf, {"spark.speculation": "false"}) if conf.get("spark.speculation", "false") != "false"
                else {})
    return gaps


def _cores_from_cluster(sc: Any, timeout: float = 60.0, settle: float = 3.0) -> None:
    """Give BigDL the executor cores the cluster granted, read from Spark's status store.

    BigDL's ``Engine.init`` needs ``spark.executor.cores`` and ``spark.cores.max`` on a cluster master;
    a standalone master grants every free core of a worker to one executor unless told otherwise.  This
    waits until the executors stop arriving, then records their cores in the live SparkConf.
    """
    deadline, seen, since = time.monotonic() + timeout, None, time.monotonic()
    while True:
        store = sc._jsc.sc().statusStore().executorList(True)
        cores = sorted(int(store.apply(i).totalCores()) for i in range(store.size()) if store.apply(i).id() != "driver")
        if cores != seen:
            seen, since = cores, time.monotonic()
        if cores and time.monotonic() - since >= settle:
            break
        if time.monotonic() > deadline:
            if cores:
                break
            raise JobFailedError(f"no executor registered on {sc.master} within {timeout:.0f} s to read its cores "
                               "from: pass --executor-cores N --num-executors M (spark.executor.cores, "
                               "spark.cores.max)")
        time.sleep(0.5)
    if len(set(cores)) > 1:
        log.warning("executors have different core counts %s; BigDL splits batches as if each had %d", cores,
                    cores[0])
    live = sc._jsc.sc().conf()  # Engine.init reads a copy of this one
    live.set("spark.executor.cores", str(cores[0]))
    if not live.contains("spark.cores.max"):
        live.set("spark.cores.max", str(cores[0] * len(cores)))
    log.info("%d executors with %d cores each on %s", len(cores), cores[0], sc.master)


def _executor_cores(sc: Any) -> int | None:
    value = sc.getConf().get("spark.executor.cores", None)
    return int(value) if value else None


def running_engine_type(sc: Any) -> str | None:
    """The BigDL engine type the driver JVM was started with, or None."""
    value = str(sc._jvm.System.getProperty("bigdl.engineType", "") or "")
    return value or None


def initialise(spark: Any, engine_type: str) -> None:
    """Check the session for BigDL, then initialise BigDL's engine on it (once per SparkContext)."""
    sc = spark.sparkContext
    with _lock:
        running = running_engine_type(sc) or "mklblas"  # BigDL's own default
        if running != engine_type:  # checked on every call: the engine type is JVM-wide
            raise SparkConfigError({"spark.driver.extraJavaOptions": f"-Dbigdl.engineType={engine_type}"},
                                   f"BigDL's {engine_type} engine (this JVM runs {running}, a JVM-wide setting; "
                                   f"or set bigdlEngineType={running!r})")
        if getattr(sc, "_cxrzoo_bigdl_ready", False):
            return
        gaps = check(spark, engine_type)
        if gaps:
            raise SparkConfigError(gaps, f"BigDL ({engine_type})")
        if local_cores(sc.master) is None and not sc.getConf().contains("spark.executor.cores"):
            _cores_from_cluster(sc)
        os.environ.setdefault("KMP_SETTINGS", "0")  # BigDL defaults to 1, which dumps every OpenMP setting
        python_home = os.environ.get("PYTHONHOME")
        from bigdl.dllib.utils.common import init_engine

        # BigDL's Scala side prints with println (its pickler registrations, deprecation notes): send the
        # Console of the JVM thread serving this Python thread to stderr (the JVM may not be ours to redirect)
        sc._jvm.scala.Console.setOut(sc._jvm.System.err)
        with fd_stdout_to_stderr():
            init_engine()
        if python_home is None:  # BigDL may point PYTHONHOME at the venv, which breaks later subprocesses
            os.environ.pop("PYTHONHOME", None)
        sc._cxrzoo_bigdl_ready = True
        log.info("BigDL %s engine initialised on Spark %s (%s)", engine_type, sc.version, sc.master)


class _LogWriter(io.TextIOBase):
    """A text stream whose lines go to a logger at DEBUG (BigDL's Python ``print`` calls)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log, self._buf = logger, ""

    def write(self, text: str) -> int:
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if line.strip():
                self._log.debug("%s", line)
        return len(text)


_PRINTS = logging.getLogger("cxrzoo.engine.bigdl.prints")


def quiet(fn):
    """Run ``fn`` with Python's stdout sent to the log (BigDL prints ``creating: createXxx`` for every object)
    and the JVM's to stderr (its pickler prints a line for every class it registers)."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with fd_stdout_to_stderr(), contextlib.redirect_stdout(_LogWriter(_PRINTS)):
            return fn(*args, **kwargs)
    return run


def quiet_class(cls):
    """Class decorator: :func:`quiet` on every public method."""
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_") and not isinstance(value, (classmethod, staticmethod)):
            setattr(cls, name, quiet(value))
    return cls
