"""DICOM decoding: the grayscale pipeline against NumPy and pydicom references, real files from pydicom's
test data (JPEG 2000 lossless twins must decode identically), and every bad object as an error."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_windowing
from pydicom.uid import (ExplicitVRBigEndian, ImplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit,
                         RLELossless)

from cxrzoo.ingest.decode import decode_image
from cxrzoo.ingest.dicom import DicomError, decode_dicom, is_dicom, window
from cxrzoo.ingest.errors import ImageDecodeError
from dicommaker import dataset, non_image, to_bytes

SYNTAXES = [ExplicitVRLittleEndian := "1.2.840.10008.1.2.1", ImplicitVRLittleEndian, ExplicitVRBigEndian,
            RLELossless, JPEG2000Lossless]


def _real(name: str) -> Path:
    """A file of pydicom's test data: pydicom's own package, or the pydicom-data package (test extra)."""
    roots = [Path(pydicom.__file__).parent / "data" / "test_files"]
    spec = importlib.util.find_spec("data_store")
    if spec and spec.origin:
        roots.append(Path(spec.origin).parent / "data")
    for root in roots:
        if (root / name).is_file():
            return root / name
    pytest.fail(f"{name} is in neither pydicom's test files nor pydicom-data (pip install '.[test]')")


def _ramp(bits: int, signed: bool = False, shape=(32, 48)) -> np.ndarray:
    """Every stored value of ``bits`` bits, repeated to fill ``shape``."""
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    values = np.linspace(lo, hi, shape[0] * shape[1]).round().astype(np.int64).reshape(shape)
    dtype = np.uint8 if bits <= 8 else (np.int16 if signed else np.uint16)
    return values.astype(dtype)


def _u8(unit: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(unit, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
@pytest.mark.parametrize("bits,signed", [(8, False), (12, False), (16, False), (16, True)])
def test_every_encodable_combination_matches_numpy(syntax, photometric, bits, signed):
    """Each photometric × bit depth × transfer syntax: stored values through rescale, a window covering
    exactly the stored range (so the expected image is the ramp itself) and MONOCHROME1's inversion."""
    if bits == 8 and syntax == ExplicitVRBigEndian:
        pytest.skip("8-bit data has no byte order to test")  # (the 16-bit cases cover big endian)
    stored = _ramp(bits, signed)
    lo, hi = float(stored.min()), float(stored.max())
    slope, intercept = 2.0, -100.0
    x = stored.astype(np.float64) * slope + intercept  # modality LUT, by hand
    c0, c1 = lo * slope + intercept, hi * slope + intercept
    ds = dataset(stored, photometric, bits_stored=bits, signed=signed, transfer_syntax=syntax,
                 RescaleSlope=slope, RescaleIntercept=intercept,
                 WindowCenter=(c0 + c1) / 2 + 0.5, WindowWidth=c1 - c0 + 1)
    # DICOM's LINEAR window with centre (c0+c1)/2 + 0.5 and width c1-c0+1 maps c0 → 0 and c1 → 1 linearly
    unit = (x - c0) / (c1 - c0)
    expected = _u8(1 - unit if photometric == "MONOCHROME1" else unit)
    img, meta = decode_dicom(to_bytes(ds))
    np.testing.assert_array_equal(img, expected)
    assert meta["photometric"] == photometric and meta["bits_stored"] == bits
    assert meta["transfer_syntax"] == syntax


def test_jpeg_baseline_decodes_as_opencv_does():
    rng = np.random.default_rng(0)
    arr = cv2_smooth(rng.integers(0, 256, (64, 80)).astype(np.uint8))
    img, _ = decode_dicom(to_bytes(dataset(arr, transfer_syntax=JPEGBaseline8Bit)), voi="none")
    assert np.abs(img.astype(int) - _u8((arr - arr.min()) / np.ptp(arr)).astype(int)).max() <= 12  # lossy


def cv2_smooth(a: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(a, (9, 9), 3)


def test_bits_stored_masks_the_unused_high_bits():
    """12 bits stored in 16 allocated with garbage above bit 11: only the low 12 bits count."""
    clean = _ramp(12)
    dirty = clean | np.uint16(0xA000)
    img, _ = decode_dicom(to_bytes(dataset(dirty, bits_stored=12)), voi="none")
    np.testing.assert_array_equal(img, _u8((clean - 0.0) / 4095))


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_matches_pydicom(function):
    """cxrzoo's window against pydicom's apply_windowing, rescaled from its output range to [0, 1]."""
    stored = _ramp(12)
    ds = dataset(stored, bits_stored=12, WindowCenter=1200.0, WindowWidth=900.0, VOILUTFunction=function)
    theirs = apply_windowing(stored.astype(np.float64), ds)
    np.testing.assert_allclose(window(stored, 1200.0, 900.0, function), theirs / 4095.0, atol=1e-9)


def test_voi_modes():
    stored = _ramp(12)
    stored[0, :4] = 4095  # burnt-in text: four saturated pixels
    ds = dataset(stored, bits_stored=12, WindowCenter=2048.5, WindowWidth=4096.0)
    x = stored.astype(np.float64)
    lo, hi = np.percentile(x, [0.5, 99.5])
    np.testing.assert_array_equal(decode_dicom(to_bytes(ds), voi="percentile")[0], _u8((x - lo) / (hi - lo)))
    np.testing.assert_array_equal(decode_dicom(to_bytes(ds), voi="none")[0], _u8((x - x.min()) / np.ptp(x)))
    assert np.array_equal(decode_dicom(to_bytes(ds), voi="auto")[0], decode_dicom(to_bytes(ds), voi="window")[0])
    plain = dataset(stored, bits_stored=12)  # no window: auto falls back to the percentile range
    np.testing.assert_array_equal(decode_dicom(to_bytes(plain))[0], _u8((x - lo) / (hi - lo)))
    with pytest.raises(DicomError, match="no WindowCenter"):
        decode_dicom(to_bytes(plain), voi="window")
    with pytest.raises(ValueError, match="voi must be one of"):
        decode_dicom(to_bytes(plain), voi="soft")


def test_voi_lut_sequence_is_applied():
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    stored = _ramp(8).astype(np.uint16)  # values 0..255 in 16-bit words
    lut = (255 - np.arange(256)) // 2  # a decreasing 7-bit LUT
    item = Dataset()
    item.LUTDescriptor = [256, 0, 8]
    item.LUTData = lut.astype("<u2").tobytes()
    ds = dataset(stored, bits_stored=8, VOILUTSequence=Sequence([item]))
    np.testing.assert_array_equal(decode_dicom(to_bytes(ds))[0], _u8(lut[stored] / 255.0))


# --- real files: pydicom's test data --------------------------------------------------------------------

@pytest.mark.parametrize("uncompressed,compressed", [("RG1_UNCR.dcm", "RG1_J2KR.dcm"),
                                                     ("RG3_UNCR.dcm", "RG3_J2KR.dcm"),
                                                     ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
                                                     ("MR_small.dcm", "MR_small_RLE.dcm"),
                                                     ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm")])
def test_lossless_twins_decode_identically(uncompressed, compressed):
    a, meta_a = decode_image(_real(uncompressed).read_bytes(), 256)
    b, meta_b = decode_image(_real(compressed).read_bytes(), 256)
    np.testing.assert_array_equal(a, b)
    assert meta_a["patient_id"] == meta_b["patient_id"] and meta_a["transfer_syntax"] != meta_b["transfer_syntax"]
    assert 40 < a.mean() < 215 and a.std() > 10  # a picture, not a flat field


def test_real_radiograph_against_pydicoms_pipeline():
    """RG1 (CR, MONOCHROME1, 15 bits, a window): against pydicom's pixel_array → modality → windowing → inverted."""
    path = _real("RG1_UNCR.dcm")
    ds = pydicom.dcmread(path)
    ref = apply_windowing(pydicom.pixels.apply_modality_lut(ds.pixel_array, ds).astype(np.float64), ds)
    ref = 1 - ref / (2 ** ds.BitsStored - 1)
    img, meta = decode_dicom(path.read_bytes())
    assert img.shape == (ds.Rows, ds.Columns)
    assert np.abs(img.astype(int) - _u8(ref).astype(int)).max() <= 1
    assert meta == {"patient_id": "9RG1", "study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID,
                    "sop_uid": ds.SOPInstanceUID, "view_position": "PA", "pixel_spacing": meta["pixel_spacing"],
                    "modality": "CR", "photometric": "MONOCHROME1", "bits_stored": 15, "rows": ds.Rows,
                    "columns": ds.Columns, "transfer_syntax": "1.2.840.10008.1.2.1"}
    assert meta["pixel_spacing"] is None or len(meta["pixel_spacing"]) == 2


# --- bad objects: each an error that says why -------------------------------------------------------------

def _two_frames() -> bytes:
    arr = _ramp(12)
    ds = dataset(np.concatenate([arr, arr]), bits_stored=12)
    ds.Rows, ds.NumberOfFrames = arr.shape[0], 2
    return to_bytes(ds)


def _truncated() -> bytes:
    ds = dataset(_ramp(12), bits_stored=12)
    ds.PixelData = ds.PixelData[:1000]
    return to_bytes(ds)


def _no_pixels() -> bytes:
    ds = dataset(_ramp(12), bits_stored=12)
    del ds.PixelData
    return to_bytes(ds)


def _unsupported_syntax() -> bytes:
    ds = dataset(_ramp(8))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile
    from pydicom.encaps import encapsulate
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    return to_bytes(ds)


def _j2k_with(segment: bytes, offset: int, junk: bytes) -> bytes:
    """RG3's JPEG 2000 codestream with bytes of one of its marker segments overwritten."""
    data = bytearray(_real("RG3_J2KR.dcm").read_bytes())
    at = data.index(segment, data.index(b"\xff\x4f\xff\x51")) + offset
    data[at:at + len(junk)] = junk
    return bytes(data)


@pytest.mark.parametrize("make,why", [
    (lambda: to_bytes(non_image()), "non-image object"),
    (lambda: _real("rtplan.dcm").read_bytes(), "non-image object"),
    (_two_frames, "multi-frame"),
    (lambda: _real("emri_small.dcm").read_bytes(), "multi-frame"),
    (lambda: _real("SC_rgb.dcm").read_bytes(), "colour photometric interpretation RGB"),
    (_no_pixels, "no pixel data"),
    (_truncated, "truncated pixel data: 1000 of 3072 bytes"),
    (lambda: _real("MR_truncated.dcm").read_bytes(), "truncated pixel data"),
    (_unsupported_syntax, "unsupported transfer syntax MPEG2"),
    (lambda: _j2k_with(b"\xff\x51", 4, b"\xff" * 40), "lying dimensions: the JPEG 2000 codestream is"),
    (lambda: _j2k_with(b"\xff\x52", 4, b"\xff" * 10), "pixel data cannot be decoded"),  # its coding style
    (lambda: _j2k_with(b"\xff\x90", 0, b"\x00" * 12), "pixel data cannot be decoded"),  # a tile header
    (lambda: b"\x00" * 128 + b"DICM" + b"\xff" * 40, "no DICOM elements"),
])
def test_bad_objects_raise_a_reason(make, why):
    with pytest.raises(DicomError, match=why):
        decode_image(make(), 64, name="x.dcm")


def test_pixel_cap_is_checked_before_decoding():
    data = to_bytes(dataset(_ramp(12), bits_stored=12))
    with pytest.raises(DicomError, match="1536 pixels is over the cap of 1000"):
        decode_dicom(data, max_pixels=1000)


def test_magic_and_names():
    data = to_bytes(dataset(_ramp(8)))
    assert is_dicom(data) and not is_dicom(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)
    img, meta = decode_image(data, 16, name="no_suffix")  # found by its magic
    assert img.shape == (16, 16) and meta["patient_id"] == "P-0042"
    img, meta = decode_image(data[132:], 16, name="bare.dcm")  # no preamble nor magic: found by its name
    assert img.shape == (16, 16) and meta["patient_id"] == "P-0042"
    with pytest.raises(ImageDecodeError, match="expected PNG, JPEG or DICOM"):
        decode_image(data[132:], 16, name="bare")  # neither: not taken for DICOM, so an error too


# --- in Spark: the Arrow UDF, listing by suffix and by magic, the join to labels ----------------------------

def test_read_images_and_read_nih_take_dicom(spark, tmp_path):
    import cv2

    from cxrzoo.ingest import read_images, read_nih

    d = tmp_path / "images"
    d.mkdir()
    ramp = _ramp(12, shape=(64, 64))
    (d / "a.dcm").write_bytes(to_bytes(dataset(ramp, "MONOCHROME1", bits_stored=12, patient_id="MRN-7")))
    (d / "1.2.840.99.1").write_bytes(to_bytes(dataset(ramp, bits_stored=12, patient_id="42")))  # a UID as name
    (d / "rgb.dcm").write_bytes(_real("SC_rgb.dcm").read_bytes())
    (d / "notes").write_bytes(b"not an image and no magic")  # ignored: no suffix, no DICM
    cv2.imwrite(str(d / "b.png"), (ramp >> 4).astype(np.uint8))
    rows = {r.image_index: r for r in read_images(spark, str(d), size=32).collect()}
    assert sorted(rows) == ["1.2.840.99.1", "a.dcm", "b.png", "rgb.dcm"]
    a, bare = rows["a.dcm"], rows["1.2.840.99.1"]
    assert a.error is None and a.dicom.patient_id == "MRN-7" and a.dicom.photometric == "MONOCHROME1"
    assert a.dicom.pixel_spacing == [0.139, 0.143] and a.dicom.bits_stored == 12 and a.dicom.view_position == "PA"
    img_a = np.frombuffer(a.image, np.uint8).reshape(32, 32)
    img_bare = np.frombuffer(bare.image, np.uint8).reshape(32, 32)
    assert np.abs(img_a.astype(int) + img_bare.astype(int) - 255).max() <= 1  # MONOCHROME1 is the inverse
    assert rows["rgb.dcm"].image is None and "rgb.dcm: colour photometric interpretation RGB" in rows["rgb.dcm"].error
    assert rows["b.png"].dicom is None and rows["b.png"].error is None

    csv = tmp_path / "labels.csv"
    csv.write_text("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"
                   "a.dcm,Nodule,0,7,50,M,PA\n1.2.840.99.1,No Finding,0,42,61,F,AP\n")
    nih = {r.image_index: r for r in read_nih(spark, str(d), str(csv), size=32).collect()}
    assert sorted(nih) == ["1.2.840.99.1", "a.dcm"]
    assert nih["a.dcm"].labels[5] == 1.0 and nih["a.dcm"].patient_id == 7 and nih["a.dcm"].dicom.patient_id == "MRN-7"
    assert nih["1.2.840.99.1"].image == bare.image


def test_off_the_local_file_system_bare_names_are_told_by_their_bytes(spark, tmp_path, monkeypatch):
    """hdfs:// and s3a:// go through Spark's binaryFile source, where the driver cannot peek at the magic: files
    without a suffix are listed and the UDF tells them by their bytes (one that is no image: an error row)."""
    from cxrzoo.ingest import read_images, reader

    d = tmp_path / "images"
    d.mkdir()
    ramp = _ramp(12, shape=(64, 64))
    (d / "1.2.840.99.1").write_bytes(to_bytes(dataset(ramp, bits_stored=12, patient_id="42")))
    (d / "notes").write_bytes(b"not an image and no magic")
    (d / "_SUCCESS").write_bytes(b"")  # Hadoop's marker: not listed
    local = {r.image_index: r for r in read_images(spark, str(d), size=32).collect()}
    monkeypatch.setattr(reader, "_local_dir", lambda images: None)
    remote = {r.image_index: r for r in read_images(spark, f"file://{d}", size=32).collect()}
    assert sorted(local) == ["1.2.840.99.1"] and sorted(remote) == ["1.2.840.99.1", "notes"]
    assert remote["1.2.840.99.1"].image == local["1.2.840.99.1"].image and remote["1.2.840.99.1"].error is None
    assert remote["notes"].image is None and remote["notes"].error.startswith("notes: ")


@pytest.mark.parametrize("voi", ["percentile", "none", "auto"])
def test_lookup_table_path_equals_the_per_pixel_numpy_pipeline(voi):
    """RG3 (10 bits in 16, MONOCHROME1) through one lookup table against NumPy on every pixel."""
    path = _real("RG3_UNCR.dcm")
    ds = pydicom.dcmread(path)
    x = ds.pixel_array.astype(np.float64)  # no rescale in this file
    if voi == "percentile":
        lo, hi = np.percentile(x, [0.5, 99.5])
    elif voi == "none":
        lo, hi = x.min(), x.max()
    else:  # its window: centre 550, width 1024, DICOM's LINEAR rule
        c, w = float(ds.WindowCenter), float(ds.WindowWidth)
        lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    expected = _u8(1 - np.clip((x - lo) / (hi - lo), 0, 1))
    got = decode_dicom(path.read_bytes(), voi=voi)[0]
    assert np.abs(got.astype(int) - expected.astype(int)).max() == 0


# --- the sandbox: a child process with bounded memory and time --------------------------------------------

def test_sandbox_gives_the_in_process_result_and_the_errors():
    from cxrzoo.ingest.sandbox import SandboxedDecoder

    files = [to_bytes(dataset(_ramp(12), "MONOCHROME1", bits_stored=12)), _real("RG3_J2KR.dcm").read_bytes()]
    with SandboxedDecoder(timeout=60) as sb:
        for data in files:
            img, meta = sb.decode(data, 64, 1 << 26, "auto")
            ref, ref_meta = decode_image(data, 64)
            np.testing.assert_array_equal(img, ref)
            assert meta == ref_meta
        with pytest.raises(DicomError, match="colour photometric interpretation RGB"):
            sb.decode(_real("SC_rgb.dcm").read_bytes(), 64, 1 << 26, "auto")
        assert sb.restarts == 0


def test_sandbox_stops_a_decode_past_its_time_limit_and_restarts():
    from cxrzoo.ingest.sandbox import DecoderCrashed, SandboxedDecoder

    big = _real("RG1_J2KR.dcm").read_bytes()  # 1955x1841 JPEG 2000: about a second to decode here
    with SandboxedDecoder(timeout=60) as sb:
        sb.decode(to_bytes(dataset(_ramp(8))), 16, 1 << 26, "auto")  # the child is up and warm
        sb.timeout = 0.05
        with pytest.raises(DecoderCrashed, match="longer than the 0.05 s limit"):
            sb.decode(big, 64, 1 << 26, "auto")
        assert sb.restarts == 1
        sb.timeout = 60.0
        assert sb.decode(big, 64, 1 << 26, "auto")[0].shape == (64, 64)


def test_sandbox_survives_a_crashing_decoder():
    import os
    import signal
    import threading

    from cxrzoo.ingest.sandbox import DecoderCrashed, SandboxedDecoder

    with SandboxedDecoder(timeout=60) as sb:
        sb.decode(to_bytes(dataset(_ramp(8))), 16, 1 << 26, "auto")
        pid = sb._proc.pid
        threading.Timer(0.1, os.kill, (pid, signal.SIGSEGV)).start()  # as a codec's segfault would
        with pytest.raises(DecoderCrashed, match="died on this file \\(signal SIGSEGV\\)"):
            sb.decode(_real("RG1_J2KR.dcm").read_bytes(), 64, 1 << 26, "auto")
        img, _ = sb.decode(to_bytes(dataset(_ramp(8))), 16, 1 << 26, "auto")
        assert img.shape == (16, 16) and sb._proc.pid != pid


def test_short_fuzz_run_has_no_crash_and_no_hang():
    """benchmarks/fuzz_dicom.py on 400 inputs (the full run is >= 100,000): every class of mutation, each
    input an image or an error, none escaping the decode path, none past the time limit."""
    from fuzz_dicom import CLASSES, run

    res = run(400, workers=1, seed=3, limit=5.0)
    assert res["inputs"] == 400 and set(res["by_class"]) == set(CLASSES)
    assert res["crashes"] == 0 and res["hangs"] == 0, res["crash_examples"]
    assert res["decoded"] > 40 and res["rejected"] > 40
