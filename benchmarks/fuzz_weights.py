"""Fuzz cxrzoo's checkpoint reader: crafted and mutated ``.pth`` (zip and legacy) and ``.safetensors`` files.

Every input is loaded by ``cxrzoo.models.weights.load_state_dict`` in a child process, one file at a time,
with a per-file time limit enforced by the parent (the child is killed and restarted past it).  Outcomes:

- **loaded**, or **rejected** with ``CheckpointFormatError`` / ``UnsafeCheckpointError``, counted by reason;
- **crashes**: any other exception escaping the reader, or the child dying (a read outside a buffer
  segfaults); must be 0;
- **hangs**: a file taking longer than the limit; must be 0;
- **reads outside**: a crafted view that loaded but differs from its storage read element by element in
  Python (:func:`outside`); must be 0;
- **memory**: the child's peak RSS while loading one file (its high-water mark is reset before each) above
  ``MEM_RATIO`` x (file size + the bytes of the arrays it returned) + ``MEM_SLACK``; must be 0.

Classes, in turn: crafted geometry (offsets, sizes, strides: negative, zero, huge), declared sizes against
stored bytes, storage types (bfloat16, unknown, ragged), shared objects (memo DAGs, many views of one storage),
recursion (self-reference, deep nesting), BUILD and forbidden globals, zip structure (deflate bombs, missing
or lying members, byte order), safetensors headers, then truncation and byte flips of valid checkpoints.

    .venv/bin/python benchmarks/fuzz_weights.py --n 100000 [--workers 2] [--limit 5] [--json]
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import multiprocessing as mp
import os
import re
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _fuzzchild import ChildRunner, merge_counts  # noqa: E402
from _pth_writer import ODict, Tensor, legacy_checkpoint, pickle_bytes, safetensors, zip_checkpoint  # noqa: E402

log = logging.getLogger("fuzz_weights")
CLASSES = ("geometry", "sizes", "dtypes", "sharing", "recursion", "build", "zip", "safetensors", "truncation",
           "bytes")
KINDS = {"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
         "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1}
MEM_RATIO, MEM_SLACK = 4, 32 << 20
_WILD = [0, 1, 2, 3, -1, -2, 7, 255, 1 << 16, 1 << 31, (1 << 31) - 1, 1 << 32, 1 << 62, 1 << 63, 1 << 64, -(1 << 62)]


def _pick(rng: np.random.Generator, values: list) -> object:
    return values[int(rng.integers(0, len(values)))]


def _num(rng: np.random.Generator, n: int) -> int:
    """A plausible or a hostile integer near a storage of ``n`` elements."""
    return int(_pick(rng, [*_WILD, n, n - 1, n + 1, -n, int(rng.integers(0, n + 2)), int(rng.integers(0, 5))]))


def _storage(rng: np.random.Generator, kind: str = "FloatStorage", n: int | None = None) -> tuple[int, bytes]:
    n = int(rng.integers(1, 65)) if n is None else n
    return n, rng.integers(0, 256, n * KINDS.get(kind, 1), dtype=np.uint8).tobytes()


def _checkpoint(rng: np.random.Generator, obj: object, storages: dict[str, bytes], kinds: dict[str, str],
                deflate: bool = False) -> tuple[str, bytes]:
    if rng.integers(0, 2):
        return ".pth", zip_checkpoint(obj, storages, deflate)
    return ".pth", legacy_checkpoint(obj, storages, {k: KINDS.get(kinds.get(k, ""), 1) for k in storages})


def _valid(rng: np.random.Generator) -> tuple[str, bytes]:
    """A well-formed checkpoint of a few tensors (zip, legacy or safetensors)."""
    if rng.integers(0, 3) == 0:
        return ".safetensors", safetensors({f"t{i}": rng.normal(size=int(rng.integers(1, 40))).astype("<f4")
                                            for i in range(int(rng.integers(1, 4)))})
    storages, items = {}, {}
    for i in range(int(rng.integers(1, 4))):
        n, raw = _storage(rng)
        storages[str(i)] = raw
        items[f"layer{i}.weight"] = Tensor(str(i), n, 0, (n,), (1,))
    return _checkpoint(rng, ODict(items, state={"_metadata": ODict({"": {"version": 1}})}), storages, {})


def _crafted(rng: np.random.Generator, kind: str) -> tuple[str, bytes]:  # noqa: C901 - one branch per class
    n, raw = _storage(rng)
    if kind == "geometry":  # half plausible (most inside the storage), half hostile
        ndim, sane = int(rng.integers(0, 5)), bool(rng.integers(0, 2))
        num = (lambda: int(rng.integers(0, 5))) if sane else (lambda: _num(rng, n))  # noqa: E731
        size = tuple(num() for _ in range(ndim))
        stride = tuple(num() for _ in range(ndim if rng.integers(0, 8) else ndim + 1))
        t = Tensor("0", n, int(rng.integers(0, n)) if sane else _num(rng, n), size, stride)
        return (*_checkpoint(rng, {"w": t}, {"0": raw}, {}), (np.frombuffer(raw, "<u4"), t))
    if kind == "sizes":
        declared = _num(rng, n)
        stored = raw[: int(rng.integers(0, len(raw) + 1))] if rng.integers(0, 2) else raw + raw
        return _checkpoint(rng, {"w": Tensor("0", declared, 0, (min(max(declared, 0), 64),), (1,))}, {"0": stored},
                           {"0": _pick(rng, ["FloatStorage", "ByteStorage", "DoubleStorage"])})
    if kind == "dtypes":
        name = _pick(rng, [*KINDS, "QInt8Storage", "ComplexFloatStorage", "UntypedStorage", "Storage"])
        n, raw = _storage(rng, name)
        if rng.integers(0, 3) == 0:
            raw = raw[:-1] or raw
        return _checkpoint(rng, {"w": Tensor("0", n, 0, (n,), (1,), name)}, {"0": raw}, {"0": name})
    if kind == "sharing":
        if rng.integers(0, 2):
            leaf: object = Tensor("0", n, 0, (n,), (1,))
            for _ in range(int(rng.integers(10, 80))):
                leaf = _pick(rng, [[leaf, leaf], {"a": leaf, "b": leaf}, (leaf, leaf)])
            return _checkpoint(rng, {"dag": leaf, "w": Tensor("0", n, 0, (n,), (1,))}, {"0": raw}, {})
        n, raw = _storage(rng, n=4096)
        views = {f"v{i}": Tensor("0", n, 0, (n, int(rng.integers(1, 8))), (1, 0)) for i in range(300)}
        return _checkpoint(rng, views, {"0": raw}, {})
    if kind == "recursion":
        if rng.integers(0, 2):
            loop: list = [Tensor("0", n, 0, (n,), (1,))]
            loop.append(_pick(rng, [loop, {"x": loop}, [[loop]]]))
            return _checkpoint(rng, {"loop": loop}, {"0": raw}, {})
        depth = int(rng.integers(40, 3000))
        data = b"\x80\x02}X\x01\x00\x00\x00d" + b"]" * depth + b"a" * (depth - 1) + b"s."
        return ".pth", _zip_raw({"archive/data.pkl": data})
    if kind == "build":
        evil = _pick(rng, [b"ctorch._utils\n_rebuild_tensor_v2\n}X\x01\x00\x00\x00aK\x01sb.",
                           b"ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x01\x00\x00\x00Osb.",
                           b"ccollections\nOrderedDict\n)R]b.", b"ccollections\nOrderedDict\n)RN}\x86b.",
                           b"cposix\nsystem\nX\x04\x00\x00\x00trueR.", b"cbuiltins\neval\nX\x01\x00\x00\x001\x85R.",
                           b"(ctorch\nFloatStorage\nX\x01\x00\x00\x000tQ.", b"X\x03\x00\x00\x00abcQ.",
                           b"ccollections\nOrderedDict\nK\x01\x85R.", b"(ccollections\nOrderedDict\no."])
        return ".pth", _zip_raw({"archive/data.pkl": b"\x80\x02" + evil})
    if kind == "zip":
        big = int(_pick(rng, [1 << 20, 1 << 24, 1 << 26]))
        obj = {"w": Tensor("0", big // 4, 0, (big // 4,), (1,))}
        variant = int(rng.integers(0, 4))
        if variant == 0:  # a deflate bomb whose sizes agree with each other
            return ".pth", zip_checkpoint(obj, {"0": bytes(big)}, deflate=True)
        if variant == 1:  # the storage member is missing or named twice
            return ".pth", _zip_raw({"archive/data.pkl": pickle_bytes(obj), "archive/data/1": raw})
        if variant == 2:
            return ".pth", _zip_raw({"archive/data.pkl": pickle_bytes({"w": Tensor("0", n, 0, (n,), (1,))}),
                                     "archive/byteorder": _pick(rng, [b"big", b"", b"x" * 100]), "archive/data/0": raw})
        return ".pth", _zip_raw({"archive/other.pkl": pickle_bytes({})})
    if kind == "safetensors":
        entry = {"dtype": _pick(rng, ["F32", "F16", "BF16", "I64", "X", 5, None]),
                 "shape": [_num(rng, n) for _ in range(int(rng.integers(0, 4)))],
                 "data_offsets": [_num(rng, len(raw)) for _ in range(int(rng.integers(1, 4)))]}
        header = _pick(rng, [{"t": entry}, {f"t{i}": entry for i in range(50)}, [entry], {"t": [1]},
                             {"__metadata__": _pick(rng, [{"a": "b"}, [1], "x"]), "t": entry}])
        head = json.dumps(header).encode()
        length = _pick(rng, [len(head), len(head) + 1, 0, 1 << 40, len(head) - 1])
        return ".safetensors", struct.pack("<Q", max(length, 0)) + head + raw
    raise ValueError(kind)


def _zip_raw(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def generate(rng: np.random.Generator, i: int) -> tuple[str, str, bytes, tuple | None]:
    """The ``i``-th input: (class, suffix, bytes, oracle); the oracle of a crafted view is its storage's
    elements (as uint32 bits) and the :class:`Tensor` that was written."""
    kind = CLASSES[i % len(CLASSES)]
    if kind in ("truncation", "bytes"):
        suffix, data = _valid(rng)
        buf = bytearray(data)
        if kind == "truncation":
            return kind, suffix, bytes(buf[: int(rng.integers(0, len(buf)))]), None
        for _ in range(int(rng.integers(1, 9))):
            buf[int(rng.integers(0, len(buf)))] ^= int(rng.integers(1, 256))
        return kind, suffix, bytes(buf), None
    suffix, data, *oracle = _crafted(rng, kind)
    return kind, suffix, data, (oracle[0] if oracle else None)


def outside(arr: np.ndarray, oracle: tuple) -> bool:
    """Whether a loaded view differs from its storage read element by element in Python (an index outside the
    storage, a wrong shape or a wrong value): the independent check that no read left the buffer."""
    storage, t = oracle
    if arr.shape != tuple(t.size):
        return True
    bits = np.ascontiguousarray(arr).view("<u4")
    for idx in np.ndindex(*arr.shape):
        flat = t.offset + sum(i * s for i, s in zip(idx, t.stride))
        if not 0 <= flat < len(storage) or bits[idx] != storage[flat]:
            return True
    return False


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def _load(msg: tuple[str, bytes, bool], workdir: str) -> dict:
    """In the child: load one file; the outcome and the peak RSS above the baseline."""
    from cxrzoo.models.weights import CheckpointFormatError, UnsafeCheckpointError, load_state_dict

    suffix, data, want = msg
    path = os.path.join(workdir, "input" + suffix)
    with open(path, "wb") as f:
        f.write(data)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the high-water mark of the RSS
    base = _status("VmRSS:")
    try:
        sd = load_state_dict(path)
        out = {"outcome": "loaded", "returned": int(sum(v.nbytes for v in sd.values()))}
        if want and out["returned"] <= 1 << 18:
            out["arrays"] = dict(sd)
        del sd
    except (CheckpointFormatError, UnsafeCheckpointError) as e:
        reason = re.sub(r"\d+", "N", str(e).split(": ", 1)[-1].split("(")[0])
        out = {"outcome": "rejected", "reason": reason[:60].strip(), "returned": 0}
    except BaseException as e:  # noqa: BLE001 -- what the fuzzer looks for
        out = {"outcome": "crash", "reason": f"{type(e).__name__}: {e}"[:200], "returned": 0}
    out["peak"] = max(_status("VmHWM:") - base, 0)
    return out


def _work(args: tuple[int, int, int, float]) -> dict:
    k, n, seed, limit = args
    rng = np.random.default_rng(seed + 1000 * k)
    counts: dict = {"inputs": 0, "loaded": 0, "rejected": 0, "crashes": 0, "hangs": 0, "memory_overruns": 0,
                    "views_checked": 0, "reads_outside": 0,
                    "peak_rss_bytes": 0, "worst_memory_ratio": 0.0, "slowest_s": 0.0,
                    "by_class": collections.Counter(), "reasons": collections.Counter(), "crash_examples": []}
    runner = ChildRunner(_load, limit, warmup=[(".safetensors", safetensors({"w": np.zeros(2, "<f4")}), False)])
    try:
        for i in range(n):
            kind, suffix, data, oracle = generate(rng, i)
            res = runner.call((suffix, data, oracle is not None))
            counts["slowest_s"] = max(counts["slowest_s"], round(runner.last_seconds, 3))
            outcome = res["outcome"]
            counts[{"loaded": "loaded", "rejected": "rejected", "crash": "crashes", "hang": "hangs"}[outcome]] += 1
            if outcome in ("crash", "hang") and len(counts["crash_examples"]) < 5:
                counts["crash_examples"].append(f"{kind}: {res['reason']}")
            if outcome == "rejected":
                counts["reasons"][res["reason"]] += 1
            if "arrays" in res:
                counts["views_checked"] += 1
                counts["reads_outside"] += any(outside(a, oracle) for a in res["arrays"].values())
            if "peak" in res:
                counts["peak_rss_bytes"] = max(counts["peak_rss_bytes"], res["peak"])
                allowed = MEM_RATIO * (len(data) + res["returned"]) + MEM_SLACK
                counts["memory_overruns"] += res["peak"] > allowed
                counts["worst_memory_ratio"] = max(counts["worst_memory_ratio"],
                                                   res["peak"] / max(len(data) + res["returned"], 1))
            counts["by_class"][kind] += 1
            counts["inputs"] += 1
    finally:
        runner.close()
    return counts


def _work_into(args: tuple[int, int, int, float], queue) -> None:
    queue.put(_work(args))


def run(n: int, workers: int = 1, seed: int = 0, limit: float = 5.0) -> dict:
    """Fuzz ``n`` inputs over ``workers`` processes (each with its own reader child); the summed counts."""
    shares = [(k, n // workers + (k < n % workers), seed, limit) for k in range(workers)]
    if workers == 1:
        parts = [_work(shares[0])]
    else:  # plain processes: a pool's are daemons, which may not start the reader's children
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        procs = [ctx.Process(target=_work_into, args=(share, queue)) for share in shares]
        for p in procs:
            p.start()
        parts = [queue.get() for _ in procs]
        for p in procs:
            p.join()
    return merge_counts(parts, ("slowest_s", "peak_rss_bytes", "worst_memory_ratio"))


def main() -> None:
    """Run the fuzzer and print its counts (table, then one JSON line)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="inputs to try (default: 100,000)")
    ap.add_argument("--workers", type=int, default=2, help="processes (default: 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=float, default=5.0, help="per-file time limit in seconds (default: 5)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    res = run(args.n, args.workers, args.seed, args.limit)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    log.info("%d checkpoints (%s) in %.0f s, per-file limit %g s", res["inputs"],
             ", ".join(f"{k} {v}" for k, v in sorted(res["by_class"].items())), res["seconds"], args.limit)
    for key in ("loaded", "rejected", "crashes", "hangs", "memory_overruns", "views_checked", "reads_outside"):
        log.info("  %-16s %8d", key, res[key])
    log.info("  peak RSS of one load %.1f MB; worst peak / (file + arrays) %.1f (allowed %d x + %d MB)",
             res["peak_rss_bytes"] / 1e6, res["worst_memory_ratio"], MEM_RATIO, MEM_SLACK >> 20)
    log.info("  slowest file     %8.2f s", res["slowest_s"])
    log.info("most common reasons: %s", "; ".join(f"{k} ({v})" for k, v in res["reasons"].most_common(8)))
    for ex in res["crash_examples"]:
        log.info("crash: %s", ex)
    res = {k: (dict(v) if isinstance(v, collections.Counter) else v) for k, v in res.items()}
    print(json.dumps({"benchmark": "fuzz_weights", **res}))  # noqa: T201
    if res["crashes"] or res["hangs"] or res["memory_overruns"] or res["reads_outside"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
