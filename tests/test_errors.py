"""One error tree: every exception cxrzoo defines is an InputError (exit 2) or a JobFailedError (exit 1), and the
command line maps exit statuses by those two classes alone."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import cxrzoo
from cxrzoo.errors import CXRZooError, InputError, JobFailedError, exit_status

pytestmark = pytest.mark.profile("spark4")  # no Spark session, nothing engine-specific: one profile runs these


def _cxrzoo_exceptions() -> dict[str, type]:
    """Every exception class defined in a module of cxrzoo that imports in this profile."""
    found = {}
    for info in pkgutil.walk_packages(cxrzoo.__path__, "cxrzoo."):
        try:
            mod = importlib.import_module(info.name)
        except ImportError as e:  # the BigDL engine's modules, in the profile without BigDL
            assert "bigdl" in str(e).lower(), f"{info.name}: {e}"
            continue
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_cxrzoo_exception_is_in_one_branch_of_the_tree():
    found = _cxrzoo_exceptions()
    assert len(found) >= 30, sorted(found)  # the ~30 kinds this release raises, not a walk that found nothing
    outside = [n for n, c in found.items() if not issubclass(c, CXRZooError)]
    assert not outside, f"not under cxrzoo.errors.CXRZooError: {outside}"
    both = [n for n, c in found.items() if issubclass(c, InputError) and issubclass(c, JobFailedError)]
    assert not both, f"in both branches: {both}"
    roots = {n for n, c in found.items() if c in (CXRZooError,)}
    assert roots == {"cxrzoo.errors.CXRZooError"}


@pytest.mark.parametrize("name, status", [
    ("cxrzoo.engine.base.EpochFailedError", 1),          # a failed epoch: the job failed
    ("cxrzoo.score.runtime.InferenceFailedError", 1),
    ("cxrzoo.engine.base.EngineUnavailableError", 2),    # an engine that is not installed: fix the install
    ("cxrzoo.labels.UnknownLabelError", 2),              # an unknown label: fix the input
    ("cxrzoo.models.modeldir.ModelDirError", 2),
])
def test_exit_status_follows_the_branch(name, status):
    module, cls = name.rsplit(".", 1)
    error = getattr(importlib.import_module(module), cls)("x")
    assert exit_status(error) == status
    assert exit_status(ValueError("not ours")) == 1  # a bug or a library's failure is not the user's input


def test_built_in_parents_are_kept_for_callers_that_catch_them():
    from cxrzoo.engine.base import EngineUnavailableError
    from cxrzoo.labels import UnknownLabelError
    from cxrzoo.models import UnknownModelError

    assert issubclass(UnknownLabelError, ValueError) and issubclass(EngineUnavailableError, ImportError)
    assert issubclass(UnknownModelError, KeyError) and issubclass(JobFailedError, RuntimeError)


def _cli(tmp_path, *argv):
    return subprocess.run([sys.executable, "-m", "cxrzoo.cli", *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_unknown_label_exits_2_naming_it(tmp_path):
    run = _cli(tmp_path, "train", "--data", str(tmp_path / "d.parquet"), "--out", str(tmp_path / "m"),
               "--labels", "Pneumonia,Pneumothorax,Unicornitis")
    assert run.returncode == 2, run.stderr
    assert "Unicornitis" in run.stderr and "Traceback" not in run.stderr


def _descends_from(pid: int, root: int) -> bool:
    """Whether process ``pid`` is ``root`` or one of its descendants (read from /proc)."""
    while pid > 1:
        if pid == root:
            return True
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: the parent's pid
    return False


def test_a_failed_epoch_exits_1(ingested, tmp_path):
    """A real failure: every torch worker that starts training under this ``cxrzoo train`` is killed, so the epoch
    fails on its first try and on both retries from the checkpoint; the command ends with one line naming the
    failed epoch and status 1 (the job failed), not 2 (bad input)."""
    import os
    import signal
    import threading
    import time

    from test_torch_engine import _ddp_worker_pids

    killed: list[int] = []
    done = threading.Event()
    proc = subprocess.Popen([sys.executable, "-m", "cxrzoo.cli", "train", "--data", ingested, "--out",
                             str(tmp_path / "m"), "--engine", "torch", "--epochs", "3", "--batch-size", "8",
                             "--crop", "64"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "CXRZOO_LOG_DIR": str(tmp_path / "logs")})

    def killer() -> None:  # only this command's workers: other jobs on the machine keep theirs
        while not done.is_set():
            for pid in set(_ddp_worker_pids()) - set(killed):
                if _descends_from(pid, proc.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        continue
                    killed.append(pid)
            time.sleep(0.02)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        _, stderr = proc.communicate(timeout=600)
    finally:
        done.set()
        t.join(5)
        if proc.poll() is None:
            proc.kill()
    assert len(killed) >= 3, f"{len(killed)} torch workers killed, expected one per try\n{stderr[-3000:]}"
    assert proc.returncode == 1, stderr[-3000:]
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "EpochFailedError" in errors[0] and "epoch 1" in errors[0], stderr[-3000:]
    assert "retry 2 of 2" in stderr  # the loop did retry before giving up
    assert not (tmp_path / "m").exists()  # no model directory from a failed run
