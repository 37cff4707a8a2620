"""Training checkpoints: one directory per saved epoch, written atomically, the newest two kept.

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
import shutil
from pathlib import Path
from typing import Callable

from cxrzoo.atomic import replace_with_local_dir

log = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch-(\d{4,})$")


class CheckpointMismatchError(ValueError):
    """The checkpoint directory holds a different run (another model or input size)."""


class CheckpointDir:
    """Checkpoints of one training run under ``path``.

    Parameters
    ----------
    path : str or Path
        Directory (created on first write).
    keep : int
        How many of the newest checkpoints to keep.
    """

    def __init__(self, path: str | os.PathLike, keep: int = 2) -> None:
        self.path = Path(path)
        self.keep = max(1, keep)

    def _complete(self) -> list[tuple[int, Path]]:
        if not self.path.is_dir():
            return []
        found = []
        for p in self.path.iterdir():
            m = _NAME.match(p.name)
            if m and (p / "state.json").is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self) -> tuple[Path, dict] | None:
        """The newest complete checkpoint and its state, or None."""
        found = self._complete()
        if not found:
            return None
        path = found[-1][1]
        return path, json.loads((path / "state.json").read_text())

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
            raise CheckpointMismatchError(f"{path} was written by another run ({what}); use a new checkpoint "
                                          "directory or delete this one")
        return found

    def write(self, epochs_done: int, state: dict, write_engine_state: Callable[[Path], None]) -> Path:
        """Write checkpoint ``epoch-<epochs_done>`` atomically and prune old ones."""
        final = self.path / f"epoch-{epochs_done:04d}"

        def build(tmp: Path) -> None:
            write_engine_state(tmp)
            (tmp / "state.json").write_text(json.dumps({**state, "epochs_done": epochs_done}, indent=1) + "\n")

        replace_with_local_dir(final, build)  # replaces the same epoch's checkpoint after a resume
        for _, old in self._complete()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.path.glob(".tmp-epoch-*"):  # what versions before cxrzoo.atomic left
            shutil.rmtree(stale, ignore_errors=True)
        log.info("checkpoint %s written", final)
        return final
