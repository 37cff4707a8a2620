"""DICOM decode microbenchmark: a radiograph's file bytes → 256² gray uint8, images/s on one core.

Contenders, on the same files, in alternating rounds (median of ``--repeats`` after one warm-up round):

- **cxrzoo**: ``decode_image`` (pydicom parse, pylibjpeg decode, then modality LUT, VOI, MONOCHROME1
  inversion and 8-bit scaling composed into one lookup table, then the area resize);
- **pydicom**: the plain recipe, ``pydicom.dcmread(...).pixel_array``, ``apply_modality_lut``,
  ``apply_voi_lut``, MONOCHROME1 inverted, scaled to uint8 and ``cv2.resize(INTER_AREA)``;
- **sandboxed**: cxrzoo's decode as the ingest UDF runs it, in the sandbox child (capped memory, a time
  limit), the file's bytes in and the 256² image out over a pipe: ``sandbox_cost`` is the share of cxrzoo's
  throughput that isolation costs.  The child runs on the core the parent waits on.

Files: the real computed radiographs of pydicom's test data (RG1 1955×1841 15-bit, RG3 1760² 10-bit,
MONOCHROME1, each uncompressed and JPEG 2000 lossless) and synthetic 2048² 12-bit chest phantoms that
cxrzoo writes (uncompressed and JPEG 2000 lossless through pydicom's encoder).

    .venv/bin/python benchmarks/bench_dicom.py [--repeats 5] [--phantoms 4] [--json]
"""
from __future__ import annotations

import importlib.util
import io
import json
import logging
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from _common import bench_args, cpu_name, emit

log = logging.getLogger("bench_dicom")


def _real() -> dict[str, list[bytes]]:
    spec = importlib.util.find_spec("data_store")  # the pydicom-data package (test extra)
    if not spec or not spec.origin:
        return {"uncompressed": [], "jpeg2000": []}
    root = Path(spec.origin).parent / "data"
    return {"uncompressed": [(root / f"{n}_UNCR.dcm").read_bytes() for n in ("RG1", "RG3")],
            "jpeg2000": [(root / f"{n}_J2KR.dcm").read_bytes() for n in ("RG1", "RG3")]}


def _phantom(i: int, compress: bool) -> bytes:
    """A 2048² 12-bit MONOCHROME2 chest phantom with a window, as a Part 10 file."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    from cxrzoo.synth import render

    img = cv2.resize(render("Effusion", 1024, i), (2048, 2048), interpolation=cv2.INTER_CUBIC)
    arr = (img.astype(np.uint16) << 4) | np.random.default_rng(i).integers(0, 16, img.shape, dtype=np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PatientID, ds.Modality = f"P{i}", "DX"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 3500
    ds.PixelData = arr.tobytes()
    if compress:
        ds.compress(JPEG2000Lossless, arr, generate_instance_uid=False)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def corpus(phantoms: int) -> dict[str, list[bytes]]:
    """``{"uncompressed": [...], "jpeg2000": [...]}``: the real radiographs, then the phantoms."""
    files = _real()
    for i in range(phantoms):
        files["uncompressed"].append(_phantom(i, False))
        files["jpeg2000"].append(_phantom(i, True))
    return files


def plain_pydicom(data: bytes, size: int = 256) -> np.ndarray:
    """The usual recipe: pixel_array, the modality and VOI LUTs, MONOCHROME1 inverted, uint8, cv2 area resize."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(io.BytesIO(data))
    x = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    lo, hi = float(x.min()), float(x.max())
    u = (x - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(x)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        u = 255.0 - u
    return cv2.resize(u.astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA)


def alternating(contenders: dict, files: list[bytes], repeats: int) -> dict[str, float]:
    """Images/s per contender: one warm-up round, then ``repeats`` rounds alternating contenders; medians."""
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(repeats + 1):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in order:
            t0 = time.perf_counter()
            for d in files:
                contenders[name](d)
            if r:
                times[name].append(time.perf_counter() - t0)
    return {k: len(files) / statistics.median(v) for k, v in times.items()}


def main() -> None:
    """Run and print the table, then one JSON line."""
    args = bench_args(__doc__, 5, lambda ap: ap.add_argument(
        "--phantoms", type=int, default=4, help="synthetic 2048² phantoms per syntax (default: 4)"))
    cv2.setNumThreads(1)
    from cxrzoo.ingest.decode import decode_image
    from cxrzoo.ingest.sandbox import SandboxedDecoder

    files = corpus(args.phantoms)
    sandbox = SandboxedDecoder()  # what the ingest UDF runs: the same decode in a capped child, bytes over a pipe
    contenders = {"cxrzoo": lambda d: decode_image(d, 256), "pydicom": plain_pydicom,
                  "sandboxed": lambda d: decode_image(d, 256, sandbox=sandbox)}
    res = {"benchmark": "dicom", "cpu": cpu_name(), "cores_used": 1, "size": 256,
           "files": {k: len(v) for k, v in files.items()}}
    log.info("DICOM → 256² gray, one core, %s", res["cpu"])
    log.info("%-14s %8s %12s %12s %8s %14s %10s", "syntax", "files", "cxrzoo/s", "pydicom/s", "speedup",
             "sandboxed/s", "sandbox")
    try:
        for syntax, data in files.items():
            rates = alternating(contenders, data, args.repeats)
            res[syntax] = {k: round(v, 2) for k, v in rates.items()}
            res[syntax]["speedup"] = round(rates["cxrzoo"] / rates["pydicom"], 2)
            res[syntax]["sandboxed_speedup"] = round(rates["sandboxed"] / rates["pydicom"], 2)
            res[syntax]["sandbox_cost"] = round(1 - rates["sandboxed"] / rates["cxrzoo"], 3)  # share of throughput
            log.info("%-14s %8d %12.1f %12.1f %7.2fx %14.1f %9.1f%%", syntax, len(data), rates["cxrzoo"],
                     rates["pydicom"], res[syntax]["speedup"], rates["sandboxed"], 100 * res[syntax]["sandbox_cost"])
    finally:
        sandbox.close()
    emit(json.dumps(res))


if __name__ == "__main__":
    main()
