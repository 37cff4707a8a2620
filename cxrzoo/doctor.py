"""``cxrzoo doctor``: what the executors really run — checked on every executor slot, from the driver.

A deployment goes wrong on the executors, out of the driver's sight: the wrong Python, a cxrzoo without
its native kernels, an engine missing from the archive, a path the driver sees and the nodes do not.
This runs one task per executor core; each reports its host, Python, where cxrzoo was imported from,
whether the native kernels, OpenVINO and each engine's package import, and whether the paths it was
given exist there.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
from typing import Any, Iterable

log = logging.getLogger(__name__)


def _probe(paths: list[str]) -> dict[str, Any]:
    """Run on an executor: this Python worker's view."""
    import cxrzoo

    out: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "cwd": os.getcwd(),
                           "python": sys.executable, "prefix": sys.prefix, "version": sys.version.split()[0],
                           "cxrzoo": os.path.dirname(cxrzoo.__file__), "problems": []}
    try:
        from cxrzoo import _native  # noqa: F401 - the built C++ kernels

        out["native_kernels"] = True
    except ImportError as e:
        out["native_kernels"] = False
        out["problems"].append(f"cxrzoo's native kernels do not import: {e}")
    for name in ("openvino", "numba", "cv2", "pyarrow"):
        if importlib.util.find_spec(name) is None:
            out["problems"].append(f"{name} is not installed")
    from cxrzoo.engine.base import engine_class, engine_names

    out["engines"] = {n: engine_class(n).available() or "ok" for n in engine_names()}
    out["paths"] = {p: os.path.exists(p) for p in paths}
    return out


def probe_executors(spark: Any, paths: Iterable[str] = (), tasks: int | None = None) -> list[dict[str, Any]]:
    """One :func:`_probe` report per task, ``tasks`` (default: the session's default parallelism) tasks."""
    sc = spark.sparkContext
    n = tasks or sc.defaultParallelism
    wanted = list(paths)
    reports = sc.parallelize(range(n), n).mapPartitions(lambda _: [_probe(wanted)]).collect()
    for r in reports:
        log.info("executor %s pid %d: python %s (%s), cxrzoo %s, native kernels %s", r["host"], r["pid"],
                 r["python"], r["version"], r["cxrzoo"], "ok" if r["native_kernels"] else "MISSING")
    return reports
