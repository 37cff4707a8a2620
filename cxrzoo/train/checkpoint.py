"""Training checkpoints: one directory per saved epoch, written atomically, the newest two kept, on any file system.

``<dir>/epoch-0003/`` holds what the engine's trainer writes (weights and optimizer state) and
``state.json``: epochs completed, the LR schedule's position, the history so far and a
fingerprint of the run (model, input size) that a resume must match.  A directory only gets
its final name once complete (:func:`cxrzoo.atomic.replace_with_local_dir`), so a run killed while
writing leaves the previous checkpoint as the latest.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Callable

from cxrzoo.atomic import fetch_local_dir, filesystem, join, replace_with_local_dir
from cxrzoo.errors import InputError, PathNotFoundError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch-(\d{4,})$")


class CheckpointMismatchError(InputError):
    """The checkpoint directory holds a different run (another model or input size)."""


def _spark_context():
    from pyspark import SparkContext

    return SparkContext._active_spark_context


class CheckpointDir:
    """Checkpoints of one training run under ``path``: a local directory or any Hadoop URI.

    Parameters
    ----------
    path : str or Path
        Directory (created on first write).  Checkpoints on a non-local file system are built in a
        local directory, uploaded, and fetched back to a local copy to resume from.
    keep : int
        How many of the newest checkpoints to keep.
    """

    def __init__(self, path: str | os.PathLike, keep: int = 2) -> None:
        self.path = os.fspath(path)
        self.keep = max(1, keep)
        self._fetched: list[Callable[[], None]] = []

    def _fs(self):
        return filesystem(self.path, _spark_context())

    def _complete(self) -> list[tuple[int, str]]:
        fs = self._fs()
        found = []
        for name in fs.children(self.path):
            m = _NAME.match(name)
            if m and fs.exists(join(join(self.path, name), "state.json")):
                found.append((int(m.group(1)), name))
        return sorted(found)

    def latest(self) -> tuple[Path, dict] | None:
        """The newest complete checkpoint (a local directory) and its state, or None."""
        found = self._complete()
        if not found:
            return None
        local, release = fetch_local_dir(join(self.path, found[-1][1]), _spark_context())
        self._fetched.append(release)
        return local, json.loads((local / "state.json").read_text())

    def release(self) -> None:
        """Remove the local copies :meth:`latest` fetched from a non-local file system."""
        while self._fetched:
            self._fetched.pop()()

    def check(self, fingerprint: dict) -> tuple[Path, dict] | None:
        """:meth:`latest`, refusing one written by a different run."""
        found = self.latest()
        if found is None:
            return None
        path, state = found
        theirs = state.get("fingerprint", {})
        diff = {k: (theirs.get(k), v) for k, v in fingerprint.items() if theirs.get(k) != v}
        if diff:
            what = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
            raise CheckpointMismatchError(f"{join(self.path, path.name)} was written by another run ({what}); use a "
                                          "new checkpoint directory or delete this one")
        return found

    def fetch(self, epochs_done: int) -> Path:
        """A local copy of checkpoint ``epoch-<epochs_done>`` (removed by :meth:`release`)."""
        target = join(self.path, f"epoch-{epochs_done:04d}")
        if not self._fs().exists(join(target, "state.json")):
            raise PathNotFoundError(f"{target} is missing or incomplete")
        local, release = fetch_local_dir(target, _spark_context())
        self._fetched.append(release)
        return local

    def write(self, epochs_done: int, state: dict, write_engine_state: Callable[[Path], None],
              protect: int | None = None) -> str:
        """Write checkpoint ``epoch-<epochs_done>`` atomically and prune old ones (but ``epoch-<protect>``)."""
        final = join(self.path, f"epoch-{epochs_done:04d}")

        def build(tmp: Path) -> None:
            write_engine_state(tmp)
            (tmp / "state.json").write_text(json.dumps({**state, "epochs_done": epochs_done}, indent=1) + "\n")

        replace_with_local_dir(final, build, _spark_context())  # replaces the same epoch's after a resume
        fs = self._fs()
        for done, old in self._complete()[:-self.keep]:
            if done != protect:
                fs.delete(join(self.path, old))
        for stale in fs.children(self.path):  # what versions before cxrzoo.atomic left
            if stale.startswith(".tmp-epoch-"):
                fs.delete(join(self.path, stale))
        log.debug("checkpoint %s written", final)
        return final

    def remove(self) -> None:
        """Delete the checkpoint directory."""
        self._fs().delete(self.path)
