"""A Spark standalone cluster on loopback — a master and N workers as local processes, no Docker.

For trying cxrzoo's distributed path on one machine and for the cluster tests::

    python -m cxrzoo.cluster start --workers 2 --cores 1 --memory 3g   # prints the master URL
    cxrzoo train --master spark://127.0.0.1:7077 --executor-cores 1 --num-executors 2 ...
    python -m cxrzoo.cluster stop

or, from Python, ``with StandaloneCluster(workers=2) as c: ... c.master_url ...``.  The daemons are
Spark's own ``Master`` and ``Worker`` classes run through pyspark's ``spark-class`` with the Java
cxrzoo uses; their logs go to the cluster's work directory.  ``start`` records the daemons (pid, start time,
Spark class) in a private per-user directory (mode 0700, :func:`state_dir`); ``stop`` signals only the
processes that are still those daemons.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from cxrzoo.atomic import write_text
from cxrzoo.javahome import ensure_java_home
from cxrzoo.errors import InputError, JobFailedError

log = logging.getLogger(__name__)

STATE_FILE = "standalone.json"  # in state_dir(): what `start` launched, for `stop`
MASTER, WORKER = "org.apache.spark.deploy.master.Master", "org.apache.spark.deploy.worker.Worker"


class UnsafeStateDirError(InputError, PermissionError):
    """The state directory is not a private directory of this user (another user could plant pids in it)."""


def state_dir(path: str | os.PathLike | None = None) -> Path:
    """The private directory keeping ``python -m cxrzoo.cluster``'s state, created with mode 0700.

    Default: ``cxrzoo-<uid>`` under ``$XDG_RUNTIME_DIR`` (else the temporary directory).

    Raises
    ------
    UnsafeStateDirError
        It exists but is a symlink, not a directory, owned by another user or open to group or others.
    """
    if path is None:
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        path = Path(base) / f"cxrzoo-{os.getuid()}"
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=False)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise UnsafeStateDirError(f"{path} is not a directory of yours with mode 0700 (mode "
                                  f"{stat.filemode(st.st_mode)}, uid {st.st_uid}); remove it or pass another "
                                  "--state-dir")
    return path


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot, ``/proc/<pid>/stat`` field 22), None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2:].split()[19])  # fields after "(comm)": state is field 3


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def describe_daemon(pid: int, main_class: str) -> dict:
    """What identifies a daemon cxrzoo started: its pid, start time and Spark class."""
    return {"pid": pid, "start_time": process_start_time(pid), "main_class": main_class}


def is_our_daemon(record: dict) -> bool:
    """Whether ``record`` (:func:`describe_daemon`) still names that process: the same start time, this user's,
    running the recorded Spark daemon class, leading its own process group."""
    try:
        pid, started, cls = int(record["pid"]), record["start_time"], str(record["main_class"])
    except (KeyError, TypeError, ValueError):
        return False
    if started is None or cls not in (MASTER, WORKER) or process_start_time(pid) != started:
        return False
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.getuid() or os.getpgid(pid) != pid:
            return False
    except OSError:
        return False
    return cls in _cmdline(pid).split()


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
        cmd = _cmdline(int(proc.name))
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
        self._classes: list[str] = []  # each process's Spark main class

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
        self._classes.append(args[0])

    def daemons(self) -> list[dict]:
        """The running daemons as :func:`describe_daemon` records (what ``stop`` checks before signalling)."""
        return [describe_daemon(p.pid, c) for p, c in zip(self._procs, self._classes) if p.poll() is None]

    def status(self) -> dict:
        """The master's JSON status (workers, applications)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as r:
            return json.load(r)

    def start(self, timeout: float = 120.0) -> "StandaloneCluster":
        """Start the daemons and wait until every worker is registered and alive."""
        self._spawn("master", [MASTER, "--host", "127.0.0.1",
                               "--port", str(self.port), "--webui-port", str(self.ui_port)])
        for i in range(self.workers):
            wdir = self.work_dir / f"worker-{i}"
            wdir.mkdir(exist_ok=True)
            self._spawn(f"worker-{i}", [WORKER, "--host", "127.0.0.1",
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
                raise JobFailedError(f"the standalone cluster did not come up in {timeout:.0f}s; "
                                     f"logs in {self.work_dir}")
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
        self._classes.clear()

    def __enter__(self) -> "StandaloneCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_recorded(path: Path) -> int:
    """Send SIGTERM to the process groups of the daemons recorded in ``path`` that are still those daemons
    (:func:`is_our_daemon`); others are left alone with a warning.  Returns the number signalled."""
    records = json.loads(path.read_text()).get("daemons", [])
    sent = 0
    for rec in reversed(records):
        if not isinstance(rec, dict) or not is_our_daemon(rec):
            log.warning("not signalling %s: it is not (or no longer) a daemon this command started", rec)
            continue
        try:
            os.killpg(int(rec["pid"]), signal.SIGTERM)
            sent += 1
        except ProcessLookupError:
            pass
    return sent


def main(argv: list[str] | None = None) -> None:
    """``python -m cxrzoo.cluster start|stop``: a cluster that outlives the command (state in :func:`state_dir`)."""
    ap = argparse.ArgumentParser(prog="python -m cxrzoo.cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["start", "stop"])
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    ap.add_argument("--cores", type=int, default=1, help="cores per worker (default: 1)")
    ap.add_argument("--memory", default="3g", help="executor memory per worker (default: 3g)")
    ap.add_argument("--state-dir", default=None,
                    help="private directory (mode 0700) for the started daemons' record "
                         "(default: cxrzoo-<uid> under $XDG_RUNTIME_DIR or the temporary directory)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    state = state_dir(args.state_dir) / STATE_FILE
    if args.action == "start":
        if state.exists():
            raise SystemExit(f"a cluster started by this command may still run ({state}); stop it first")
        c = StandaloneCluster(args.workers, args.cores, args.memory).start()
        write_text(state, json.dumps({"daemons": c.daemons(), "master": c.master_url, "work_dir": str(c.work_dir)}))
        sys.stdout.write(c.master_url + "\n")  # the command's output: the URL to pass as --master
        return
    if not state.exists():
        raise SystemExit(f"no cluster started by `python -m cxrzoo.cluster start` is recorded in {state.parent}")
    stop_recorded(state)
    state.unlink()


if __name__ == "__main__":
    main()
