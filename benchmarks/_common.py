"""Shared benchmark helpers: the CPU's name and a median timer with warm-up."""
from __future__ import annotations

import platform
import statistics
import time
from typing import Callable


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or the platform's guess)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_args(doc: str, repeats: int, add: Callable | None = None):
    """Parse the common benchmark options (``--repeats``, ``--json``) plus those ``add(parser)`` declares,
    and set up logging: the table on stderr unless ``--json`` leaves only the JSON line.

    Run by ``cxrzoo bench`` (which sets ``CXRZOO_CONSOLE_LOG``), the JVM's and the libraries' output goes to
    that log file and only the benchmark's own lines reach the terminal (:mod:`cxrzoo.console`).
    """
    import argparse
    import atexit
    import contextlib
    import logging
    import os

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=repeats, help="timed repeats (median reported)")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    if add is not None:
        add(ap)
    args = ap.parse_args()
    log_path = os.environ.pop("CXRZOO_CONSOLE_LOG", None)  # popped: the benchmark's own children print freely
    if log_path:
        from cxrzoo.console import quiet_console

        stack = contextlib.ExitStack()
        stack.enter_context(quiet_console(log_path, quiet=args.json, show=("cxrzoo", "bench")))
        atexit.register(stack.close)
    else:
        logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, format="%(message)s")
    return args


def emit(line: str) -> None:
    """Print a result line (the JSON) on the terminal's stdout, also under ``cxrzoo bench``'s quiet console."""
    from cxrzoo.console import stdout

    out = stdout()
    out.write(line + "\n")
    out.flush()
