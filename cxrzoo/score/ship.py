"""The IR shipped to the executors: on a cluster they need not see the driver's IR directory.

On a cluster master, :func:`ship_ir` zips the IR's files (the graph, the weights, the card) under a name
made of their content's hash and adds the zip to the application (``SparkContext.addArchive``); every
executor unpacks it once, and :func:`executor_ir_dir` gives the directory there.  The same IR is shipped
once per application; a re-exported one, having other bytes, gets another name.  In local mode the
executors are the driver's process and read the directory itself.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from cxrzoo.atomic import replace
from cxrzoo.models.irdir import CARD, XML
from cxrzoo.score.runtime import _files_signature

log = logging.getLogger(__name__)
_LOCK = threading.Lock()
_SHIPPED: set[tuple[str, str]] = set()  # (application id, archive name) already added
_DIGESTS: dict[tuple[str, tuple], str] = {}  # (IR directory, its files' signature) → content hash


def _files(ir_dir: Path) -> list[Path]:
    return [ir_dir / XML, ir_dir / Path(XML).with_suffix(".bin").name, ir_dir / CARD]


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:20]


def ship_ir(sc: Any, ir_dir: str | os.PathLike) -> str | None:
    """Add ``ir_dir`` to the application as an archive for the executors; its name (None in local mode).

    Parameters
    ----------
    sc : SparkContext
    ir_dir : path
        A local IR directory (``cxrzoo export``'s output), checked by the caller.
    """
    if sc.master.startswith("local"):
        return None
    files = _files(Path(ir_dir))
    with _LOCK:
        where = (str(Path(ir_dir).resolve()), _files_signature(Path(ir_dir)))
        if where not in _DIGESTS:  # hashed once per version of the files, not on every transform
            _DIGESTS[where] = _digest(files)
        name = f"cxrzoo-ir-{_DIGESTS[where]}.zip"
        key = (sc.applicationId, name)
        if key in _SHIPPED:
            return name
        stage = Path(tempfile.gettempdir()) / f"cxrzoo-ship-{os.getuid()}"
        stage.mkdir(mode=0o700, exist_ok=True)
        path = stage / name
        if not path.is_file():
            def write(tmp: str) -> None:
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:  # weights barely compress
                    for f in files:
                        z.write(f, f.name)
            replace(path, write)
        sc.addArchive(str(path))
        _SHIPPED.add(key)
    log.info("IR %s shipped to the executors as %s", ir_dir, name)
    return name


def executor_ir_dir(shipped: str | None, ir_dir: str) -> str:
    """Where an executor finds the IR: the unpacked archive ``shipped``, else ``ir_dir`` itself."""
    if not shipped:
        return ir_dir
    from pyspark import SparkFiles

    return SparkFiles.get(shipped)
