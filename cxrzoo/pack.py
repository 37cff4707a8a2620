"""``cxrzoo pack``: this environment as a relocatable archive for ``spark.archives``.

Executors on a cluster do not see the driver's virtual environment.  Spark's documented way to give
them one is a packed environment: ``--archives cxrzoo-env.tar.gz#env`` with
``spark.pyspark.python=./env/bin/python``.  This writes such an archive, the way ``venv-pack`` does:

- the packages cxrzoo runs on — its own requirements, followed through the installed distributions, and
  those of the engines asked for (BigDL's jars sit in its package; the torch engine's ``torch``) — copied
  from this environment's ``site-packages``; an editable cxrzoo is copied from its source tree with its
  built native kernels;
- ``bin/python`` a symlink to this environment's base interpreter and a ``pyvenv.cfg`` naming it, so the
  unpacked directory is a virtual environment wherever it lies, on any node that has the same base Python
  at the same path (the archive's ``cxrzoo-pack.json`` says which);
- Spark's own jars are left out (a node has Spark installed; its version must match this pyspark).

Test-only packages (pytest, Playwright, test data) are not requirements of cxrzoo and stay out.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import sysconfig
import tarfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterable

from cxrzoo import atomic
from cxrzoo.errors import JobFailedError

log = logging.getLogger(__name__)

MANIFEST = "cxrzoo-pack.json"  # the archive's first member: what it holds and what a node needs
ENV_NAME = "env"  # the directory Spark unpacks the archive into (``#env``)
_SKIP_DIRS = {"__pycache__"}
_SPARK_JARS = re.compile(r"^pyspark/jars/")  # Spark's own jars: the node's Spark has them


class PackError(JobFailedError):
    """The environment cannot be packed (a requirement is missing, an engine is not installed, …)."""


@dataclass(frozen=True)
class Packed:
    """What :func:`pack` wrote."""

    path: Path
    bytes: int
    files: int
    manifest: dict


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def site_packages() -> Path:
    """This environment's ``site-packages`` (purelib)."""
    return Path(sysconfig.get_paths()["purelib"])


def _installed(site: Path) -> dict[str, metadata.Distribution]:
    out = {}
    for dist in metadata.distributions(path=[str(site)]):
        name = dist.metadata["Name"]
        if name:
            out.setdefault(_norm(name), dist)
    return out


def _requirements(dist: metadata.Distribution) -> list[str]:
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for line in dist.requires or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            log.debug("%s: unparsable requirement %r skipped", dist.metadata["Name"], line)
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(_norm(req.name))
    return names


def closure(roots: Iterable[str], installed: dict[str, metadata.Distribution],
            unfollowed: Iterable[str] = ()) -> list[str]:
    """The distributions ``roots`` need, followed through ``installed`` (names normalised, sorted).

    Requirements that are not installed are skipped with a log line (a marker may exclude them here);
    a root that is not installed raises :class:`PackError`.
    """
    stop = {_norm(n) for n in unfollowed}
    todo, seen = [_norm(r) for r in roots], set()
    for root in todo:
        if root not in installed:
            raise PackError(f"{root} is not installed in {sys.prefix}: install it, or leave out what needs it")
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in stop:
            continue
        for req in _requirements(installed[name]):
            if req in installed:
                todo.append(req)
            else:
                log.debug("%s requires %s, which is not installed: skipped", name, req)
    return sorted(seen)


def _editable_source(dist: metadata.Distribution) -> Path | None:
    """The source package directory of an editable install, else None."""
    text = dist.read_text("direct_url.json")
    if not text or not json.loads(text).get("dir_info", {}).get("editable"):
        return None
    import importlib.util

    top = (dist.read_text("top_level.txt") or dist.metadata["Name"]).split()[0]
    spec = importlib.util.find_spec(top)
    return Path(spec.origin).parent if spec and spec.origin else None


def _dist_files(dist: metadata.Distribution, site: Path, with_spark_jars: bool) -> dict[str, Path]:
    """Archive name (under site-packages) → file, of one distribution."""
    files: dict[str, Path] = {}
    source = _editable_source(dist)
    for f in dist.files or []:
        rel = f.as_posix()
        if rel.startswith("..") or "/__pycache__/" in f"/{rel}" or rel.endswith(".pth"):
            continue  # scripts and data outside site-packages (their shebangs name this venv), byte code
        if source is not None and (rel.startswith("_editable") or rel.endswith("direct_url.json")):
            continue  # the editable hooks, and the record that makes pip see an editable install
        if not with_spark_jars and _SPARK_JARS.match(rel):
            continue
        path = site / f
        if path.is_file():
            files[rel] = path
    if source is not None:
        for path in sorted(source.rglob("*")):
            if path.is_file() and not _SKIP_DIRS & set(path.relative_to(source).parts) and path.suffix != ".pyc":
                files.setdefault(f"{source.name}/{path.relative_to(source).as_posix()}", path)
    return files


def _engines(names: Iterable[str] | None) -> list:
    from cxrzoo.engine.base import engine_class, engine_names

    chosen = list(names) if names else [n for n in engine_names() if engine_class(n).available() is None]
    classes = []
    for name in chosen:
        cls = engine_class(name)
        why = cls.available()
        if why is not None:
            raise PackError(f"engine {name!r} cannot be packed: {why}")
        classes.append(cls)
    return classes


def base_python() -> Path:
    """The interpreter this environment was made from (what a node must have at the same path)."""
    return Path(getattr(sys, "_base_executable", sys.executable))


def _info(name: str, size: int = 0, mode: int = 0o644, kind: bytes = tarfile.REGTYPE, link: str = "",
          mtime: float | None = None) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.type, ti.linkname = size, mode, kind, link
    ti.mtime = int(time.time() if mtime is None else mtime)
    return ti


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    tar.addfile(_info(name, len(data), mode), io.BytesIO(data))


def _launcher() -> bytes:
    return (b'#!/bin/sh\n# cxrzoo from this unpacked environment, wherever it lies\n'
            b'exec "$(dirname "$0")/python" -m cxrzoo.cli "$@"\n')


def pack(out: str | os.PathLike, engines: Iterable[str] | None = None, with_spark_jars: bool = False,
         compress_level: int = 6) -> Packed:
    """Write this environment, as executors need it, to the ``.tar.gz`` archive ``out`` (atomically).

    Parameters
    ----------
    out : path
        The archive to write (replaced atomically; a killed run leaves no partial archive).
    engines : list of str, optional
        Training engines to include (default: every one installed here).
    with_spark_jars : bool
        Keep pyspark's own jars (for nodes without a Spark installation; about 300 MB).
    compress_level : int
        gzip level, 1 (fast) to 9.

    Returns
    -------
    Packed
        The archive's path, size, file count and manifest.

    Raises
    ------
    PackError
        cxrzoo, a requirement root or an asked engine is not installed here.
    """
    site = site_packages()
    installed = _installed(site)
    if "cxrzoo" not in installed:
        raise PackError(f"cxrzoo is not installed in {site} (pip install cxrzoo, or `make venv` in a checkout)")
    classes = _engines(engines)
    roots = ["cxrzoo"] + [d for cls in classes for d in cls.distributions]
    unfollowed = [d for cls in classes if not cls.follow_requirements for d in cls.distributions]
    names = closure(roots, installed, unfollowed)
    pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_arc = f"lib/{pyver}/site-packages"
    files: dict[str, Path] = {}
    for name in names:
        for rel, path in _dist_files(installed[name], site, with_spark_jars).items():
            files.setdefault(f"{site_arc}/{rel}", path)
    base = base_python()
    manifest = {
        "format": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cxrzoo": installed["cxrzoo"].version,
        "python": {"version": sys.version.split()[0], "base_executable": str(base), "implementation":
                   sys.implementation.name, "platform": sysconfig.get_platform()},
        "site_packages": site_arc, "engines": [cls.name for cls in classes],
        "spark": {"pyspark": installed["pyspark"].version if "pyspark" in installed else None,
                  "jars_included": with_spark_jars},
        "distributions": {n: installed[n].version for n in names},
    }
    cfg = (f"home = {base.parent}\ninclude-system-site-packages = false\n"
           f"version = {sys.version.split()[0]}\n").encode()
    total = sum(p.stat().st_size for p in files.values())
    log.info("packing %d distributions, %d files (%.0f MB) for engines %s", len(names), len(files), total / 1e6,
             ", ".join(manifest["engines"]) or "(none)")

    members = []

    def write(tmp: str) -> None:
        members.clear()  # a retried write counts afresh
        with tarfile.open(tmp, "w:gz", compresslevel=compress_level) as tar:
            _add_bytes(tar, MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
            _add_bytes(tar, "pyvenv.cfg", cfg)
            tar.addfile(_info("bin", mode=0o755, kind=tarfile.DIRTYPE))
            tar.addfile(_info("bin/python", kind=tarfile.SYMTYPE, link=str(base), mode=0o777))
            for alias in ("python3", pyver):
                tar.addfile(_info(f"bin/{alias}", kind=tarfile.SYMTYPE, link="python", mode=0o777))
            _add_bytes(tar, "bin/cxrzoo", _launcher(), 0o755)
            for arc in sorted(files):
                st = files[arc].stat()
                with open(files[arc], "rb") as fh:
                    tar.addfile(_info(arc, st.st_size, st.st_mode & 0o777 | 0o644, mtime=st.st_mtime), fh)
            members.extend(tar.getnames())

    atomic.replace(out, write)
    size = Path(out).stat().st_size
    log.info("wrote %s: %.0f MB (from %.0f MB)", out, size / 1e6, total / 1e6)
    return Packed(Path(out), size, len(members), manifest)


def read_manifest(archive: str | os.PathLike) -> dict:
    """The manifest of an archive :func:`pack` wrote (its first member: read without unpacking the rest).

    Raises
    ------
    PackError
        Not such an archive.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile() or first.size > 1 << 20:
                raise PackError(f"{archive} was not written by `cxrzoo pack` (no {MANIFEST} first): pack it again")
            return json.loads(tar.extractfile(first).read())
    except (OSError, tarfile.TarError, ValueError) as e:
        raise PackError(f"{archive}: not a readable cxrzoo archive ({e}): pack it again with `cxrzoo pack`") from e
