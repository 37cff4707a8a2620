"""A Spark standalone cluster on loopback — a master and N workers as local processes, no Docker.

For trying cxrzoo's distributed path on one machine and for the cluster tests::

    python -m cxrzoo.cluster start --workers 2 --cores 1 --memory 3g   # prints the master URL
    cxrzoo train --master spark://127.0.0.1:7077 --executor-cores 1 --num-executors 2 ...
    python -m cxrzoo.cluster stop

or, from Python, ``with StandaloneCluster(workers=2) as c: ... c.master_url ...``.  The daemons are
Spark's own ``Master`` and ``Worker`` classes run through pyspark's ``spark-class`` with the Java
cxrzoo uses; their logs and pids go to the cluster's work directory.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from cxrzoo.atomic import write_text
from cxrzoo.javahome import ensure_java_home

log = logging.getLogger(__name__)

_STATE = Path(tempfile.gettempdir()) / "cxrzoo-standalone.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def executor_pids(app_id: str | None = None) -> list[int]:
    """PIDs of running executor JVMs (``CoarseGrainedExecutorBackend``), optionally of one application."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "CoarseGrainedExecutorBackend" in cmd and (app_id is None or app_id in cmd):
            pids.append(int(proc.name))
    return sorted(pids)


class StandaloneCluster:
    """A master and ``workers`` workers on 127.0.0.1; :meth:`start` / :meth:`stop` or a ``with`` block.

    Parameters
    ----------
    workers : int
        Worker processes (each runs at most one cxrzoo executor with ``cores`` cores).
    cores : int
        Cores each worker offers.
    memory : str
        Memory each worker offers to executors.
    work_dir : str, optional
        Logs and executor work directories (default: a new temporary directory).
    """

    def __init__(self, workers: int = 2, cores: int = 1, memory: str = "3g", work_dir: str | None = None) -> None:
        self.workers, self.cores, self.memory = workers, cores, memory
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="cxrzoo-standalone-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.port, self.ui_port = _free_port(), _free_port()
        self._procs: list[subprocess.Popen] = []

    @property
    def master_url(self) -> str:
        """``spark://127.0.0.1:<port>``."""
        return f"spark://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYSPARK_SUBMIT_ARGS")}
        env.update(JAVA_HOME=str(ensure_java_home()), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
                   SPARK_HOME=str(_spark_class().parent.parent), SPARK_DAEMON_MEMORY="512m")
        return env

    def _spawn(self, name: str, args: list[str]) -> None:
        out = open(self.work_dir / f"{name}.log", "wb")
        proc = subprocess.Popen([str(_spark_class()), *args], stdout=out, stderr=subprocess.STDOUT, env=self._env(),
                                cwd=self.work_dir, start_new_session=True)
        self._procs.append(proc)

    def status(self) -> dict:
        """The master's JSON status (workers, applications)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as r:
            return json.load(r)

    def start(self, timeout: float = 120.0) -> "StandaloneCluster":
        """Start the daemons and wait until every worker is registered and alive."""
        self._spawn("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(self.port), "--webui-port", str(self.ui_port)])
        for i in range(self.workers):
            wdir = self.work_dir / f"worker-{i}"
            wdir.mkdir(exist_ok=True)
            self._spawn(f"worker-{i}", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                        "--cores", str(self.cores), "--memory", self.memory,
                                        "--webui-port", str(_free_port()), "--work-dir", str(wdir),
                                        self.master_url])
        deadline = time.monotonic() + timeout
        while True:
            try:
                alive = [w for w in self.status().get("workers", []) if w.get("state") == "ALIVE"]
                if len(alive) >= self.workers:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in self._procs):
                self.stop()
                raise RuntimeError(f"the standalone cluster did not come up in {timeout:.0f}s; logs in {self.work_dir}")
            time.sleep(1.0)
        log.info("standalone cluster up: %s, %d workers × %d cores (logs: %s)", self.master_url, self.workers,
                 self.cores, self.work_dir)
        return self

    def stop(self) -> None:
        """Stop the workers (and their executors) and the master."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()

    def __enter__(self) -> "StandaloneCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m cxrzoo.cluster start|stop``: a cluster that outlives the command (state in the temp dir)."""
    ap = argparse.ArgumentParser(prog="python -m cxrzoo.cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["start", "stop"])
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    ap.add_argument("--cores", type=int, default=1, help="cores per worker (default: 1)")
    ap.add_argument("--memory", default="3g", help="executor memory per worker (default: 3g)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.action == "start":
        if _STATE.exists():
            raise SystemExit(f"a cluster started by this command may still run ({_STATE}); stop it first")
        c = StandaloneCluster(args.workers, args.cores, args.memory).start()
        write_text(_STATE, json.dumps({"pids": [p.pid for p in c._procs], "master": c.master_url}))
        sys.stdout.write(c.master_url + "\n")  # the command's output: the URL to pass as --master
        return
    if not _STATE.exists():
        raise SystemExit("no cluster started by `python -m cxrzoo.cluster start` is recorded")
    for pid in reversed(json.loads(_STATE.read_text())["pids"]):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    _STATE.unlink()


if __name__ == "__main__":
    main()
