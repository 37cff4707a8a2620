"""Atomic replace of a file or directory, on the local file system and on any Hadoop file system.

One protocol for every output cxrzoo writes (Parquet datasets, model directories, IRs, checkpoints,
reports): write the new version aside under a hidden sibling name, rename the old version away, rename
the new one in, then delete the old.  A reader sees the old version or all of the new one, never part.
A write killed at any point leaves only hidden siblings: the next write of the same target removes
them first, and puts the old version back if the kill fell between the two renames.

Siblings of ``<dir>/<name>``: ``<dir>/.<name>.tmp-<id>`` (the new version being written) and
``<dir>/.<name>.old-<id>`` (the old version on its way out).  Hidden names keep Spark and Hadoop input
formats from reading them.  ``<name>._tmp-<id>``, the name earlier cxrzoo versions used, is cleaned up too.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable

from cxrzoo.errors import InputError, JobFailedError

log = logging.getLogger(__name__)


class AtomicWriteError(JobFailedError, OSError):
    """The new version could not be renamed into place (the old one, if any, is kept)."""


def local_path(path: str | os.PathLike) -> str | None:
    """The local file-system path named by ``path`` (plain or ``file:``), or None for other file systems."""
    path = os.fspath(path)
    if "://" in path and not path.startswith("file://"):
        return None
    return path.removeprefix("file://").removeprefix("file:")


def resolve_local(path: str | os.PathLike) -> str:
    """A local ``path`` (plain or ``file:``) as an absolute plain path, resolved against this process's working
    directory; a URI of another file system (``hdfs://``, ``s3a://`` ...) as given.

    Executors and their Python workers have working directories of their own: resolve a path on the driver
    before it reaches them.
    """
    local = local_path(path)
    return os.fspath(path) if local is None else os.path.abspath(local)


def qualify(path: str, spark: Any = None) -> str:
    """``path`` with the scheme Hadoop gives it: a path without one lies on ``fs.defaultFS`` (HDFS on many
    clusters); without Spark, or where the default is the local file system, it stays a local path."""
    if spark is None or "://" in path or path.startswith("file:"):
        return path
    sc = spark.sparkContext if hasattr(spark, "sparkContext") else spark
    default = str(sc._jsc.hadoopConfiguration().get("fs.defaultFS", "file:///"))
    if default.startswith("file:"):
        return path
    jpath = sc._jvm.org.apache.hadoop.fs.Path(path)
    return str(jpath.getFileSystem(sc._jsc.hadoopConfiguration()).makeQualified(jpath).toString())


def spark_uri(path: str) -> str:
    """A path to hand Spark: local ones as ``file:`` URIs (so fs.defaultFS cannot redirect them), others as given."""
    return Path(path).resolve().as_uri() if local_path(path) is not None and "://" not in path else path


def _sibling(name: str, kind: str) -> str:
    return f".{name}.{kind}-{uuid.uuid4().hex[:8]}"


def _leftover(name: str) -> re.Pattern:
    return re.compile(rf"^(\.{re.escape(name)}\.(tmp|old)|{re.escape(name)}\._tmp)-[0-9a-f]+$")


class _Local:
    """Local file-system operations."""

    def exists(self, p: str) -> bool:
        return os.path.lexists(p)

    def rename(self, src: str, dst: str) -> bool:
        os.replace(src, dst)
        return True

    def delete(self, p: str) -> None:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            os.remove(p)

    def children(self, parent: str) -> list[str]:
        return os.listdir(parent) if os.path.isdir(parent) else []

    def mkdirs(self, p: str) -> None:
        os.makedirs(p, exist_ok=True)


class _Hadoop:
    """The same operations through Hadoop's ``FileSystem`` of the active SparkContext's JVM."""

    def __init__(self, spark: Any, path: str) -> None:
        if spark is None:
            raise InputError(f"{path} is not a local path: it needs a running SparkSession (Hadoop's file systems)")
        sc = spark.sparkContext if hasattr(spark, "sparkContext") else spark
        self._jvm = sc._jvm
        self.fs = self.path(path).getFileSystem(sc._jsc.hadoopConfiguration())

    def path(self, p: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(p)

    def exists(self, p: str) -> bool:
        return bool(self.fs.exists(self.path(p)))

    def rename(self, src: str, dst: str) -> bool:
        return bool(self.fs.rename(self.path(src), self.path(dst)))

    def delete(self, p: str) -> None:
        if self.fs.exists(self.path(p)):
            self.fs.delete(self.path(p), True)

    def children(self, parent: str) -> list[str]:
        if not self.fs.exists(self.path(parent)):
            return []
        return [s.getPath().getName() for s in self.fs.listStatus(self.path(parent))]

    def mkdirs(self, p: str) -> None:
        self.fs.mkdirs(self.path(p))


def _join(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}" if parent else name


def _split(target: str) -> tuple[str, str]:
    stripped = target.rstrip("/")
    parent, _, name = stripped.rpartition("/")
    if parent.endswith(":/") or (parent.count("/") == 2 and "://" in parent):  # hdfs://nn:8020 → its root
        parent += "/"
    return (parent or ("/" if stripped.startswith("/") else "")), name


def clean_leftovers(fs: Any, target: str) -> None:
    """Remove what killed writes of ``target`` left; restore the old version if the new one never arrived."""
    parent, name = _split(target)
    pattern = _leftover(name)
    found = sorted(c for c in fs.children(parent or ".") if pattern.match(c))
    olds = [c for c in found if ".old-" in c]
    if olds and not fs.exists(target):
        # killed between "old away" and "new in": the old version is the last complete one
        fs.rename(_join(parent, olds[-1]), target)
        log.warning("restored %s from %s (a write of it was interrupted)", target, olds[-1])
        found.remove(olds[-1])
    for c in found:
        fs.delete(_join(parent, c))


def _replace(fs: Any, target: str, write: Callable[[str], None]) -> None:
    parent, name = _split(target)
    if parent:
        fs.mkdirs(parent)
    clean_leftovers(fs, target)
    tmp = _join(parent, _sibling(name, "tmp"))
    try:
        write(tmp)
        if fs.exists(target):
            old = _join(parent, _sibling(name, "old"))
            if not fs.rename(target, old):
                raise AtomicWriteError(f"could not move {target} aside to replace it")
            try:
                moved = fs.rename(tmp, target)
            except BaseException:
                moved = False
                raise
            finally:
                if not moved:
                    fs.rename(old, target)  # put the old version back
            if not moved:
                raise AtomicWriteError(f"could not rename {tmp} to {target}; kept the old version")
            fs.delete(old)
        elif not fs.rename(tmp, target):
            raise AtomicWriteError(f"could not rename {tmp} to {target}")
    except BaseException:
        fs.delete(tmp)
        raise


def replace(target: str | os.PathLike, write: Callable[[str], None], spark: Any = None) -> str:
    """Create or replace ``target`` atomically with what ``write(tmp)`` writes at the path ``tmp``.

    Parameters
    ----------
    target : str or path
        A local path, a ``file:`` URI or any Hadoop URI (``hdfs://``, ``s3a://``, …).
    write : callable
        Writes the complete new version at the path it is given (a sibling of ``target`` on the same
        file system), e.g. ``lambda tmp: df.write.parquet(tmp)``.
    spark : SparkSession or SparkContext, optional
        Needed for non-local targets (its JVM's Hadoop configuration).

    Returns
    -------
    str
        ``target``.
    """
    target = qualify(os.fspath(target), spark)
    local = local_path(target)
    if local is not None:
        _replace(_Local(), os.path.abspath(local), write)
    else:
        if spark is None:
            raise InputError(f"{target} is not a local path: pass spark= to write it through Hadoop")
        _replace(_Hadoop(spark, target), target, write)
    return target


def replace_with_local_dir(target: str | os.PathLike, build: Callable[[Path], None], spark: Any = None) -> str:
    """Like :func:`replace`, for a directory that ``build(dir)`` fills with plain Python file I/O.

    A local target is built in place of the temporary sibling; any other is built in a local
    temporary directory and copied to the temporary sibling on the target's file system first.
    """
    target = qualify(os.fspath(target), spark)

    def fill(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        build(tmp)

    if local_path(target) is not None:
        return replace(target, lambda tmp: fill(Path(tmp)), spark)
    fs = _Hadoop(spark, target)  # no Spark: refused before any work
    with tempfile.TemporaryDirectory(prefix="cxrzoo-stage-") as stage:
        fill(Path(stage) / "out")

        def upload(tmp: str) -> None:
            fs.fs.copyFromLocalFile(False, True, fs.path(str(Path(stage) / "out")), fs.path(tmp))

        return replace(target, upload, spark)


def fetch_local_dir(path: str, spark: Any = None) -> tuple[Path, Callable[[], None]]:
    """A local directory holding ``path``'s contents, and a function that releases it.

    Local paths are returned as they are; other Hadoop URIs are copied to a temporary directory.
    """
    path = qualify(os.fspath(path), spark)
    local = local_path(path)
    if local is not None:
        return Path(local), lambda: None
    if spark is None:
        raise InputError(f"{path} is not a local path: pass spark= to read it through Hadoop")
    fs = _Hadoop(spark, path)
    stage = tempfile.mkdtemp(prefix="cxrzoo-fetch-")
    try:
        fs.fs.copyToLocalFile(False, fs.path(path), fs.path(stage + "/in"), True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return Path(stage) / "in", lambda: shutil.rmtree(stage, ignore_errors=True)


def filesystem(path: str | os.PathLike, spark: Any = None) -> Any:
    """The file system of ``path``: ``exists``, ``children``, ``delete``, ``mkdirs``, ``rename`` on path strings."""
    if local_path(path) is not None:
        return _Local()
    if spark is None:
        raise InputError(f"{path} is not a local path: pass spark= to use it through Hadoop")
    return _Hadoop(spark, os.fspath(path))


def join(parent: str | os.PathLike, name: str) -> str:
    """``parent/name`` for a local path or a URI."""
    parent = os.fspath(parent)
    return _join(parent, name) if local_path(parent) is None else os.path.join(local_path(parent), name)


def write_bytes(path: str | os.PathLike, data: bytes, spark: Any = None) -> None:
    """Write a file (an image, a report, a card) atomically, locally or through Hadoop.

    Locally the new content goes to the hidden sibling ``.<name>.tmp`` and is renamed over the target
    (one rename: a file needs no "old" step); a killed write's sibling is overwritten by the next one.
    """
    path = qualify(os.fspath(path), spark)
    local = local_path(path)
    if local is not None:
        target = Path(local)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return
    fs = _Hadoop(spark, path)

    def put(tmp: str) -> None:
        out = fs.fs.create(fs.path(tmp), True)
        try:
            out.write(bytearray(data))
        finally:
            out.close()

    replace(path, put, spark)


def write_text(path: str | os.PathLike, text: str, spark: Any = None) -> None:
    """:func:`write_bytes` of ``text`` in UTF-8."""
    write_bytes(path, text.encode(), spark)
