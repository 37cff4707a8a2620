"""Fuzz cxrzoo's DICOM decode path: mutated DICOMs through the Arrow UDF's decoder, counting outcomes.

Every input goes through ``decode_image(..., sandbox=...)``, as in the ingest UDF: a child process with
capped memory and a per-image time limit.  Outcomes:

- **decoded**, or **rejected** with an ``ImageDecodeError`` (an error row), counted by reason;
- **timeouts** and **decoder deaths**: the child overran the limit or died (a codec's segfault); the
  row gets an error and the child is restarted — the job goes on;
- **crashes**: any other exception escaping the decode path (it would fail the Spark task); must be 0;
- **hangs**: one input taking longer than the limit plus ``--grace`` seconds end to end; must be 0.

Mutation classes, in turn: truncation, wrong VR lengths (a length field of an element rewritten), lying
dimensions (Rows, Columns, bits, frames, samples rewritten), corrupt compressed fragments (bytes of the
pixel data's codestream flipped or zeroed), and random byte flips anywhere.

    .venv/bin/python benchmarks/fuzz_dicom.py --n 100000 [--workers 2] [--limit 5] [--json]
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import multiprocessing as mp
import struct
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fuzzchild import merge_counts  # noqa: E402

log = logging.getLogger("fuzz_dicom")
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_IMAGE_TAGS = {(0x0028, 0x0010): "Rows", (0x0028, 0x0011): "Columns", (0x0028, 0x0100): "BitsAllocated",
               (0x0028, 0x0101): "BitsStored", (0x0028, 0x0102): "HighBit", (0x0028, 0x0002): "SamplesPerPixel",
               (0x0028, 0x0103): "PixelRepresentation"}
CLASSES = ("truncation", "vr_length", "dimensions", "fragments", "bytes")


def elements(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """Top-level explicit-VR little-endian elements: (tag group, element, length offset, length size, value
    offset), from the file meta on; stops at an undefined length or where the layout is not explicit VR."""
    out, pos = [], 132
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4: pos + 6]
        if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
            break
        if vr in _LONG_VRS:
            if pos + 12 > len(data):
                break
            n = struct.unpack_from("<I", data, pos + 8)[0]
            out.append((group, elem, pos + 8, 4, pos + 12))
            if n == 0xFFFFFFFF:
                break
            pos += 12 + n
        else:
            n = struct.unpack_from("<H", data, pos + 6)[0]
            out.append((group, elem, pos + 6, 2, pos + 8))
            pos += 8 + n
    return out


def mutate(seed: bytes, rng: np.random.Generator, kind: str) -> bytes:
    """One mutation of class ``kind`` (one of :data:`CLASSES`) of the DICOM file ``seed``."""
    data = bytearray(seed)
    if kind == "truncation":
        return bytes(data[: int(rng.integers(0, len(data)))])
    els = elements(seed)
    if kind == "vr_length" and els:
        _, _, at, size, _ = els[int(rng.integers(0, len(els)))]
        fmt = "<I" if size == 4 else "<H"
        top = 2 ** (8 * size)
        old = struct.unpack_from(fmt, data, at)[0]
        lie = int(rng.choice([0, 1, top - 1, top - 2, (old + int(rng.integers(-16, 17))) % top,
                              int(rng.integers(0, top))]))
        struct.pack_into(fmt, data, at, lie)
        return bytes(data)
    image = [e for e in els if (e[0], e[1]) in _IMAGE_TAGS]
    if kind == "dimensions" and image:
        for _ in range(int(rng.integers(1, 3))):
            _, _, _, _, val = image[int(rng.integers(0, len(image)))]
            struct.pack_into("<H", data, val, int(rng.choice([0, 1, 7, 17, 255, 4096, 65535,
                                                                int(rng.integers(0, 65536))])))
        return bytes(data)
    pixel = [e for e in els if (e[0], e[1]) == (0x7FE0, 0x0010)]
    if kind == "fragments" and pixel:
        start = pixel[0][4]
        for _ in range(int(rng.integers(1, 6))):
            i = int(rng.integers(start, len(data)))
            n = int(rng.integers(1, 16))
            data[i:i + n] = bytes(rng.integers(0, 256, n).astype(np.uint8)) if rng.integers(0, 2) else b"\x00" * n
        return bytes(data)
    for _ in range(int(rng.integers(1, 8))):  # "bytes", or a class that does not apply to this seed
        i = int(rng.integers(0, len(data)))
        data[i] ^= int(rng.integers(1, 256))
    return bytes(data)


def seeds() -> list[bytes]:
    """Small valid DICOMs: every syntax cxrzoo's tests write (64×48, MONOCHROME1/2, 8/12/16 bits) and the
    small real files of pydicom's test data (MR and CT, uncompressed, RLE, JPEG 2000, JPEG-LS, JPEG)."""
    import pydicom

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from dicommaker import dataset, to_bytes

    rng = np.random.default_rng(0)
    out = []
    for syntax in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5",
                   "1.2.840.10008.1.2.4.90"):
        for photometric, dtype, bits in [("MONOCHROME2", np.uint16, 12), ("MONOCHROME1", np.uint8, 8),
                                         ("MONOCHROME2", np.int16, 16)]:
            arr = rng.integers(-2000 if dtype == np.int16 else 0, 2 ** bits if dtype != np.int16 else 2000,
                               (48, 64)).astype(dtype)
            out.append(to_bytes(dataset(arr, photometric, bits_stored=bits, signed=dtype == np.int16,
                                        transfer_syntax=syntax, WindowCenter=100, WindowWidth=900)))
    out.append(to_bytes(dataset(rng.integers(0, 256, (48, 64)).astype(np.uint8),
                                transfer_syntax="1.2.840.10008.1.2.4.50")))
    root = Path(pydicom.__file__).parent / "data" / "test_files"
    for name in ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "CT_small.dcm", "SC_rgb_small_odd_jpeg.dcm"):
        if (root / name).is_file():
            out.append((root / name).read_bytes())
    return out


def _work(args: tuple[int, int, int, float]) -> dict:
    """Fuzz ``n`` inputs with seed ``seed`` (worker ``k``): the counts."""
    k, n, seed, limit = args
    from cxrzoo.ingest.decode import decode_image
    from cxrzoo.ingest.errors import ImageDecodeError
    from cxrzoo.ingest.sandbox import DecoderCrashed, SandboxedDecoder

    corpus, rng = seeds(), np.random.default_rng(seed + 1000 * k)
    counts: dict = {"inputs": 0, "decoded": 0, "rejected": 0, "timeouts": 0, "decoder_deaths": 0, "crashes": 0,
                    "hangs": 0, "slowest_s": 0.0, "by_class": collections.Counter(), "reasons": collections.Counter(),
                    "crash_examples": []}
    with SandboxedDecoder(timeout=limit) as sandbox:
        for i in range(n):
            kind = CLASSES[i % len(CLASSES)]
            data = mutate(corpus[(i // len(CLASSES)) % len(corpus)], rng, kind)
            t = time.perf_counter()
            try:
                img, _ = decode_image(data, 32, 1 << 24, "auto", "fuzz.dcm", sandbox)
                assert img.shape == (32, 32) and img.dtype == np.uint8
                counts["decoded"] += 1
            except DecoderCrashed as e:
                counts["timeouts" if "longer than" in str(e) else "decoder_deaths"] += 1
                counts["reasons"][str(e)[:80]] += 1
            except ImageDecodeError as e:  # DicomError, or the empty file: an error row in the UDF
                counts["rejected"] += 1
                counts["reasons"][str(e).split("(")[0].split(":")[0].strip()[:60]] += 1
            except Exception as e:  # noqa: BLE001 -- this is what the fuzzer looks for
                counts["crashes"] += 1
                if len(counts["crash_examples"]) < 5:
                    counts["crash_examples"].append(f"{kind}: {type(e).__name__}: {e}"[:300])
            dt = time.perf_counter() - t
            counts["hangs"] += dt > limit + 5.0  # past the limit and a restart: the limit did not hold
            counts["slowest_s"] = max(counts["slowest_s"], dt)
            counts["by_class"][kind] += 1
            counts["inputs"] += 1
    return counts


def run(n: int, workers: int = 1, seed: int = 0, limit: float = 5.0) -> dict:
    """Fuzz ``n`` inputs over ``workers`` processes; the summed counts."""
    shares = [(k, n // workers + (k < n % workers), seed, limit) for k in range(workers)]
    if workers == 1:
        parts = [_work(shares[0])]
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_work, shares)
    return merge_counts(parts)


def main() -> None:
    """Run the fuzzer and print its counts (table, then one JSON line)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="inputs to try (default: 100,000)")
    ap.add_argument("--workers", type=int, default=2, help="processes (default: 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=float, default=5.0, help="per-image time limit in seconds (default: 5)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    res = run(args.n, args.workers, args.seed, args.limit)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["seeds"] = len(seeds())
    log.info("%d mutated DICOMs (%s) in %.0f s, %d seeds, per-image limit %g s", res["inputs"],
             ", ".join(f"{k} {v}" for k, v in sorted(res["by_class"].items())), res["seconds"], res["seeds"],
             args.limit)
    for key in ("decoded", "rejected", "timeouts", "decoder_deaths", "crashes", "hangs"):
        log.info("  %-15s %8d", key, res[key])
    log.info("  slowest input   %8.2f s", res["slowest_s"])
    log.info("most common reasons: %s", "; ".join(f"{k} ({v})" for k, v in res["reasons"].most_common(8)))
    for ex in res["crash_examples"]:
        log.info("crash: %s", ex)
    res = {k: (dict(v) if isinstance(v, collections.Counter) else v) for k, v in res.items()}
    print(json.dumps({"benchmark": "fuzz_dicom", **res}))  # noqa: T201
    if res["crashes"] or res["hangs"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
