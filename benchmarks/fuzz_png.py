"""Fuzz cxrzoo's PNG decoder: mutations of real and generated PNGs, counting inputs, crashes and hangs.

Inputs are decoded in a child process, one at a time, under a time limit (``--hang-seconds``) that the
parent enforces: an input past it is a **hang** (the child is killed and restarted, the run goes on), a
child that dies (a segfault) or any exception other than ``ImageDecodeError`` is a **crash**.  Every
other input is decoded with a 4× downscale (the fused unfilter + block-mean kernel on square 8-bit gray
files).  Mutations repair chunk CRCs half of the time so that they reach inflate, unfilter and gray
conversion instead of stopping at the CRC check.  Every ``--big-every``-th input mutates an NIH-size seed
(1024², a synthetic radiograph, and the real NIH file when present), so the SIMD wavefront unfilter runs
over full 15-row bands, not just a few rows.

    .venv/bin/python benchmarks/fuzz_png.py --n 1000000 [--json]
"""
from __future__ import annotations

import argparse
import json
import logging
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

log = logging.getLogger("fuzz_png")
_SIG = b"\x89PNG\r\n\x1a\n"


def _split(data: bytes) -> list[list]:
    """[kind, body] chunks of a well-formed PNG."""
    pos, out = 8, []
    while pos + 12 <= len(data):
        n, kind = struct.unpack_from(">I4s", data, pos)
        out.append([kind, data[pos + 8: pos + 8 + n]])
        pos += 12 + n
    return out


def _join(chunks: list[list], fix_crc: bool, rng: np.random.Generator) -> bytes:
    out = bytearray(_SIG)
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF if fix_crc else int(rng.integers(0, 2**32))
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
    return bytes(out)


def mutate(seed_png: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation of ``seed_png``: byte flips, truncation, chunk edits, inflate-stream edits."""
    op = int(rng.integers(0, 8))
    data = bytearray(seed_png)
    if op == 0:  # flip random bytes anywhere
        for _ in range(int(rng.integers(1, 8))):
            i = int(rng.integers(0, len(data)))
            data[i] ^= int(rng.integers(1, 256))
        return bytes(data)
    if op == 1:  # truncate
        return bytes(data[: int(rng.integers(0, len(data)))])
    if op == 2:  # append garbage
        return bytes(data) + bytes(rng.integers(0, 256, int(rng.integers(1, 64))).astype(np.uint8))
    chunks = _split(seed_png)
    fix = bool(rng.integers(0, 2)) or op >= 5
    if op == 3:  # lie in a length field
        i = int(rng.integers(0, len(chunks)))
        raw = _join(chunks, True, rng)
        pos = 8 + sum(12 + len(b) for _, b in chunks[:i])
        lie = int(rng.choice([0, 1, 2**31 - 1, 2**32 - 1, len(chunks[i][1]) + int(rng.integers(-9, 9)) % 2**32]))
        return raw[:pos] + struct.pack(">I", lie % 2**32) + raw[pos + 4:]
    if op == 4:  # drop or duplicate a chunk
        i = int(rng.integers(0, len(chunks)))
        chunks = chunks[:i] + chunks[i + 1:] if rng.integers(0, 2) else chunks[:i] + [chunks[i]] + chunks[i:]
        return _join(chunks, fix, rng)
    if op == 5:  # edit IHDR fields
        ihdr = bytearray(chunks[0][1])
        field = int(rng.integers(0, 13))
        ihdr[field] = int(rng.integers(0, 256))
        chunks[0][1] = bytes(ihdr)
        return _join(chunks, fix, rng)
    # op 6-7: corrupt the compressed stream, or recompress corrupted filtered rows (reaches unfilter)
    idat = [c for c in chunks if c[0] == b"IDAT"]
    if not idat:
        return bytes(data)
    body = bytearray(idat[0][1])
    if op == 6 and len(body) > 2:
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(2, len(body)))
            body[i] ^= int(rng.integers(1, 256))
        idat[0][1] = bytes(body)
    else:
        try:
            raw = bytearray(zlib.decompress(bytes(body)))
        except zlib.error:
            return bytes(data)
        for _ in range(int(rng.integers(1, 6))):
            if raw:
                raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
        if rng.integers(0, 4) == 0:
            raw = raw[: int(rng.integers(0, len(raw) + 1))]
        idat[0][1] = zlib.compress(bytes(raw))
    return _join(chunks, fix, rng)


def seeds(shared: Path | None) -> list[bytes]:
    """Seed corpus: small PNGs of every colour type and bit depth, plus real NIH files when present."""
    import cv2

    rng = np.random.default_rng(0)
    out = []
    for shape in [(16, 16), (9, 11), (9, 11, 3), (9, 11, 4)]:
        for dtype in (np.uint8, np.uint16):
            img = rng.integers(0, np.iinfo(dtype).max, shape).astype(dtype)
            out.append(cv2.imencode(".png", img)[1].tobytes())
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    try:
        from pngmaker import make_png

        for ct, bd in [(0, 1), (0, 2), (0, 4), (3, 1), (3, 4), (3, 8), (4, 8)]:
            n = 1 << bd if ct != 4 else 256
            pal = rng.integers(0, 256, (min(n, 256), 3)) if ct == 3 else None
            c = 2 if ct == 4 else 1
            out.append(make_png(rng.integers(0, min(n, 256), (7, 13, c)), ct, bd, palette=pal))
    except ImportError:
        pass
    return out


def big_seeds(shared: Path | None) -> list[bytes]:
    """NIH-size seeds: a 1024² synthetic radiograph (8 and 16 bits) and the first real NIH file, if present."""
    import cv2

    from cxrzoo.synth.phantom import render

    img8 = render("Nodule|Effusion", 1024, 0)  # uint8
    out = [cv2.imencode(".png", img8)[1].tobytes(), cv2.imencode(".png", img8.astype(np.uint16) * 257)[1].tobytes()]
    if shared and shared.is_dir():
        out += [p.read_bytes() for p in sorted(shared.glob("*.png"))[:1]]
    return out


def _decode(msg: tuple[bytes, int | None], _workdir: str) -> dict:
    """In the child: decode one input; its outcome."""
    from cxrzoo.ingest import ImageDecodeError, decode_gray

    data, reduce = msg
    try:
        out = decode_gray(data, reduce, max_pixels=1 << 22)
        if out.dtype != np.uint8 or out.ndim != 2:
            return {"outcome": "crash", "reason": f"decoded to {out.dtype} of shape {out.shape}"}
        return {"outcome": "decoded"}
    except ImageDecodeError:
        return {"outcome": "rejected"}
    except Exception as e:  # noqa: BLE001 - anything else is a finding
        return {"outcome": "crash", "reason": f"{type(e).__name__}: {e}"[:200]}


def run(n: int, seed: int = 0, hang_seconds: float = 2.0, shared: Path | None = None, big_every: int = 10) -> dict:
    """Fuzz ``n`` inputs; the counts (``crash_examples`` holds the first few crashes and hangs)."""
    from _fuzzchild import ChildRunner

    corpus, big = seeds(shared), big_seeds(shared)
    rng = np.random.default_rng(seed)
    counts: dict = {"inputs": 0, "decoded": 0, "rejected": 0, "crashes": 0, "hangs": 0, "big_inputs": 0,
                    "slowest_s": 0.0, "crash_examples": []}
    with ChildRunner(_decode, hang_seconds, warmup=[(b, r) for b in corpus + big for r in (None, 4)]) as runner:
        for i in range(n):
            from_big = big_every > 0 and i % big_every == big_every - 1
            data = mutate(big[i % len(big)] if from_big else corpus[i % len(corpus)], rng)
            res = runner.call((data, None if i % 2 else 4))  # even: the fused downscale path
            counts["slowest_s"] = max(counts["slowest_s"], round(runner.last_seconds, 3))
            outcome = res["outcome"]
            counts[{"decoded": "decoded", "rejected": "rejected", "crash": "crashes", "hang": "hangs"}[outcome]] += 1
            if outcome in ("crash", "hang"):
                log.error("%s on input %d: %s", outcome, i, res["reason"])
                if len(counts["crash_examples"]) < 5:
                    counts["crash_examples"].append(res["reason"])
            counts["inputs"] += 1
            counts["big_inputs"] += from_big
            if (i + 1) % 100_000 == 0:
                log.info("%d inputs, %d crashes, %d hangs", i + 1, counts["crashes"], counts["hangs"])
    return counts


def main() -> None:
    """Run the fuzzer and print its counts (table, then one JSON line)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="inputs to try")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hang-seconds", type=float, default=2.0, help="per-input time limit (default: 2 s)")
    ap.add_argument("--big-every", type=int, default=10, help="every k-th input mutates an NIH-size seed")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/nih-sample")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    counts = run(args.n, args.seed, args.hang_seconds, args.shared, args.big_every)
    counts["seconds"] = round(time.perf_counter() - t0, 1)
    log.info("fuzzed %d inputs (%d from NIH-size seeds) in %.0fs: %d decoded, %d rejected cleanly, %d crashes, "
             "%d hangs; slowest input %.2f s", counts["inputs"], counts["big_inputs"], counts["seconds"],
             counts["decoded"], counts["rejected"], counts["crashes"], counts["hangs"], counts["slowest_s"])
    print(json.dumps({"benchmark": "fuzz_png", **counts}))  # noqa: T201 - the one JSON line
    sys.exit(1 if counts["crashes"] or counts["hangs"] else 0)


if __name__ == "__main__":
    main()
