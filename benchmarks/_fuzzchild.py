"""One input at a time in a child process under a time limit: the fuzzers' hang and crash detection.

A call that outlives the limit is a hang (the child is killed and the next call starts a new one); a child
that dies (a segfault in a decoder) is a crash.  Both are reported as outcomes, so a fuzzing run never
stalls on an infinite loop and never dies with the code under test.
"""
from __future__ import annotations

import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from typing import Any, Callable


def _serve(conn, worker: Callable[[Any, str], dict], workdir: str, max_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))  # a runaway allocation fails, not the host
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(worker(msg, workdir))


class ChildRunner:
    """Calls ``worker(payload, workdir) -> dict`` (a module-level function) in a spawned child process.

    Parameters
    ----------
    worker : callable
        Runs one input in the child and returns a picklable dict (it catches the exceptions it expects).
    limit : float
        Seconds one call may take before it counts as a hang.
    warmup : list, optional
        Payloads run once in every new child before the limit applies (imports, JIT compilation).
    max_bytes : int
        The child's address-space limit.
    """

    def __init__(self, worker: Callable[[Any, str], dict], limit: float, warmup: list | None = None,
                 max_bytes: int = 8 << 30):
        self.worker, self.limit, self.warmup, self.max_bytes = worker, limit, list(warmup or ()), max_bytes
        self.ctx, self.proc, self.conn = mp.get_context("spawn"), None, None
        self.last_seconds = 0.0
        self.workdir = tempfile.mkdtemp(prefix="cxrzoo-fuzz-")

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_serve, args=(child, self.worker, self.workdir, self.max_bytes),
                                     daemon=True)
        self.proc.start()
        for payload in self.warmup:
            self.conn.send(payload)
            if not self.conn.poll(300):
                raise RuntimeError("the fuzzing child did not finish its warm-up in 300 s")
            self.conn.recv()

    def call(self, payload: Any) -> dict:
        """The worker's dict, or ``{"outcome": "hang"}`` past the limit, or ``{"outcome": "crash", ...}``."""
        if self.proc is None or not self.proc.is_alive():
            self._start()
        t = time.perf_counter()
        self.conn.send(payload)
        ready = self.conn.poll(self.limit)
        self.last_seconds = time.perf_counter() - t  # the call alone, without the child's start and warm-up
        if not ready:
            self.proc.kill()
            self.proc.join()
            self.proc = None
            return {"outcome": "hang", "reason": f"over the {self.limit:g} s limit"}
        try:
            return self.conn.recv()
        except EOFError:
            self.proc.join()
            code, self.proc = self.proc.exitcode, None
            return {"outcome": "crash", "reason": f"the process died (exit code {code})"}

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ChildRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_counts(parts: list[dict], maxima: tuple[str, ...] = ("slowest_s",)) -> dict:
    """The fuzzing workers' counts as one: Counters and numbers summed, lists joined, ``maxima`` keys maxed."""
    import collections

    total: dict = {}
    for part in parts:
        for key, v in part.items():
            if isinstance(v, collections.Counter):
                total.setdefault(key, collections.Counter()).update(v)
            elif isinstance(v, list):
                total.setdefault(key, []).extend(v)
            elif key in maxima:
                total[key] = max(total.get(key, v), v)
            else:
                total[key] = total.get(key, 0) + v
    return total
