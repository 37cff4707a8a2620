"""The command line's input paths, checked before Spark or an engine starts.

A wrong path is then one line naming the option, the path, what is wrong with it and what to give
instead (:class:`BadInputError`, exit status 2), not a Spark error after the JVM started.  Checked
are local paths, plain or ``file:``: that they exist, are a directory or a file as the option wants,
and that a file's first bytes are what it should hold (Parquet's ``PAR1`` magic, text in a CSV);
model and IR directories are read with their own readers (their card's JSON, format and keys).

Left to Spark are other file systems' URIs (``hdfs://``, ``s3a://`` ...), glob patterns, and plain
Parquet paths where Hadoop's ``core-site.xml`` (in ``$HADOOP_CONF_DIR`` or ``$YARN_CONF_DIR``) sets
``fs.defaultFS`` to another file system (Spark reads a plain path there).  What Spark reports about
them, a path that does not exist or holds no Parquet, becomes one line by :func:`spark_input_error`.
"""
from __future__ import annotations

import argparse
import codecs
import gzip
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from cxrzoo.atomic import local_path
from cxrzoo.errors import InputError


class BadInputError(InputError):
    """A path or value given on the command line cannot be used; the message names it and the fix."""


PARQUET, DIRECTORY, TEXT, FILE, MODEL, IR = "parquet", "directory", "text", "file", "model", "ir"
_INGESTED = "give the Parquet that `cxrzoo ingest --out` wrote"
_MODEL = "give the directory `cxrzoo train --out` wrote"
_IR = "give the directory `cxrzoo export --out` wrote"
_IMAGES = "give the directory of the PNG/JPEG/DICOM files"

# per command: (option, attribute of the parsed arguments, kind, what to give instead)
INPUTS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "ingest": (("--images", "images", DIRECTORY, _IMAGES),
               ("--labels", "labels", TEXT, "give the labels CSV (nih: Data_Entry_2017.csv; chexpert: train.csv or "
                "valid.csv; mimic: mimic-cxr-2.0.0-chexpert.csv.gz)"),
               ("--split", "split", TEXT, "give the split list (nih: train_val_list.txt or test_list.txt; mimic: "
                "mimic-cxr-2.0.0-split.csv.gz)"),
               ("--metadata", "metadata", TEXT, "give MIMIC-CXR's mimic-cxr-2.0.0-metadata.csv.gz")),
    "train": (("--data", "data", PARQUET, _INGESTED), ("--validation", "validation", PARQUET, _INGESTED),
              ("--pretrained", "pretrained", FILE, "give a torchvision-layout checkpoint file (.pth or .safetensors)")),
    "evaluate": (("--model", "model", MODEL, _MODEL), ("--data", "data", PARQUET, _INGESTED)),
    "export": (("--model", "model", MODEL, _MODEL), ("--calibration", "calibration", PARQUET, _INGESTED),
               ("--check", "check", PARQUET, _INGESTED)),
    "score": (("--model", "model", IR, _IR), ("--images", "images", DIRECTORY, _IMAGES),
              ("--data", "data", PARQUET, _INGESTED)),
    "predict": (("--model", "model", IR, _IR + " (`make demo` leaves demo-out/ir)"),),
    "spark-conf": (("--archive", "archive", FILE, "write one with `cxrzoo pack --out cxrzoo-env.tar.gz`"),),
    "report": (("--model", "model", MODEL, _MODEL), ("--data", "data", PARQUET, _INGESTED),
               ("--boxes", "boxes", TEXT, "give NIH's BBox_List_2017.csv")),
}
_GLOB = re.compile(r"[*?\[{]")
_HEAD = 1 << 16  # bytes of a text file looked at
_PACKED = (".zip", ".bz2", ".xz", ".zst", ".tar")  # compressions pandas reads besides .gz
_PARQUET_MAGIC = (b"PAR1", b"PARE")  # plain, and with an encrypted footer


def check_inputs(args: argparse.Namespace) -> None:
    """Check the input paths of ``args.command`` (see the module's docstring), the training engine and
    ``$CXRZOO_MASTER``.

    Raises
    ------
    BadInputError
        For the first input that cannot be used: the option, the path, the problem and the fix.
    """
    _check_master_env(args)
    _check_engine(args)
    for option, attr, kind, fix in INPUTS.get(args.command, ()):
        value = getattr(args, attr, None)
        if value:
            _check(option, str(value), kind, fix)


def _check_master_env(args: argparse.Namespace) -> None:
    from cxrzoo.cli_parser import master_url

    env = os.environ.get("CXRZOO_MASTER")
    if hasattr(args, "master") and args.master is None and env:
        try:
            master_url(env)
        except argparse.ArgumentTypeError as e:
            raise BadInputError(f"$CXRZOO_MASTER: {e} (or pass --master)") from None


def _check_engine(args: argparse.Namespace) -> None:
    """The engine ``--engine`` names for training must be installed here (checked before Spark starts with its
    settings)."""
    from cxrzoo.engine.base import engine_class, engine_names

    name = getattr(args, "engine", None)
    if args.command not in ("train", "demo") or not name or name == "auto":
        return
    why = engine_class(name).available()
    if why is not None:
        usable = [n for n in engine_names() if n != name and engine_class(n).available() is None]
        instead = f"train with --engine {' or '.join(usable)} (or auto)" if usable else "install an engine"
        raise BadInputError(f"--engine {name}: not available here ({why}); install it, or {instead}")


def default_fs() -> str:
    """Hadoop's ``fs.defaultFS`` from ``core-site.xml`` in ``$HADOOP_CONF_DIR`` or ``$YARN_CONF_DIR`` (else
    ``file:///``): where Spark reads a path without a scheme."""
    for var in ("HADOOP_CONF_DIR", "YARN_CONF_DIR"):
        if not os.environ.get(var):
            continue
        try:
            root = ET.parse(Path(os.environ[var]) / "core-site.xml").getroot()
        except (OSError, ET.ParseError):
            continue
        for prop in root.iter("property"):
            if (prop.findtext("name") or "").strip() in ("fs.defaultFS", "fs.default.name"):
                return (prop.findtext("value") or "").strip() or "file:///"
    return "file:///"


def _local(value: str, kind: str) -> Path | None:
    """The local path ``value`` names for an input of ``kind``, or None when Spark is left to read it."""
    local = local_path(value)
    if local is None or _GLOB.search(value):
        return None
    plain = not value.startswith("file:")
    if kind == PARQUET and plain and not default_fs().startswith("file:"):
        return None
    return Path(local)


def _check(option: str, value: str, kind: str, fix: str) -> None:
    path = _local(value, kind)
    if path is None:
        return
    where = f"{option} {value}"
    if not path.exists():
        raise BadInputError(f"{where}: no such {'directory' if kind in (DIRECTORY, MODEL, IR) else 'file or directory'}"
                            f"; {fix}")
    if kind in (DIRECTORY, MODEL, IR) and not path.is_dir():
        raise BadInputError(f"{where}: is a file, not a directory; {fix}")
    if kind in (TEXT, FILE) and path.is_dir():
        raise BadInputError(f"{where}: is a directory, not a file; {fix}")
    if kind == TEXT:
        _check_text(where, path, fix)
    elif kind == FILE:
        _head(where, path, 1, fix)
    elif kind == PARQUET:
        _check_parquet(where, path, fix)
    elif kind in (MODEL, IR):
        _check_model(where, path, kind)


def _head(where: str, path: Path, n: int, fix: str) -> bytes:
    """The first ``n`` bytes of ``path`` (decompressed for a ``.gz`` name)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            return f.read(n)
    except gzip.BadGzipFile:
        raise BadInputError(f"{where}: not gzip data although its name ends in .gz; {fix}") from None
    except (OSError, EOFError) as e:
        raise BadInputError(f"{where}: cannot be read ({getattr(e, 'strerror', None) or e}); make it readable, "
                            f"or {fix}") from None


def _check_text(where: str, path: Path, fix: str) -> None:
    if path.suffix in _PACKED:  # pandas unpacks these itself: only whether the file can be read is checked
        _head(where, path, 1, fix)
        return
    head = _head(where, path, _HEAD, fix)
    if not head.strip():
        raise BadInputError(f"{where}: is empty; {fix}")
    nul = head.find(b"\0")  # no text file holds one
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head[:nul] if nul >= 0 else head, final=False)  # a cut
    except UnicodeDecodeError as e:  # character at the end of the head is fine
        nul = e.start
    if nul >= 0:
        raise BadInputError(f"{where}: not a UTF-8 text file (binary content at byte {nul}); {fix}")


def _data_files(root: Path, n: int) -> list[Path]:
    """Up to ``n`` of the files Spark would read under ``root`` (not those named ``_*`` or ``.*``, nor empty ones)."""
    out: list[Path] = []
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        out += [Path(top, f) for f in sorted(files) if not f.startswith(("_", ".")) and _size(Path(top, f))]
        if len(out) >= n:
            break
    return out[:n]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 1  # looked at, and refused, by _head


def _check_parquet(where: str, path: Path, fix: str) -> None:
    files = [path] if path.is_file() else _data_files(path, 3)
    if not files:
        raise BadInputError(f"{where}: holds no Parquet files; {fix}")
    for f in files:
        if _head(where, f, 4, fix) not in _PARQUET_MAGIC:
            what = "not a Parquet file" if f == path else f"{f.relative_to(path)} in it is not a Parquet file"
            raise BadInputError(f"{where}: {what}; {fix}")


def _check_model(where: str, path: Path, kind: str) -> None:
    if kind == MODEL:
        from cxrzoo.models.modeldir import ModelDirError, read_card

        errors: tuple[type[Exception], ...] = (ModelDirError,)
    else:
        from cxrzoo.score.runtime import NotAnIRDirError, read_card

        errors = (NotAnIRDirError,)
    try:
        read_card(path)
    except errors as e:
        raise BadInputError(f"{where}: {e}") from None


_SPARK_PATH = re.compile(r"Path does not exist: (\S+?)\.?(?:\s|$)")


def spark_input_error(error: BaseException, args: argparse.Namespace) -> str | None:
    """One line for a Spark error caused by an input path of ``args`` (one that does not exist, or holds no
    Parquet Spark can read), else None."""
    text = str(error)
    given = [(option, str(getattr(args, attr))) for option, attr, kind, _ in INPUTS.get(args.command, ())
             if getattr(args, attr, None) and kind in (PARQUET, DIRECTORY)]
    if "[PATH_NOT_FOUND]" in text:
        m = _SPARK_PATH.search(text)
        missing = m.group(1) if m else "?"
        named = [f"{o} {v}" for o, v in given if _same_path(v, missing)]
        return (f"{named[0] if named else missing}: no such file or directory (Spark: {missing} does not exist); "
                "check the path, and that the cluster's file system holds it")
    if "[UNABLE_TO_INFER_SCHEMA]" in text:
        named = ", ".join(f"{o} {v}" for o, v in given if o != "--images") or "the input"
        return f"{named}: Spark found no Parquet data to read; {_INGESTED}"
    return None


def _same_path(value: str, reported: str) -> bool:
    """Whether Spark's ``reported`` path (qualified: ``file:/abs``, ``hdfs://nn/abs``) is the one given as ``value``."""
    local, rep = local_path(value), local_path(reported)
    if local is not None and rep is not None:
        return os.path.abspath(local) == os.path.abspath(rep)
    return reported.rstrip("/").endswith(value.rstrip("/").split("://", 1)[-1].lstrip("/"))
