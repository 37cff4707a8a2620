"""The one atomic-replace helper: readers see old or new, a failed write keeps the old, a killed one is mended."""
from __future__ import annotations

from pathlib import Path

import pytest

from cxrzoo import atomic


def _dir(path: Path, text: str) -> None:
    path.mkdir(parents=True)
    (path / "part").write_text(text)


def _siblings(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name != target.name)


def test_replace_swaps_in_the_new_version_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "out"
    atomic.replace(target, lambda tmp: _dir(Path(tmp), "one"))
    atomic.replace(target, lambda tmp: _dir(Path(tmp), "two"))
    assert (target / "part").read_text() == "two" and _siblings(target) == []


def test_a_failed_write_keeps_the_old_version(tmp_path):
    target = tmp_path / "out"
    atomic.replace(target, lambda tmp: _dir(Path(tmp), "old"))

    def broken(tmp: str) -> None:
        _dir(Path(tmp), "half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.replace(target, broken)
    assert (target / "part").read_text() == "old" and _siblings(target) == []


def test_a_write_killed_between_the_renames_is_mended_by_the_next(tmp_path):
    target = tmp_path / "out"
    _dir(tmp_path / ".out.old-0badc0de", "old")  # the old version, moved aside; the kill came before "new in"
    _dir(tmp_path / ".out.tmp-deadbeef", "complete but never renamed")
    _dir(tmp_path / "out._tmp-12345678", "what cxrzoo before 0.2 left")
    atomic.clean_leftovers(atomic._Local(), str(target))
    assert (target / "part").read_text() == "old" and _siblings(target) == []  # the last complete version is back
    _dir(tmp_path / ".out.tmp-feedface", "partial")
    atomic.replace(target, lambda tmp: _dir(Path(tmp), "new"))
    assert (target / "part").read_text() == "new" and _siblings(target) == []


def test_the_same_protocol_through_hadoops_file_system(spark, tmp_path):
    target = f"file://{tmp_path}/out"
    fs = atomic._Hadoop(spark, target)
    atomic._replace(fs, target, lambda tmp: _dir(Path(atomic.local_path(tmp)), "one"))
    _dir(tmp_path / ".out.tmp-deadbeef", "partial")
    atomic._replace(fs, target, lambda tmp: _dir(Path(atomic.local_path(tmp)), "two"))
    assert (tmp_path / "out" / "part").read_text() == "two" and _siblings(tmp_path / "out") == []
    atomic.write_text(f"{target}/note.txt", "hello", spark)  # local path: the file variant
    assert (tmp_path / "out" / "note.txt").read_text() == "hello"


def test_files_replace_in_one_rename(tmp_path):
    path = tmp_path / "report.json"
    (tmp_path / ".report.json.tmp").write_text("a killed write's partial")
    atomic.write_text(path, "{}\n")
    atomic.write_bytes(path, b"[]\n")
    assert path.read_text() == "[]\n" and _siblings(path) == []


def test_a_failed_swap_puts_the_old_version_back(tmp_path):
    class FlakyRename(atomic._Local):
        def rename(self, src: str, dst: str) -> bool:
            if ".tmp-" in src:
                raise OSError("rename failed")
            return super().rename(src, dst)

    target = tmp_path / "out"
    atomic.replace(target, lambda tmp: _dir(Path(tmp), "old"))
    with pytest.raises(OSError, match="rename failed"):
        atomic._replace(FlakyRename(), str(target), lambda tmp: _dir(Path(tmp), "new"))
    assert (target / "part").read_text() == "old" and _siblings(target) == []


def test_a_hadoop_path_without_spark_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="needs a running SparkSession"):
        atomic.replace_with_local_dir("hdfs://nn:8020/out", lambda d: pytest.fail("built anyway"), None)
