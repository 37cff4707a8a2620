"""The soak's data set: cxrzoo's synthetic NIH images with a share of bad files mixed in, and its ground truth.

Layout under ``root``::

    images/first/a/*.png   the first ``checkpoint`` images (the 5,000-image measurement)
    images/first/b/*.png   their duplicate-named copies
    images/rest/a/*.png    the others
    images/rest/b/*.png    their duplicate-named copies
    labels_first.csv       NIH-format label rows for images/first
    labels_all.csv         label rows for all of images/
    labels_bad_format.csv  labels_first.csv with one row's finding replaced by an unknown label
    ground_truth.json      which file is which kind, per phase

Kinds (each ``max(2, round(n * bad_rate / 5))`` times, spread over both halves):

- ``corrupt``: bytes flipped inside the IDAT data, the chunk CRC left wrong or (every other file) repaired, so
  that the zlib stream's own checks must catch it;
- ``truncated``: cut at a random byte after the IHDR chunk;
- ``orphan``: a good file whose label row is removed (a file with no CSV row);
- ``missing``: a label row whose file is deleted (a CSV row for a file that does not exist);
- ``duplicate``: ``a/X.png`` and ``b/X.png``, the second another image's bytes under X's name.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np

log = logging.getLogger("bench.soak")
KINDS = ("corrupt", "truncated", "orphan", "missing", "duplicate")


def _chunks(data: bytes):
    """(offset of the length field, type, body start, body length) of each chunk of a PNG."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        yield pos, kind, pos + 8, length
        pos += 12 + length


def corrupt_png(data: bytes, rng: np.random.Generator, repair_crc: bool, flips: int = 8) -> bytes:
    """``data`` with ``flips`` bytes inside the IDAT data XOR-ed with random non-zero values."""
    out = bytearray(data)
    for pos, kind, start, length in _chunks(data):
        if kind == b"IDAT" and length > 16:
            for off in rng.choice(np.arange(2, length), size=min(flips, length - 2), replace=False):
                out[start + int(off)] ^= int(rng.integers(1, 256))
            if repair_crc:
                crc = zlib.crc32(bytes(out[pos + 4:start + length])) & 0xFFFFFFFF
                out[start + length:start + length + 4] = struct.pack(">I", crc)
            return bytes(out)
    raise ValueError("no IDAT chunk to corrupt")


def _pick(rng: np.random.Generator, pool: list[int], counts: dict[str, int]) -> dict[str, list[int]]:
    order = [int(i) for i in rng.permutation(pool)]
    out, at = {}, 0
    for kind, c in counts.items():
        out[kind], at = order[at:at + c], at + c
    out["source"] = order[at:]  # good files: duplicates take their bytes from these
    return out


def _per_kind(n: int, rate: float) -> int:
    return max(2, round(n * rate / len(KINDS)))


def build(root: Path, n: int, size: int, seed: int, checkpoint: int, bad_rate: float = 0.01,
          workers: int = 2) -> dict:
    """Write the data set under ``root``; return (and write) its ground truth."""
    from cxrzoo.synth import write_dataset

    rng = np.random.default_rng(seed)
    synth = write_dataset(root / "synth", n=n, size=size, seed=seed, workers=workers)
    lines = synth.labels_csv.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    names = [r.split(",", 1)[0] for r in rows]
    c = _per_kind(n, bad_rate)
    c_first = max(1, round(c * checkpoint / n))
    counts = {"first": dict.fromkeys(KINDS, c_first), "rest": dict.fromkeys(KINDS, c - c_first)}
    picks = {"first": _pick(rng, list(range(checkpoint)), counts["first"]),
             "rest": _pick(rng, list(range(checkpoint, n)), counts["rest"])}
    files: dict[str, str] = {}  # absolute path -> kind
    details: dict[str, str] = {}
    missing: list[str] = []
    orphans: list[str] = []
    groups: dict[str, list[str]] = {}
    bad_label = None
    for phase, pick in picks.items():
        a, b = root / "images" / phase / "a", root / "images" / phase / "b"
        a.mkdir(parents=True)
        b.mkdir()
        idx = range(checkpoint) if phase == "first" else range(checkpoint, n)
        for i in idx:
            dest = a / names[i]
            os.replace(synth.images / names[i], dest)
            files[str(dest)] = "good"
        for i in pick["corrupt"]:
            p = a / names[i]
            repaired = sum(k == "corrupt" for k in files.values()) % 2 == 1  # every other one, over both halves
            p.write_bytes(corrupt_png(p.read_bytes(), rng, repair_crc=repaired))
            files[str(p)], details[str(p)] = "corrupt", "crc repaired" if repaired else "crc wrong"
        for i in pick["truncated"]:
            p = a / names[i]
            data = p.read_bytes()
            cut = int(rng.integers(34, int(len(data) * 0.95)))
            p.write_bytes(data[:cut])
            files[str(p)], details[str(p)] = "truncated", f"{cut} of {len(data)} bytes"
        for i in pick["orphan"]:
            files[str(a / names[i])] = "orphan"
            orphans.append(names[i])
        for i in pick["missing"]:
            (a / names[i]).unlink()
            del files[str(a / names[i])]
            missing.append(names[i])
        sources = pick["source"]
        for j, i in enumerate(pick["duplicate"]):
            src = sources[j % len(sources)]
            copy = b / names[i]
            copy.write_bytes((a / names[src]).read_bytes())
            files[str(a / names[i])] = files[str(copy)] = "duplicate"
            details[str(copy)] = f"the bytes of {names[src]}"
            groups[names[i]] = [str(a / names[i]), str(copy)]
        if phase == "first":
            bad_label = names[sources[-1]]
    skip = set(orphans)
    csvs = {"first": [r for i, r in enumerate(rows) if i < checkpoint and names[i] not in skip],
            "all": [r for i, r in enumerate(rows) if names[i] not in skip]}
    for phase, body in csvs.items():
        (root / f"labels_{phase}.csv").write_text("\n".join([header] + body) + "\n")
    bad = list(csvs["first"])
    line = next(k for k, r in enumerate(bad) if r.split(",", 1)[0] == bad_label)
    parts = bad[line].split(",")
    parts[1] = "Not_A_Finding"
    bad[line] = ",".join(parts)
    (root / "labels_bad_format.csv").write_text("\n".join([header] + bad) + "\n")
    first_dir = str(root / "images" / "first") + "/"
    truth = {"n": n, "size": size, "seed": seed, "per_kind": c, "details": details,
             "bad_format": {"csv": str(root / "labels_bad_format.csv"), "image": bad_label, "line": line + 2},
             "phases": {}}
    for phase, d, labels in (("first", root / "images" / "first", "labels_first.csv"),
                             ("all", root / "images", "labels_all.csv")):
        inside = {p: k for p, k in files.items() if phase == "all" or p.startswith(first_dir)}
        truth["phases"][phase] = {
            "dir": str(d), "labels": str(root / labels), "files": inside,
            "csv_names": [r.split(",", 1)[0] for r in csvs[phase]],
            "missing": [m for m in missing if phase == "all" or names.index(m) < checkpoint],
            "orphans": [o for o in orphans if phase == "all" or names.index(o) < checkpoint],
            "dup_groups": {k: v for k, v in groups.items() if phase == "all" or v[0].startswith(first_dir)}}
    (root / "ground_truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    (root / "synth" / "images").rmdir()
    log.info("data: %d synthetic %d² PNGs (%.0f s), %d of each bad kind (%s); %d files on disk", n, size,
             synth.seconds, c, ", ".join(KINDS), len(files))
    return truth


def kind_counts(phase: dict) -> dict[str, int]:
    """How many files of each kind a phase holds (``missing``: label rows without a file)."""
    out: dict[str, int] = {}
    for k in phase["files"].values():
        out[k] = out.get(k, 0) + 1
    out["missing"] = len(phase["missing"])
    return out
